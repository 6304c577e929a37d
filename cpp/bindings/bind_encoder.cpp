// The encoder: construction from NumPy weights, padded and packed forward calls, and weight
// export for pickling. Arguments arrive validated and laid out by padfree._encoder; the GIL
// is released for packing, every layer and unpacking.
#include "common.h"

#include <memory>
#include <optional>

#include "padfree/encoder.h"

namespace padfree::bindings {
namespace {

using FloatArray = py::array_t<float, py::array::c_style>;
using IndexArray = py::array_t<int64_t, py::array::c_style>;

const float* weight_ptr(const py::dict& layer, const char* key, int64_t size)
{
    // Only an exact float32 C-contiguous array is accepted: a converted temporary would die
    // before the pointer is used.
    py::object value = layer[key];
    if (!FloatArray::check_(value)) {
        throw std::invalid_argument(std::string(key) + ": need a C-contiguous float32 array");
    }
    auto array = py::reinterpret_borrow<FloatArray>(value);
    if (array.size() != size) throw std::invalid_argument(std::string(key) + ": wrong size");
    return array.data();
}

// The dicts keep the arrays alive for the whole construction, which copies them.
EncoderLayerWeights layer_weights(const py::dict& layer, const EncoderConfig& c)
{
    const int64_t d = c.d_model;
    const int64_t f = c.dim_feedforward;
    EncoderLayerWeights w;
    w.in_proj_weight = weight_ptr(layer, "in_proj_weight", 3 * d * d);
    w.in_proj_bias = weight_ptr(layer, "in_proj_bias", 3 * d);
    w.out_proj_weight = weight_ptr(layer, "out_proj_weight", d * d);
    w.out_proj_bias = weight_ptr(layer, "out_proj_bias", d);
    w.linear1_weight = weight_ptr(layer, "linear1_weight", f * d);
    w.linear1_bias = weight_ptr(layer, "linear1_bias", f);
    w.linear2_weight = weight_ptr(layer, "linear2_weight", d * f);
    w.linear2_bias = weight_ptr(layer, "linear2_bias", d);
    w.norm1_weight = weight_ptr(layer, "norm1_weight", d);
    w.norm1_bias = weight_ptr(layer, "norm1_bias", d);
    w.norm2_weight = weight_ptr(layer, "norm2_weight", d);
    w.norm2_bias = weight_ptr(layer, "norm2_bias", d);
    return w;
}

std::shared_ptr<Encoder> make_encoder(int64_t d_model, int64_t heads, int64_t dim_feedforward,
                                      bool norm_first, int activation, float eps,
                                      float final_norm_eps, const py::list& layers,
                                      std::optional<FloatArray> final_weight,
                                      std::optional<FloatArray> final_bias)
{
    EncoderConfig config;
    config.d_model = d_model;
    config.heads = heads;
    config.dim_feedforward = dim_feedforward;
    config.norm_first = norm_first;
    config.activation = static_cast<Activation>(activation);
    config.layer_norm_eps = eps;
    config.final_norm_eps = final_norm_eps;
    std::vector<EncoderLayerWeights> views;
    for (const py::handle& layer : layers) {
        views.push_back(layer_weights(layer.cast<py::dict>(), config));
    }
    const float* fw = final_weight ? final_weight->data() : nullptr;
    const float* fb = final_bias ? final_bias->data() : nullptr;

    py::gil_scoped_release release;
    return std::make_shared<Encoder>(config, views, fw, fb);
}

// The masks beyond key padding, as padfree._encoder lays them out.
struct MaskArgs {
    std::optional<py::array> keep;  // uint8, contiguous
    std::optional<FloatArray> bias;
    int64_t stride_batch = 0;
    int64_t stride_head = 0;
    int64_t stride_query = 0;
    bool causal = false;
    int64_t window_left = -1;
    int64_t window_right = -1;

