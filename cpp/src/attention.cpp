// Attention over packed sequences: the OpenMP driver that cuts a batch into (sequence, head,
// query tile) work items, the scalar tile kernel, and the per-ISA kernel table.
#include "padfree/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "attention_kernels.h"
#include "padfree/parallel.h"

namespace padfree {
namespace {

constexpr int64_t kScalarTile = 16;
constexpr int64_t kScalarKeyBlock = 256;

// Score of query row i against key j after every mask; -inf when the key is masked out.
float masked_score(const AttentionTile& t, int64_t i, int64_t j)
{
    if (j < t.key_lo[i] || j >= t.key_hi[i]) return -std::numeric_limits<float>::infinity();
    const float* query = t.q + i * t.ld;
    const float* key = t.k + j * t.ld;
    float dot = 0.0f;
    for (int64_t d = 0; d < t.head_dim; ++d) dot += query[d] * key[d];
    float score = dot * t.scale;

    if (t.keep || t.bias) {
        const int64_t at = t.query_offset[i] + (t.key_position ? t.key_position[j] : j);
        if (t.keep && !t.keep[at]) return -std::numeric_limits<float>::infinity();
        if (t.bias) score += t.bias[at];
    }
    return score;
}

// One query row, keys in blocks with a running max and sum (online softmax).
void attention_row_scalar(const AttentionTile& t, int64_t i, float* scores, float* acc)
{
    const float neg_inf = -std::numeric_limits<float>::infinity();
    float row_max = neg_inf;
    float row_sum = 0.0f;
    std::fill(acc, acc + t.head_dim, 0.0f);

    for (int64_t k0 = t.key_lo[i]; k0 < t.key_hi[i]; k0 += kScalarKeyBlock) {
        const int64_t count = std::min<int64_t>(kScalarKeyBlock, t.key_hi[i] - k0);
        float block_max = neg_inf;
        for (int64_t j = 0; j < count; ++j) {
            scores[j] = masked_score(t, i, k0 + j);
            block_max = std::max(block_max, scores[j]);
        }
        const float new_max = std::max(row_max, block_max);
        if (new_max == neg_inf) continue;  // nothing kept yet

        const float alpha = std::exp(row_max - new_max);
        row_sum *= alpha;
        for (int64_t d = 0; d < t.head_dim; ++d) acc[d] *= alpha;
        for (int64_t j = 0; j < count; ++j) {
            const float p = std::exp(scores[j] - new_max);
            const float* value = t.v + (k0 + j) * t.ld;
            row_sum += p;
            for (int64_t d = 0; d < t.head_dim; ++d) acc[d] += p * value[d];
        }
        row_max = new_max;
    }

    const float inv = row_sum > 0.0f ? 1.0f / row_sum : 0.0f;
    float* out = t.out + i * t.ld_out;
    for (int64_t d = 0; d < t.head_dim; ++d) out[d] = acc[d] * inv;
}

const AttentionKernels kScalar{kScalarTile, kScalarKeyBlock, attention_tile_f32_scalar};
#if defined(PADFREE_X86)
const AttentionKernels kAvx2{kAvx2QueryTile, kAvx2KeyBlock, attention_tile_f32_avx2};
const AttentionKernels kAvx512{kAvx512QueryTile, kAvx512KeyBlock, attention_tile_f32_avx512};
#endif

// Where the rows of each sequence live: packed along one token axis, or padded.
struct Layout {
    const float* q = nullptr;
    const float* k = nullptr;
    const float* v = nullptr;
    float* out = nullptr;
    int64_t ld = 0;
    int64_t ld_out = 0;
    int64_t head_dim = 0;
    const PackedSequences* packed = nullptr;  // exactly one of packed and padded is set
    const PaddedBatch* padded = nullptr;

    int64_t batch() const { return packed ? packed->batch : padded->batch; }

    int64_t length(int64_t b) const
    {
        return packed ? packed->cu_seqlens[b + 1] - packed->cu_seqlens[b] : padded->lengths[b];
    }

    // Offsets in floats of row 0 of sequence b at head h, in q/k/v and in out.
    int64_t input_offset(int64_t b, int64_t h) const
    {
        if (packed) return packed->cu_seqlens[b] * ld + h * head_dim;
        return b * padded->stride_batch + h * padded->stride_head;
    }

