// The encoder driver: layer order (post-norm and pre-norm), per-call scratch, and the
// packing between padded (B, L, D) batches and packed (T, D) tokens.
#include "padfree/encoder.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "padfree/layernorm.h"
#include "padfree/parallel.h"

namespace padfree {
namespace {

// 64-byte aligned float scratch: rows start on cache lines when the row width allows it,
// which the GEMM micro-kernels' loads prefer.
struct FreeDeleter {
    void operator()(float* p) const { std::free(p); }
};
using AlignedFloats = std::unique_ptr<float[], FreeDeleter>;

AlignedFloats aligned_floats(int64_t count)
{
    const size_t bytes = (static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(float) + 63)
                         / 64 * 64;
    auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!p) throw std::bad_alloc();
    return AlignedFloats(p);
}

LayerNormParams copy_norm(const float* weight, const float* bias, int64_t d)
{
    return {std::vector<float>(weight, weight + d), std::vector<float>(bias, bias + d)};
}

// Packing is a memory copy; below this many floats a thread team costs more than it saves.
constexpr int64_t kParallelCopyFloats = 1 << 16;

}  // namespace

EncoderLayer::EncoderLayer(const EncoderConfig& c, const EncoderLayerWeights& w)
    : in_proj(w.in_proj_weight, 3 * c.d_model, c.d_model, c.d_model, w.in_proj_bias),
      out_proj(w.out_proj_weight, c.d_model, c.d_model, c.d_model, w.out_proj_bias),
      linear1(w.linear1_weight, c.dim_feedforward, c.d_model, c.d_model, w.linear1_bias),
      linear2(w.linear2_weight, c.d_model, c.dim_feedforward, c.dim_feedforward, w.linear2_bias),
      norm1(copy_norm(w.norm1_weight, w.norm1_bias, c.d_model)),
      norm2(copy_norm(w.norm2_weight, w.norm2_bias, c.d_model))
{
}

Encoder::Encoder(const EncoderConfig& config, const std::vector<EncoderLayerWeights>& layers,
                 const float* final_norm_weight, const float* final_norm_bias)
    : config_(config)
{
    layers_.reserve(layers.size());
    for (const EncoderLayerWeights& w : layers) layers_.emplace_back(config_, w);
    if (final_norm_weight) {
        has_final_norm_ = true;
        final_norm_ = copy_norm(final_norm_weight, final_norm_bias, config_.d_model);
    }
}

// One layer in place on h (T, D). `normed` (T, D) holds the normalised input of a pre-norm
// block and the attention output; `wide` (T, max(3D, F)) holds the fused QKV projection and
// then the feed-forward hidden layer, which are never live at the same time.
void Encoder::run_layer(const EncoderLayer& layer, const PackedSequences& seqs,
                        const AttentionMask& mask, int64_t tokens, float* h, float* normed,
                        float* wide, int num_threads) const
{
    const int64_t d = config_.d_model;
    const int64_t f = config_.dim_feedforward;
    const int64_t head_dim = d / config_.heads;
    const float eps = config_.layer_norm_eps;
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    const bool pre = config_.norm_first;

    const float* attn_in = h;
    if (pre) {
        layer_norm_f32(tokens, d, h, d, nullptr, 0, layer.norm1.weight.data(),
                       layer.norm1.bias.data(), eps, normed, d, num_threads);
        attn_in = normed;
    }
    layer.in_proj.forward(tokens, attn_in, d, wide, 3 * d, Activation::none, nullptr, 0,
                          num_threads);
    attention_packed_f32(seqs, config_.heads, head_dim, wide, wide + d, wide + 2 * d, 3 * d,
                         normed, d, scale, mask, num_threads);
    layer.out_proj.forward(tokens, normed, d, h, d, Activation::none, h, d, num_threads);
    if (!pre) {
        layer_norm_f32(tokens, d, h, d, nullptr, 0, layer.norm1.weight.data(),
                       layer.norm1.bias.data(), eps, h, d, num_threads);
    }

    const float* ffn_in = h;
    if (pre) {
        layer_norm_f32(tokens, d, h, d, nullptr, 0, layer.norm2.weight.data(),
                       layer.norm2.bias.data(), eps, normed, d, num_threads);
        ffn_in = normed;
    }
    layer.linear1.forward(tokens, ffn_in, d, wide, f, config_.activation, nullptr, 0,
                          num_threads);
    layer.linear2.forward(tokens, wide, f, h, d, Activation::none, h, d, num_threads);
    if (!pre) {
        layer_norm_f32(tokens, d, h, d, nullptr, 0, layer.norm2.weight.data(),
                       layer.norm2.bias.data(), eps, h, d, num_threads);
    }
}

