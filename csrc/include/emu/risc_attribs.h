// Attributes and types the real RISC-V headers provide (internal/risc_attribs.h, tensix_types.h).
#pragma once

#include <cstdint>

#ifndef FORCE_INLINE
#define FORCE_INLINE inline __attribute__((always_inline))
#endif
#define tt_l1_ptr
#define tt_reg_ptr

// Same values as ttnn 0.81.1 internal/tt-1xx/*/tensix_types.h.
enum class DataFormat : std::uint8_t {
    Float32 = 0,
    Float16 = 1,
    Bfp8 = 2,
    Bfp4 = 3,
    Bfp2 = 11,
    Float16_b = 5,
    Bfp8_b = 6,
    Bfp4_b = 7,
    Bfp2_b = 15,
    Lf8 = 10,
    Int8 = 14,
    UInt8 = 30,
    UInt16 = 9,
    Int32 = 8,
    UInt32 = 24,
    Tf32 = 4,
    Invalid = 0xff
};

// Wormhole B0 (core_config.h, noc_parameters.h, dev_mem_map.h of ttnn 0.81.1).
#define L1_ALIGNMENT 16
#define DRAM_ALIGNMENT 32
#define NOC_L1_READ_ALIGNMENT_BYTES 16
#define NOC_L1_WRITE_ALIGNMENT_BYTES 16
#define NOC_DRAM_READ_ALIGNMENT_BYTES 32
#define NOC_DRAM_WRITE_ALIGNMENT_BYTES 16
#define NOC_MAX_BURST_SIZE 8192
#define NOC_UNICAST_WRITE_VC 1
#define MEM_L1_SIZE (1464 * 1024)

enum class ProgrammableCoreType { TENSIX = 0, ACTIVE_ETH = 1, IDLE_ETH = 2 };

// NoC the kernel's RISC uses by default: BRISC (writer) NoC 0, NCRISC (reader) NoC 1.
#if defined(COMPILE_FOR_NCRISC)
constexpr std::uint8_t noc_index = 1;
#else
constexpr std::uint8_t noc_index = 0;
#endif
