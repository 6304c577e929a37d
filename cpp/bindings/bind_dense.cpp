// Dense layers for Python: the PackedLinear class (with pickling through its unpacked
// weights), LayerNorm, and the vector activations exposed for accuracy tests. Arguments
// arrive validated and laid out by padfree._dense; the checks here guard that contract.
#include "common.h"

#include <optional>

#include "../src/gemm_kernels.h"
#include "padfree/gemm.h"
#include "padfree/layernorm.h"

namespace padfree::bindings {
namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// A float32 matrix whose last axis is contiguous; returns its row stride in elements.
int64_t matrix_rows(const py::array& a, int64_t rows, int64_t cols, const char* name)
{
    require_shape(a, {rows, cols}, name);
    if (a.dtype().kind() != 'f' || a.itemsize() != 4) {
        throw std::invalid_argument(std::string(name) + ": expected float32");
    }
    if (cols > 1 && a.strides(1) != 4) {
        throw std::invalid_argument(std::string(name) + ": last axis must be contiguous");
    }
    return rows > 1 ? element_strides(a, 1, name)[0] : cols;
}

std::unique_ptr<PackedLinear> make_linear(const FloatArray& weight,
                                          const std::optional<FloatArray>& bias)
{
    if (weight.ndim() != 2) throw std::invalid_argument("weight: expected 2 dimensions");
    const int64_t n = weight.shape(0);
    const int64_t k = weight.shape(1);
    if (bias) require_shape(*bias, {n}, "bias");
    const float* bias_data = bias ? bias->data() : nullptr;
    py::gil_scoped_release release;
    return std::make_unique<PackedLinear>(weight.data(), n, k, k, bias_data);
}

py::tuple unpack_linear(const PackedLinear& layer)
{
    py::array_t<float> weight({layer.n(), layer.k()});
    layer.unpack(weight.mutable_data());
    py::object bias = py::none();
    if (layer.bias()) {
        py::array_t<float> copy(layer.n());
        std::copy(layer.bias(), layer.bias() + layer.n(), copy.mutable_data());
        bias = copy;
    }
    return py::make_tuple(weight, bias);
}

void forward_linear(const PackedLinear& layer, const py::array& x, py::array& out,
                    const std::optional<py::array>& residual, int activation, int num_threads)
{
    if (x.ndim() != 2) throw std::invalid_argument("x: expected 2 dimensions");
    if (activation < 0 || activation > 3) throw std::invalid_argument("activation: unknown");
    if (!out.writeable()) throw std::invalid_argument("out: array is read-only");
    const int64_t m = x.shape(0);
    const int64_t ldx = matrix_rows(x, m, layer.k(), "x");
    const int64_t ldy = matrix_rows(out, m, layer.n(), "out");
    const int64_t ldr = residual ? matrix_rows(*residual, m, layer.n(), "residual") : 0;
    const auto* x_data = static_cast<const float*>(x.data());
    auto* y_data = static_cast<float*>(out.mutable_data());
    const float* r_data = residual ? static_cast<const float*>(residual->data()) : nullptr;

    py::gil_scoped_release release;
    layer.forward(m, x_data, ldx, y_data, ldy, static_cast<Activation>(activation), r_data, ldr,
                  num_threads);
}

void layer_norm(const py::array& x, const std::optional<py::array>& residual,
                const FloatArray& gamma, const FloatArray& beta, float eps, py::array& out,
                int num_threads)
{
    if (x.ndim() != 2) throw std::invalid_argument("x: expected 2 dimensions");
    if (!out.writeable()) throw std::invalid_argument("out: array is read-only");
    const int64_t m = x.shape(0);
    const int64_t d = x.shape(1);
    const int64_t ldx = matrix_rows(x, m, d, "x");
    const int64_t ldy = matrix_rows(out, m, d, "out");
    const int64_t ldr = residual ? matrix_rows(*residual, m, d, "residual") : 0;
    require_shape(gamma, {d}, "gamma");
    require_shape(beta, {d}, "beta");
    const auto* x_data = static_cast<const float*>(x.data());
    const float* r_data = residual ? static_cast<const float*>(residual->data()) : nullptr;
    auto* y_data = static_cast<float*>(out.mutable_data());

    py::gil_scoped_release release;
    layer_norm_f32(m, d, x_data, ldx, r_data, ldr, gamma.data(), beta.data(), eps, y_data, ldy,
                   num_threads);
}

py::array_t<float> activation_f32(const FloatArray& x, int activation)
{
    if (activation < 0 || activation > 3) throw std::invalid_argument("activation: unknown");
    py::array_t<float> y(x.size());
    const float* src = x.data();
    float* dst = y.mutable_data();
    const auto count = static_cast<int64_t>(x.size());
    py::gil_scoped_release release;
    gemm_kernels().activation(static_cast<Activation>(activation), src, dst, count);
    return y;
}

py::array_t<float> erf_f32(const FloatArray& x)
{
    py::array_t<float> y(x.size());
    const float* src = x.data();
    float* dst = y.mutable_data();
    const auto count = static_cast<int64_t>(x.size());
    py::gil_scoped_release release;
    gemm_kernels().erf(src, dst, count);
    return y;
}

}  // namespace

void register_dense(py::module_& m)
{
    py::class_<PackedLinear>(m, "PackedLinear",
                             "Weights (n, k) packed once; forward computes act(x W^T + b) + r.")
        .def(py::init(&make_linear), py::arg("weight"), py::arg("bias"))
        .def_property_readonly("n", &PackedLinear::n)
        .def_property_readonly("k", &PackedLinear::k)
        .def("unpack", &unpack_linear, "(weight (n, k), bias (n,) or None) as float32 copies.")
        .def("forward", &forward_linear, py::arg("x"), py::arg("out"), py::arg("residual"),
             py::arg("activation"), py::arg("num_threads"))
        .def(py::pickle([](const PackedLinear& layer) { return unpack_linear(layer); },
                        [](const py::tuple& state) {
                            if (state.size() != 2) throw std::runtime_error("bad pickle state");
                            std::optional<FloatArray> bias;
                            if (!state[1].is_none()) bias = state[1].cast<FloatArray>();
                            return make_linear(state[0].cast<FloatArray>(), bias);
                        }));
    m.def("layer_norm_f32", &layer_norm, py::arg("x"), py::arg("residual"), py::arg("gamma"),
          py::arg("beta"), py::arg("eps"), py::arg("out"), py::arg("num_threads"));
    m.def("activation_f32", &activation_f32, py::arg("x"), py::arg("activation"),
          "Vector activation of the selected ISA (1 relu, 2 gelu erf, 3 gelu tanh), for tests.");
    m.def("erf_f32", &erf_f32, py::arg("x"), "Vector erf of the selected ISA, for tests.");
}

}  // namespace padfree::bindings
