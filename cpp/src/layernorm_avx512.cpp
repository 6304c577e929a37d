// LayerNorm row kernel, AVX-512 (F, BW, DQ, VL).
#include <cmath>

#include "layernorm_kernels.h"
#include "vecmath_avx512.h"

namespace padfree {
namespace {

// Sum of the 16 lanes in a fixed order. (GCC 12's hsum_avx512 trips its own
// -Wuninitialized; this is the same tree.)
inline float hsum_avx512(__m512 v)
{
    __m256 s = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

}  // namespace

void layer_norm_row_f32_avx512(int64_t d, const float* x, const float* residual,
                               const float* gamma, const float* beta, float eps, float* y)
{
    using avx512::tail_mask;
    const float* z = x;
    __m512 sum = _mm512_setzero_ps();
    for (int64_t i = 0; i < d; i += 16) {
        const __mmask16 lanes = tail_mask(d - i);
        __m512 v = _mm512_maskz_loadu_ps(lanes, x + i);
        if (residual) {
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(lanes, residual + i));
            _mm512_mask_storeu_ps(y + i, lanes, v);
        }
        sum = _mm512_add_ps(sum, v);
    }
    if (residual) z = y;
    const float mean = hsum_avx512(sum) / static_cast<float>(d);

    const __m512 mean_v = _mm512_set1_ps(mean);
    __m512 squares = _mm512_setzero_ps();
    for (int64_t i = 0; i < d; i += 16) {
        const __mmask16 lanes = tail_mask(d - i);
        const __m512 centred = _mm512_maskz_sub_ps(lanes, _mm512_maskz_loadu_ps(lanes, z + i),
                                                   mean_v);
        squares = _mm512_fmadd_ps(centred, centred, squares);
    }
    const float var = hsum_avx512(squares) / static_cast<float>(d);
    const __m512 rstd = _mm512_set1_ps(1.0f / std::sqrt(var + eps));

    for (int64_t i = 0; i < d; i += 16) {
        const __mmask16 lanes = tail_mask(d - i);
        const __m512 centred = _mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, z + i), mean_v);
        const __m512 scale = _mm512_mul_ps(rstd, _mm512_maskz_loadu_ps(lanes, gamma + i));
        const __m512 out = _mm512_fmadd_ps(centred, scale, _mm512_maskz_loadu_ps(lanes, beta + i));
        _mm512_mask_storeu_ps(y + i, lanes, out);
    }
}

}  // namespace padfree
