// Internal contract between the attention driver (attention.cpp) and its per-ISA tile
// kernels (attention_avx2.cpp, attention_avx512.cpp). Plain declarations only: nothing
// here is compiled with ISA flags.
#pragma once

#include <cstddef>
#include <cstdint>

#include "padfree/dispatch.h"

namespace padfree {

// One work item: up to `query_tile` consecutive queries of one sequence and one head.
// Indices of keys are relative to the start of the sequence.
struct AttentionTile {
    const float* q = nullptr;  // first query row of the tile, at this head
    const float* k = nullptr;  // first key row of the sequence, at this head
    const float* v = nullptr;  // first value row of the sequence, at this head
    int64_t ld = 0;            // floats between consecutive packed rows of q, k and v
    float* out = nullptr;      // first output row of the tile, at this head
    int64_t ld_out = 0;
    int64_t rows = 0;  // queries in the tile, 1..query_tile
    int64_t head_dim = 0;
    float scale = 1.0f;

    // Keys [key_begin, key_end) cover every key any row of the tile may see; row i sees
    // only keys [key_lo[i], key_hi[i]) (causal and window). Rows past `rows` hold empty
    // ranges. Arrays have query_tile entries.
    int64_t key_begin = 0;
    int64_t key_end = 0;
    const int32_t* key_lo = nullptr;
    const int32_t* key_hi = nullptr;

    // attn_mask at this (sequence, head): element mask[query_offset[i] + key_position(j)].
    // At most one of keep and bias is set. key_position is the sequence's slice of the
    // packed positions, or nullptr when key j sits at position j.
    const uint8_t* keep = nullptr;
    const float* bias = nullptr;
    const int32_t* query_offset = nullptr;
    const int64_t* key_position = nullptr;
};

// Tile sizes of the vector kernels. Key blocks are multiples of the kernels' key groups
// (8 keys for AVX-512, 6 for AVX2) so that a rounded-up last group stays inside scratch.
inline constexpr int64_t kAvx512QueryTile = 32;
inline constexpr int64_t kAvx512KeyBlock = 256;
inline constexpr int64_t kAvx2QueryTile = 16;
inline constexpr int64_t kAvx2KeyBlock = 240;

using attention_tile_f32_fn = void (*)(const AttentionTile& tile, float* scratch);

struct AttentionKernels {
    int64_t query_tile;  // queries per work item
    int64_t key_block;   // keys per online-softmax step
    attention_tile_f32_fn tile_f32;
};

// Floats of per-thread scratch a tile kernel may use: query_tile * (head_dim + key_block
// + 8), 64-byte aligned by the driver.
size_t attention_scratch_floats(const AttentionKernels& kernels, int64_t head_dim);

const AttentionKernels& attention_kernels(Isa isa);

void attention_tile_f32_scalar(const AttentionTile& tile, float* scratch);
#if defined(PADFREE_X86)
void attention_tile_f32_avx2(const AttentionTile& tile, float* scratch);
void attention_tile_f32_avx512(const AttentionTile& tile, float* scratch);
#endif

}  // namespace padfree
