// masked_softmax: NumPy views (already validated and laid out by padfree._softmax) to the
// C++ row drivers, with the GIL released.
#include "common.h"

#include <optional>

#include "padfree/softmax.h"

namespace padfree::bindings {
namespace {

template <typename T>
struct Operand {
    std::vector<int64_t> strides;
    T* data = nullptr;
    StridedRows<T> rows() const { return {data, data ? strides.data() : nullptr}; }
};

// `a` covers the row shape (leading dims) and, unless `rows_only`, a contiguous last axis.
template <typename T>
Operand<T> operand(const std::optional<py::array>& a, const std::vector<int64_t>& lead,
                   int64_t n, bool rows_only, const char* name)
{
    Operand<T> op;
    if (!a) return op;
    std::vector<int64_t> shape = lead;
    if (!rows_only) shape.push_back(n);
    require_shape(*a, shape, name);
    if (a->itemsize() != static_cast<py::ssize_t>(sizeof(T))) {
        throw std::invalid_argument(std::string(name) + ": wrong element size");
    }
    if (!rows_only && n > 1 && a->strides(a->ndim() - 1) != a->itemsize()) {
        throw std::invalid_argument(std::string(name) + ": last axis must be contiguous");
    }
    op.strides = element_strides(*a, static_cast<int>(lead.size()), name);
    op.data = static_cast<T*>(const_cast<void*>(a->data()));
    return op;
}

template <typename T>
void run_softmax(const py::array& x, py::array& y, const std::optional<py::array>& lengths,
                 const std::optional<py::array>& keep, const std::optional<py::array>& bias,
                 int num_threads)
{
    if (x.ndim() < 1) throw std::invalid_argument("scores: need at least one dimension");
    if (!y.writeable()) throw std::invalid_argument("out: array is read-only");
    std::vector<int64_t> lead(x.shape(), x.shape() + x.ndim() - 1);
    const int64_t n = x.shape(x.ndim() - 1);
    auto xs = operand<const T>(x, lead, n, false, "scores");
    auto ys = operand<T>(std::optional<py::array>(y), lead, n, false, "out");
    auto ls = operand<const int64_t>(lengths, lead, n, true, "lengths");
    auto ks = operand<const uint8_t>(keep, lead, n, false, "mask");
    auto bs = operand<const T>(bias, lead, n, false, "mask");
    const RowLayout layout{static_cast<int>(lead.size()), lead.data()};

    py::gil_scoped_release release;
    if constexpr (std::is_same_v<T, float>) {
        masked_softmax_f32(layout, n, xs.rows(), ys.rows(), ls.rows(), ks.rows(), bs.rows(),
                           num_threads);
    } else {
        masked_softmax_f64(layout, n, xs.rows(), ys.rows(), ls.rows(), ks.rows(), bs.rows(),
                           num_threads);
    }
}

}  // namespace

void register_softmax(py::module_& m)
{
    m.def("masked_softmax_f32", &run_softmax<float>, py::arg("scores"), py::arg("out"),
          py::arg("lengths"), py::arg("keep"), py::arg("bias"), py::arg("num_threads"));
    m.def("masked_softmax_f64", &run_softmax<double>, py::arg("scores"), py::arg("out"),
          py::arg("lengths"), py::arg("keep"), py::arg("bias"), py::arg("num_threads"));
    m.def(
        "exp_f32",
        [](py::array_t<float, py::array::c_style | py::array::forcecast> x) {
            py::array_t<float> y(x.size());
            const float* src = x.data();
            float* dst = y.mutable_data();
            const auto count = static_cast<int64_t>(x.size());
            py::gil_scoped_release release;
            softmax_kernels().exp_f32(src, dst, count);
            return y;
        },
        py::arg("x"), "Vectorised exp of the selected ISA (for tests of its error bound).");
}

}  // namespace padfree::bindings