    int64_t output_offset(int64_t b, int64_t h) const
    {
        if (packed) return packed->cu_seqlens[b] * ld_out + h * head_dim;
        return b * padded->out_stride_batch + h * padded->out_stride_head;
    }

    const int64_t* positions(int64_t b) const
    {
        return packed && packed->positions ? packed->positions + packed->cu_seqlens[b] : nullptr;
    }
};

struct WorkItem {
    int64_t sequence;
    int64_t head;
    int64_t first_query;
};

// Every (sequence, head, query tile), longest sequences first so that the long items start
// early and short ones fill the gaps at the end.
std::vector<WorkItem> work_items(const Layout& layout, int64_t heads, int64_t tile)
{
    std::vector<int64_t> order(static_cast<size_t>(layout.batch()));
    std::iota(order.begin(), order.end(), int64_t(0));
    std::stable_sort(order.begin(), order.end(), [&layout](int64_t a, int64_t b) {
        return layout.length(a) > layout.length(b);
    });

    std::vector<WorkItem> items;
    for (int64_t b : order) {
        const int64_t length = layout.length(b);
        for (int64_t h = 0; h < heads; ++h) {
            for (int64_t q0 = 0; q0 < length; q0 += tile) items.push_back({b, h, q0});
        }
    }
    return items;
}

// Keys [lo, hi) that causal and window let the query at index `query` see. Positions
// inside a sequence increase, so the allowed positions map to a contiguous range.
void allowed_keys(const int64_t* positions, int64_t length, int64_t query,
                  const AttentionMask& mask, int32_t* lo, int32_t* hi)
{
    const int64_t position = positions ? positions[query] : query;
    int64_t first = std::numeric_limits<int64_t>::min();
    int64_t last = std::numeric_limits<int64_t>::max();
    if (mask.window_left >= 0) first = position - mask.window_left;
    if (mask.window_right >= 0) last = position + mask.window_right;
    if (mask.causal) last = std::min(last, position);

    int64_t begin = 0;
    int64_t end = length;
    if (positions) {
        begin = std::lower_bound(positions, positions + length, first) - positions;
        end = std::upper_bound(positions, positions + length, last) - positions;
    } else {
        begin = std::clamp<int64_t>(first, 0, length);
        end = last >= length ? length : std::clamp<int64_t>(last + 1, 0, length);
    }
    *lo = static_cast<int32_t>(begin);
    *hi = static_cast<int32_t>(std::max(begin, end));
}

// Per-row key ranges and attn_mask offsets of a tile; `ints` holds 3 * query_tile entries.
void describe_rows(const WorkItem& item, int64_t length, const int64_t* positions,
                   const AttentionMask& mask, int64_t query_tile, int32_t* ints,
                   AttentionTile& tile)
{
    int32_t* lo = ints;
    int32_t* hi = ints + query_tile;
    int32_t* query_offset = ints + 2 * query_tile;
    tile.key_begin = length;
    tile.key_end = 0;
    for (int64_t i = 0; i < query_tile; ++i) {
        lo[i] = hi[i] = 0;
        query_offset[i] = 0;
        if (i >= tile.rows) continue;
        const int64_t query = item.first_query + i;
        allowed_keys(positions, length, query, mask, &lo[i], &hi[i]);
        if (lo[i] < hi[i]) {
            tile.key_begin = std::min<int64_t>(tile.key_begin, lo[i]);
            tile.key_end = std::max<int64_t>(tile.key_end, hi[i]);
        }
        const int64_t position = positions ? positions[query] : query;
        query_offset[i] = static_cast<int32_t>(position * mask.stride_query);
    }
    if (tile.key_begin >= tile.key_end) tile.key_begin = tile.key_end = 0;
    tile.key_lo = lo;
    tile.key_hi = hi;
    tile.query_offset = query_offset;
    tile.key_position = positions;
}

void describe_tile(const WorkItem& item, const Layout& layout, float scale,
                   const AttentionMask& mask, int64_t query_tile, int32_t* ints,
                   AttentionTile& tile)
{
    const int64_t length = layout.length(item.sequence);
    const int64_t input = layout.input_offset(item.sequence, item.head);
    tile.q = layout.q + input + item.first_query * layout.ld;
    tile.k = layout.k + input;
    tile.v = layout.v + input;
    tile.ld = layout.ld;
    tile.out = layout.out + layout.output_offset(item.sequence, item.head) +
               item.first_query * layout.ld_out;
    tile.ld_out = layout.ld_out;
    tile.rows = std::min(query_tile, length - item.first_query);
    tile.head_dim = layout.head_dim;
    tile.scale = scale;
    describe_rows(item, length, layout.positions(item.sequence), mask, query_tile, ints, tile);

    const int64_t mask_offset = item.sequence * mask.stride_batch + item.head * mask.stride_head;
    tile.keep = mask.keep ? mask.keep + mask_offset : nullptr;
    tile.bias = mask.bias ? mask.bias + mask_offset : nullptr;
}

// Rows [length, padded_length) of every (sequence, head) of a padded output become zeros.
void zero_padding(const Layout& layout, int64_t heads)
{
    const int64_t count = layout.batch() * heads;
#pragma omp for schedule(static)
    for (int64_t w = 0; w < count; ++w) {
        const int64_t b = w / heads;
        float* out = layout.out + layout.output_offset(b, w % heads);
        for (int64_t i = layout.length(b); i < layout.padded->padded_length; ++i) {
            std::fill(out + i * layout.ld_out, out + i * layout.ld_out + layout.head_dim, 0.0f);
        }
    }
}

void run_attention(const Layout& layout, int64_t heads, float scale, const AttentionMask& mask,
                   int num_threads)
{
    const AttentionKernels& kernels = attention_kernels(current_isa());
    const int64_t query_tile = kernels.query_tile;
    const std::vector<WorkItem> items = work_items(layout, heads, query_tile);
    const auto count = static_cast<int64_t>(items.size());
    const int threads = resolve_threads(num_threads);
    const size_t scratch_floats = attention_scratch_floats(kernels, layout.head_dim) + 16;

#pragma omp parallel num_threads(threads) if (count > 1)
    {
        // Per-thread scratch, 64-byte aligned for the vector kernels.
        std::vector<float> scratch_buffer(scratch_floats);
        float* scratch = scratch_buffer.data();
        scratch += (16 - (reinterpret_cast<uintptr_t>(scratch) / sizeof(float)) % 16) % 16;
        std::vector<int32_t> ints(static_cast<size_t>(3 * query_tile));

#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t w = 0; w < count; ++w) {
            AttentionTile tile;
            describe_tile(items[static_cast<size_t>(w)], layout, scale, mask, query_tile,
                          ints.data(), tile);
            kernels.tile_f32(tile, scratch);
        }
        if (layout.padded && layout.padded->padded_length > 0) zero_padding(layout, heads);
    }
}

}  // namespace

