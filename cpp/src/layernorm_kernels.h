// Internal to the LayerNorm family: one row kernel per ISA.
//
// A row kernel forms z = x (+ residual), then mean and biased variance in two passes
// (no E[z^2] - E[z]^2 cancellation), and writes (z - mean) / sqrt(var + eps) * gamma +
// beta. With a residual, z is stored in y first and read back, so y may alias x or
// residual. Sums run in a fixed order that depends on d only.
#pragma once

#include <cstdint>

namespace padfree {

using layer_norm_row_f32_fn = void (*)(int64_t d, const float* x, const float* residual,
                                       const float* gamma, const float* beta, float eps,
                                       float* y);

void layer_norm_row_f32_scalar(int64_t d, const float* x, const float* residual,
                               const float* gamma, const float* beta, float eps, float* y);
#if defined(PADFREE_X86)
void layer_norm_row_f32_avx2(int64_t d, const float* x, const float* residual,
                             const float* gamma, const float* beta, float eps, float* y);
void layer_norm_row_f32_avx512(int64_t d, const float* x, const float* residual,
                               const float* gamma, const float* beta, float eps, float* y);
#endif

}  // namespace padfree
