// Data format reconfiguration (ttnn 0.81.1 api/compute/reconfig_data_format.h): the only calls besides
// compute_kernel_hw_startup that change the unpacker's SrcA / SrcB formats and the packer's. The
// (old, new) forms skip the reprogramming when the formats agree: the end state is `new`'s either way.
#pragma once

#include "api/compute/common_globals.h"
#include "api/compute/src_order.h"

template <SrcOrder src_order = SrcOrder::Regular>
ALWI void reconfig_data_format(const uint32_t icb0_new_operand, const uint32_t icb1_new_operand) {
    using namespace emu_compute;
    constexpr bool reverse = src_order == SrcOrder::Reverse;
    configure_src(SrcA, reverse ? icb1_new_operand : icb0_new_operand, "reconfig_data_format");
    configure_src(SrcB, reverse ? icb0_new_operand : icb1_new_operand, "reconfig_data_format");
}
template <SrcOrder src_order = SrcOrder::Regular>
ALWI void reconfig_data_format(const uint32_t icb0_old_operand, const uint32_t icb0_new_operand,
                               const uint32_t icb1_old_operand, const uint32_t icb1_new_operand) {
    (void)icb0_old_operand;
    (void)icb1_old_operand;
    reconfig_data_format<src_order>(icb0_new_operand, icb1_new_operand);
}
ALWI void reconfig_data_format_srca(const uint32_t srca_new_operand) {
    emu_compute::configure_src(emu_compute::SrcA, srca_new_operand, "reconfig_data_format_srca");
}
ALWI void reconfig_data_format_srca(const uint32_t srca_old_operand, const uint32_t srca_new_operand) {
    (void)srca_old_operand;
    reconfig_data_format_srca(srca_new_operand);
}
ALWI void reconfig_data_format_srcb(const uint32_t srcb_new_operand) {
    emu_compute::configure_src(emu_compute::SrcB, srcb_new_operand, "reconfig_data_format_srcb");
}
ALWI void reconfig_data_format_srcb(const uint32_t srcb_old_operand, const uint32_t srcb_new_operand) {
    (void)srcb_old_operand;
    reconfig_data_format_srcb(srcb_new_operand);
}
template <bool is_tile_dim_reconfig_en = false>
ALWI void pack_reconfig_data_format(const uint32_t new_cb_id) {
    emu_compute::configure_pack(new_cb_id, "pack_reconfig_data_format");
}
template <bool is_tile_dim_reconfig_en = false>
ALWI void pack_reconfig_data_format(const uint32_t old_cb_id, const uint32_t new_cb_id) {
    (void)old_cb_id;
    emu_compute::configure_pack(new_cb_id, "pack_reconfig_data_format");
}
