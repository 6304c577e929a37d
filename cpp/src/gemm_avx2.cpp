// GEMM micro-kernel, fused epilogue and activations, AVX2 + FMA.
//
// Tile: up to 6 rows x 16 columns (one panel, two ymm per row): 12 accumulators, two
// weight vectors and one broadcast fill 15 of the 16 ymm registers.
#include "gemm_kernels.h"
#include "vecmath_avx2.h"

namespace padfree {
namespace {

using avx2::tail_mask;

constexpr int kTileRows = 6;
constexpr int kTileLd = kPanelWidth;

template <int R>
void tile_f32_avx2(int64_t k, const float* x, int64_t ldx, const float* w, float* c,
                   bool accumulate)
{
    __m256 acc[R][2];
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
        acc[r][0] = accumulate ? _mm256_load_ps(c + r * kTileLd) : _mm256_setzero_ps();
        acc[r][1] = accumulate ? _mm256_load_ps(c + r * kTileLd + 8) : _mm256_setzero_ps();
    }

    for (int64_t i = 0; i < k; ++i) {
        const __m256 w0 = _mm256_load_ps(w + i * kPanelWidth);
        const __m256 w1 = _mm256_load_ps(w + i * kPanelWidth + 8);
#pragma GCC unroll 6
        for (int r = 0; r < R; ++r) {
            const __m256 xv = _mm256_broadcast_ss(x + r * ldx + i);
            acc[r][0] = _mm256_fmadd_ps(xv, w0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(xv, w1, acc[r][1]);
        }
    }

#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
        _mm256_store_ps(c + r * kTileLd, acc[r][0]);
        _mm256_store_ps(c + r * kTileLd + 8, acc[r][1]);
    }
}

void gemm_tile_f32_avx2(int rows, int panels, int64_t k, const float* x, int64_t ldx,
                        const float* w, int64_t panel_stride, float* c, bool accumulate)
{
    using tile_fn = void (*)(int64_t, const float*, int64_t, const float*, float*, bool);
    static constexpr tile_fn kTable[kTileRows] = {tile_f32_avx2<1>, tile_f32_avx2<2>,
                                                  tile_f32_avx2<3>, tile_f32_avx2<4>,
                                                  tile_f32_avx2<5>, tile_f32_avx2<6>};
    kTable[rows - 1](k, x, ldx, w, c, accumulate);
}

inline __m256 activate(Activation act, __m256 v)
{
    switch (act) {
    case Activation::relu:
        return _mm256_max_ps(_mm256_setzero_ps(), v);  // NaN (second operand) is kept
    case Activation::gelu_erf:
        return avx2::gelu_erf_ps(v);
    case Activation::gelu_tanh:
        return avx2::gelu_tanh_ps(v);
    case Activation::none:
        break;
    }
    return v;
}

void gemm_epilogue_f32_avx2(int rows, int cols, const float* c, int64_t ldc, const float* bias,
                            Activation act, const float* residual, int64_t ldr, float* y,
                            int64_t ldy)
{
    for (int r = 0; r < rows; ++r) {
        for (int j = 0; j < cols; j += 8) {
            const __m256i lanes = tail_mask(cols - j);
            __m256 v = _mm256_load_ps(c + r * ldc + j);
            if (bias) v = _mm256_add_ps(v, _mm256_maskload_ps(bias + j, lanes));
            v = activate(act, v);
            if (residual) v = _mm256_add_ps(v, _mm256_maskload_ps(residual + r * ldr + j, lanes));
            _mm256_maskstore_ps(y + r * ldy + j, lanes, v);
        }
    }
}

void activation_f32_avx2(Activation act, const float* x, float* y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i lanes = tail_mask(n - i);
        _mm256_maskstore_ps(y + i, lanes, activate(act, _mm256_maskload_ps(x + i, lanes)));
    }
}

void erf_f32_avx2(const float* x, float* y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i lanes = tail_mask(n - i);
        _mm256_maskstore_ps(y + i, lanes, avx2::erf_ps(_mm256_maskload_ps(x + i, lanes)));
    }
}

}  // namespace

const GemmKernels kGemmAvx2{kTileRows, 1, gemm_tile_f32_avx2, gemm_epilogue_f32_avx2,
                            activation_f32_avx2, erf_f32_avx2};

}  // namespace padfree
