// Emulated Tensix compute engine for one compute kernel thread: the dst register file and
// its acquire -> commit -> wait -> release protocol; the unpacker's SrcA / SrcB and the packer's
// data formats as the kernel configured them; unpack from CB tiles into SrcA / SrcB (fp32 there is
// TF32), math in fp32, pack to the CB's format (bf16 rounded to nearest, ties away from zero).
//
// The three TRISCs (unpack, math, pack) of a card run as one thread here: the protocol
// states they hand the dst registers through are still enforced, so a kernel that would
// race or hang on a card fails here.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "chlkc_descriptors.h"
#include "emu/abi.h"
#include "emu/risc_attribs.h"

#ifndef DST_ACCUM_MODE
#define DST_ACCUM_MODE false  // fp32_dest_acc_en of the kernel's ComputeConfig
#endif

namespace emu_compute {

constexpr uint32_t TILE_HW = 1024;
// Half of the 16-tile dst in SyncHalf mode; fp32 accumulation halves it again.
constexpr uint32_t DST_CAPACITY = DST_ACCUM_MODE ? 4 : 8;

enum class DstState { Free, Math, Committed, Pack };

constexpr uint8_t NO_FORMAT = 0xFF;
enum Src : uint32_t { SrcA = 0, SrcB = 1 };

struct State {
    float dst[DST_CAPACITY][TILE_HW];
    // Written since tile_regs_acquire: the packer clears the half it released with ZEROACC
    // (tt_llk_wormhole_b0/llk_lib/llk_pack_common.h, _llk_pack_dest_section_done_), so what an
    // acquire hands math holds nothing a kernel may read (see dst_read below).
    bool written[DST_CAPACITY] = {};
    DstState state = DstState::Free;
    // Data formats the unpacker (SrcA, SrcB) and the packer are configured for, and the CB that set
    // each; NO_FORMAT until compute_kernel_hw_startup.
    uint8_t src_fmt[2] = {NO_FORMAT, NO_FORMAT};
    uint32_t src_cb[2] = {0, 0};
    uint8_t pack_fmt = NO_FORMAT;
    uint32_t pack_cb = 0;
    uint32_t pack_next[32] = {};  // next in-order pack position per CB, reset by cb_push_back
    bool mm_transpose = false;     // matmul_init(..., transpose): in1 tiles are transposed
    const char* fpu_init = nullptr;   // the latest unpack/math op init (see configure below)
    const char* sfpu_init = nullptr;  // the latest SFPU op init
};

inline thread_local State state;

[[noreturn]] inline void fail(const char* what) {
    emu_ctx->api->fail(emu_ctx, what);
    __builtin_unreachable();
}

inline const char* state_name(DstState s) {
    switch (s) {
        case DstState::Free: return "free (no tile_regs_acquire)";
        case DstState::Math: return "acquired by math";
        case DstState::Committed: return "committed (no tile_regs_wait yet)";
        default: return "held by pack";
    }
}

inline void expect(DstState want, const char* call) {
    if (state.state != want) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s: dst registers are %s, expected %s", call, state_name(state.state),
                 state_name(want));
        fail(msg);
    }
}

inline float* dst_tile(uint32_t idst, const char* call) {
    if (idst >= DST_CAPACITY) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: dst index %u out of range: %u tiles with fp32_dest_acc_en=%d", call, idst,
                 DST_CAPACITY, int(DST_ACCUM_MODE));
        fail(msg);
    }
    return state.dst[idst];
}

// element (r, c) of a 32 x 32 tile stored as four 16 x 16 faces
inline uint32_t at(uint32_t r, uint32_t c) { return ((r >> 4) * 2 + (c >> 4)) * 256 + (r & 15) * 16 + (c & 15); }

inline float bf16_to_f32(uint16_t b) {
    uint32_t u = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// The packer's fp32 -> bf16: round to nearest, ties away from zero (tt-isa-documentation,
// WormholeB0/TensixTile/TensixCoprocessor/Packers/FormatConversion.md); NaN stays NaN.
inline uint16_t f32_to_bf16_packer(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) return uint16_t((u >> 16) | 0x40);  // quiet NaN
    return uint16_t((u + 0x8000u) >> 16);  // sign-magnitude: adding half an ulp rounds the magnitude up at a tie
}

// fp32 unpacked into SrcA / SrcB is TF32 (1 + 8 + 10 bits): the low 13 mantissa bits are dropped.
// FACTS.md "Wormhole rules"; the unpacker's out format for Float32 sources is Tf32 unless unpacked
// to dest (tt_llk_wormhole_b0 llk_unpack_common.h, unpack_to_dest), which this emulator does not model.
inline float to_tf32(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u &= 0xFFFFE000u;
    std::memcpy(&f, &u, 4);
    return f;
}

