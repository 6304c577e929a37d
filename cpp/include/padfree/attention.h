// Scaled dot-product attention over packed variable-length sequences.
//
// Tokens of all sequences are packed along one axis: sequence b owns packed rows
// [cu_seqlens[b], cu_seqlens[b+1]). Padding is never stored, read or computed.
#pragma once

#include <cstdint>

namespace padfree {

struct PackedSequences {
    int64_t batch = 0;
    const int64_t* cu_seqlens = nullptr;  // batch + 1 offsets, cu_seqlens[0] == 0
    // Original position (within its padded sequence) of each packed token, or nullptr when
    // every sequence is a prefix (token t of sequence b sits at position t - cu_seqlens[b]).
    // Causal, window and attn_mask use original positions.
    const int64_t* positions = nullptr;
};

// Masks beyond key padding. All are optional and combine (a key takes part only if every
// mask lets it).
struct AttentionMask {
    // attn_mask indexed [b, h, query_position, key_position] through element strides
    // (a stride of 0 broadcasts that dimension); the key stride is 1. At most one of
    // keep (nonzero = take part) and bias (added to the scaled scores) is set. Within one
    // (b, h) slice, query_position * stride_query + key_position must fit in 31 bits.
    const uint8_t* keep = nullptr;
    const float* bias = nullptr;
    int64_t stride_batch = 0;
    int64_t stride_head = 0;
    int64_t stride_query = 0;
    // Structured masks, never materialised: causal keeps key j for query i iff j <= i;
    // the window keeps i - window_left <= j <= i + window_right (a negative bound is
    // unbounded on that side).
    bool causal = false;
    int64_t window_left = -1;
    int64_t window_right = -1;
};

// out[t, h*head_dim : (h+1)*head_dim] = softmax(scale * q_t · K_bᵀ + masks) · V_b for every
// packed token t of sequence b and head h. q, k and v point at head 0 of packed row 0 and
// advance by ld (floats) per packed row and by head_dim per head, so they can point into a
// fused QKV projection output (ld = 3 * heads * head_dim). A query with no key left
// outputs zeros. num_threads <= 0 means OpenMP's default.
void attention_packed_f32(const PackedSequences& seqs, int64_t heads, int64_t head_dim,
                          const float* q, const float* k, const float* v, int64_t ld,
                          float* out, int64_t ld_out, float scale, const AttentionMask& mask,
                          int num_threads);

// The same computation read in place from a padded layout: sequence b is the prefix of
// lengths[b] positions, and element [b, h, i, d] of q, k and v (one shared set of strides,
// in floats) sits at b * stride_batch + h * stride_head + i * ld + d; out likewise with
// its own strides. Rows i in [lengths[b], padded_length) of out are written as zeros
// (padded_length = 0 leaves them untouched, for an output that is already zero). Masks use
// position i. This is what padfree.attention uses for (B, H, L, Dh) arrays
// whose padding is a suffix, so that nothing is packed or copied.
struct PaddedBatch {
    int64_t batch = 0;
    int64_t padded_length = 0;
    const int64_t* lengths = nullptr;
    int64_t stride_batch = 0;
    int64_t stride_head = 0;
    int64_t ld = 0;
    int64_t out_stride_batch = 0;
    int64_t out_stride_head = 0;
    int64_t ld_out = 0;
};

void attention_padded_f32(const PaddedBatch& layout, int64_t heads, int64_t head_dim,
                          const float* q, const float* k, const float* v, float* out,
                          float scale, const AttentionMask& mask, int num_threads);

}  // namespace padfree
