// The Transformer encoder: a stack of self-attention + feed-forward layers run on packed
// valid tokens, plus the packing and unpacking between a padded (B, L, D) batch and the
// packed (T, D) token axis.
//
// An Encoder is immutable after construction; every forward call sizes its own scratch by
// the number of valid tokens, so one Encoder may run on many threads at once.
#pragma once

#include <cstdint>
#include <vector>

#include "padfree/attention.h"
#include "padfree/gemm.h"

namespace padfree {

struct EncoderConfig {
    int64_t d_model = 0;
    int64_t heads = 0;
    int64_t dim_feedforward = 0;
    bool norm_first = false;  // pre-norm (LayerNorm before each block) when true
    Activation activation = Activation::relu;
    float layer_norm_eps = 1e-5f;
    float final_norm_eps = 1e-5f;  // the optional final norm may have its own epsilon
};

// Borrowed views of one layer's weights in PyTorch's nn.TransformerEncoderLayer layout,
// all row-major and contiguous. Copied (and packed) by EncoderLayer's constructor.
struct EncoderLayerWeights {
    const float* in_proj_weight = nullptr;   // (3 * d_model, d_model)
    const float* in_proj_bias = nullptr;     // (3 * d_model)
    const float* out_proj_weight = nullptr;  // (d_model, d_model)
    const float* out_proj_bias = nullptr;    // (d_model)
    const float* linear1_weight = nullptr;   // (dim_feedforward, d_model)
    const float* linear1_bias = nullptr;     // (dim_feedforward)
    const float* linear2_weight = nullptr;   // (d_model, dim_feedforward)
    const float* linear2_bias = nullptr;     // (d_model)
    const float* norm1_weight = nullptr;     // (d_model)
    const float* norm1_bias = nullptr;
    const float* norm2_weight = nullptr;
    const float* norm2_bias = nullptr;
};

struct LayerNormParams {
    std::vector<float> weight;
    std::vector<float> bias;
};

struct EncoderLayer {
    EncoderLayer(const EncoderConfig& config, const EncoderLayerWeights& weights);

    PackedLinear in_proj;   // fused Q, K, V: (3D, D)
    PackedLinear out_proj;  // (D, D)
    PackedLinear linear1;   // (F, D)
    PackedLinear linear2;   // (D, F)
    LayerNormParams norm1;
    LayerNormParams norm2;
};

class Encoder {
public:
    // final_norm_weight/bias: (d_model) each, or both nullptr for no final norm.
    Encoder(const EncoderConfig& config, const std::vector<EncoderLayerWeights>& layers,
            const float* final_norm_weight, const float* final_norm_bias);

    const EncoderConfig& config() const { return config_; }
    int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
    const EncoderLayer& layer(int64_t i) const { return layers_[static_cast<size_t>(i)]; }
    bool has_final_norm() const { return has_final_norm_; }
    const LayerNormParams& final_norm() const { return final_norm_; }

    // Runs every layer in place on the packed tokens h: (T, d_model) with row stride
    // d_model, T = seqs.cu_seqlens[seqs.batch]. Scratch is allocated once for the call.
    void forward_packed(const PackedSequences& seqs, const AttentionMask& mask, float* h,
                        int num_threads) const;

    // Padded batch in, padded batch out: packs the valid tokens of x (B, L, D), runs the
    // stack, and writes y (B, L, D) with exact zeros at padded positions. x and y are
    // contiguous and may not overlap.
    void forward_padded(const PackedSequences& seqs, int64_t max_len, const AttentionMask& mask,
                        const float* x, float* y, int num_threads) const;

private:
    void run_layer(const EncoderLayer& layer, const PackedSequences& seqs,
                   const AttentionMask& mask, int64_t tokens, float* h, float* normed,
                   float* wide, int num_threads) const;

    EncoderConfig config_;
    std::vector<EncoderLayer> layers_;
    bool has_final_norm_ = false;
    LayerNormParams final_norm_;
};

// Gathers the valid tokens of x (B, L, D) into packed (T, D), by cu_seqlens and, when
// given, original positions. Costs O(T * D).
void pack_tokens_f32(const PackedSequences& seqs, int64_t max_len, int64_t d, const float* x,
                     float* packed, int num_threads);

// Scatters packed (T, D) into y (B, L, D), writing zeros at every position no token maps to.
void unpack_tokens_f32(const PackedSequences& seqs, int64_t max_len, int64_t d,
                       const float* packed, float* y, int num_threads);

}  // namespace padfree
