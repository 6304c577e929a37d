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
