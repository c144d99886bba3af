// Runs one dataflow kernel on an RV32IM instruction-set emulator (bench/rv32_argmax.py): the kernel
// API calls land in these stubs, which do no NoC work (transfers are free here; only the kernel's own
// instructions are counted). The Python side fills the bench_* symbols before the run.
#include <cstdint>

#include "emu/abi.h"

extern "C" {
uint32_t bench_rta[64];
uint32_t bench_rta_count;
uint32_t bench_cb_stream;                    // the CB whose front walks bench_stream (the logits chunks)
uint32_t bench_stream_page_bytes;            // one page of it
uint32_t bench_stream_pages;                 // pages before the walk wraps (one row's slice)
uint32_t bench_stream_page;
uint32_t bench_cb_small;                     // a CB whose front is bench_small (num_draft)
alignas(32) uint8_t bench_stream[1 << 17];   // the streamed CB's pages: a whole row slice of logits
alignas(32) uint8_t bench_small[256];
alignas(32) uint8_t bench_scratch[8192];     // every CB's back, and the gather area
uint32_t bench_semaphore;
volatile uint32_t bench_failed;

void emu_kernel_entry(EmuKernelCtx* ctx);
void* memcpy(void* d, const void* s, unsigned n) {
    auto* dd = static_cast<uint8_t*>(d);
    auto* ss = static_cast<const uint8_t*>(s);
    while (n--) *dd++ = *ss++;
    return d;
}
int snprintf(char*, unsigned, const char*, ...) { return 0; }  // the emulator's error messages: never reached
void* memset(void* d, int c, unsigned n) {
    auto* dd = static_cast<uint8_t*>(d);
    while (n--) *dd++ = static_cast<uint8_t>(c);
    return d;
}
}

namespace {
void fail(EmuKernelCtx*, const char*) {
    bench_failed = 1;
    for (;;) {
    }
}
void cb_op(EmuKernelCtx*, int32_t, int32_t) {}
void cb_pop(EmuKernelCtx*, int32_t cb, int32_t n) {  // the next page of the stream, as a reader would push
    if (static_cast<uint32_t>(cb) == bench_cb_stream) bench_stream_page = (bench_stream_page + n) % bench_stream_pages;
}
bool cb_query(EmuKernelCtx*, int32_t, int32_t) { return true; }
uint32_t read_ptr(EmuKernelCtx*, uint32_t cb) {
    if (cb == bench_cb_stream) return reinterpret_cast<uintptr_t>(bench_stream + bench_stream_page * bench_stream_page_bytes);
    if (cb == bench_cb_small) return reinterpret_cast<uintptr_t>(bench_small);
    return reinterpret_cast<uintptr_t>(bench_scratch);
}
uint32_t write_ptr(EmuKernelCtx* ctx, uint32_t cb) { return read_ptr(ctx, cb); }
void noc_read(EmuKernelCtx*, uint64_t, uint32_t, uint32_t) {}
void noc_write(EmuKernelCtx*, uint32_t, uint64_t, uint32_t) {}
void barrier(EmuKernelCtx*) {}
void sem_wait(EmuKernelCtx*, volatile uint32_t*, uint32_t, bool) {}
void sem_set(EmuKernelCtx*, volatile uint32_t*, uint32_t) {}
void sem_inc(EmuKernelCtx*, uint64_t, uint32_t, bool) {}
uint32_t get_semaphore(EmuKernelCtx*, uint32_t) { return reinterpret_cast<uintptr_t>(&bench_semaphore); }
uint64_t page_addr(EmuKernelCtx*, bool, uint32_t, uint32_t, uint32_t, uint32_t) { return 0; }
uint64_t worker_addr(EmuKernelCtx*, uint32_t, uint32_t, uint32_t) { return 0; }
uint32_t tile(EmuKernelCtx*, uint32_t, uint32_t, const char*) { return 0; }

EmuApi api = {fail, cb_op, cb_op, cb_op, cb_pop, cb_query, cb_query, write_ptr, read_ptr, noc_read, noc_write,
              barrier, barrier, sem_wait, sem_set, sem_inc, get_semaphore, page_addr, worker_addr, tile, tile,
              barrier, {}};
EmuKernelCtx ctx;
}  // namespace

extern "C" void bench_main() {
    ctx.api = &api;
    ctx.rta = bench_rta;
    ctx.rta_count = bench_rta_count;
    ctx.crta = bench_rta;
    ctx.crta_count = 0;
    emu_kernel_entry(&ctx);
}
