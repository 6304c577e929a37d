// CPU feature detection and the process-wide ISA selection.
#include "padfree/dispatch.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>

#if defined(PADFREE_X86)
#include <cpuid.h>
#endif

namespace padfree {
namespace {

#if defined(PADFREE_X86)
uint64_t read_xcr0()
{
    uint32_t eax = 0, edx = 0;
    // XGETBV with ECX=0 reads XCR0: which register states the OS saves on context switch.
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

CpuFeatures probe_features()
{
    CpuFeatures f;
#if defined(PADFREE_X86)
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
    f.sse42 = (ecx >> 20) & 1;
    f.fma = (ecx >> 12) & 1;
    f.f16c = (ecx >> 29) & 1;
    const bool osxsave = (ecx >> 27) & 1;
    const bool avx_bit = (ecx >> 28) & 1;
    if (osxsave) {
        const uint64_t xcr0 = read_xcr0();
        f.os_saves_ymm = (xcr0 & 0x6) == 0x6;     // SSE and AVX state
        f.os_saves_zmm = (xcr0 & 0xe6) == 0xe6;   // plus opmask, ZMM_Hi256, Hi16_ZMM
    }
    f.avx = avx_bit && f.os_saves_ymm;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
        f.avx2 = ((ebx >> 5) & 1) && f.avx;
        f.avx512f = ((ebx >> 16) & 1) && f.os_saves_zmm;
        f.avx512dq = ((ebx >> 17) & 1) && f.os_saves_zmm;
        f.avx512bw = ((ebx >> 30) & 1) && f.os_saves_zmm;
        f.avx512vl = ((ebx >> 31) & 1) && f.os_saves_zmm;
        f.avx512_vnni = ((ecx >> 11) & 1) && f.os_saves_zmm;
        f.avx512_fp16 = ((edx >> 23) & 1) && f.os_saves_zmm;
        f.amx_tile = (edx >> 24) & 1;
    }
    if (__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) {
        f.avx512_bf16 = ((eax >> 5) & 1) && f.os_saves_zmm;
    }
    f.fma = f.fma && f.avx;
    f.f16c = f.f16c && f.avx;
#endif
    return f;
}

Isa initial_isa()
{
    const char* env = std::getenv("PADFREE_ISA");
    if (env == nullptr || *env == '\0') return best_supported_isa();
    Isa requested;
    try {
        requested = parse_isa(env);
    } catch (const std::invalid_argument&) {
        throw std::runtime_error(
            std::string("PADFREE_ISA must be one of scalar, avx2, avx512; got '") + env + "'");
    }
    if (!isa_supported(requested)) {
        throw std::runtime_error(std::string("PADFREE_ISA=") + env +
                                 " but this CPU (or this build) cannot run it; best available is " +
                                 isa_name(best_supported_isa()));
    }
    return requested;
}

std::atomic<int> g_isa{-1};

}  // namespace

const CpuFeatures& cpu_features()
{
    static const CpuFeatures features = probe_features();
    return features;
}

bool isa_supported(Isa isa)
{
    const CpuFeatures& f = cpu_features();
    switch (isa) {
        case Isa::scalar: return true;
        case Isa::avx2: return kHaveX86Kernels && f.avx2 && f.fma && f.f16c;
        case Isa::avx512:
            return kHaveX86Kernels && f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl &&
                   f.avx2 && f.fma;
    }
    return false;
}

Isa best_supported_isa()
{
    if (isa_supported(Isa::avx512)) return Isa::avx512;
    if (isa_supported(Isa::avx2)) return Isa::avx2;
    return Isa::scalar;
}

Isa current_isa()
{
    int isa = g_isa.load(std::memory_order_acquire);
    if (isa < 0) {
        int chosen = static_cast<int>(initial_isa());
        int expected = -1;
        g_isa.compare_exchange_strong(expected, chosen, std::memory_order_acq_rel);
        isa = g_isa.load(std::memory_order_acquire);
    }
    return static_cast<Isa>(isa);
}

void set_isa(Isa isa)
{
    if (!isa_supported(isa)) {
        throw std::invalid_argument(std::string("ISA '") + isa_name(isa) +
                                    "' is not supported on this CPU or build");
    }
    g_isa.store(static_cast<int>(isa), std::memory_order_release);
}

const char* isa_name(Isa isa)
{
    switch (isa) {
        case Isa::scalar: return "scalar";
        case Isa::avx2: return "avx2";
        case Isa::avx512: return "avx512";
    }
    return "unknown";
}

Isa parse_isa(const std::string& name)
{
    if (name == "scalar") return Isa::scalar;
    if (name == "avx2") return Isa::avx2;
    if (name == "avx512") return Isa::avx512;
    throw std::invalid_argument("unknown ISA '" + name + "'; expected scalar, avx2 or avx512");
}

std::vector<Isa> supported_isas()
{
    std::vector<Isa> out;
    for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
        if (isa_supported(isa)) out.push_back(isa);
    }
    return out;
}

}  // namespace padfree
