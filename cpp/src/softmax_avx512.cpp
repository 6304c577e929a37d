// Masked softmax row kernel and vector exp, AVX-512 (F, BW, DQ, VL).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "padfree/softmax.h"
#include "vecmath_avx512.h"

namespace padfree {
namespace {

using avx512::exp_le88_ps;
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

// Largest kept score, ignoring NaN: vmaxps returns its second operand when either is NaN,
// and the running maximum (never NaN) is that operand. A NaN still poisons its row later,
// through e^(NaN - max) in the sum.
inline float kept_max(const float* x, const float* bias, const uint8_t* keep, int64_t valid)
{
    __m512 running = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < valid; i += 16) {
        const __mmask16 lanes = kept_lanes(keep, i, tail_mask(valid - i));
        running = _mm512_mask_max_ps(running, lanes, load_scores(x, bias, i, lanes), running);
    }
    return _mm512_reduce_max_ps(running);
}

// Whether a kept score is NaN; asked only when the maximum is -inf, a rare row.
inline bool kept_nan(const float* x, const float* bias, const uint8_t* keep, int64_t valid)
{
    __mmask16 nan_lanes = 0;
    for (int64_t i = 0; i < valid; i += 16) {
        const __mmask16 lanes = kept_lanes(keep, i, tail_mask(valid - i));
        const __m512 v = load_scores(x, bias, i, lanes);
        nan_lanes |= _mm512_mask_cmp_ps_mask(lanes, v, v, _CMP_UNORD_Q);
    }
    return nan_lanes != 0;
}

inline void store_zeros(float* y, int64_t from, int64_t n)
{
    for (int64_t i = from; i < n; i += 16) {
        _mm512_mask_storeu_ps(y + i, tail_mask(n - i), _mm512_setzero_ps());
    }
}

}  // namespace

void softmax_row_f32_avx512(const float* x, float* y, int64_t n, int64_t valid,
                            const uint8_t* keep, const float* bias)
{
    const float row_max = kept_max(x, bias, keep, valid);
    if (row_max == -INFINITY && !kept_nan(x, bias, keep, valid)) {
        store_zeros(y, 0, n);
        return;
    }

    // Lanes that do not take part become -inf before exp, so e is exactly 0 there. NaN
    // (or +inf, which makes max - max NaN) gives a NaN sum and so a NaN row.
    const __m512 shift = _mm512_set1_ps(row_max);
    const __m512 removed = _mm512_set1_ps(-INFINITY);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t i = 0; i < valid; i += 16) {
        const __mmask16 tail = tail_mask(valid - i);
        const __mmask16 lanes = kept_lanes(keep, i, tail);
        const __m512 v = load_scores(x, bias, i, lanes);
        const __m512 e = exp_le88_ps(_mm512_mask_sub_ps(removed, lanes, v, shift));
        _mm512_mask_storeu_ps(y + i, tail, e);
        sum = _mm512_add_ps(sum, e);
    }

    // Only kept lanes are scaled (the others are stored as zero): in a poisoned row inv is
    // NaN, and entries a boolean mask removed must stay exactly zero.
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int64_t i = 0; i < valid; i += 16) {
        const __mmask16 tail = tail_mask(valid - i);
        const __mmask16 lanes = kept_lanes(keep, i, tail);
        _mm512_mask_storeu_ps(y + i, tail,
                              _mm512_maskz_mul_ps(lanes, _mm512_maskz_loadu_ps(lanes, y + i), inv));
    }
    store_zeros(y, valid, n);
}

void exp_f32_avx512(const float* x, float* y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 tail = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, tail, exp_ps(_mm512_maskz_loadu_ps(tail, x + i)));
    }
}

}  // namespace padfree
