// PackedLinear: weight packing, the cache-blocked OpenMP driver, and the scalar kernels
// (micro-kernel, epilogue, activations) behind the per-ISA table in gemm_kernels.h.
#include "padfree/gemm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "gemm_kernels.h"
#include "padfree/parallel.h"

namespace padfree {
namespace {

// Work below this many flops per thread is not worth waking a thread for (about 20 us at
// this machine's per-core peak).
constexpr int64_t kMinFlopsPerThread = int64_t(1) << 21;

// Bytes of packed weights a column block may span, so it stays in L2 while every row tile
// of a work item passes over it.
constexpr int64_t kColumnBlockBytes = int64_t(512) << 10;

// Rows of one work item, in micro-tiles (64 rows with AVX-512): enough to reuse the
// item's weights from L2, few enough to balance threads.
constexpr int64_t kRowChunkTiles = 8;

// With several threads, aim for at least this many work items per thread.
constexpr int64_t kItemsPerThread = 4;

constexpr int kScalarTileRows = 4;

struct AlignedFree {
    void operator()(float* p) const { std::free(p); }
};

std::unique_ptr<float, AlignedFree> aligned_floats(int64_t count)
{
    const size_t bytes = (static_cast<size_t>(std::max<int64_t>(count, 1)) * 4 + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, bytes);
    return std::unique_ptr<float, AlignedFree>(static_cast<float*>(p));
}

// Scalar micro-kernel: `rows` x 16 columns per panel, one panel per call from the driver.
void gemm_tile_f32_scalar(int rows, int panels, int64_t k, const float* x, int64_t ldx,
                          const float* w, int64_t panel_stride, float* c, bool accumulate)
{
    for (int p = 0; p < panels; ++p) {
        const float* wp = w + p * panel_stride;
        for (int r = 0; r < rows; ++r) {
            float acc[kPanelWidth] = {};
            float* cr = c + r * kPanelWidth * panels + p * kPanelWidth;
            if (accumulate) std::memcpy(acc, cr, sizeof(acc));
            const float* xr = x + r * ldx;
            for (int64_t i = 0; i < k; ++i) {
                const float xv = xr[i];
                for (int j = 0; j < kPanelWidth; ++j) acc[j] += xv * wp[i * kPanelWidth + j];
            }
            std::memcpy(cr, acc, sizeof(acc));
        }
    }
}

// The scalar activations are evaluated in double, so they are correctly rounded or
// nearly so: they are the reference the vector versions are measured against.
float activate_scalar(Activation act, float v)
{
    const double x = v;
    switch (act) {
    case Activation::relu:
        return v > 0.0f ? v : (v == v ? 0.0f : v);
    case Activation::gelu_erf:
        return static_cast<float>(0.5 * x * std::erfc(-x * 0.70710678118654752440));
    case Activation::gelu_tanh: {
        // x/2 * (1 + tanh(y)) = x / (1 + exp(-2y)), without the cancellation for x < 0.
        const double inner = 0.79788456080286535588 * (x + 0.044715 * x * x * x);
        return static_cast<float>(x / (1.0 + std::exp(-2.0 * inner)));
    }
    case Activation::none:
        break;
    }
    return v;
}

void gemm_epilogue_f32_scalar(int rows, int cols, const float* c, int64_t ldc,
                              const float* bias, Activation act, const float* residual,
                              int64_t ldr, float* y, int64_t ldy)
{
    for (int r = 0; r < rows; ++r) {
        for (int j = 0; j < cols; ++j) {
            float v = c[r * ldc + j];
            if (bias) v += bias[j];
            v = activate_scalar(act, v);
            if (residual) v += residual[r * ldr + j];
            y[r * ldy + j] = v;
        }
    }
}

void activation_f32_scalar(Activation act, const float* x, float* y, int64_t n)
{
    for (int64_t i = 0; i < n; ++i) y[i] = activate_scalar(act, x[i]);
}

void erf_f32_scalar(const float* x, float* y, int64_t n)
{
    for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(std::erf(double(x[i])));
}

const GemmKernels kGemmScalar{kScalarTileRows, 1, gemm_tile_f32_scalar,
                              gemm_epilogue_f32_scalar, activation_f32_scalar, erf_f32_scalar};

}  // namespace

const GemmKernels& gemm_kernels(Isa isa)
{
#if defined(PADFREE_X86)
    if (isa == Isa::avx512) return kGemmAvx512;
    if (isa == Isa::avx2) return kGemmAvx2;
#endif
    return kGemmScalar;
}

const GemmKernels& gemm_kernels() { return gemm_kernels(current_isa()); }

struct PackedLinear::Impl {
    int64_t n = 0;
    int64_t k = 0;
    int64_t panels = 0;
    std::unique_ptr<float, AlignedFree> packed;
    std::vector<float> bias;  // empty when the layer has none
};

PackedLinear::PackedLinear(const float* w, int64_t n, int64_t k, int64_t ldw, const float* bias)
    : impl_(std::make_unique<Impl>())
{
    Impl& s = *impl_;
    s.n = n;
    s.k = k;
    s.panels = (n + kPanelWidth - 1) / kPanelWidth;
    s.packed = aligned_floats(s.panels * kPanelWidth * k);
    float* dst = s.packed.get();
    for (int64_t col = 0; col < n; ++col) {
        float* panel = dst + (col / kPanelWidth) * kPanelWidth * k + col % kPanelWidth;
        const float* row = w + col * ldw;
        for (int64_t i = 0; i < k; ++i) panel[i * kPanelWidth] = row[i];
    }
    if (bias) s.bias.assign(bias, bias + n);
}

PackedLinear::~PackedLinear() = default;
PackedLinear::PackedLinear(PackedLinear&&) noexcept = default;
PackedLinear& PackedLinear::operator=(PackedLinear&&) noexcept = default;

int64_t PackedLinear::n() const { return impl_->n; }
int64_t PackedLinear::k() const { return impl_->k; }
const float* PackedLinear::bias() const
{
    return impl_->bias.empty() ? nullptr : impl_->bias.data();
}

void PackedLinear::unpack(float* w) const
{
    const Impl& s = *impl_;
    for (int64_t col = 0; col < s.n; ++col) {
        const float* panel = s.packed.get() + (col / kPanelWidth) * kPanelWidth * s.k +
                             col % kPanelWidth;
        for (int64_t i = 0; i < s.k; ++i) w[col * s.k + i] = panel[i * kPanelWidth];
    }
}

namespace {

struct GemmProblem {
    int64_t m, n, k;
    const float* x;
    int64_t ldx;
    float* y;
    int64_t ldy;
    Activation act;
    const float* residual;
    int64_t ldr;
    const float* packed;
    const float* bias;
};

// Length of the blocks k is cut into: a row tile's x block (8 x 512 floats with AVX-512)
// stays in L1 and more weight columns fit the L2 column block. Up to kMaxUnblockedK, k is
// not cut at all.
constexpr int64_t kKBlock = 512;
constexpr int64_t kMaxUnblockedK = 768;

int64_t k_block(int64_t k)
{
    if (k <= kMaxUnblockedK) return std::max<int64_t>(k, 1);
    const int64_t blocks = (k + kKBlock - 1) / kKBlock;
    return (k + blocks - 1) / blocks;
}

// Per-thread scratch for an item's partial sums, reused across calls.
float* item_scratch(size_t floats)
{
    thread_local std::vector<float> buffer;
    if (buffer.size() < floats + 16) buffer.resize(floats + 16);
    const auto address = reinterpret_cast<uintptr_t>(buffer.data());
    return buffer.data() + ((64 - address % 64) % 64) / sizeof(float);
}

// Rows [row_begin, row_end) times column tiles [tile_begin, tile_end): one work item.
// For each block of k, every row tile sweeps the item's column tiles, so its x block stays
// in L1 while the item's packed weights for that k block stay in L2. Partial sums wait in
// per-tile scratch; the last k block runs the epilogue into y.
void gemm_item(const GemmProblem& g, const GemmKernels& kern, int64_t row_begin,
               int64_t row_end, int64_t tile_begin, int64_t tile_end)
{
    const int tile_cols = kPanelWidth * kern.tile_panels;
    const int64_t tile_floats = int64_t(kern.tile_rows) * tile_cols;
    const int64_t panel_stride = kPanelWidth * g.k;
    const int64_t kc = k_block(g.k);
    const bool blocked = kc < g.k;
    alignas(64) float single_tile[16 * 64];
    float* scratch = single_tile;
    if (blocked) {
        const int64_t row_tiles = (row_end - row_begin + kern.tile_rows - 1) / kern.tile_rows;
        scratch = item_scratch(static_cast<size_t>(row_tiles * (tile_end - tile_begin) *
                                                   tile_floats));
    }

    for (int64_t k0 = 0; k0 == 0 || k0 < g.k; k0 += kc) {
        const int64_t depth = std::min(kc, g.k - k0);
        const bool last = k0 + depth >= g.k;
        float* c = scratch;
        for (int64_t row = row_begin; row < row_end; row += kern.tile_rows) {
            const int rows = static_cast<int>(std::min<int64_t>(kern.tile_rows, row_end - row));
            for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
                const int64_t col = tile * tile_cols;
                const int cols = static_cast<int>(std::min<int64_t>(tile_cols, g.n - col));
                const int panels = (cols + kPanelWidth - 1) / kPanelWidth;
                kern.tile(rows, panels, depth, g.x + row * g.ldx + k0, g.ldx,
                          g.packed + (col / kPanelWidth) * panel_stride + k0 * kPanelWidth,
                          panel_stride, c, k0 > 0);
                if (last) {
                    kern.epilogue(rows, cols, c, tile_cols, g.bias ? g.bias + col : nullptr,
                                  g.act, g.residual ? g.residual + row * g.ldr + col : nullptr,
                                  g.ldr, g.y + row * g.ldy + col, g.ldy);
                }
                if (blocked) c += tile_floats;
            }
        }
    }
}

// How the output is cut into work items: row chunks times column blocks.
struct ItemGrid {
    int64_t chunk_rows;
    int64_t row_chunks;
    int64_t block_tiles;
    int64_t col_blocks;
    int64_t count() const { return row_chunks * col_blocks; }
};

// Column blocks are sized for L2 and, when there are few row chunks, cut finer so every
// thread gets several items: items are handed out dynamically, so a thread slowed by
// another process on its core does not hold the others up.
ItemGrid item_grid(int64_t m, int64_t k, int64_t col_tiles, const GemmKernels& kern,
                   int64_t threads)
{
    ItemGrid grid{};
    const int64_t row_tiles = (m + kern.tile_rows - 1) / kern.tile_rows;
    const int64_t chunk_tiles = std::min<int64_t>(row_tiles, kRowChunkTiles);
    grid.chunk_rows = chunk_tiles * kern.tile_rows;
    grid.row_chunks = (row_tiles + chunk_tiles - 1) / chunk_tiles;

    const int64_t tile_bytes = kPanelWidth * kern.tile_panels * k_block(k) * 4;
    const int64_t l2_tiles = std::max<int64_t>(kColumnBlockBytes / tile_bytes, 1);
    const int64_t wanted_blocks =
        threads > 1 ? (kItemsPerThread * threads + grid.row_chunks - 1) / grid.row_chunks : 1;
    const int64_t even_tiles = (col_tiles + wanted_blocks - 1) / wanted_blocks;
    grid.block_tiles = std::max<int64_t>(std::min(l2_tiles, even_tiles), 1);
    grid.col_blocks = (col_tiles + grid.block_tiles - 1) / grid.block_tiles;
    return grid;
}

}  // namespace

