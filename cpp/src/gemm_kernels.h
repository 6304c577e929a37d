// Internal to the GEMM family: the per-ISA kernel table behind PackedLinear.
//
// Packed weights: W (n, k) becomes ceil(n / 16) panels; panel p holds columns
// [16p, 16p + 16) of Wᵀ as k rows of 16 floats (row i = W[16p .. 16p+15, i]), zero-padded
// past n. Panels are contiguous, `panel_stride` = 16 * k floats apart, 64-byte aligned.
// This layout is the same for every ISA: a micro-kernel reads `tile_panels` consecutive
// panels at once (AVX-512: 3, AVX2: 1, scalar: 1).
//
// A micro-kernel computes a tile of `rows` <= tile_rows rows by 16 * panels columns into
// a small buffer `c` (row stride 16 * tile_panels) as, for every element, the chain
// acc = 0; acc = fma(x[i], w[i], acc) for i = 0, 1, ..., k-1 (scalar: acc = acc + x*w).
// Nothing else touches the sum, so its value depends on k only. The epilogue then applies
// bias, activation and residual on the way from `c` to y.
#pragma once

#include <cstdint>

#include "padfree/dispatch.h"
#include "padfree/gemm.h"

namespace padfree {

inline constexpr int kPanelWidth = 16;

// `accumulate`: start from the values in c (a partial sum over earlier k) instead of zero.
// Storing a partial as float32 and loading it back is exact, so splitting k into blocks
// leaves every element's FMA chain, and its result, unchanged.
using gemm_tile_fn = void (*)(int rows, int panels, int64_t k, const float* x, int64_t ldx,
                              const float* w, int64_t panel_stride, float* c,
                              bool accumulate);

// y[r, j] = act(c[r, j] + bias[j]) + residual[r, j] for r < rows, j < cols. bias and
// residual may be null. y may alias residual.
using gemm_epilogue_fn = void (*)(int rows, int cols, const float* c, int64_t ldc,
                                  const float* bias, Activation act, const float* residual,
                                  int64_t ldr, float* y, int64_t ldy);

// Elementwise activation of the selected ISA, the same code the epilogue runs (exposed so
// tests can measure the error of the GELU approximations).
using activation_f32_fn = void (*)(Activation act, const float* x, float* y, int64_t n);
using erf_f32_fn = void (*)(const float* x, float* y, int64_t n);

struct GemmKernels {
    int tile_rows;
    int tile_panels;
    gemm_tile_fn tile;
    gemm_epilogue_fn epilogue;
    activation_f32_fn activation;
    erf_f32_fn erf;
};

const GemmKernels& gemm_kernels(Isa isa);
const GemmKernels& gemm_kernels();  // for current_isa()

#if defined(PADFREE_X86)
extern const GemmKernels kGemmAvx2;
extern const GemmKernels kGemmAvx512;
#endif

}  // namespace padfree
