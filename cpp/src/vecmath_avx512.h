// Vector math for AVX-512 kernel files. Include only from *_avx512.cpp: these inline
// functions are compiled with AVX-512 flags and must never be instantiated elsewhere.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace padfree::avx512 {

// Lanes [0, remaining) set, for tails; remaining >= 16 gives all lanes.
static inline __mmask16 tail_mask(int64_t remaining)
{
    return remaining >= 16 ? __mmask16(0xffff) : __mmask16((1u << remaining) - 1u);
}

// e^x for float32, x <= 88.8 or NaN (callers that know their range skip one clamp).
// Cody-Waite reduction x = n*ln2 + r with |r| <= ln2/2 (ln2 split into a 9-bit head and a
// tail so n*head is exact), then a degree-6 polynomial for e^r: coefficients fitted here
// for least maximum relative error on [-ln2/2, ln2/2] with float32 coefficients (Lawson
// iteration, each coefficient rounded before the next ones are refitted); its own
// relative error is 3.6e-9, under 0.07 ulp, which leaves the error to the Horner
// rounding. Scaling by 2^n uses vscalefps, which also produces subnormals and zero for
// very negative x (clamped to -104, where e^x rounds to 0, so -inf gives 0).
static inline __m512 exp_le88_ps(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);  // NaN is the second operand: kept
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.38689414e-3f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.36872686e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.16674726e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.66665211e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.99999970e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

// e^x for every float32. Error against float64 where the result is a normal float32:
// below 1 ulp (see tests/test_softmax.py, which checks 1 ulp over a dense sweep).
// -inf gives 0, +inf and x > 88.72 give +inf, NaN gives NaN.
static inline __m512 exp_ps(__m512 x)
{
    return exp_le88_ps(_mm512_min_ps(_mm512_set1_ps(88.8f), x));  // NaN stays NaN
}

}  // namespace padfree::avx512

namespace padfree::avx512 {

// erf and erfc, fitted for padfree: least squares on Chebyshev nodes in float64, the
// coefficients rounded to float32.
//   |u| < 0.5:       erf(u)  = u * P(u^2),                 relative fit error < 6e-8
//   0.5 <= u <= 10:  erfc(u) = exp(-u^2) * t * Q(t), t = 1 / (1 + u/2), relative < 2e-8
// u^2 is carried as hi + lo (lo from an FMA), so exp(-u^2) keeps its relative accuracy for
// large u; without that the rounding of u^2 alone costs up to 100 * 2^-24 relative.
static inline __m512 erf_small_ps(__m512 u, __m512 u2)
{
    __m512 p = _mm512_set1_ps(4.7175675e-3f);
    p = _mm512_fmadd_ps(p, u2, _mm512_set1_ps(-2.6756974e-2f));
    p = _mm512_fmadd_ps(p, u2, _mm512_set1_ps(1.12828195e-1f));
    p = _mm512_fmadd_ps(p, u2, _mm512_set1_ps(-3.7612608e-1f));
    p = _mm512_fmadd_ps(p, u2, _mm512_set1_ps(1.1283791f));
    return _mm512_mul_ps(u, p);
}

// erfc(a) for a >= 0.5 with a^2 = a2_hi + a2_lo; 0 for a > 10 (erfc(10) < 2.1e-45).
static inline __m512 erfc_large_ps(__m512 a, __m512 a2_hi, __m512 a2_lo)
{
    const __m512 t = _mm512_div_ps(
        _mm512_set1_ps(1.0f),
        _mm512_fmadd_ps(_mm512_min_ps(a, _mm512_set1_ps(10.0f)), _mm512_set1_ps(0.5f),
                        _mm512_set1_ps(1.0f)));
    __m512 q = _mm512_set1_ps(-6.3226812e-2f);
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(3.0384982e-1f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(-5.2429485e-1f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(3.1679514e-1f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(-5.0593108e-2f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(2.1167444e-1f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(2.4111347e-1f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(2.8261289e-1f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(2.8207472e-1f));
    // exp(-(hi + lo)) = exp(-hi) * (1 - lo) to well below float32 rounding (|lo| < 2^-17).
    const __m512 e = _mm512_mul_ps(exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), a2_hi)),
                                   _mm512_fnmadd_ps(a2_lo, _mm512_set1_ps(1.0f),
                                                    _mm512_set1_ps(1.0f)));
    const __m512 result = _mm512_mul_ps(e, _mm512_mul_ps(t, q));
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(10.0f), _CMP_LE_OQ),
                               result);
}

static inline __m512 abs_ps(__m512 x)
{
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}

// erf(x); see erf_small_ps / erfc_large_ps for the pieces.
static inline __m512 erf_ps(__m512 x)
{
    const __m512 a = abs_ps(x);
    const __m512 x2_hi = _mm512_mul_ps(x, x);
    const __m512 x2_lo = _mm512_fmsub_ps(x, x, x2_hi);
    const __m512 small = erf_small_ps(x, x2_hi);
    const __m512 large_abs = _mm512_sub_ps(_mm512_set1_ps(1.0f), erfc_large_ps(a, x2_hi, x2_lo));
    const __m512 sign = _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(int(0x80000000u))));
    const __m512 large = _mm512_or_ps(large_abs, sign);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(0.5f), _CMP_LT_OQ), large,
                                small);
}

// GELU, erf form: x/2 * (1 + erf(x/sqrt2)). For x <= -sqrt2/2 it is evaluated as
// x/2 * erfc(|x|/sqrt2), which keeps the relative error small where 1 + erf cancels; the
// argument's square x^2/2 is formed from x (hi + lo) rather than from a rounded x/sqrt2.
static inline __m512 gelu_erf_ps(__m512 x)
{
    const __m512 half_x = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
    const __m512 u = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f));
    const __m512 a = abs_ps(u);
    const __m512 x2_hi = _mm512_mul_ps(x, x);
    const __m512 x2_lo = _mm512_fmsub_ps(x, x, x2_hi);
    const __m512 u2_hi = _mm512_mul_ps(x2_hi, _mm512_set1_ps(0.5f));
    const __m512 u2_lo = _mm512_mul_ps(x2_lo, _mm512_set1_ps(0.5f));

    const __m512 small = _mm512_fmadd_ps(half_x, erf_small_ps(u, u2_hi), half_x);
    const __m512 tail = erfc_large_ps(a, u2_hi, u2_lo);
    // x > 0: x * (1 - tail/2); x < 0: x/2 * tail. Written as products so x = +inf gives inf.
    const __m512 positive = _mm512_mul_ps(x, _mm512_fnmadd_ps(tail, _mm512_set1_ps(0.5f),
                                                              _mm512_set1_ps(1.0f)));
    const __m512 negative = _mm512_mul_ps(half_x, tail);
    const __m512 large = _mm512_mask_blend_ps(
        _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ), negative, positive);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(0.5f), _CMP_LT_OQ), large,
                                small);
}

// GELU, tanh form: x/2 * (1 + tanh(y)) with y = sqrt(2/pi) * (x + 0.044715 x^3), evaluated
// as x / (1 + exp(-2y)), which is the same function without the cancellation of 1 + tanh.
static inline __m512 gelu_tanh_ps(__m512 x)
{
    const __m512 x2 = _mm512_mul_ps(x, x);
    const __m512 minus_2y = _mm512_mul_ps(
        x, _mm512_fmadd_ps(x2, _mm512_set1_ps(-0.0713548162726f),
                           _mm512_set1_ps(-1.5957691216057308f)));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_ps(minus_2y)));
}

}  // namespace padfree::avx512