void PackedLinear::forward(int64_t m, const float* x, int64_t ldx, float* y, int64_t ldy,
                           Activation act, const float* residual, int64_t ldr,
                           int num_threads) const
{
    const Impl& s = *impl_;
    if (m <= 0 || s.n <= 0) return;
    const GemmKernels& kern = gemm_kernels();
    const GemmProblem g{m, s.n, s.k, x, ldx, y, ldy, act, residual, ldr, s.packed.get(),
                        bias()};

    const int64_t tile_cols = kPanelWidth * kern.tile_panels;
    const int64_t col_tiles = (s.n + tile_cols - 1) / tile_cols;
    const int64_t flops = 2 * m * s.n * std::max<int64_t>(s.k, 1);
    int64_t threads = std::min<int64_t>(resolve_threads(num_threads),
                                        std::max<int64_t>(flops / kMinFlopsPerThread, 1));
    const ItemGrid grid = item_grid(m, s.k, col_tiles, kern, threads);
    threads = std::min(threads, grid.count());

    // Which thread computes an item never changes how it is computed: results do not
    // depend on the thread count or on the scheduling.
#pragma omp parallel for schedule(dynamic, 1) num_threads(static_cast<int>(threads)) \
    if (threads > 1)
    for (int64_t item = 0; item < grid.count(); ++item) {
        const int64_t row = (item / grid.col_blocks) * grid.chunk_rows;
        const int64_t tile = (item % grid.col_blocks) * grid.block_tiles;
        gemm_item(g, kern, row, std::min(m, row + grid.chunk_rows), tile,
                  std::min(col_tiles, tile + grid.block_tiles));
    }
}

}  // namespace padfree
