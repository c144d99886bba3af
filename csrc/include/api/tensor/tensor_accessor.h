// TensorAccessor as in ttnn 0.81.1 api/tensor/tensor_accessor.h, interleaved layouts
// only. Kernels write `const auto s = TensorAccessor(args, addr, page_size);` and
// never name the type, so the class template parameter differs from the real one.
#pragma once

#include <cstdint>

#include "api/tensor/tensor_accessor_args.h"
#include "emu/abi.h"

template <bool DRAM>
struct InterleavedAddrGen {
    uint32_t bank_base_address;  // base address of the buffer in every bank
    const uint32_t page_size;    // page size, aligned up to the bank's alignment below

    constexpr static uint32_t get_alignment() { return DRAM ? DRAM_ALIGNMENT : L1_ALIGNMENT; }
    uint32_t get_aligned_page_size() const {
        return (page_size + get_alignment() - 1) / get_alignment() * get_alignment();
    }
    std::uint64_t get_noc_addr(const uint32_t id, const uint32_t offset = 0, uint8_t noc = noc_index) const {
        (void)noc;
        return EMU_API->interleaved_page_addr(emu_ctx, DRAM, bank_base_address, id, get_aligned_page_size(), offset);
    }
};

template <bool IsDram>
struct TensorAccessor {
    uint32_t bank_base_address;
    uint32_t page_size;  // aligned page size: the stride of pages within a bank

    TensorAccessor(uint32_t bank_base_address_in, uint32_t page_size_in) :
        bank_base_address(bank_base_address_in), page_size(page_size_in) {}

    template <std::size_t CTA_OFFSET, std::size_t CRTA_OFFSET>
    TensorAccessor(const TensorAccessorArgs<CTA_OFFSET, CRTA_OFFSET>& args, std::size_t bank_base_address_in,
                   uint32_t page_size_in = 0) :
        bank_base_address(static_cast<uint32_t>(bank_base_address_in)),
        page_size(page_size_in == 0 ? args.get_aligned_page_size() : page_size_in) {}

    uint32_t get_aligned_page_size() const {
        constexpr uint32_t a = IsDram ? DRAM_ALIGNMENT : L1_ALIGNMENT;
        return (page_size + a - 1) / a * a;
    }
    std::uint64_t get_noc_addr(const uint32_t page_id, const uint32_t offset = 0, uint8_t noc = noc_index) const {
        (void)noc;
        return EMU_API->interleaved_page_addr(emu_ctx, IsDram, bank_base_address, page_id, get_aligned_page_size(),
                                              offset);
    }
};

template <std::size_t CTA_OFFSET, std::size_t CRTA_OFFSET>
TensorAccessor(const TensorAccessorArgs<CTA_OFFSET, CRTA_OFFSET>& args, std::size_t)
    -> TensorAccessor<TensorAccessorArgs<CTA_OFFSET, CRTA_OFFSET>::is_dram>;

template <std::size_t CTA_OFFSET, std::size_t CRTA_OFFSET>
TensorAccessor(const TensorAccessorArgs<CTA_OFFSET, CRTA_OFFSET>& args, std::size_t, uint32_t)
    -> TensorAccessor<TensorAccessorArgs<CTA_OFFSET, CRTA_OFFSET>::is_dram>;
