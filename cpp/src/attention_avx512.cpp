// Attention tile kernel, AVX-512 (F, BW, DQ, VL).
//
// Scores are computed transposed, keys x queries with one query per lane, so the masked
// online softmax over keys runs lane-wise with no horizontal reductions. Q·Kᵀ broadcasts
// key elements against a transposed, pre-scaled copy of the query tile; P·V broadcasts
// probabilities against value rows read in place and accumulates straight into the output.
#include <algorithm>
#include <cmath>

#include "attention_kernels.h"
#include "vecmath_avx512.h"

namespace padfree {
namespace {

using avx512::exp_ps;
using avx512::tail_mask;

constexpr int64_t kTile = kAvx512QueryTile;  // two vectors of queries
constexpr int64_t kKeyBlock = kAvx512KeyBlock;
constexpr int kKeyGroup = 8;  // keys per score micro-kernel call
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

// query_t[d][i] = scale * q[i][d] for the first `lanes` queries (16 or 32), in 8x8 blocks;
// queries past the tile's rows are zero.
void transpose_query(const AttentionTile& t, int64_t lanes, float* query_t)
{
    const __m256 scale = _mm256_set1_ps(t.scale);
    for (int64_t i0 = 0; i0 < lanes; i0 += 8) {
        for (int64_t d0 = 0; d0 < t.head_dim; d0 += 8) {
            const int64_t width = std::min<int64_t>(8, t.head_dim - d0);
            const __mmask8 columns = static_cast<__mmask8>((1u << width) - 1u);
            __m256 block[8];
            for (int r = 0; r < 8; ++r) {
                const bool real = i0 + r < t.rows;
                block[r] = real ? _mm256_maskz_loadu_ps(columns, t.q + (i0 + r) * t.ld + d0)
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
    __m512i lo[2];
    __m512i hi[2];
    bool ranged = false;  // false: every row sees all of [key_begin, key_end)
};

LaneRanges lane_ranges(const AttentionTile& t)
{
    LaneRanges ranges;
    for (int c = 0; c < 2; ++c) {
        ranges.lo[c] = _mm512_loadu_si512(t.key_lo + 16 * c);
        ranges.hi[c] = _mm512_loadu_si512(t.key_hi + 16 * c);
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
                       float* scores, __m512* block_max)
{
    __m512 acc[KR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < KR; ++r)
#pragma GCC unroll 8
        for (int c = 0; c < NV; ++c) acc[r][c] = _mm512_setzero_ps();

    for (int64_t d = 0; d < head_dim; ++d) {
        __m512 query[NV];
#pragma GCC unroll 8
        for (int c = 0; c < NV; ++c) query[c] = _mm512_load_ps(query_t + d * kTile + 16 * c);
#pragma GCC unroll 8
        for (int r = 0; r < KR; ++r) {
            const __m512 k = _mm512_set1_ps(key[r][d]);
#pragma GCC unroll 8
            for (int c = 0; c < NV; ++c) acc[r][c] = _mm512_fmadd_ps(query[c], k, acc[r][c]);
        }
    }

#pragma GCC unroll 8
    for (int r = 0; r < KR; ++r) {
        const __m512i index = _mm512_set1_epi32(static_cast<int32_t>(first_key + r));
#pragma GCC unroll 8
        for (int c = 0; c < NV; ++c) {
            __m512 x = acc[r][c];
            if (ranges.ranged) {
                const __mmask16 lanes = _mm512_cmple_epi32_mask(ranges.lo[c], index) &
                                        _mm512_cmplt_epi32_mask(index, ranges.hi[c]);
                x = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), lanes, x);
            }
            _mm512_store_ps(scores + r * kTile + 16 * c, x);
            if (r < real_keys) block_max[c] = _mm512_max_ps(block_max[c], x);
        }
    }
}

// Scores of keys [k0, k0 + count) in groups of kKeyGroup. The last group repeats the final
// key in its unused rows, whose scores land in scratch rows past `count` that are never
// read: one full-width group is much faster than several latency-bound single keys.
template <int NV>
void score_block(const float* query_t, const float* key, int64_t ld, int64_t head_dim,
                 int64_t k0, int64_t count, const LaneRanges& ranges, float* scores,
                 __m512* block_max)
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

// Lanes whose attn_mask entry for key j says "keep".
inline __mmask16 kept_lanes(const uint8_t* keep, const int32_t* query_offset, int64_t key)
{
    unsigned bits = 0;
    for (int lane = 0; lane < 16; ++lane) {
        bits |= (keep[query_offset[lane] + key] ? 1u : 0u) << lane;
    }
    return static_cast<__mmask16>(bits);
}

// Masks one vector of queries over the block's keys: -inf where a key is not allowed,
// attn_mask bias added. Returns the block's maximum per lane.
__m512 mask_scores(const AttentionTile& t, int64_t lane0, int64_t k0, int64_t count,
                   float* scores)
{
    const __m512i lo = _mm512_loadu_si512(t.key_lo + lane0);
    const __m512i hi = _mm512_loadu_si512(t.key_hi + lane0);
    const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
    const int32_t* query_offset = t.query_offset + lane0;
    const __m512i offsets = _mm512_loadu_si512(query_offset);
    __m512 block_max = neg_inf;

    for (int64_t j = 0; j < count; ++j) {
        const int64_t key = k0 + j;
        const __m512i index = _mm512_set1_epi32(static_cast<int32_t>(key));
        __mmask16 lanes = _mm512_cmple_epi32_mask(lo, index) & _mm512_cmplt_epi32_mask(index, hi);
        float* row = scores + j * kTile + lane0;
        __m512 x = _mm512_load_ps(row);
        if (t.keep || t.bias) {
            const int64_t position = t.key_position ? t.key_position[key] : key;
            if (t.keep) lanes &= kept_lanes(t.keep + position, query_offset, 0);
            if (t.bias) {
                const __m512 bias =
                    _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, offsets,
                                             t.bias + position, 4);
                x = _mm512_add_ps(x, bias);
            }
        }
        x = _mm512_mask_mov_ps(neg_inf, lanes, x);
        _mm512_store_ps(row, x);
        block_max = _mm512_max_ps(block_max, x);
    }
    return block_max;
}

// Online softmax step for one vector of queries: scores become exp(score - running max),
// the running sum is updated, and alpha gets the factor that rescales earlier output.
// block_max comes from the score kernel unless attn_mask changes the scores here.
void softmax_block(const AttentionTile& t, int64_t lane0, int64_t k0, int64_t count,
                   const Scratch& s, __m512 block_max)
{
    if (t.keep || t.bias) block_max = mask_scores(t, lane0, k0, count, s.scores);
    const __m512 old_max = _mm512_load_ps(s.row_max + lane0);
    const __m512 new_max = _mm512_max_ps(old_max, block_max);
    // A lane with nothing kept yet shifts by 0, so exp(-inf - 0) = 0 instead of NaN.
    const __mmask16 empty = _mm512_cmpeq_ps_mask(new_max, _mm512_set1_ps(-INFINITY));
    const __m512 shift = _mm512_mask_mov_ps(new_max, empty, _mm512_setzero_ps());

    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < count; ++j) {
        float* row = s.scores + j * kTile + lane0;
        const __m512 p = exp_ps(_mm512_sub_ps(_mm512_load_ps(row), shift));
        _mm512_store_ps(row, p);
        sum = _mm512_add_ps(sum, p);
    }

    const __m512 alpha = exp_ps(_mm512_sub_ps(old_max, shift));
    const __m512 old_sum = _mm512_load_ps(s.row_sum + lane0);
    _mm512_store_ps(s.row_sum + lane0, _mm512_fmadd_ps(old_sum, alpha, sum));
    _mm512_store_ps(s.row_max + lane0, new_max);
    _mm512_store_ps(s.alpha + lane0, alpha);
}

// out rows (the first `active` of RQ) = alpha * out + P·V, then times post, for DV vectors
// of head_dim; the last vector is cut by `last`. Rows past `active` read probabilities of
// unused lanes and are computed but never stored.
template <int RQ, int DV>
inline void pv_rows(const float* p, int64_t count, const float* v, int64_t ld, float* out,
                    int64_t ld_out, __mmask16 last, const float* alpha, const float* post,
                    int64_t active)
{
    __m512 acc[RQ][DV];
#pragma GCC unroll 8
    for (int r = 0; r < RQ; ++r)
#pragma GCC unroll 8
        for (int c = 0; c < DV; ++c) acc[r][c] = _mm512_setzero_ps();

    for (int64_t j = 0; j < count; ++j) {
        const float* row = v + j * ld;
        __m512 value[DV];
#pragma GCC unroll 8
        for (int c = 0; c < DV; ++c) {
            _mm_prefetch(reinterpret_cast<const char*>(row + kPrefetchRows * ld + 16 * c),
                         _MM_HINT_T0);
            value[c] = _mm512_maskz_loadu_ps(c == DV - 1 ? last : __mmask16(0xffff), row + 16 * c);
        }
#pragma GCC unroll 8
        for (int r = 0; r < RQ; ++r) {
            const __m512 weight = _mm512_set1_ps(p[j * kTile + r]);
#pragma GCC unroll 8
            for (int c = 0; c < DV; ++c) acc[r][c] = _mm512_fmadd_ps(weight, value[c], acc[r][c]);
        }
    }

#pragma GCC unroll 8
    for (int r = 0; r < RQ; ++r) {
        if (r >= active) break;
#pragma GCC unroll 8
        for (int c = 0; c < DV; ++c) {
            const __mmask16 lanes = c == DV - 1 ? last : __mmask16(0xffff);
            float* target = out + r * ld_out + 16 * c;
            __m512 x = acc[r][c];
            if (alpha) {
                x = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(lanes, target),
                                    _mm512_set1_ps(alpha[r]), x);
            }
            if (post) x = _mm512_mul_ps(x, _mm512_set1_ps(post[r]));
            _mm512_mask_storeu_ps(target, lanes, x);
        }
    }
}

// Row groups of 8 (4 when head_dim chunks are wide); groups never reach past kTile lanes.
template <int DV>
void pv_columns(const AttentionTile& t, const float* p, int64_t count, const float* v,
                int64_t d0, __mmask16 last, const float* alpha, const float* post)
{
    constexpr int kRows = DV <= 2 ? 8 : 4;
    for (int64_t i = 0; i < t.rows; i += kRows) {
        pv_rows<kRows, DV>(p + i, count, v + d0, t.ld, t.out + i * t.ld_out + d0, t.ld_out,
                           last, alpha ? alpha + i : nullptr, post ? post + i : nullptr,
                           t.rows - i);
    }
}

void pv_block(const AttentionTile& t, const float* p, int64_t count, const float* v,
              const float* alpha, const float* post)
{
    for (int64_t d0 = 0; d0 < t.head_dim; d0 += 64) {
        const int64_t remaining = t.head_dim - d0;
        const int64_t vectors = remaining >= 64 ? 4 : (remaining + 15) / 16;
        const __mmask16 last = tail_mask(remaining - 16 * (vectors - 1));
        switch (vectors) {
            case 4: pv_columns<4>(t, p, count, v, d0, last, alpha, post); break;
            case 3: pv_columns<3>(t, p, count, v, d0, last, alpha, post); break;
            case 2: pv_columns<2>(t, p, count, v, d0, last, alpha, post); break;
            default: pv_columns<1>(t, p, count, v, d0, last, alpha, post); break;
        }
    }
}

void zero_rows(const AttentionTile& t)
{
    for (int64_t i = 0; i < t.rows; ++i) {
        float* row = t.out + i * t.ld_out;
        for (int64_t d = 0; d < t.head_dim; d += 16) {
            _mm512_mask_storeu_ps(row + d, tail_mask(t.head_dim - d), _mm512_setzero_ps());
        }
    }
}

}  // namespace

