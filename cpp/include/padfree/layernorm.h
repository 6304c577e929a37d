// LayerNorm over rows, with an optional fused residual add.
#pragma once

#include <cstdint>

namespace padfree {

// y[i, :] = (z - mean(z)) / sqrt(var(z) + eps) * gamma + beta, where z = x[i, :] (+
// residual[i, :]) and var is the biased variance, as in PyTorch. Rows of width d; strides
// in floats. y may alias x or residual. num_threads <= 0 means OpenMP's default.
void layer_norm_f32(int64_t m, int64_t d, const float* x, int64_t ldx, const float* residual,
                    int64_t ldr, const float* gamma, const float* beta, float eps, float* y,
                    int64_t ldy, int num_threads);

}  // namespace padfree
