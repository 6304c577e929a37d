// Attention tile kernel, AVX2 + FMA. Same scheme as the AVX-512 kernel (see there): scores
// transposed to keys x queries with one query per lane, lane-wise online softmax, P·V
// accumulated straight into the output. 16 queries per tile (two vectors) so that the
// register blocks fit in sixteen ymm registers.
#include <algorithm>
#include <cmath>

#include "attention_kernels.h"
#include "vecmath_avx2.h"

namespace padfree {
namespace {

using avx2::exp_ps;
using avx2::tail_mask;

constexpr int64_t kTile = kAvx2QueryTile;  // two vectors of queries
constexpr int64_t kKeyBlock = kAvx2KeyBlock;
constexpr int kKeyGroup = 6;  // keys per score micro-kernel call
constexpr int64_t kPrefetchRows = 8;

struct Scratch {
    float* query_t;  // head_dim x kTile, scaled
    float* scores;   // kKeyBlock x kTile
    float* row_max;
    float* row_sum;
    float* alpha;  // rescale of the output so far, per query
    float* post;   // 1 / row_sum after the last block, per query
};

Scratch carve(float* scratch, int64_t head_dim)
{
    Scratch s;
    s.query_t = scratch;
    s.scores = s.query_t + head_dim * kTile;
    s.row_max = s.scores + kKeyBlock * kTile;
    s.row_sum = s.row_max + kTile;
    s.alpha = s.row_sum + kTile;
    s.post = s.alpha + kTile;
    return s;
}

// In-register transpose of an 8x8 block of floats (row r becomes column r).
inline void transpose8(__m256 r[8])
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]);
    const __m256 t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]);
    const __m256 t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]);
    const __m256 t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]);
    const __m256 t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44);
    const __m256 s1 = _mm256_shuffle_ps(t0, t2, 0xee);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44);
    const __m256 s3 = _mm256_shuffle_ps(t1, t3, 0xee);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44);
    const __m256 s5 = _mm256_shuffle_ps(t4, t6, 0xee);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44);
    const __m256 s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// query_t[d][i] = scale * q[i][d] for the first `lanes` queries (8 or 16), in 8x8 blocks;
// queries past the tile's rows are zero.
void transpose_query(const AttentionTile& t, int64_t lanes, float* query_t)
{
    const __m256 scale = _mm256_set1_ps(t.scale);
    for (int64_t i0 = 0; i0 < lanes; i0 += 8) {
        for (int64_t d0 = 0; d0 < t.head_dim; d0 += 8) {
            const int64_t width = std::min<int64_t>(8, t.head_dim - d0);
            const __m256i columns = tail_mask(width);
            __m256 block[8];
            for (int r = 0; r < 8; ++r) {
                const bool real = i0 + r < t.rows;
                block[r] = real ? _mm256_maskload_ps(t.q + (i0 + r) * t.ld + d0, columns)
                                : _mm256_setzero_ps();
            }
            transpose8(block);
            for (int64_t c = 0; c < width; ++c) {
                _mm256_store_ps(query_t + (d0 + c) * kTile + i0, _mm256_mul_ps(block[c], scale));
            }
        }
    }
}

// Keys each query lane may see (causal, window), applied as scores are stored.
struct LaneRanges {
    __m256i lo[2];
    __m256i hi[2];
    bool ranged = false;  // false: every row sees all of [key_begin, key_end)
};

LaneRanges lane_ranges(const AttentionTile& t)
{
    LaneRanges ranges;
    for (int c = 0; c < 2; ++c) {
        ranges.lo[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.key_lo + 8 * c));
        ranges.hi[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.key_hi + 8 * c));
    }
    for (int64_t i = 0; i < t.rows; ++i) {
        if (t.key_lo[i] != t.key_begin || t.key_hi[i] != t.key_end) ranges.ranged = true;
    }
    return ranges;
}

