// Runtime instruction-set selection. The CPU is probed once (CPUID + XGETBV); the
// selected ISA can be overridden with PADFREE_ISA=scalar|avx2|avx512. Every kernel
// family keeps its own table of function pointers and picks the entry for current_isa().
#pragma once

#include <string>
#include <vector>

namespace padfree {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

struct CpuFeatures {
    bool sse42 = false;
    bool avx = false;
    bool avx2 = false;
    bool fma = false;
    bool f16c = false;
    bool avx512f = false;
    bool avx512bw = false;
    bool avx512dq = false;
    bool avx512vl = false;
    bool avx512_vnni = false;
    bool avx512_bf16 = false;
    bool avx512_fp16 = false;
    bool amx_tile = false;
    bool os_saves_ymm = false;
    bool os_saves_zmm = false;
};

const CpuFeatures& cpu_features();

// Best ISA this CPU and OS can run.
Isa best_supported_isa();
bool isa_supported(Isa isa);

// ISA used by all kernels. Initialised from PADFREE_ISA (or the best supported) on first
// call; throws std::runtime_error if PADFREE_ISA names an unknown or unsupported ISA.
Isa current_isa();

// Switches every kernel family to `isa`; throws std::invalid_argument if unsupported.
// Meant for tests and benchmarks; not safe while kernels are running on other threads.
void set_isa(Isa isa);

const char* isa_name(Isa isa);
Isa parse_isa(const std::string& name);  // throws std::invalid_argument
std::vector<Isa> supported_isas();

// Kernel tables are filled per ISA. A build without x86 code only has the scalar table;
// these return nullptr-free tables by falling back to scalar.
#if defined(PADFREE_X86)
inline constexpr bool kHaveX86Kernels = true;
#else
inline constexpr bool kHaveX86Kernels = false;
#endif

}  // namespace padfree
