// Vector math for AVX2+FMA kernel files. Include only from *_avx2.cpp: these inline
// functions are compiled with AVX2 flags and must never be instantiated elsewhere.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace padfree::avx2 {

// All-ones in lanes [0, remaining), for masked loads and stores.
static inline __m256i tail_mask(int64_t remaining)
{
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int count = remaining >= 8 ? 8 : static_cast<int>(remaining);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), lanes);
}

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 2^n for integer-valued n in [-150, 128], as the product of two normal powers of two
// 2^a * 2^b (a = floor(n/2), b = n - a, both in [-75, 64]). Multiplying p by them one
// after the other rounds once, at the second product, so results that fall below 2^-126
// come out as correctly rounded subnormals, and n = 128 (which has no float32 exponent
// field of its own) overflows only when p * 2^128 really does.
static inline __m256 scale_by_pow2(__m256 p, __m256 n)
{
    const __m256i whole = _mm256_cvtps_epi32(n);
    const __m256i a = _mm256_srai_epi32(whole, 1);
    const __m256i b = _mm256_sub_epi32(whole, a);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 two_a = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(a, bias), 23));
    const __m256 two_b = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(b, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, two_a), two_b);
}

// e^x for float32, x <= 88.8 or NaN: the same reduction, polynomial and clamping as
// avx512::exp_le88_ps (see there), with 2^n applied by scale_by_pow2 instead of vscalefps.
static inline __m256 exp_le88_ps(__m256 x)
{
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);  // NaN is the second operand: kept
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.38689414e-3f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.36872686e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.16674726e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.66665211e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.99999970e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    return scale_by_pow2(p, n);
}

// e^x for every float32; error below 1 ulp where the result is a normal float32.
// -inf gives 0, +inf and x > 88.72 give +inf, NaN gives NaN.
static inline __m256 exp_ps(__m256 x)
{
    return exp_le88_ps(_mm256_min_ps(_mm256_set1_ps(88.8f), x));  // NaN stays NaN
}

}  // namespace padfree::avx2

namespace padfree::avx2 {

// erf, erfc and GELU: the same fitted polynomials and the same evaluation as the AVX-512
// versions in vecmath_avx512.h (see there for the error bounds).
static inline __m256 erf_small_ps(__m256 u, __m256 u2)
{
    __m256 p = _mm256_set1_ps(4.7175675e-3f);
    p = _mm256_fmadd_ps(p, u2, _mm256_set1_ps(-2.6756974e-2f));
    p = _mm256_fmadd_ps(p, u2, _mm256_set1_ps(1.12828195e-1f));
    p = _mm256_fmadd_ps(p, u2, _mm256_set1_ps(-3.7612608e-1f));
    p = _mm256_fmadd_ps(p, u2, _mm256_set1_ps(1.1283791f));
    return _mm256_mul_ps(u, p);
}

static inline __m256 erfc_large_ps(__m256 a, __m256 a2_hi, __m256 a2_lo)
{
    const __m256 t = _mm256_div_ps(
        _mm256_set1_ps(1.0f),
        _mm256_fmadd_ps(_mm256_min_ps(a, _mm256_set1_ps(10.0f)), _mm256_set1_ps(0.5f),
                        _mm256_set1_ps(1.0f)));
    __m256 q = _mm256_set1_ps(-6.3226812e-2f);
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(3.0384982e-1f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-5.2429485e-1f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(3.1679514e-1f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-5.0593108e-2f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(2.1167444e-1f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(2.4111347e-1f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(2.8261289e-1f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(2.8207472e-1f));
    const __m256 e = _mm256_mul_ps(exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), a2_hi)),
                                   _mm256_sub_ps(_mm256_set1_ps(1.0f), a2_lo));
    const __m256 result = _mm256_mul_ps(e, _mm256_mul_ps(t, q));
    return _mm256_and_ps(_mm256_cmp_ps(a, _mm256_set1_ps(10.0f), _CMP_LE_OQ), result);
}

static inline __m256 abs_ps(__m256 x)
{
    return _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}

static inline __m256 erf_ps(__m256 x)
{
    const __m256 a = abs_ps(x);
    const __m256 x2_hi = _mm256_mul_ps(x, x);
    const __m256 x2_lo = _mm256_fmsub_ps(x, x, x2_hi);
    const __m256 small = erf_small_ps(x, x2_hi);
    const __m256 large_abs = _mm256_sub_ps(_mm256_set1_ps(1.0f), erfc_large_ps(a, x2_hi, x2_lo));
    const __m256 sign = _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(int(0x80000000u))));
    const __m256 large = _mm256_or_ps(large_abs, sign);
    return _mm256_blendv_ps(large, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.5f), _CMP_LT_OQ));
}

static inline __m256 gelu_erf_ps(__m256 x)
{
    const __m256 half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5f));
    const __m256 u = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
    const __m256 a = abs_ps(u);
    const __m256 x2_hi = _mm256_mul_ps(x, x);
    const __m256 x2_lo = _mm256_fmsub_ps(x, x, x2_hi);
    const __m256 u2_hi = _mm256_mul_ps(x2_hi, _mm256_set1_ps(0.5f));
    const __m256 u2_lo = _mm256_mul_ps(x2_lo, _mm256_set1_ps(0.5f));

    const __m256 small = _mm256_fmadd_ps(half_x, erf_small_ps(u, u2_hi), half_x);
    const __m256 tail = erfc_large_ps(a, u2_hi, u2_lo);
    const __m256 positive = _mm256_mul_ps(x, _mm256_fnmadd_ps(tail, _mm256_set1_ps(0.5f),
                                                              _mm256_set1_ps(1.0f)));
    const __m256 negative = _mm256_mul_ps(half_x, tail);
    const __m256 large = _mm256_blendv_ps(
        negative, positive, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ));
    return _mm256_blendv_ps(large, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.5f), _CMP_LT_OQ));
}

static inline __m256 gelu_tanh_ps(__m256 x)
{
    const __m256 x2 = _mm256_mul_ps(x, x);
    const __m256 minus_2y = _mm256_mul_ps(
        x, _mm256_fmadd_ps(x2, _mm256_set1_ps(-0.0713548162726f),
                           _mm256_set1_ps(-1.5957691216057308f)));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_ps(minus_2y)));
}

}  // namespace padfree::avx2
