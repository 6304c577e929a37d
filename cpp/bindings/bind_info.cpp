// cpu_info() and ISA selection.
#include "common.h"

#include "padfree/dispatch.h"
#include "padfree/parallel.h"

namespace padfree::bindings {

void register_info(py::module_& m)
{
    m.def("cpu_info", [] {
        const CpuFeatures& f = cpu_features();
        py::dict features;
        features["sse4_2"] = f.sse42;
        features["avx"] = f.avx;
        features["avx2"] = f.avx2;
        features["fma"] = f.fma;
        features["f16c"] = f.f16c;
        features["avx512f"] = f.avx512f;
        features["avx512bw"] = f.avx512bw;
        features["avx512dq"] = f.avx512dq;
        features["avx512vl"] = f.avx512vl;
        features["avx512_vnni"] = f.avx512_vnni;
        features["avx512_bf16"] = f.avx512_bf16;
        features["avx512_fp16"] = f.avx512_fp16;
        features["amx_tile"] = f.amx_tile;
        py::list supported;
        for (Isa isa : supported_isas()) supported.append(isa_name(isa));
        py::dict info;
        info["isa"] = isa_name(current_isa());
        info["best_isa"] = isa_name(best_supported_isa());
        info["supported_isas"] = supported;
        info["features"] = features;
        info["num_threads"] = openmp_max_threads();
        info["openmp_version"] = openmp_version();
        return info;
    });
    m.def("get_isa", [] { return std::string(isa_name(current_isa())); });
    m.def("set_isa", [](const std::string& name) { set_isa(parse_isa(name)); }, py::arg("name"));
}

}  // namespace padfree::bindings
