// Masked softmax: the scalar row kernel, the kernel table, and the OpenMP row drivers.
#include "padfree/softmax.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <type_traits>
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

// Walks the rows of up to five operands that share one leading shape, keeping each
// operand's element offset up to date. Rows are visited in C order; seek() costs a
// division per dimension, next() is an odometer step, so a chunk of rows pays for
// divisions once.
class RowWalker {
public:
    static constexpr int kOperands = 5;

    RowWalker(const RowLayout& rows, const std::array<const int64_t*, kOperands>& strides)
        : rows_(rows), strides_(strides), index_(static_cast<size_t>(rows.ndim), 0)
    {
    }

    void seek(int64_t row)
    {
        offsets_.fill(0);
        for (int d = rows_.ndim - 1; d >= 0; --d) {
            const int64_t i = row % rows_.shape[d];
            row /= rows_.shape[d];
            index_[static_cast<size_t>(d)] = i;
            for (int k = 0; k < kOperands; ++k) {
                if (strides_[k]) offsets_[k] += i * strides_[k][d];
            }
        }
    }

    void next()
    {
        for (int d = rows_.ndim - 1; d >= 0; --d) {
            int64_t& i = index_[static_cast<size_t>(d)];
            const bool wrap = ++i == rows_.shape[d];
            const int64_t step = wrap ? 1 - rows_.shape[d] : 1;
            for (int k = 0; k < kOperands; ++k) {
                if (strides_[k]) offsets_[k] += step * strides_[k][d];
            }
            if (!wrap) return;
            i = 0;
        }
    }

    int64_t offset(int k) const { return offsets_[k]; }

private:
    const RowLayout& rows_;
    std::array<const int64_t*, kOperands> strides_;
    std::vector<int64_t> index_;
    std::array<int64_t, kOperands> offsets_{};
};

enum Operand { kX, kY, kLengths, kKeep, kBias };

int64_t row_count(const RowLayout& rows)
{
    int64_t count = 1;
    for (int d = 0; d < rows.ndim; ++d) count *= rows.shape[d];
    return count;
}

// Rows per scheduling chunk: about 8192 elements, enough chunks to balance rows of
// different lengths over threads (or over a core another process holds) at little
// scheduling cost. Rows are independent, so the schedule never changes a result.
int64_t chunk_rows_for(int64_t n) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(n, 1)); }

template <typename T, typename RowFn>
void softmax_rows(const RowLayout& rows, int64_t n, StridedRows<const T> x, StridedRows<T> y,
                  StridedRows<const int64_t> lengths, StridedRows<const uint8_t> keep,
                  StridedRows<const T> bias, int num_threads, RowFn row_fn)
{
    const int64_t count = row_count(rows);
    const int threads = resolve_threads(num_threads);
    const int64_t chunk_rows = chunk_rows_for(n);
    const int64_t chunks = (count + chunk_rows - 1) / chunk_rows;
    const std::array<const int64_t*, RowWalker::kOperands> strides{
        x.strides, y.strides, lengths.data ? lengths.strides : nullptr,
        keep.data ? keep.strides : nullptr, bias.data ? bias.strides : nullptr};

#pragma omp parallel num_threads(threads) if (count * n > 16384)
    {
        RowWalker walker(rows, strides);
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < chunks; ++c) {
            const int64_t begin = c * chunk_rows;
            const int64_t end = std::min(count, begin + chunk_rows);
            walker.seek(begin);
            for (int64_t r = begin; r < end; ++r, walker.next()) {
                row_fn(x.data + walker.offset(kX), y.data + walker.offset(kY), n,
                       lengths.data ? lengths.data[walker.offset(kLengths)] : n,
                       keep.data ? keep.data + walker.offset(kKeep) : nullptr,
                       bias.data ? bias.data + walker.offset(kBias) : nullptr);
            }
        }
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
    const SoftmaxKernels& kernels = softmax_kernels();
    softmax_rows<float>(rows, n, x, y, lengths, keep, bias, num_threads, kernels.row_f32);
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
