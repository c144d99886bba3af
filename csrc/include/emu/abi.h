// The one boundary between a JIT-compiled kernel (.so) and the emulator runtime.
//
// A kernel .so exports `emu_kernel_entry(EmuKernelCtx*)`; every kernel API call
// that touches shared state goes through `ctx->api`, so the kernel never links
// against the runtime and one .so serves every core that runs the kernel.
#pragma once

#include <cstdint>

extern "C" {

struct EmuKernelCtx;

struct EmuApi {
    // Reports a violation; never returns: the runtime throws through the kernel frames.
    void (*fail)(EmuKernelCtx* ctx, const char* what);
    void (*cb_reserve_back)(EmuKernelCtx* ctx, int32_t cb, int32_t num_pages);
    void (*cb_push_back)(EmuKernelCtx* ctx, int32_t cb, int32_t num_pages);
    void (*cb_wait_front)(EmuKernelCtx* ctx, int32_t cb, int32_t num_pages);
    void (*cb_pop_front)(EmuKernelCtx* ctx, int32_t cb, int32_t num_pages);
    bool (*cb_pages_available_at_front)(EmuKernelCtx* ctx, int32_t cb, int32_t num_pages);
    bool (*cb_pages_reservable_at_back)(EmuKernelCtx* ctx, int32_t cb, int32_t num_pages);
    uint32_t (*get_write_ptr)(EmuKernelCtx* ctx, uint32_t cb);
    uint32_t (*get_read_ptr)(EmuKernelCtx* ctx, uint32_t cb);
    void (*noc_read)(EmuKernelCtx* ctx, uint64_t src_noc_addr, uint32_t dst_l1_addr, uint32_t size);
    void (*noc_write)(EmuKernelCtx* ctx, uint32_t src_l1_addr, uint64_t dst_noc_addr, uint32_t size);
    void (*noc_read_barrier)(EmuKernelCtx* ctx);
    void (*noc_write_barrier)(EmuKernelCtx* ctx);
    void (*sem_wait)(EmuKernelCtx* ctx, volatile uint32_t* sem, uint32_t val, bool at_least);
    void (*sem_set)(EmuKernelCtx* ctx, volatile uint32_t* sem, uint32_t val);
    // posted = false (the default of noc_semaphore_inc) leaves an ack outstanding until noc_async_atomic_barrier
    void (*sem_inc)(EmuKernelCtx* ctx, uint64_t dst_noc_addr, uint32_t incr, bool posted);
    uint32_t (*get_semaphore)(EmuKernelCtx* ctx, uint32_t semaphore_id);
    // NoC address of page `page_id` (+offset) of an interleaved buffer at bank address `bank_base`.
    uint64_t (*interleaved_page_addr)(EmuKernelCtx* ctx, bool is_dram, uint32_t bank_base, uint32_t page_id,
                                      uint32_t aligned_page_size, uint32_t offset);
    uint64_t (*worker_noc_addr)(EmuKernelCtx* ctx, uint32_t noc_x, uint32_t noc_y, uint32_t l1_addr);
    // Compute (TRISC) side: L1 address of tile `index` of the pages waited for at the front
    // (unpack) or reserved at the back (pack); fails past them. Dst math runs in the kernel.
    uint32_t (*cb_tile_front)(EmuKernelCtx* ctx, uint32_t cb, uint32_t index, const char* call);
    uint32_t (*cb_tile_back)(EmuKernelCtx* ctx, uint32_t cb, uint32_t index, const char* call);
    void (*noc_atomic_barrier)(EmuKernelCtx* ctx);
    void* reserved[13];
};

struct EmuKernelCtx {
    const EmuApi* api;
    const uint32_t* rta;  // unique runtime args, in this core's L1
    uint32_t rta_count;
    const uint32_t* crta;  // common runtime args, in this core's L1
    uint32_t crta_count;
    uint32_t my_x;  // NoC coordinates of this core
    uint32_t my_y;
    void* runtime;  // opaque: the runtime's per-thread state
};

typedef void (*EmuKernelEntry)(EmuKernelCtx* ctx);

}  // extern "C"

// Set by emu_kernel_entry on the thread that runs the kernel.
inline thread_local EmuKernelCtx* emu_ctx = nullptr;

#define EMU_API (emu_ctx->api)
