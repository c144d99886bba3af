// The linear's packing and dispatch (linear.hpp); the kernels are in linear_<path>.cpp.
#include "linear.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "pool.hpp"

namespace tt_cpu {

namespace {

inline uint16_t to_bf16(float f) {  // round to nearest even, as torch's .bfloat16()
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}

constexpr int GROUP = 4;  // panels a task takes: 64 columns, K*128 bytes (fits L2)

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

}  // namespace

bool widens_to_fp32(MatrixPath p) { return p == MatrixPath::portable || p == MatrixPath::avx2; }

PackedLinear::PackedLinear(const void* src, int64_t n_, int64_t k_, bool src_is_bf16, MatrixPath path_)
    : n(n_), k(k_), path(path_) {
    if (!supported(path)) throw std::invalid_argument(std::string("path: got '") + path_name(path) +
                                                      "', which this CPU cannot run");
    panels = (n + PANEL - 1) / PANEL;
    bool widen = widens_to_fp32(path);
    kp = widen ? k : round_up(k, KBLOCK);
    w.assign(static_cast<size_t>(panels * kp * PANEL), 0);
    for (int64_t col = 0; col < n; ++col) {
        int64_t p = col / PANEL, c = col % PANEL;
        int64_t slot = c < 8 ? 2 * c : 2 * (c - 8) + 1;
        for (int64_t kk = 0; kk < k; ++kk) {
            uint16_t v = src_is_bf16 ? static_cast<const uint16_t*>(src)[col * k + kk]
                                     : to_bf16(static_cast<const float*>(src)[col * k + kk]);
            size_t at = widen ? static_cast<size_t>((p * kp + kk) * PANEL + slot)
                              : static_cast<size_t>(((p * kp + kk / 2 * 2) * PANEL) + c * 2 + kk % 2);
            w[at] = v;
        }
    }
}

void PackedLinear::run(const float* x, float* out, int64_t M) const {
    if (M <= 0) return;
    kernels::LinearArgs a{w.data(), n, k, kp, x, nullptr, out, M};
    thread_local std::vector<uint16_t> xb;  // the caller's thread: the pool's tasks only read it
    if (!widens_to_fp32(path)) {
        // activations rounded to bf16 once per call, each element on its own: a row's bf16 values do not
        // depend on the other rows; rows padded to 16 (an AMX tile) and K to kp with zeros
        int64_t Mp = round_up(M, 16);
        xb.assign(static_cast<size_t>(Mp * kp), 0);
        for (int64_t m = 0; m < M; ++m)
            for (int64_t kk = 0; kk < k; ++kk) xb[static_cast<size_t>(m * kp + kk)] = to_bf16(x[m * k + kk]);
        a.xb = xb.data();
    }
    void (*kernel)(const kernels::LinearArgs&, int64_t, int64_t) = nullptr;
    switch (path) {
        case MatrixPath::portable: kernel = kernels::linear_portable; break;
        case MatrixPath::avx2: kernel = kernels::linear_avx2; break;
        case MatrixPath::avx512_bf16: kernel = kernels::linear_avx512_bf16; break;
        case MatrixPath::amx: kernel = kernels::linear_amx; break;
    }
    // avx512_bf16 runs one or two rows 8 panels at a time (linear_avx512_bf16.cpp); the split into tasks
    // never changes a result, only who computes it
    int64_t group = path == MatrixPath::avx512_bf16 && M <= 2 ? 2 * GROUP : GROUP;
    int64_t groups = (panels + group - 1) / group;
    pool().run(groups, [&](int64_t g) {
        int64_t p0 = g * group;
        kernel(a, p0, std::min<int64_t>(p0 + group, panels));
    });
}

}  // namespace tt_cpu
