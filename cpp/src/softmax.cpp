// Masked softmax: the scalar row kernel, the kernel table, and the OpenMP row drivers.
#include "padfree/softmax.h"

#include <cmath>
#include <limits>
#include <vector>

#include "padfree/parallel.h"

namespace padfree {
namespace {

template <typename T>
void softmax_row_scalar(const T* x, T* y, int64_t n, int64_t valid, const uint8_t* keep,
                        const T* bias)
{
    const T neg_inf = -std::numeric_limits<T>::infinity();
    T row_max = neg_inf;
    bool saw_nan = false;
    for (int64_t i = 0; i < valid; ++i) {
        if (keep && !keep[i]) continue;
        const T v = bias ? x[i] + bias[i] : x[i];
        if (std::isnan(v)) saw_nan = true;
        if (v > row_max) row_max = v;
    }
    if (row_max == neg_inf && !saw_nan) {
        for (int64_t i = 0; i < n; ++i) y[i] = T(0);
        return;
    }

    T sum = T(0);
    for (int64_t i = 0; i < valid; ++i) {
        T e = T(0);
        if (!keep || keep[i]) e = std::exp((bias ? x[i] + bias[i] : x[i]) - row_max);
        y[i] = e;
        sum += e;
    }

    // Only kept entries are scaled: in a row poisoned by NaN or +inf, inv is NaN and the
    // entries a boolean mask removed must stay exactly zero.
    const T inv = T(1) / sum;
    for (int64_t i = 0; i < valid; ++i) {
        if (!keep || keep[i]) y[i] *= inv;
    }
    for (int64_t i = valid; i < n; ++i) y[i] = T(0);
}

int64_t row_offset(const RowLayout& rows, const int64_t* strides, int64_t row)
{
    int64_t offset = 0;
    for (int d = rows.ndim - 1; d >= 0; --d) {
        const int64_t extent = rows.shape[d];
        offset += (row % extent) * strides[d];
        row /= extent;
    }
    return offset;
}

int64_t row_count(const RowLayout& rows)
{
    int64_t count = 1;
    for (int d = 0; d < rows.ndim; ++d) count *= rows.shape[d];
    return count;
}

template <typename T, typename RowFn>
void softmax_rows(const RowLayout& rows, int64_t n, StridedRows<const T> x, StridedRows<T> y,
                  StridedRows<const int64_t> lengths, StridedRows<const uint8_t> keep,
                  StridedRows<const T> bias, int num_threads, RowFn row_fn)
{
    const int64_t count = row_count(rows);
    const int threads = resolve_threads(num_threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (count * n > 16384)
    for (int64_t r = 0; r < count; ++r) {
        const int64_t valid = lengths.data ? lengths.data[row_offset(rows, lengths.strides, r)] : n;
        const uint8_t* keep_row = keep.data ? keep.data + row_offset(rows, keep.strides, r) : nullptr;
        const T* bias_row = bias.data ? bias.data + row_offset(rows, bias.strides, r) : nullptr;
        row_fn(x.data + row_offset(rows, x.strides, r), y.data + row_offset(rows, y.strides, r), n,
               valid, keep_row, bias_row);
    }
}

const SoftmaxKernels kScalar{softmax_row_f32_scalar, exp_f32_scalar};
#if defined(PADFREE_X86)
const SoftmaxKernels kAvx2{softmax_row_f32_avx2, exp_f32_avx2};
const SoftmaxKernels kAvx512{softmax_row_f32_avx512, exp_f32_avx512};
#endif

}  // namespace

void softmax_row_f32_scalar(const float* x, float* y, int64_t n, int64_t valid,
                            const uint8_t* keep, const float* bias)
{
    softmax_row_scalar<float>(x, y, n, valid, keep, bias);
}

void exp_f32_scalar(const float* x, float* y, int64_t n)
{
    for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

const SoftmaxKernels& softmax_kernels(Isa isa)
{
#if defined(PADFREE_X86)
    if (isa == Isa::avx512) return kAvx512;
    if (isa == Isa::avx2) return kAvx2;
#endif
    return kScalar;
}

const SoftmaxKernels& softmax_kernels() { return softmax_kernels(current_isa()); }

void masked_softmax_f32(const RowLayout& rows, int64_t n, StridedRows<const float> x,
                        StridedRows<float> y, StridedRows<const int64_t> lengths,
                        StridedRows<const uint8_t> keep, StridedRows<const float> bias,
                        int num_threads)
{
    softmax_rows<float>(rows, n, x, y, lengths, keep, bias, num_threads,
                        softmax_kernels().row_f32);
}

// float64 is computed in float64 with the scalar kernel: there is no vector path for it,
// but no precision is given up either.
void masked_softmax_f64(const RowLayout& rows, int64_t n, StridedRows<const double> x,
                        StridedRows<double> y, StridedRows<const int64_t> lengths,
                        StridedRows<const uint8_t> keep, StridedRows<const double> bias,
                        int num_threads)
{
    softmax_rows<double>(rows, n, x, y, lengths, keep, bias, num_threads,
                         softmax_row_scalar<double>);
}

}  // namespace padfree
