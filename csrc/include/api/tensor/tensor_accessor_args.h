// TensorAccessorArgs as in ttnn 0.81.1 api/tensor/tensor_accessor_args.h, interleaved
// layouts only: compile-time args [args_config, aligned_page_size].
#pragma once

#include <cstddef>
#include <cstdint>

#include "api/compile_time_args.h"

namespace tensor_accessor {
inline constexpr std::size_t UNKNOWN = static_cast<std::size_t>(-1);
// Bits of ArgsConfig (hostdevcommon/tensor_accessor/arg_config.hpp).
enum class ArgConfig : uint8_t {
    None = 0,
    Sharded = 1 << 0,
    IsDram = 1 << 1,
    RuntimeRank = 1 << 2,
    RuntimeNumBanks = 1 << 3,
    RuntimeTensorShape = 1 << 4,
    RuntimeShardShape = 1 << 5,
    RuntimeBankCoords = 1 << 6,
    RuntimePageSize = 1 << 7,
};
}  // namespace tensor_accessor

template <std::size_t CTA_OFFSET, std::size_t CRTA_OFFSET = tensor_accessor::UNKNOWN>
struct TensorAccessorArgs {
    static constexpr uint32_t args_config = get_compile_time_arg_val(CTA_OFFSET);
    static constexpr bool is_sharded = args_config & uint32_t(tensor_accessor::ArgConfig::Sharded);
    static constexpr bool is_dram = args_config & uint32_t(tensor_accessor::ArgConfig::IsDram);
    static constexpr bool page_size_is_crta = args_config & uint32_t(tensor_accessor::ArgConfig::RuntimePageSize);
    static_assert(!is_sharded, "emulator: only interleaved TensorAccessorArgs are supported");
    static_assert(!page_size_is_crta, "emulator: RuntimePageSize is not supported");

    static constexpr uint32_t AlignedPageSize = get_compile_time_arg_val(CTA_OFFSET + 1);
    static constexpr uint32_t NumArgsCT = 2;

    constexpr TensorAccessorArgs() = default;
    constexpr uint32_t get_aligned_page_size() const { return AlignedPageSize; }
    static constexpr uint32_t next_compile_time_args_offset() { return CTA_OFFSET + NumArgsCT; }
    static constexpr uint32_t next_common_runtime_args_offset() {
        return CRTA_OFFSET == tensor_accessor::UNKNOWN ? 0 : CRTA_OFFSET;
    }
    static constexpr uint32_t compile_time_args_skip() { return NumArgsCT; }
    static constexpr uint32_t runtime_args_skip() { return 0; }
};
