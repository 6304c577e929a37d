// LayerNorm: the scalar row kernel, the per-ISA choice, and the OpenMP row driver.
#include "padfree/layernorm.h"

#include <cmath>

#include "layernorm_kernels.h"
#include "padfree/dispatch.h"
#include "padfree/parallel.h"

namespace padfree {
namespace {

// Below this many elements the whole call is shorter than waking a second thread.
constexpr int64_t kMinParallelElements = 32768;

layer_norm_row_f32_fn layer_norm_row_kernel()
{
#if defined(PADFREE_X86)
    switch (current_isa()) {
    case Isa::avx512:
        return layer_norm_row_f32_avx512;
    case Isa::avx2:
        return layer_norm_row_f32_avx2;
    case Isa::scalar:
        break;
    }
#endif
    return layer_norm_row_f32_scalar;
}

}  // namespace

// Sums in double: the scalar kernel is the accurate reference, not the fast path.
void layer_norm_row_f32_scalar(int64_t d, const float* x, const float* residual,
                               const float* gamma, const float* beta, float eps, float* y)
{
    const float* z = x;
    if (residual) {
        for (int64_t i = 0; i < d; ++i) y[i] = x[i] + residual[i];
        z = y;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < d; ++i) sum += z[i];
    const double mean = sum / static_cast<double>(d);
    double squares = 0.0;
    for (int64_t i = 0; i < d; ++i) squares += (z[i] - mean) * (z[i] - mean);
    const double rstd = 1.0 / std::sqrt(squares / static_cast<double>(d) + double(eps));
    for (int64_t i = 0; i < d; ++i) {
        y[i] = static_cast<float>((z[i] - mean) * rstd * gamma[i] + beta[i]);
    }
}

void layer_norm_f32(int64_t m, int64_t d, const float* x, int64_t ldx, const float* residual,
                    int64_t ldr, const float* gamma, const float* beta, float eps, float* y,
                    int64_t ldy, int num_threads)
{
    if (m <= 0 || d <= 0) return;
    const layer_norm_row_f32_fn row_fn = layer_norm_row_kernel();
    const int threads = resolve_threads(num_threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (m * d >= kMinParallelElements)
    for (int64_t r = 0; r < m; ++r) {
        row_fn(d, x + r * ldx, residual ? residual + r * ldr : nullptr, gamma, beta, eps,
               y + r * ldy);
    }
}

}  // namespace padfree