void attention_tile_f32_scalar(const AttentionTile& tile, float* scratch)
{
    float* scores = scratch;
    float* acc = scratch + kScalarKeyBlock;
    for (int64_t i = 0; i < tile.rows; ++i) attention_row_scalar(tile, i, scores, acc);
}

const AttentionKernels& attention_kernels(Isa isa)
{
#if defined(PADFREE_X86)
    if (isa == Isa::avx512) return kAvx512;
    if (isa == Isa::avx2) return kAvx2;
#endif
    return kScalar;
}

size_t attention_scratch_floats(const AttentionKernels& kernels, int64_t head_dim)
{
    const auto tile = static_cast<size_t>(kernels.query_tile);
    return tile * static_cast<size_t>(head_dim + kernels.key_block + 8);
}

void attention_packed_f32(const PackedSequences& seqs, int64_t heads, int64_t head_dim,
                          const float* q, const float* k, const float* v, int64_t ld,
                          float* out, int64_t ld_out, float scale, const AttentionMask& mask,
                          int num_threads)
{
    Layout layout;
    layout.q = q;
    layout.k = k;
    layout.v = v;
    layout.out = out;
    layout.ld = ld;
    layout.ld_out = ld_out;
    layout.head_dim = head_dim;
    layout.packed = &seqs;
    run_attention(layout, heads, scale, mask, num_threads);
}

void attention_padded_f32(const PaddedBatch& batch, int64_t heads, int64_t head_dim,
                          const float* q, const float* k, const float* v, float* out,
                          float scale, const AttentionMask& mask, int num_threads)
{
    Layout layout;
    layout.q = q;
    layout.k = k;
    layout.v = v;
    layout.out = out;
    layout.ld = batch.ld;
    layout.ld_out = batch.ld_out;
    layout.head_dim = head_dim;
    layout.padded = &batch;
    run_attention(layout, heads, scale, mask, num_threads);
}

}  // namespace padfree