// scores[r][*] = query_t · key r for KR keys and NV vectors of queries, -inf outside each
// lane's key range; the first `real_keys` rows also raise the running block maximum.
template <int NV, int KR>
inline void score_keys(const float* query_t, const float* const* key, int64_t head_dim,
                       int64_t first_key, int64_t real_keys, const LaneRanges& ranges,
                       float* scores, __m256* block_max)
{
    __m256 acc[KR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < KR; ++r)
#pragma GCC unroll 8
        for (int c = 0; c < NV; ++c) acc[r][c] = _mm256_setzero_ps();

    for (int64_t d = 0; d < head_dim; ++d) {
        __m256 query[NV];
#pragma GCC unroll 8
        for (int c = 0; c < NV; ++c) query[c] = _mm256_load_ps(query_t + d * kTile + 8 * c);
#pragma GCC unroll 8
        for (int r = 0; r < KR; ++r) {
            const __m256 k = _mm256_broadcast_ss(key[r] + d);
#pragma GCC unroll 8
            for (int c = 0; c < NV; ++c) acc[r][c] = _mm256_fmadd_ps(query[c], k, acc[r][c]);
        }
    }

#pragma GCC unroll 8
    for (int r = 0; r < KR; ++r) {
        const __m256i index = _mm256_set1_epi32(static_cast<int32_t>(first_key + r));
#pragma GCC unroll 8
        for (int c = 0; c < NV; ++c) {
            __m256 x = acc[r][c];
            if (ranges.ranged) {
                const __m256i lanes = _mm256_andnot_si256(_mm256_cmpgt_epi32(ranges.lo[c], index),
                                                          _mm256_cmpgt_epi32(ranges.hi[c], index));
                x = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), x, _mm256_castsi256_ps(lanes));
            }
            _mm256_store_ps(scores + r * kTile + 8 * c, x);
            if (r < real_keys) block_max[c] = _mm256_max_ps(block_max[c], x);
        }
    }
}

// Scores of keys [k0, k0 + count) in groups of kKeyGroup. The last group repeats the final
// key in its unused rows, whose scores land in scratch rows past `count` that are never
// read: one full-width group is much faster than several latency-bound single keys.
template <int NV>
void score_block(const float* query_t, const float* key, int64_t ld, int64_t head_dim,
                 int64_t k0, int64_t count, const LaneRanges& ranges, float* scores,
                 __m256* block_max)
{
    for (int64_t j = 0; j < count; j += kKeyGroup) {
        const float* rows[kKeyGroup];
        for (int r = 0; r < kKeyGroup; ++r) {
            rows[r] = key + std::min<int64_t>(j + r, count - 1) * ld;
            for (int64_t d = 0; d < head_dim; d += 16) {
                _mm_prefetch(reinterpret_cast<const char*>(rows[r] + kKeyGroup * ld + d),
                             _MM_HINT_T0);
            }
        }
        score_keys<NV, kKeyGroup>(query_t, rows, head_dim, k0 + j, count - j, ranges,
                                  scores + j * kTile, block_max);
    }
}

// All-ones lanes whose attn_mask entry for this key says "keep".
inline __m256i kept_lanes(const uint8_t* keep, const int32_t* query_offset)
{
    alignas(32) int32_t flags[8];
    for (int lane = 0; lane < 8; ++lane) flags[lane] = keep[query_offset[lane]] ? -1 : 0;
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(flags));
}

// Masks one vector of queries over the block's keys: -inf where a key is not allowed,
// attn_mask bias added. Returns the block's maximum per lane.
__m256 mask_scores(const AttentionTile& t, int64_t lane0, int64_t k0, int64_t count,
                   float* scores)
{
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.key_lo + lane0));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.key_hi + lane0));
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    const int32_t* query_offset = t.query_offset + lane0;
    const __m256i offsets = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(query_offset));
    __m256 block_max = neg_inf;

    for (int64_t j = 0; j < count; ++j) {
        const int64_t key = k0 + j;
        const __m256i index = _mm256_set1_epi32(static_cast<int32_t>(key));
        __m256i lanes = _mm256_andnot_si256(_mm256_cmpgt_epi32(lo, index),
                                            _mm256_cmpgt_epi32(hi, index));
        float* row = scores + j * kTile + lane0;
        __m256 x = _mm256_load_ps(row);
        if (t.keep || t.bias) {
            const int64_t position = t.key_position ? t.key_position[key] : key;
            if (t.keep) {
                lanes = _mm256_and_si256(lanes, kept_lanes(t.keep + position, query_offset));
            }
            if (t.bias) {
                const __m256 bias = _mm256_mask_i32gather_ps(
                    _mm256_setzero_ps(), t.bias + position, offsets, _mm256_castsi256_ps(lanes), 4);
                x = _mm256_add_ps(x, bias);
            }
        }
        x = _mm256_blendv_ps(neg_inf, x, _mm256_castsi256_ps(lanes));
        _mm256_store_ps(row, x);
        block_max = _mm256_max_ps(block_max, x);
    }
    return block_max;
}