void Encoder::forward_packed(const PackedSequences& seqs, const AttentionMask& mask, float* h,
                             int num_threads) const
{
    const int64_t tokens = seqs.cu_seqlens[seqs.batch];
    if (tokens == 0) return;
    const int64_t d = config_.d_model;
    const int64_t wide_cols = std::max(3 * d, config_.dim_feedforward);
    AlignedFloats normed = aligned_floats(tokens * d);
    AlignedFloats wide = aligned_floats(tokens * wide_cols);

    for (const EncoderLayer& layer : layers_) {
        run_layer(layer, seqs, mask, tokens, h, normed.get(), wide.get(), num_threads);
    }
    if (has_final_norm_) {
        layer_norm_f32(tokens, d, h, d, nullptr, 0, final_norm_.weight.data(),
                       final_norm_.bias.data(), config_.final_norm_eps, h, d, num_threads);
    }
}

void Encoder::forward_padded(const PackedSequences& seqs, int64_t max_len,
                             const AttentionMask& mask, const float* x, float* y,
                             int num_threads) const
{
    const int64_t d = config_.d_model;
    const int64_t tokens = seqs.cu_seqlens[seqs.batch];
    AlignedFloats h = aligned_floats(tokens * d);
    pack_tokens_f32(seqs, max_len, d, x, h.get(), num_threads);
    forward_packed(seqs, mask, h.get(), num_threads);
    unpack_tokens_f32(seqs, max_len, d, h.get(), y, num_threads);
}

void pack_tokens_f32(const PackedSequences& seqs, int64_t max_len, int64_t d, const float* x,
                     float* packed, int num_threads)
{
    const int64_t* cu = seqs.cu_seqlens;
    const int threads = resolve_threads(num_threads);
    const size_t row_bytes = static_cast<size_t>(d) * sizeof(float);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) \
    if (cu[seqs.batch] * d > kParallelCopyFloats)
    for (int64_t b = 0; b < seqs.batch; ++b) {
        const float* src = x + b * max_len * d;
        float* dst = packed + cu[b] * d;
        const int64_t count = cu[b + 1] - cu[b];
        if (!seqs.positions) {
            if (count > 0) std::memcpy(dst, src, static_cast<size_t>(count) * row_bytes);
            continue;
        }
        for (int64_t t = 0; t < count; ++t) {
            std::memcpy(dst + t * d, src + seqs.positions[cu[b] + t] * d, row_bytes);
        }
    }
}

void unpack_tokens_f32(const PackedSequences& seqs, int64_t max_len, int64_t d,
                       const float* packed, float* y, int num_threads)
{
    const int64_t* cu = seqs.cu_seqlens;
    const int threads = resolve_threads(num_threads);
    const size_t row_bytes = static_cast<size_t>(d) * sizeof(float);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) \
    if (seqs.batch * max_len * d > kParallelCopyFloats)
    for (int64_t b = 0; b < seqs.batch; ++b) {
        const float* src = packed + cu[b] * d;
        float* dst = y + b * max_len * d;
        const int64_t count = cu[b + 1] - cu[b];
        if (!seqs.positions) {
            if (count > 0) std::memcpy(dst, src, static_cast<size_t>(count) * row_bytes);
            const size_t tail = static_cast<size_t>(max_len - count) * row_bytes;
            if (tail > 0) std::memset(dst + count * d, 0, tail);
            continue;
        }
        std::memset(dst, 0, static_cast<size_t>(max_len) * row_bytes);
        for (int64_t t = 0; t < count; ++t) {
            std::memcpy(dst + seqs.positions[cu[b] + t] * d, src + t * d, row_bytes);
        }
    }
}

}  // namespace padfree
