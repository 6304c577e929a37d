// GEMM micro-kernel, fused epilogue and activations, AVX-512 (F, BW, DQ, VL).
//
// Tile: up to 8 rows x 48 columns (three 16-column panels), 24 zmm accumulators. Per step
// of k it loads three weight vectors and broadcasts one x value per row (folded into the
// FMA as an embedded broadcast), so 24 FMAs cost 3 + 8 loads: the FMA units stay the
// bottleneck even with x and the weights coming from L2.
#include "gemm_kernels.h"
#include "vecmath_avx512.h"

namespace padfree {
namespace {

using avx512::tail_mask;

constexpr int kTileRows = 8;
constexpr int kTilePanels = 3;
constexpr int kTileLd = kPanelWidth * kTilePanels;

template <int R, int P>
void tile_f32_avx512(int64_t k, const float* x, int64_t ldx, const float* w,
                     int64_t panel_stride, float* c, bool accumulate)
{
    __m512 acc[R][P];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 3
        for (int p = 0; p < P; ++p) {
            acc[r][p] = accumulate ? _mm512_load_ps(c + r * kTileLd + p * kPanelWidth)
                                   : _mm512_setzero_ps();
        }
    }

    for (int64_t i = 0; i < k; ++i) {
        __m512 wv[P];
#pragma GCC unroll 3
        for (int p = 0; p < P; ++p) wv[p] = _mm512_load_ps(w + p * panel_stride + i * kPanelWidth);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m512 xv = _mm512_set1_ps(x[r * ldx + i]);
#pragma GCC unroll 3
            for (int p = 0; p < P; ++p) acc[r][p] = _mm512_fmadd_ps(xv, wv[p], acc[r][p]);
        }
    }

#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 3
        for (int p = 0; p < P; ++p) _mm512_store_ps(c + r * kTileLd + p * kPanelWidth, acc[r][p]);
    }
}

using tile_fn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, bool);

template <int R>
constexpr tile_fn tile_for_panels(int panels)
{
    return panels == 1 ? tile_f32_avx512<R, 1>
                       : (panels == 2 ? tile_f32_avx512<R, 2> : tile_f32_avx512<R, 3>);
}

void gemm_tile_f32_avx512(int rows, int panels, int64_t k, const float* x, int64_t ldx,
                          const float* w, int64_t panel_stride, float* c, bool accumulate)
{
    static constexpr tile_fn kTable[kTileRows][kTilePanels] = {
        {tile_for_panels<1>(1), tile_for_panels<1>(2), tile_for_panels<1>(3)},
        {tile_for_panels<2>(1), tile_for_panels<2>(2), tile_for_panels<2>(3)},
        {tile_for_panels<3>(1), tile_for_panels<3>(2), tile_for_panels<3>(3)},
        {tile_for_panels<4>(1), tile_for_panels<4>(2), tile_for_panels<4>(3)},
        {tile_for_panels<5>(1), tile_for_panels<5>(2), tile_for_panels<5>(3)},
        {tile_for_panels<6>(1), tile_for_panels<6>(2), tile_for_panels<6>(3)},
        {tile_for_panels<7>(1), tile_for_panels<7>(2), tile_for_panels<7>(3)},
        {tile_for_panels<8>(1), tile_for_panels<8>(2), tile_for_panels<8>(3)},
    };
    kTable[rows - 1][panels - 1](k, x, ldx, w, panel_stride, c, accumulate);
}

inline __m512 activate(Activation act, __m512 v)
{
    switch (act) {
    case Activation::relu:
        return _mm512_max_ps(_mm512_setzero_ps(), v);  // NaN (second operand) is kept
    case Activation::gelu_erf:
        return avx512::gelu_erf_ps(v);
    case Activation::gelu_tanh:
        return avx512::gelu_tanh_ps(v);
    case Activation::none:
        break;
    }
    return v;
}

void gemm_epilogue_f32_avx512(int rows, int cols, const float* c, int64_t ldc,
                              const float* bias, Activation act, const float* residual,
                              int64_t ldr, float* y, int64_t ldy)
{
    for (int r = 0; r < rows; ++r) {
        for (int j = 0; j < cols; j += kPanelWidth) {
            const __mmask16 lanes = tail_mask(cols - j);
            __m512 v = _mm512_load_ps(c + r * ldc + j);
            if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(lanes, bias + j));
            v = activate(act, v);
            if (residual) {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(lanes, residual + r * ldr + j));
            }
            _mm512_mask_storeu_ps(y + r * ldy + j, lanes, v);
        }
    }
}

void activation_f32_avx512(Activation act, const float* x, float* y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 lanes = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, lanes, activate(act, _mm512_maskz_loadu_ps(lanes, x + i)));
    }
}

void erf_f32_avx512(const float* x, float* y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 lanes = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, lanes, avx512::erf_ps(_mm512_maskz_loadu_ps(lanes, x + i)));
    }
}

}  // namespace

const GemmKernels kGemmAvx512{kTileRows, kTilePanels, gemm_tile_f32_avx512,
                              gemm_epilogue_f32_avx512, activation_f32_avx512, erf_f32_avx512};

}  // namespace padfree
