// Masked softmax row kernel and vector exp, AVX-512 (F, BW, DQ, VL).
#include <cmath>

#include "padfree/softmax.h"
#include "vecmath_avx512.h"

namespace padfree {
namespace {

using avx512::exp_ps;
using avx512::tail_mask;

// Lanes that take part: inside the valid prefix and, if a keep row is given, kept.
inline __mmask16 kept_lanes(const uint8_t* keep, int64_t i, __mmask16 tail)
{
    if (!keep) return tail;
    const __m128i bytes = _mm_maskz_loadu_epi8(tail, keep + i);
    return _mm_test_epi8_mask(bytes, bytes);
}

inline __m512 load_scores(const float* x, const float* bias, int64_t i, __mmask16 lanes)
{
    __m512 v = _mm512_maskz_loadu_ps(lanes, x + i);
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(lanes, bias + i));
    return v;
}

}  // namespace

void softmax_row_f32_avx512(const float* x, float* y, int64_t n, int64_t valid,
                            const uint8_t* keep, const float* bias)
{
    __m512 running_max = _mm512_set1_ps(-INFINITY);
    __mmask16 nan_lanes = 0;
    for (int64_t i = 0; i < valid; i += 16) {
        const __mmask16 lanes = kept_lanes(keep, i, tail_mask(valid - i));
        const __m512 v = load_scores(x, bias, i, lanes);
        nan_lanes |= _mm512_mask_cmp_ps_mask(lanes, v, v, _CMP_UNORD_Q);
        running_max = _mm512_mask_max_ps(running_max, lanes, running_max, v);
    }
    const float row_max = _mm512_reduce_max_ps(running_max);

    if (row_max == -INFINITY && nan_lanes == 0) {
        const __m512 zero = _mm512_setzero_ps();
        for (int64_t i = 0; i < n; i += 16) _mm512_mask_storeu_ps(y + i, tail_mask(n - i), zero);
        return;
    }

    // A NaN score makes the row NaN (through the sum), like the reference.
    const __m512 shift = _mm512_set1_ps(nan_lanes ? NAN : row_max);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t i = 0; i < valid; i += 16) {
        const __mmask16 tail = tail_mask(valid - i);
        const __mmask16 lanes = kept_lanes(keep, i, tail);
        const __m512 v = load_scores(x, bias, i, lanes);
        const __m512 e = _mm512_maskz_mov_ps(lanes, exp_ps(_mm512_sub_ps(v, shift)));
        _mm512_mask_storeu_ps(y + i, tail, e);
        sum = _mm512_add_ps(sum, e);
    }

    // Only kept lanes are scaled (the others are stored as zero): in a row poisoned by NaN
    // or +inf, inv is NaN and entries a boolean mask removed must stay exactly zero.
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int64_t i = 0; i < valid; i += 16) {
        const __mmask16 tail = tail_mask(valid - i);
        const __mmask16 lanes = kept_lanes(keep, i, tail);
        _mm512_mask_storeu_ps(y + i, tail,
                              _mm512_maskz_mul_ps(lanes, _mm512_maskz_loadu_ps(lanes, y + i), inv));
    }
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t i = valid; i < n; i += 16) _mm512_mask_storeu_ps(y + i, tail_mask(n - i), zero);
}

void exp_f32_avx512(const float* x, float* y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 tail = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, tail, exp_ps(_mm512_maskz_loadu_ps(tail, x + i)));
    }
}

}  // namespace padfree
