// Masked softmax over the last axis of a batch of rows.
//
// A row has `n` entries of which only the first `valid` are read; entries from `valid` to
// `n` are written as zero and never read. Inside the valid prefix an optional boolean
// `keep` row (nonzero = take part) and an optional additive `bias` row apply. A row with
// nothing kept, or whose kept scores are all -inf, becomes all zeros. A NaN or +inf among
// the kept scores makes the kept entries NaN; removed and padded entries stay zero.
#pragma once

#include <cstdint>

#include "padfree/dispatch.h"

namespace padfree {

using softmax_row_f32_fn = void (*)(const float* x, float* y, int64_t n, int64_t valid,
                                    const uint8_t* keep, const float* bias);
// Vectorised exp used by the kernels, exposed so tests can measure its error.
using exp_f32_fn = void (*)(const float* x, float* y, int64_t n);

struct SoftmaxKernels {
    softmax_row_f32_fn row_f32;
    exp_f32_fn exp_f32;
};

const SoftmaxKernels& softmax_kernels(Isa isa);
const SoftmaxKernels& softmax_kernels();  // for current_isa()

// A strided view of the leading (row) dimensions of an array whose last axis is
// contiguous. strides are in elements; row r maps to sum_i index_i(r) * strides[i].
struct RowLayout {
    int ndim = 0;
    const int64_t* shape = nullptr;  // leading shape, shared by every operand
};

template <typename T>
struct StridedRows {
    T* data = nullptr;
    const int64_t* strides = nullptr;  // one per leading dimension, in elements
};

// Drivers: rows in parallel, each row computed with a fixed reduction order so results do
// not depend on the thread count. `lengths` (may be null) gives `valid` per row. x and y
// may be the same view (in place); no other operand may overlap y.
void masked_softmax_f32(const RowLayout& rows, int64_t n, StridedRows<const float> x,
                        StridedRows<float> y, StridedRows<const int64_t> lengths,
                        StridedRows<const uint8_t> keep, StridedRows<const float> bias,
                        int num_threads);
void masked_softmax_f64(const RowLayout& rows, int64_t n, StridedRows<const double> x,
                        StridedRows<double> y, StridedRows<const int64_t> lengths,
                        StridedRows<const uint8_t> keep, StridedRows<const double> bias,
                        int num_threads);

// Scalar row kernels (the reference for the vector versions).
void softmax_row_f32_scalar(const float* x, float* y, int64_t n, int64_t valid,
                            const uint8_t* keep, const float* bias);
void exp_f32_scalar(const float* x, float* y, int64_t n);
#if defined(PADFREE_X86)
void softmax_row_f32_avx2(const float* x, float* y, int64_t n, int64_t valid,
                          const uint8_t* keep, const float* bias);
void exp_f32_avx2(const float* x, float* y, int64_t n);
void softmax_row_f32_avx512(const float* x, float* y, int64_t n, int64_t valid,
                            const uint8_t* keep, const float* bias);
void exp_f32_avx512(const float* x, float* y, int64_t n);
#endif

}  // namespace padfree