    AttentionMask view() const
    {
        AttentionMask m;
        if (keep) m.keep = static_cast<const uint8_t*>(keep->data());
        if (bias) m.bias = bias->data();
        m.stride_batch = stride_batch;
        m.stride_head = stride_head;
        m.stride_query = stride_query;
        m.causal = causal;
        m.window_left = window_left;
        m.window_right = window_right;
        return m;
    }
};

PackedSequences sequences(const IndexArray& cu_seqlens, const std::optional<IndexArray>& positions)
{
    PackedSequences seqs;
    seqs.batch = static_cast<int64_t>(cu_seqlens.size()) - 1;
    seqs.cu_seqlens = cu_seqlens.data();
    seqs.positions = positions ? positions->data() : nullptr;
    return seqs;
}

FloatArray forward_padded(const Encoder& encoder, const FloatArray& x, const IndexArray& cu,
                          const std::optional<IndexArray>& positions, const MaskArgs& mask,
                          int num_threads)
{
    require_shape(x, {x.shape(0), x.shape(1), encoder.config().d_model}, "x");
    require_shape(cu, {x.shape(0) + 1}, "cu_seqlens");
    FloatArray y({x.shape(0), x.shape(1), x.shape(2)});
    const PackedSequences seqs = sequences(cu, positions);
    const AttentionMask view = mask.view();
    const float* src = x.data();
    float* dst = y.mutable_data();
    const int64_t max_len = x.shape(1);

    py::gil_scoped_release release;
    encoder.forward_padded(seqs, max_len, view, src, dst, num_threads);
    return y;
}

FloatArray forward_packed(const Encoder& encoder, const FloatArray& x, const IndexArray& cu,
                          const std::optional<IndexArray>& positions, const MaskArgs& mask,
                          int num_threads)
{
    const int64_t tokens = cu.size() > 0 ? cu.data()[cu.size() - 1] : 0;
    require_shape(x, {tokens, encoder.config().d_model}, "x_packed");
    FloatArray y({x.shape(0), x.shape(1)});
    const PackedSequences seqs = sequences(cu, positions);
    const AttentionMask view = mask.view();
    const float* src = x.data();
    float* dst = y.mutable_data();
    const auto count = static_cast<size_t>(x.size());

    py::gil_scoped_release release;
    std::copy(src, src + count, dst);
    encoder.forward_packed(seqs, view, dst, num_threads);
    return y;
}

FloatArray copy_vector(const float* data, int64_t n)
{
    FloatArray out(std::vector<py::ssize_t>{n});
    std::copy(data, data + n, out.mutable_data());
    return out;
}

FloatArray linear_weight(const PackedLinear& linear)
{
    FloatArray out(std::vector<py::ssize_t>{linear.n(), linear.k()});
    linear.unpack(out.mutable_data());
    return out;
}

py::dict layer_state(const Encoder& encoder, int64_t index)
{
    if (index < 0 || index >= encoder.num_layers()) throw py::index_error("layer index");
    const EncoderLayer& layer = encoder.layer(index);
    const int64_t d = encoder.config().d_model;
    const int64_t f = encoder.config().dim_feedforward;
    py::dict state;
    state["in_proj_weight"] = linear_weight(layer.in_proj);
    state["in_proj_bias"] = copy_vector(layer.in_proj.bias(), 3 * d);
    state["out_proj_weight"] = linear_weight(layer.out_proj);
    state["out_proj_bias"] = copy_vector(layer.out_proj.bias(), d);
    state["linear1_weight"] = linear_weight(layer.linear1);
    state["linear1_bias"] = copy_vector(layer.linear1.bias(), f);
    state["linear2_weight"] = linear_weight(layer.linear2);
    state["linear2_bias"] = copy_vector(layer.linear2.bias(), d);
    state["norm1_weight"] = copy_vector(layer.norm1.weight.data(), d);
    state["norm1_bias"] = copy_vector(layer.norm1.bias.data(), d);
    state["norm2_weight"] = copy_vector(layer.norm2.weight.data(), d);
    state["norm2_bias"] = copy_vector(layer.norm2.bias.data(), d);
    return state;
}

}  // namespace

void register_encoder(py::module_& m)
{
    py::class_<MaskArgs>(m, "EncoderMask")
        .def(py::init<>())
        .def_readwrite("keep", &MaskArgs::keep)
        .def_readwrite("bias", &MaskArgs::bias)
        .def_readwrite("stride_batch", &MaskArgs::stride_batch)
        .def_readwrite("stride_head", &MaskArgs::stride_head)
        .def_readwrite("stride_query", &MaskArgs::stride_query)
        .def_readwrite("causal", &MaskArgs::causal)
        .def_readwrite("window_left", &MaskArgs::window_left)
        .def_readwrite("window_right", &MaskArgs::window_right);

    py::class_<Encoder, std::shared_ptr<Encoder>>(m, "EncoderCore")
        .def(py::init(&make_encoder), py::arg("d_model"), py::arg("heads"),
             py::arg("dim_feedforward"), py::arg("norm_first"), py::arg("activation"),
             py::arg("layer_norm_eps"), py::arg("final_norm_eps"), py::arg("layers"),
             py::arg("final_norm_weight"), py::arg("final_norm_bias"))
        .def_property_readonly("num_layers", &Encoder::num_layers)
        .def("forward_padded", &forward_padded, py::arg("x"), py::arg("cu_seqlens"),
             py::arg("positions"), py::arg("mask"), py::arg("num_threads"))
        .def("forward_packed", &forward_packed, py::arg("x"), py::arg("cu_seqlens"),
             py::arg("positions"), py::arg("mask"), py::arg("num_threads"))
        .def("layer_state", &layer_state, py::arg("index"))
        .def("final_norm_state", [](const Encoder& e) -> py::object {
            if (!e.has_final_norm()) return py::none();
            const int64_t d = e.config().d_model;
            return py::make_tuple(copy_vector(e.final_norm().weight.data(), d),
                                  copy_vector(e.final_norm().bias.data(), d));
        });
}

}  // namespace padfree::bindings