void attention_tile_f32_avx512(const AttentionTile& t, float* scratch)
{
    if (t.key_begin >= t.key_end) {
        zero_rows(t);
        return;
    }
    const Scratch s = carve(scratch, t.head_dim);
    const int vectors = t.rows > 16 ? 2 : 1;
    transpose_query(t, 16 * vectors, s.query_t);
    const LaneRanges ranges = lane_ranges(t);
    for (int64_t i = 0; i < kTile; ++i) {
        s.row_max[i] = -INFINITY;
        s.row_sum[i] = 0.0f;
    }

    for (int64_t k0 = t.key_begin; k0 < t.key_end; k0 += kKeyBlock) {
        const int64_t count = std::min(kKeyBlock, t.key_end - k0);
        const float* key = t.k + k0 * t.ld;
        __m512 block_max[2] = {_mm512_set1_ps(-INFINITY), _mm512_set1_ps(-INFINITY)};
        if (vectors == 2) {
            score_block<2>(s.query_t, key, t.ld, t.head_dim, k0, count, ranges, s.scores,
                           block_max);
        } else {
            score_block<1>(s.query_t, key, t.ld, t.head_dim, k0, count, ranges, s.scores,
                           block_max);
        }
        for (int c = 0; c < vectors; ++c) softmax_block(t, 16 * c, k0, count, s, block_max[c]);

        const bool first = k0 == t.key_begin;
        const bool last = k0 + count >= t.key_end;
        if (last) {
            for (int c = 0; c < vectors; ++c) {
                const __m512 sum = _mm512_load_ps(s.row_sum + 16 * c);
                const __mmask16 some = _mm512_cmp_ps_mask(sum, _mm512_setzero_ps(), _CMP_GT_OQ);
                _mm512_store_ps(s.post + 16 * c,
                                _mm512_maskz_div_ps(some, _mm512_set1_ps(1.0f), sum));
            }
        }
        pv_block(t, s.scores, count, t.v + k0 * t.ld, first ? nullptr : s.alpha,
                 last ? s.post : nullptr);
    }
}

}  // namespace padfree
