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

// e^x for float32. Cody-Waite reduction x = n*ln2 + r with |r| <= ln2/2 (ln2 split into a
// 9-bit head and a tail so n*head is exact), then the degree-7 Taylor polynomial of e^r,
// whose truncation error r^8/8! <= 5.2e-9 (under 0.1 ulp of e^r) leaves the error to the
// Horner rounding. Scaling by 2^n uses vscalefps, which also produces subnormals and zero
// for very negative x. Error against float64 where the result is a normal float32: below
// 1 ulp (0.94 ulp the worst seen over 4e7 samples); tests/test_softmax.py checks 1 ulp
// over a dense sweep. -inf gives 0, +inf and x > 88.72 give +inf, NaN gives NaN.
static inline __m512 exp_ps(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);  // NaN is the second operand: kept
    x = _mm512_min_ps(_mm512_set1_ps(88.8f), x);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

}  // namespace padfree::avx512
