// Dense layers: Y = act(X · Wᵀ + bias) + residual on packed tokens.
//
// W is given in PyTorch's Linear layout (N, K) and packed once, at construction, into
// column panels that every ISA's micro-kernel reads. The packed layout does not depend on
// the ISA, so a PackedLinear keeps working after set_isa().
//
// Reduction order: each output element is the sum over K in one fixed order that depends
// on K only, never on M, on how M is tiled, or on the thread count. A row's result is
// bit-identical whether it is computed alone or inside a batch, with 1 thread or many.
#pragma once

#include <cstdint>
#include <memory>

namespace padfree {

enum class Activation : int { none = 0, relu = 1, gelu_erf = 2, gelu_tanh = 3 };

class PackedLinear {
public:
    // w: (n, k) row-major with row stride ldw; bias: n floats or nullptr. Copies both.
    PackedLinear(const float* w, int64_t n, int64_t k, int64_t ldw, const float* bias);
    ~PackedLinear();
    PackedLinear(PackedLinear&&) noexcept;
    PackedLinear& operator=(PackedLinear&&) noexcept;
    PackedLinear(const PackedLinear&) = delete;
    PackedLinear& operator=(const PackedLinear&) = delete;

    int64_t n() const;
    int64_t k() const;

    // y[i, :] = act(x[i, :] · Wᵀ + bias) (+ residual[i, :]) for i in [0, m).
    // x: (m, k) with row stride ldx; y: (m, n) with row stride ldy; residual: (m, n) with
    // row stride ldr or nullptr. y may alias residual (same pointer and stride), not x.
    // num_threads <= 0 means OpenMP's default.
    void forward(int64_t m, const float* x, int64_t ldx, float* y, int64_t ldy, Activation act,
                 const float* residual, int64_t ldr, int num_threads) const;

    // The unpacked weight (n, k) and bias (n, or nullptr), for serialisation.
    void unpack(float* w) const;
    const float* bias() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace padfree
