// Helpers shared by the binding files: NumPy buffer access and GIL handling.
// The Python layer validates every argument; these checks only guard the contract
// between padfree's Python code and _core, so a mistake there is an error, not a crash.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace padfree::bindings {

namespace py = pybind11;

void register_info(py::module_& m);
void register_softmax(py::module_& m);
void register_dense(py::module_& m);
void register_attention(py::module_& m);
void register_encoder(py::module_& m);

// Element strides of the leading `ndim` dimensions of `a`, which must be whole elements.
inline std::vector<int64_t> element_strides(const py::array& a, int ndim, const char* name)
{
    std::vector<int64_t> strides(static_cast<size_t>(ndim));
    const auto itemsize = static_cast<int64_t>(a.itemsize());
    for (int d = 0; d < ndim; ++d) {
        const auto bytes = static_cast<int64_t>(a.strides(d));
        if (bytes % itemsize != 0) {
            throw std::invalid_argument(std::string(name) + ": strides must be whole elements");
        }
        strides[static_cast<size_t>(d)] = bytes / itemsize;
    }
    return strides;
}

inline void require_shape(const py::array& a, const std::vector<int64_t>& shape, const char* name)
{
    if (a.ndim() != static_cast<py::ssize_t>(shape.size())) {
        throw std::invalid_argument(std::string(name) + ": wrong number of dimensions");
    }
    for (size_t d = 0; d < shape.size(); ++d) {
        if (a.shape(static_cast<py::ssize_t>(d)) != shape[d]) {
            throw std::invalid_argument(std::string(name) + ": shape mismatch");
        }
    }
}

}  // namespace padfree::bindings
