// LayerNorm row kernel, AVX2 + FMA.
#include <cmath>

#include "layernorm_kernels.h"
#include "vecmath_avx2.h"

namespace padfree {

void layer_norm_row_f32_avx2(int64_t d, const float* x, const float* residual,
                             const float* gamma, const float* beta, float eps, float* y)
{
    using avx2::tail_mask;
    const float* z = x;
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < d; i += 8) {
        const __m256i lanes = tail_mask(d - i);
        __m256 v = _mm256_maskload_ps(x + i, lanes);
        if (residual) {
            v = _mm256_add_ps(v, _mm256_maskload_ps(residual + i, lanes));
            _mm256_maskstore_ps(y + i, lanes, v);
        }
        sum = _mm256_add_ps(sum, v);
    }
    if (residual) z = y;
    const float mean = avx2::hsum(sum) / static_cast<float>(d);

    const __m256 mean_v = _mm256_set1_ps(mean);
    __m256 squares = _mm256_setzero_ps();
    for (int64_t i = 0; i < d; i += 8) {
        const __m256i lanes = tail_mask(d - i);
        const __m256 centred = _mm256_and_ps(
            _mm256_sub_ps(_mm256_maskload_ps(z + i, lanes), mean_v), _mm256_castsi256_ps(lanes));
        squares = _mm256_fmadd_ps(centred, centred, squares);
    }
    const float var = avx2::hsum(squares) / static_cast<float>(d);
    const __m256 rstd = _mm256_set1_ps(1.0f / std::sqrt(var + eps));

    for (int64_t i = 0; i < d; i += 8) {
        const __m256i lanes = tail_mask(d - i);
        const __m256 centred = _mm256_sub_ps(_mm256_maskload_ps(z + i, lanes), mean_v);
        const __m256 scale = _mm256_mul_ps(rstd, _mm256_maskload_ps(gamma + i, lanes));
        const __m256 out = _mm256_fmadd_ps(centred, scale, _mm256_maskload_ps(beta + i, lanes));
        _mm256_maskstore_ps(y + i, lanes, out);
    }
}

}  // namespace padfree
