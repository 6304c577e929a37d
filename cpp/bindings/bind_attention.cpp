// attention: packed NumPy views (validated and packed by padfree._attention) to
// attention_packed_f32, with the GIL released.
#include "common.h"

#include <optional>

#include "padfree/attention.h"

namespace padfree::bindings {
namespace {

// Floats between consecutive rows of a 2-D float32 array whose rows are contiguous.
int64_t row_stride(const py::array& a, int64_t rows, int64_t columns, const char* name)
{
    require_shape(a, {rows, columns}, name);
    if (a.itemsize() != 4) throw std::invalid_argument(std::string(name) + ": need float32");
    if (columns > 1 && a.strides(1) != 4) {
        throw std::invalid_argument(std::string(name) + ": rows must be contiguous");
    }
    return element_strides(a, 1, name)[0];
}

// attn_mask as a (B, H, L, L) view: strides of the first three dimensions, key stride 1.
template <typename T>
const T* mask_view(const std::optional<py::array>& mask, AttentionMask& view, const char* name)
{
    if (!mask) return nullptr;
    if (mask->ndim() != 4 || mask->itemsize() != static_cast<py::ssize_t>(sizeof(T))) {
        throw std::invalid_argument(std::string(name) + ": need a 4-D view of the right dtype");
    }
    if (mask->shape(3) > 1 && mask->strides(3) != mask->itemsize()) {
        throw std::invalid_argument(std::string(name) + ": key axis must be contiguous");
    }
    const std::vector<int64_t> strides = element_strides(*mask, 3, name);
    view.stride_batch = strides[0];
    view.stride_head = strides[1];
    view.stride_query = strides[2];
    return static_cast<const T*>(mask->data());
}

using Int64Array = py::array_t<int64_t, py::array::c_style>;

py::array_t<float> run_attention(const py::array& q, const py::array& k, const py::array& v,
                                 const Int64Array& cu_seqlens,
                                 const std::optional<Int64Array>& positions,
                                 int64_t heads, int64_t head_dim, float scale,
                                 const std::optional<py::array>& keep,
                                 const std::optional<py::array>& bias, bool causal,
                                 int64_t window_left, int64_t window_right, int num_threads)
{
    const int64_t tokens = q.ndim() == 2 ? q.shape(0) : -1;
    const int64_t width = heads * head_dim;
    const int64_t ld = row_stride(q, tokens, width, "q");
    if (row_stride(k, tokens, width, "k") != ld || row_stride(v, tokens, width, "v") != ld) {
        throw std::invalid_argument("q, k and v must share one row stride");
    }
    if (cu_seqlens.ndim() != 1 || cu_seqlens.shape(0) < 1) {
        throw std::invalid_argument("cu_seqlens: need a 1-D array of batch + 1 offsets");
    }
    if (positions && (positions->ndim() != 1 || positions->shape(0) != tokens)) {
        throw std::invalid_argument("positions: need one entry per packed token");
    }

    PackedSequences seqs;
    seqs.batch = cu_seqlens.shape(0) - 1;
    seqs.cu_seqlens = cu_seqlens.data();
    seqs.positions = positions ? positions->data() : nullptr;
    AttentionMask mask;
    mask.keep = mask_view<uint8_t>(keep, mask, "keep");
    mask.bias = mask_view<float>(bias, mask, "bias");
    mask.causal = causal;
    mask.window_left = window_left;
    mask.window_right = window_right;

    py::array_t<float> out({tokens, width});
    const auto* q_data = static_cast<const float*>(q.data());
    const auto* k_data = static_cast<const float*>(k.data());
    const auto* v_data = static_cast<const float*>(v.data());
    float* out_data = out.mutable_data();
    {
        py::gil_scoped_release release;
        attention_packed_f32(seqs, heads, head_dim, q_data, k_data, v_data, ld, out_data, width,
                             scale, mask, num_threads);
    }
    return out;
}

// Strides (in floats) of the first three axes of a (B, H, L, Dh) float32 array whose last
// axis is contiguous.
std::vector<int64_t> padded_strides(const py::array& a, const std::vector<int64_t>& shape,
                                    const char* name)
{
    require_shape(a, shape, name);
    if (a.itemsize() != 4) throw std::invalid_argument(std::string(name) + ": need float32");
    if (shape[3] > 1 && a.strides(3) != 4) {
        throw std::invalid_argument(std::string(name) + ": last axis must be contiguous");
    }
    return element_strides(a, 3, name);
}

// Writes the valid rows of `out`, a C-contiguous (B, H, L, Dh) float32 array, and its
// padding rows only if zero_padding (padfree.attention passes a zeroed array instead, so
// pages holding only padding are never touched).
void run_padded(const py::array& q, const py::array& k, const py::array& v, py::array& out,
                const py::array_t<int64_t, py::array::c_style>& lengths,
                float scale, const std::optional<py::array>& keep,
                const std::optional<py::array>& bias, bool causal,
                int64_t window_left, int64_t window_right, int num_threads, bool zero_padding)
{
    if (q.ndim() != 4) throw std::invalid_argument("q: need (B, H, L, Dh)");
    const std::vector<int64_t> shape(q.shape(), q.shape() + 4);
    const std::vector<int64_t> strides = padded_strides(q, shape, "q");
    if (padded_strides(k, shape, "k") != strides || padded_strides(v, shape, "v") != strides) {
        throw std::invalid_argument("q, k and v must share one set of strides");
    }
    const std::vector<int64_t> out_strides = padded_strides(out, shape, "out");
    if (!out.writeable() || out_strides[2] != shape[3] || out_strides[1] != shape[2] * shape[3] ||
        out_strides[0] != shape[1] * shape[2] * shape[3]) {
        throw std::invalid_argument("out: need a writeable C-contiguous array");
    }
    if (lengths.ndim() != 1 || lengths.shape(0) != shape[0]) {
        throw std::invalid_argument("lengths: need one entry per sequence");
    }

    PaddedBatch batch;
    batch.batch = shape[0];
    batch.padded_length = zero_padding ? shape[2] : 0;
    batch.lengths = lengths.data();
    batch.stride_batch = strides[0];
    batch.stride_head = strides[1];
    batch.ld = strides[2];
    batch.out_stride_batch = shape[1] * shape[2] * shape[3];
    batch.out_stride_head = shape[2] * shape[3];
    batch.ld_out = shape[3];
    AttentionMask mask;
    mask.keep = mask_view<uint8_t>(keep, mask, "keep");
    mask.bias = mask_view<float>(bias, mask, "bias");
    mask.causal = causal;
    mask.window_left = window_left;
    mask.window_right = window_right;

    const auto* q_data = static_cast<const float*>(q.data());
    const auto* k_data = static_cast<const float*>(k.data());
    const auto* v_data = static_cast<const float*>(v.data());
    auto* out_data = static_cast<float*>(out.mutable_data());
    py::gil_scoped_release release;
    attention_padded_f32(batch, shape[1], shape[3], q_data, k_data, v_data, out_data, scale,
                         mask, num_threads);
}

}  // namespace

void register_attention(py::module_& m)
{
    m.def("attention_packed_f32", &run_attention, py::arg("q"), py::arg("k"), py::arg("v"),
          py::arg("cu_seqlens"), py::arg("positions"), py::arg("heads"), py::arg("head_dim"),
          py::arg("scale"), py::arg("keep"), py::arg("bias"), py::arg("causal"),
          py::arg("window_left"), py::arg("window_right"), py::arg("num_threads"),
          "Attention over packed tokens (rows of q, k, v); see padfree.attention.");
    m.def("attention_padded_f32", &run_padded, py::arg("q"), py::arg("k"), py::arg("v"),
          py::arg("out"), py::arg("lengths"), py::arg("scale"), py::arg("keep"), py::arg("bias"),
          py::arg("causal"), py::arg("window_left"), py::arg("window_right"),
          py::arg("num_threads"), py::arg("zero_padding") = false,
          "Attention read in place from padded (B, H, L, Dh) arrays whose padding is a suffix.");
}

}  // namespace padfree::bindings