inline const char* format_name(uint8_t f) {
    switch (static_cast<DataFormat>(f)) {
        case DataFormat::Float32: return "Float32";
        case DataFormat::Float16_b: return "Float16_b";
        case DataFormat::Float16: return "Float16";
        case DataFormat::Int32: return "Int32";
        case DataFormat::UInt32: return "UInt32";
        case DataFormat::UInt16: return "UInt16";
        case DataFormat::Bfp8_b: return "Bfp8_b";
        default: return f == NO_FORMAT ? "nothing (no compute_kernel_hw_startup)" : "another format";
    }
}

inline uint32_t checked_cb(uint32_t cb, const char* call) {
    if (cb >= 32) {
        char msg[120];
        snprintf(msg, sizeof msg, "%s: circular buffer index %u out of range 0..31", call, cb);
        fail(msg);
    }
    return cb;
}

// compute_kernel_hw_startup / reconfig_data_format*: the unpacker's source register `s` now takes the
// format of `cb` (unpack_src_format of the JIT's chlkc_descriptors.h).
inline void configure_src(Src s, uint32_t cb, const char* call) {
    state.src_fmt[s] = unpack_src_format[checked_cb(cb, call)];
    state.src_cb[s] = cb;
}
inline void configure_pack(uint32_t cb, const char* call) {
    state.pack_fmt = pack_dst_format[checked_cb(cb, call)];
    state.pack_cb = cb;
}

// Unpacks tile `itile` at the front of `cb` into source register `s`, then to `out` (fp32, face order).
// The unpacker converts with the format it was configured for, not the CB's: a CB of another format
// is misread on a card (ttnn 0.81.1 api/compute/reconfig_data_format.h; *_init calls do not reconfigure
// formats), so here it is an error naming both formats.
inline void unpack(uint32_t cb, uint32_t itile, float* out, Src s, const char* call) {
    const uint32_t addr = emu_ctx->api->cb_tile_front(emu_ctx, cb, itile, call);
    const uint8_t f = unpack_src_format[cb];
    if (f != state.src_fmt[s]) {
        char msg[400];
        snprintf(msg, sizeof msg,
                 "%s: cb %u (format %u, %s) unpacked into %s configured for format %u (%s, from cb %u): call "
                 "reconfig_data_format%s before this op",
                 call, cb, unsigned(f), format_name(f), s == SrcA ? "SrcA" : "SrcB", unsigned(state.src_fmt[s]),
                 format_name(state.src_fmt[s]), state.src_cb[s], s == SrcA ? "_srca" : "_srcb");
        fail(msg);
    }
    const auto fmt = static_cast<DataFormat>(f);
    if (fmt == DataFormat::Float16_b) {
        const uint16_t* p = reinterpret_cast<const uint16_t*>(uintptr_t(addr));
        for (uint32_t i = 0; i < TILE_HW; ++i) out[i] = bf16_to_f32(p[i]);
    } else if (fmt == DataFormat::Float32) {
        const float* p = reinterpret_cast<const float*>(uintptr_t(addr));
        for (uint32_t i = 0; i < TILE_HW; ++i) out[i] = to_tf32(p[i]);
    } else {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: cb %u has data format %u; the emulator unpacks Float16_b and Float32", call, cb,
                 unsigned(fmt));
        fail(msg);
    }
}

// A dst tile an op reads (SFPU ops, pack) must have been written since tile_regs_acquire.
inline float* dst_read(uint32_t idst, const char* call) {
    float* d = dst_tile(idst, call);
    if (!state.written[idst]) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 "%s: dst tile %u was not written since tile_regs_acquire: its contents are undefined (the packer "
                 "clears dst with ZEROACC when it releases it)",
                 call, idst);
        fail(msg);
    }
    return d;
}
// A dst tile an op overwrites (copy_tile, eltwise binary, SFPU results).
inline float* dst_write(uint32_t idst, const char* call) {
    float* d = dst_tile(idst, call);
    state.written[idst] = true;
    return d;
}
// A dst tile an FPU op accumulates into (matmul, reduce): cleared rows read as `identity`
// (0 for sums; GMPOOL's max reads them as -inf).
inline float* dst_accumulate(uint32_t idst, float identity, const char* call) {
    float* d = dst_tile(idst, call);
    if (!state.written[idst]) {
        for (uint32_t i = 0; i < TILE_HW; ++i) d[i] = identity;
        state.written[idst] = true;
    }
    return d;
}