// Online softmax step for one vector of queries: scores become exp(score - running max),
// the running sum is updated, and alpha gets the factor that rescales earlier output.
// block_max comes from the score kernel unless attn_mask changes the scores here.
void softmax_block(const AttentionTile& t, int64_t lane0, int64_t k0, int64_t count,
                   const Scratch& s, __m256 block_max)
{
    if (t.keep || t.bias) block_max = mask_scores(t, lane0, k0, count, s.scores);
    const __m256 old_max = _mm256_load_ps(s.row_max + lane0);
    const __m256 new_max = _mm256_max_ps(old_max, block_max);
    // A lane with nothing kept yet shifts by 0, so exp(-inf - 0) = 0 instead of NaN.
    const __m256 empty = _mm256_cmp_ps(new_max, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ);
    const __m256 shift = _mm256_blendv_ps(new_max, _mm256_setzero_ps(), empty);

    __m256 sum = _mm256_setzero_ps();
    for (int64_t j = 0; j < count; ++j) {
        float* row = s.scores + j * kTile + lane0;
        const __m256 p = exp_ps(_mm256_sub_ps(_mm256_load_ps(row), shift));
        _mm256_store_ps(row, p);
        sum = _mm256_add_ps(sum, p);
    }

    const __m256 alpha = exp_ps(_mm256_sub_ps(old_max, shift));
    const __m256 old_sum = _mm256_load_ps(s.row_sum + lane0);
    _mm256_store_ps(s.row_sum + lane0, _mm256_fmadd_ps(old_sum, alpha, sum));
    _mm256_store_ps(s.row_max + lane0, new_max);
    _mm256_store_ps(s.alpha + lane0, alpha);
}

// Loads and stores of one vector of head_dim: plain when the vector is whole, masked
// (vmaskmovps, slow for stores on some CPUs) only for a head_dim tail.
template <bool kWhole>
inline __m256 load_part(const float* from, __m256i lanes)
{
    return kWhole ? _mm256_loadu_ps(from) : _mm256_maskload_ps(from, lanes);
}

template <bool kWhole>
inline void store_part(float* to, __m256i lanes, __m256 x)
{
    if (kWhole) {
        _mm256_storeu_ps(to, x);
    } else {
        _mm256_maskstore_ps(to, lanes, x);
    }
}

// out rows (the first `active` of RQ) = alpha * out + P·V, then times post, for DV vectors
// of head_dim; the last vector is cut by `last` unless kWhole. Rows past `active` read
// probabilities of unused lanes and are computed but never stored.
template <int RQ, int DV, bool kWhole>
inline void pv_rows(const float* p, int64_t count, const float* v, int64_t ld, float* out,
                    int64_t ld_out, __m256i last, const float* alpha, const float* post,
                    int64_t active)
{
    __m256 acc[RQ][DV];
#pragma GCC unroll 8
    for (int r = 0; r < RQ; ++r)
#pragma GCC unroll 8
        for (int c = 0; c < DV; ++c) acc[r][c] = _mm256_setzero_ps();

    for (int64_t j = 0; j < count; ++j) {
        const float* row = v + j * ld;
        _mm_prefetch(reinterpret_cast<const char*>(row + kPrefetchRows * ld), _MM_HINT_T0);
        __m256 value[DV];
#pragma GCC unroll 8
        for (int c = 0; c < DV; ++c) {
            value[c] = c == DV - 1 ? load_part<kWhole>(row + 8 * c, last)
                                   : _mm256_loadu_ps(row + 8 * c);
        }
#pragma GCC unroll 8
        for (int r = 0; r < RQ; ++r) {
            const __m256 weight = _mm256_broadcast_ss(p + j * kTile + r);
#pragma GCC unroll 8
            for (int c = 0; c < DV; ++c) acc[r][c] = _mm256_fmadd_ps(weight, value[c], acc[r][c]);
        }
    }

#pragma GCC unroll 8
    for (int r = 0; r < RQ; ++r) {
        if (r >= active) break;
#pragma GCC unroll 8
        for (int c = 0; c < DV; ++c) {
            float* target = out + r * ld_out + 8 * c;
            __m256 x = acc[r][c];
            if (c == DV - 1) {
                if (alpha) {
                    x = _mm256_fmadd_ps(load_part<kWhole>(target, last),
                                        _mm256_broadcast_ss(alpha + r), x);
                }
                if (post) x = _mm256_mul_ps(x, _mm256_broadcast_ss(post + r));
                store_part<kWhole>(target, last, x);
            } else {
                if (alpha) {
                    x = _mm256_fmadd_ps(_mm256_loadu_ps(target), _mm256_broadcast_ss(alpha + r),
                                        x);
                }
                if (post) x = _mm256_mul_ps(x, _mm256_broadcast_ss(post + r));
                _mm256_storeu_ps(target, x);
            }
        }
    }
}

