// Runs one dataflow kernel on an RV32IM instruction-set emulator (bench/rv32_machine.py): the kernel
// API calls land in these stubs, which do the NoC work as plain copies. The stubs sit outside the
// kernel's text range (the linker script puts them there), so only the kernel's own instructions
// are counted: not the stubs, not NoC latency, not the waits. The Python side fills the bench_*
// symbols before the run and places the DRAM tensors and the CBs in the emulator's memory.
#include <cstdint>

#include "emu/abi.h"

constexpr uint32_t MAX_CBS = 32;
constexpr uint32_t MAX_SEMS = 8;

extern "C" {
uint32_t bench_rta[96];
uint32_t bench_rta_count;
// CB `cb`: get_read_ptr / get_write_ptr return bench_cb_front[cb]; with bench_cb_ring[cb] pages the
// front walks a ring of them on every pop (a reader's stream of chunks), else it stays put
uint32_t bench_cb_front[MAX_CBS];
uint32_t bench_cb_base[MAX_CBS];
uint32_t bench_cb_page_bytes[MAX_CBS];
uint32_t bench_cb_ring[MAX_CBS];
uint32_t bench_sems[MAX_SEMS];
uint32_t bench_bytes_read, bench_bytes_written;  // what the NoC moved for the kernel
// the reader this writer would command (the sampling writer's ReadCommand mailbox): when semaphore
// bench_read_sem moves, op 1 / 2 of the command at bench_read_mailbox points CB bench_read_cb[op-1]
// at page `page` of a DRAM tensor (base + page * pitch + offset), as the reader's copy would
uint32_t bench_read_sem = 0xFFFFFFFFu;
uint32_t bench_read_mailbox;
uint32_t bench_read_cb[2];
uint32_t bench_read_base[2];
uint32_t bench_read_pitch[2];
uint32_t bench_read_offset[2];
// the first word of the mailbox a semaphore announces (0: none), reported with each increment
uint32_t bench_sem_mailbox[MAX_SEMS];

// Python hooks these two (never inlined): a semaphore moved (id, its mailbox's first word), and a stop
__attribute__((noinline)) void bench_mark(uint32_t sem, uint32_t word) { asm volatile("" ::"r"(sem), "r"(word)); }
__attribute__((noinline)) void bench_stop(const char* why) {
    asm volatile("" ::"r"(why));
    for (;;) {
    }
}

void emu_kernel_entry(EmuKernelCtx* ctx);
// libc for the kernel's own use (struct copies): kernel text, counted as the kernel's
__attribute__((section(".kernel_libc"))) void* memcpy(void* d, const void* s, unsigned n) {
    auto* dd = static_cast<uint8_t*>(d);
    auto* ss = static_cast<const uint8_t*>(s);
    while (n--) *dd++ = *ss++;
    return d;
}
__attribute__((section(".kernel_libc"))) void* memset(void* d, int c, unsigned n) {
    auto* dd = static_cast<uint8_t*>(d);
    while (n--) *dd++ = static_cast<uint8_t>(c);
    return d;
}
int snprintf(char*, unsigned, const char*, ...) { return 0; }  // the emulator's error messages: never reached
}

namespace {
void copy(uint32_t dst, uint32_t src, uint32_t n) {  // a NoC transfer: stub text, not counted
    auto* d = reinterpret_cast<volatile uint32_t*>(dst);
    auto* s = reinterpret_cast<const volatile uint32_t*>(src);
    for (uint32_t i = 0; i < n / 4; ++i) d[i] = s[i];
    for (uint32_t i = n & ~3u; i < n; ++i) reinterpret_cast<volatile uint8_t*>(dst)[i] = reinterpret_cast<const volatile uint8_t*>(src)[i];
}
void fail(EmuKernelCtx*, const char* what) { bench_stop(what); }
void cb_op(EmuKernelCtx*, int32_t, int32_t) {}
void cb_pop(EmuKernelCtx*, int32_t cb, int32_t n) {
    const uint32_t ring = bench_cb_ring[cb];
    if (ring) {
        const uint32_t page = (bench_cb_front[cb] - bench_cb_base[cb]) / bench_cb_page_bytes[cb];
        bench_cb_front[cb] = bench_cb_base[cb] + (page + n) % ring * bench_cb_page_bytes[cb];
    }
}
bool cb_query(EmuKernelCtx*, int32_t, int32_t) { return true; }
uint32_t cb_ptr(EmuKernelCtx*, uint32_t cb) { return bench_cb_front[cb]; }
void noc_read(EmuKernelCtx*, uint64_t src, uint32_t dst, uint32_t n) {
    copy(dst, static_cast<uint32_t>(src), n);
    bench_bytes_read += n;
}
void noc_write(EmuKernelCtx*, uint32_t src, uint64_t dst, uint32_t n) {
    copy(static_cast<uint32_t>(dst), src, n);
    bench_bytes_written += n;
}
void barrier(EmuKernelCtx*) {}
void sem_wait(EmuKernelCtx*, volatile uint32_t* sem, uint32_t val, bool at_least) {
    if (at_least ? *sem < val : *sem != val) bench_stop("noc_semaphore_wait: one core would wait forever");
}
void sem_set(EmuKernelCtx*, volatile uint32_t* sem, uint32_t val) { *sem = val; }
void sem_inc(EmuKernelCtx*, uint64_t dst, uint32_t incr, bool) {
    const uint32_t addr = static_cast<uint32_t>(dst);
    *reinterpret_cast<volatile uint32_t*>(addr) += incr;
    const uint32_t id = (addr - reinterpret_cast<uintptr_t>(bench_sems)) / 4;
    if (id >= MAX_SEMS) return;
    const uint32_t mailbox = bench_sem_mailbox[id];
    const uint32_t word = mailbox ? *reinterpret_cast<volatile uint32_t*>(mailbox) : 0;
    if (id == bench_read_sem && (word == 1 || word == 2)) {  // READ_ROW / READ_Q: the reader's copy, free
        const uint32_t page = reinterpret_cast<volatile uint32_t*>(mailbox)[1], j = word - 1;
        bench_cb_front[bench_read_cb[j]] = bench_read_base[j] + page * bench_read_pitch[j] + bench_read_offset[j];
    }
    bench_mark(id, word);
}
uint32_t get_semaphore(EmuKernelCtx*, uint32_t id) { return reinterpret_cast<uintptr_t>(&bench_sems[id]); }
uint64_t page_addr(EmuKernelCtx*, bool, uint32_t base, uint32_t page, uint32_t pitch, uint32_t offset) {
    return base + page * pitch + offset;  // the Python side lays each tensor's pages out at this pitch
}
uint64_t worker_addr(EmuKernelCtx*, uint32_t, uint32_t, uint32_t l1) { return l1; }  // one core's L1
uint32_t tile(EmuKernelCtx*, uint32_t, uint32_t, const char*) { return 0; }

EmuApi api = {fail, cb_op, cb_op, cb_op, cb_pop, cb_query, cb_query, cb_ptr, cb_ptr, noc_read, noc_write,
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
