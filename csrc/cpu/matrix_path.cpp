// Run-time choice of the matrix path (matrix_path.hpp): cpuid, the OS's saved register state (XCR0), and
// for AMX the kernel's permission to use tile data.
#include "matrix_path.hpp"

#include <cstdlib>
#include <mutex>
#include <stdexcept>

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace tt_cpu {

namespace {

#if defined(__x86_64__)
struct CpuId {
    unsigned a = 0, b = 0, c = 0, d = 0;
};
CpuId cpuid(unsigned leaf, unsigned sub) {
    CpuId r;
    if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) return CpuId{};
    return r;
}
uint64_t xcr0() {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<uint64_t>(hi) << 32) | lo;
}
bool bit(unsigned v, int i) { return (v >> i) & 1u; }

// Linux keeps AMX tile data off until a process asks (arch/x86/kernel/fpu/xstate.c): without this a
// first tile load raises SIGILL. The permission is per process, so the pool's threads inherit it.
bool request_amx_permission() {
    constexpr int ARCH_REQ_XCOMP_PERM = 0x1023;
    constexpr int XFEATURE_XTILEDATA = 18;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

std::vector<MatrixPath> detect() {
    std::vector<MatrixPath> paths{MatrixPath::portable};
    CpuId l1 = cpuid(1, 0);
    if (!bit(l1.c, 27)) return paths;  // no OSXSAVE: xgetbv would fault
    uint64_t x = xcr0();
    CpuId l7 = cpuid(7, 0), l71 = cpuid(7, 1);
    bool ymm = (x & 0x6) == 0x6, zmm = (x & 0xe6) == 0xe6, tiles = (x & 0x60000) == 0x60000;
    bool avx2 = ymm && bit(l7.b, 5) && bit(l1.c, 12);  // AVX2, FMA
    if (!avx2) return paths;
    paths.push_back(MatrixPath::avx2);
    bool avx512 = zmm && bit(l7.b, 16) && bit(l7.b, 30) && bit(l7.b, 31);  // F, BW, VL
    if (avx512 && bit(l71.a, 5)) paths.push_back(MatrixPath::avx512_bf16);
    if (avx512 && tiles && bit(l7.d, 22) && bit(l7.d, 24) && request_amx_permission())  // AMX-BF16, AMX-TILE
        paths.push_back(MatrixPath::amx);
    return paths;
}
#else
std::vector<MatrixPath> detect() { return {MatrixPath::portable}; }
#endif

const std::vector<MatrixPath>& detected() {
    static const std::vector<MatrixPath> paths = detect();
    return paths;
}

}  // namespace

const char* path_name(MatrixPath p) {
    switch (p) {
        case MatrixPath::portable: return "portable";
        case MatrixPath::avx2: return "avx2";
        case MatrixPath::avx512_bf16: return "avx512_bf16";
        case MatrixPath::amx: return "amx";
    }
    return "?";
}

MatrixPath path_from_name(const std::string& name) {
    for (MatrixPath p : {MatrixPath::portable, MatrixPath::avx2, MatrixPath::avx512_bf16, MatrixPath::amx})
        if (name == path_name(p)) return p;
    throw std::invalid_argument("path: got '" + name + "', expected one of portable, avx2, avx512_bf16, amx");
}

std::vector<MatrixPath> supported_paths() { return detected(); }

bool supported(MatrixPath p) {
    for (MatrixPath q : detected())
        if (q == p) return true;
    return false;
}

MatrixPath default_path() {
    static const MatrixPath chosen = [] {
        const char* env = std::getenv("TT_SPECDEC_CPU_PATH");
        if (env == nullptr || *env == '\0') return detected().back();
        std::string have;
        for (MatrixPath q : detected()) have += (have.empty() ? "" : ", ") + std::string(path_name(q));
        std::string got = std::string("TT_SPECDEC_CPU_PATH: got '") + env + "'";
        MatrixPath p;
        try {
            p = path_from_name(env);
        } catch (const std::invalid_argument&) {
            throw std::invalid_argument(got + ", expected one of portable, avx2, avx512_bf16, amx");
        }
        if (!supported(p)) throw std::invalid_argument(got + ", which this CPU cannot run; expected one of " + have);
        return p;
    }();
    return chosen;
}

}  // namespace tt_cpu