// Row groups of 6 (8 for one vector); a group may reach past the tile's rows, never past
// the rounded-up scratch row of probabilities (kTile + 6 floats stay inside scratch).
template <int DV, bool kWhole>
void pv_columns(const AttentionTile& t, const float* p, int64_t count, const float* v,
                int64_t d0, __m256i last, const float* alpha, const float* post)
{
    constexpr int kRows = DV == 2 ? 6 : 8;
    for (int64_t i = 0; i < t.rows; i += kRows) {
        pv_rows<kRows, DV, kWhole>(p + i, count, v + d0, t.ld, t.out + i * t.ld_out + d0,
                                   t.ld_out, last, alpha ? alpha + i : nullptr,
                                   post ? post + i : nullptr, t.rows - i);
    }
}

void pv_block(const AttentionTile& t, const float* p, int64_t count, const float* v,
              const float* alpha, const float* post)
{
    for (int64_t d0 = 0; d0 < t.head_dim; d0 += 16) {
        const int64_t remaining = t.head_dim - d0;
        const __m256i last = tail_mask(remaining > 8 ? remaining - 8 : remaining);
        if (remaining >= 16) {
            pv_columns<2, true>(t, p, count, v, d0, last, alpha, post);
        } else if (remaining > 8) {
            pv_columns<2, false>(t, p, count, v, d0, last, alpha, post);
        } else if (remaining == 8) {
            pv_columns<1, true>(t, p, count, v, d0, last, alpha, post);
        } else {
            pv_columns<1, false>(t, p, count, v, d0, last, alpha, post);
        }
    }
}

void zero_rows(const AttentionTile& t)
{
    for (int64_t i = 0; i < t.rows; ++i) {
        float* row = t.out + i * t.ld_out;
        for (int64_t d = 0; d < t.head_dim; d += 8) {
            _mm256_maskstore_ps(row + d, tail_mask(t.head_dim - d), _mm256_setzero_ps());
        }
    }
}

}  // namespace

void attention_tile_f32_avx2(const AttentionTile& t, float* scratch)
{
    if (t.key_begin >= t.key_end) {
        zero_rows(t);
        return;
    }
    const Scratch s = carve(scratch, t.head_dim);
    const int vectors = t.rows > 8 ? 2 : 1;
    transpose_query(t, 8 * vectors, s.query_t);
    const LaneRanges ranges = lane_ranges(t);
    for (int64_t i = 0; i < kTile; ++i) {
        s.row_max[i] = -INFINITY;
        s.row_sum[i] = 0.0f;
    }

    for (int64_t k0 = t.key_begin; k0 < t.key_end; k0 += kKeyBlock) {
        const int64_t count = std::min(kKeyBlock, t.key_end - k0);
        const float* key = t.k + k0 * t.ld;
        __m256 block_max[2] = {_mm256_set1_ps(-INFINITY), _mm256_set1_ps(-INFINITY)};
        if (vectors == 2) {
            score_block<2>(s.query_t, key, t.ld, t.head_dim, k0, count, ranges, s.scores,
                           block_max);
        } else {
            score_block<1>(s.query_t, key, t.ld, t.head_dim, k0, count, ranges, s.scores,
                           block_max);
        }
        for (int c = 0; c < vectors; ++c) softmax_block(t, 8 * c, k0, count, s, block_max[c]);

        const bool first = k0 == t.key_begin;
        const bool last = k0 + count >= t.key_end;
        if (last) {
            for (int c = 0; c < vectors; ++c) {
                const __m256 sum = _mm256_load_ps(s.row_sum + 8 * c);
                const __m256 some = _mm256_cmp_ps(sum, _mm256_setzero_ps(), _CMP_GT_OQ);
                _mm256_store_ps(s.post + 8 * c,
                                _mm256_and_ps(some, _mm256_div_ps(_mm256_set1_ps(1.0f), sum)));
            }
        }
        pv_block(t, s.scores, count, t.v + k0 * t.ld, first ? nullptr : s.alpha,
                 last ? s.post : nullptr);
    }
}

}  // namespace padfree