inline void pack(uint32_t idst, uint32_t cb, uint32_t itile, const char* call) {
    const float* src = dst_read(idst, call);
    const uint32_t addr = emu_ctx->api->cb_tile_back(emu_ctx, cb, itile, call);
    const uint8_t f = pack_dst_format[cb];
    if (f != state.pack_fmt) {
        char msg[400];
        snprintf(msg, sizeof msg,
                 "%s: cb %u (format %u, %s) but the packer is configured for format %u (%s, from cb %u): call "
                 "pack_reconfig_data_format before packing (a tile of the other format would %s its pages)",
                 call, cb, unsigned(f), format_name(f), unsigned(state.pack_fmt), format_name(state.pack_fmt),
                 state.pack_cb, f == uint8_t(DataFormat::Float16_b) ? "overrun" : "misfill");
        fail(msg);
    }
    const auto fmt = static_cast<DataFormat>(f);
    if (fmt == DataFormat::Float16_b) {
        uint16_t* p = reinterpret_cast<uint16_t*>(uintptr_t(addr));
        for (uint32_t i = 0; i < TILE_HW; ++i) p[i] = f32_to_bf16_packer(src[i]);
    } else if (fmt == DataFormat::Float32) {
        std::memcpy(reinterpret_cast<void*>(uintptr_t(addr)), src, TILE_HW * 4);
    } else {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: cb %u has data format %u; the emulator packs Float16_b and Float32", call, cb,
                 unsigned(fmt));
        fail(msg);
    }
}

// Op inits. On a card every compute op runs with the configuration its paired *_init programmed,
// and the emulator enforces the model below, read from ttnn 0.81.1's api/compute headers:
// two independent slots. The unpack/math (FPU) slot: add_init, sub_init, mul_init,
// {add,sub,mul}_bcast_{cols,rows}_init, matmul_init, reduce_init<type, dim> and copy_init each
// reprogram the unpacker (llk_unpack_*_init) and the math MOP (llk_math_*_init) for exactly that
// op, so an FPU op (add_tiles, *_tiles_bcast_*, matmul_tiles, reduce_tile<type, dim>, copy_tile)
// needs its own init to be the latest FPU init: sub_tiles after add_init would run the ELWADD MOP,
// add_tiles after matmul_init the matmul MOP. The SFPU slot: exp_tile_init, recip_tile_init and
// binary_max_tile_init load their op's SFPU config and constants, which any other SFPU init may
// overwrite (recip.h: "other SFPU inits may overwrite it, so call recip_tile_init again"), so an
// SFPU op needs its own init to be the latest SFPU init. FPU inits leave the SFPU slot alone and
// SFPU inits the FPU slot; compute_kernel_hw_startup configures no op; an init stays valid across
// any number of tiles and tile_regs_acquire/release. Data formats are a separate state (configure_src,
// configure_pack above) that no *_init touches. Not modelled: acc_to_dest, the packer edge mask
// reduce_init leaves behind.
inline void configure_fpu(const char* init) { state.fpu_init = init; }
inline void configure_sfpu(const char* init) { state.sfpu_init = init; }

// `call` needs `init` (an FPU init unless `sfpu`) to be the latest init of its slot.
inline void expect_init(const char* init, bool sfpu, const char* call) {
    const char* have = sfpu ? state.sfpu_init : state.fpu_init;
    if (have != nullptr && std::strcmp(have, init) == 0) return;
    char msg[320];
    snprintf(msg, sizeof msg,
             "%s without %s: the latest %s init is %s; on a card %s would run with another op's configuration", call,
             init, sfpu ? "SFPU" : "unpack/math", have ? have : "none (no init call yet)", call);
    fail(msg);
}

enum class Bcast { None, Cols, Rows, Scalar };

// dst[idst] = a op broadcast(b)
template <typename Op>
inline void binary(uint32_t icb0, uint32_t icb1, uint32_t itile0, uint32_t itile1, uint32_t idst, Bcast bcast,
                   const char* call, const char* init, Op op) {
    expect(DstState::Math, call);
    expect_init(init, false, call);
    static thread_local float a[TILE_HW], b[TILE_HW];
    unpack(icb0, itile0, a, SrcA, call);  // eltwise: in0 -> SrcA, in1 -> SrcB (api/compute/bcast.h, eltwise_binary.h)
    unpack(icb1, itile1, b, SrcB, call);
    float* d = dst_write(idst, call);
    for (uint32_t r = 0; r < 32; ++r) {
        for (uint32_t c = 0; c < 32; ++c) {
            const uint32_t i = at(r, c);
            const uint32_t j = bcast == Bcast::Cols ? at(r, 0) : bcast == Bcast::Rows ? at(0, c)
                               : bcast == Bcast::Scalar ? 0 : i;
            d[i] = op(a[i], b[j]);
        }
    }
}

template <typename Op>
inline void unary(uint32_t idst, const char* call, const char* init, Op op) {
    expect(DstState::Math, call);
    expect_init(init, true, call);
    float* d = dst_read(idst, call);
    for (uint32_t i = 0; i < TILE_HW; ++i) d[i] = op(d[i]);
}

}  // namespace emu_compute
