// Masked softmax row kernel and vector exp, AVX2 + FMA.
#include <cmath>

#include "padfree/softmax.h"
#include "vecmath_avx2.h"

namespace padfree {
namespace {

using avx2::exp_ps;
using avx2::tail_mask;

// All-ones lanes that take part: inside the valid prefix and, if given, kept.
inline __m256i kept_lanes(const uint8_t* keep, int64_t i, int64_t remaining, __m256i tail)
{
    if (!keep) return tail;
    int64_t packed = 0;
    if (remaining >= 8) {
        __builtin_memcpy(&packed, keep + i, 8);
    } else {
        __builtin_memcpy(&packed, keep + i, static_cast<size_t>(remaining));
    }
    const __m256i flags = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(packed));
    const __m256i kept = _mm256_xor_si256(_mm256_cmpeq_epi32(flags, _mm256_setzero_si256()),
                                          _mm256_set1_epi32(-1));
    return _mm256_and_si256(kept, tail);
}

inline __m256 load_scores(const float* x, const float* bias, int64_t i, __m256i lanes)
{
    __m256 v = _mm256_maskload_ps(x + i, lanes);
    if (bias) v = _mm256_add_ps(v, _mm256_maskload_ps(bias + i, lanes));
    return v;
}

inline void store_zeros(float* y, int64_t from, int64_t n)
{
    for (int64_t i = from; i < n; i += 8) {
        _mm256_maskstore_ps(y + i, tail_mask(n - i), _mm256_setzero_ps());
    }
}

}  // namespace

void softmax_row_f32_avx2(const float* x, float* y, int64_t n, int64_t valid, const uint8_t* keep,
                          const float* bias)
{
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    __m256 running_max = neg_inf;
    __m256 nan_lanes = _mm256_setzero_ps();
    for (int64_t i = 0; i < valid; i += 8) {
        const __m256i lanes = kept_lanes(keep, i, valid - i, tail_mask(valid - i));
        const __m256 v = _mm256_blendv_ps(neg_inf, load_scores(x, bias, i, lanes),
                                          _mm256_castsi256_ps(lanes));
        nan_lanes = _mm256_or_ps(nan_lanes, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        running_max = _mm256_max_ps(running_max, v);
    }
    const float row_max = avx2::hmax(running_max);
    const bool any_nan = _mm256_movemask_ps(nan_lanes) != 0;

    if (row_max == -INFINITY && !any_nan) {
        store_zeros(y, 0, n);
        return;
    }

    const __m256 shift = _mm256_set1_ps(any_nan ? NAN : row_max);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < valid; i += 8) {
        const __m256i tail = tail_mask(valid - i);
        const __m256i lanes = kept_lanes(keep, i, valid - i, tail);
        const __m256 v = load_scores(x, bias, i, lanes);
        const __m256 e = _mm256_and_ps(exp_ps(_mm256_sub_ps(v, shift)), _mm256_castsi256_ps(lanes));
        _mm256_maskstore_ps(y + i, tail, e);
        sum = _mm256_add_ps(sum, e);
    }

    // Only kept lanes are scaled (the others are stored as zero): in a row poisoned by NaN
    // or +inf, inv is NaN and entries a boolean mask removed must stay exactly zero.
    const __m256 inv = _mm256_set1_ps(1.0f / avx2::hsum(sum));
    for (int64_t i = 0; i < valid; i += 8) {
        const __m256i tail = tail_mask(valid - i);
        const __m256 lanes = _mm256_castsi256_ps(kept_lanes(keep, i, valid - i, tail));
        const __m256 scaled = _mm256_mul_ps(_mm256_maskload_ps(y + i, tail), inv);
        _mm256_maskstore_ps(y + i, tail, _mm256_and_ps(scaled, lanes));
    }
    store_zeros(y, valid, n);
}

void exp_f32_avx2(const float* x, float* y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i tail = tail_mask(n - i);
        _mm256_maskstore_ps(y + i, tail, exp_ps(_mm256_maskload_ps(x + i, tail)));
    }
}

}  // namespace padfree
