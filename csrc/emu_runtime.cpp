#include "emu_runtime.hpp"

#include <dlfcn.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdarg>
#include <cstring>
#include <sstream>
#include <thread>

namespace emu {

namespace {

// Unwinds a kernel thread after another thread failed; never reported itself.
struct Aborted {};

std::string fmt(const char* f, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

Thread* self(EmuKernelCtx* ctx) { return static_cast<Thread*>(ctx->runtime); }

[[noreturn]] void fail(Thread* t, const std::string& what) { throw EmuError(t->where() + ": " + what); }

void check_abort(Thread* t) {
    if (t->run->abort.load()) throw Aborted{};
}

// Records the first error of a run and wakes every blocked thread so it can unwind.
void set_error(Run* run, Device* dev, const std::string& msg) {
    {
        std::lock_guard<std::mutex> g(run->mu);
        if (run->error.empty()) run->error = msg;
    }
    run->abort = true;
    for (uint32_t y = 0; y < dev->grid_y(); ++y)
        for (uint32_t x = 0; x < dev->grid_x(); ++x) {
            Core* c = dev->core_at(x, y);
            std::lock_guard<std::mutex> g(c->mu);
            c->cv.notify_all();
        }
}

void make_progress(Run* run) { run->progress.fetch_add(1); }

// Blocks on the thread's own core until pred() holds. When every live thread is blocked
// and nothing has moved for `deadlock_ms`, the run is a deadlock: report who waits on what.
double g_deadlock_ms = 200.0;

template <typename Pred>
void block_until(Thread* t, std::unique_lock<std::mutex>& lk, Pred pred, const std::string& what) {
    if (pred()) return;
    Run* run = t->run;
    {
        std::lock_guard<std::mutex> g(run->mu);
        t->waiting = what;
    }
    run->blocked.fetch_add(1);
    uint64_t seen = run->progress.load();
    auto since = std::chrono::steady_clock::now();
    while (!pred()) {
        if (run->abort.load()) {
            run->blocked.fetch_sub(1);
            throw Aborted{};
        }
        t->core->cv.wait_for(lk, std::chrono::milliseconds(2));
        if (pred()) break;
        uint64_t now_progress = run->progress.load();
        auto now = std::chrono::steady_clock::now();
        if (now_progress != seen) {
            seen = now_progress;
            since = now;
            continue;
        }
        double idle_ms = std::chrono::duration<double, std::milli>(now - since).count();
        if (run->blocked.load() >= run->live.load() && idle_ms > g_deadlock_ms) {
            std::ostringstream msg;
            msg << "deadlock: every kernel is blocked and nothing moved for " << static_cast<int>(idle_ms)
                << " ms";
            {
                std::lock_guard<std::mutex> g(run->mu);
                for (auto& other : run->threads)
                    if (!other->waiting.empty()) msg << "\n  " << other->where() << " waits in " << other->waiting;
            }
            run->blocked.fetch_sub(1);
            lk.unlock();
            set_error(run, t->dev, msg.str());
            throw Aborted{};
        }
    }
    run->blocked.fetch_sub(1);
    std::lock_guard<std::mutex> g(run->mu);
    t->waiting.clear();
}

CBState& cb_of(Thread* t, int32_t cb, const char* call) {
    if (cb < 0 || static_cast<uint32_t>(cb) >= NUM_CBS)
        fail(t, fmt("%s: circular buffer index %d out of range 0..%u", call, cb, NUM_CBS - 1));
    CBState& s = t->core->cbs[cb];
    if (!s.configured) fail(t, fmt("%s: circular buffer %d is not configured on this core", call, cb));
    return s;
}

std::string cb_name(const CBState& s, int32_t cb) {
    return s.name.empty() ? fmt("cb %d", cb) : fmt("cb %d ('%s')", cb, s.name.c_str());
}

// ---- circular buffers ----------------------------------------------------------

void api_fail(EmuKernelCtx* ctx, const char* what) { fail(self(ctx), what); }

void api_cb_reserve_back(EmuKernelCtx* ctx, int32_t cb, int32_t n) {
    Thread* t = self(ctx);
    check_abort(t);
    std::unique_lock<std::mutex> lk(t->core->mu);
    CBState& s = cb_of(t, cb, "cb_reserve_back");
    if (n <= 0 || static_cast<uint32_t>(n) > s.num_pages)
        fail(t, fmt("CB overflow: cb_reserve_back(%s, %d pages) but the CB holds %u pages: it would wait forever",
                    cb_name(s, cb).c_str(), n, s.num_pages));
    if (s.wr_ptr + static_cast<uint32_t>(n) * s.page_size > s.limit())
        fail(t, fmt("CB overflow: cb_reserve_back(%s, %d pages) at page %u of %u would wrap inside the "
                    "reservation: pushes must add up to the CB size",
                    cb_name(s, cb).c_str(), n, (s.wr_ptr - s.base) / s.page_size, s.num_pages));
    block_until(t, lk, [&] { return s.free_pages() >= static_cast<uint32_t>(n); },
                fmt("cb_reserve_back(%s, %d pages): %u of %u pages free", cb_name(s, cb).c_str(), n,
                    s.free_pages(), s.num_pages));
    if (static_cast<uint32_t>(n) > s.reserved) s.reserved = n;
}

void api_cb_push_back(EmuKernelCtx* ctx, int32_t cb, int32_t n) {
    Thread* t = self(ctx);
    check_abort(t);
    std::unique_lock<std::mutex> lk(t->core->mu);
    CBState& s = cb_of(t, cb, "cb_push_back");
    if (n <= 0 || static_cast<uint32_t>(n) > s.reserved)
        fail(t, fmt("CB overflow: cb_push_back(%s, %d pages) but only %u pages were reserved with cb_reserve_back",
                    cb_name(s, cb).c_str(), n, s.reserved));
    if (!t->pending_reads.empty())
        fail(t, fmt("cb_push_back(%s) with %zu noc_async_read(s) still in flight: call noc_async_read_barrier "
                    "first",
                    cb_name(s, cb).c_str(), t->pending_reads.size()));
    s.reserved -= n;
    s.pushed += n;
    s.wr_ptr += n * s.page_size;
    if (s.wr_ptr == s.limit()) s.wr_ptr = s.base;
    make_progress(t->run);
    t->core->cv.notify_all();
}

void api_cb_wait_front(EmuKernelCtx* ctx, int32_t cb, int32_t n) {
    Thread* t = self(ctx);
    check_abort(t);
    std::unique_lock<std::mutex> lk(t->core->mu);
    CBState& s = cb_of(t, cb, "cb_wait_front");
    if (n <= 0 || static_cast<uint32_t>(n) > s.num_pages)
        fail(t, fmt("cb_wait_front(%s, %d pages) but the CB holds %u pages: it would wait forever",
                    cb_name(s, cb).c_str(), n, s.num_pages));
    if (s.rd_ptr + static_cast<uint32_t>(n) * s.page_size > s.limit())
        fail(t, fmt("cb_wait_front(%s, %d pages) at page %u of %u would wrap inside the window: pops must add "
                    "up to the CB size",
                    cb_name(s, cb).c_str(), n, (s.rd_ptr - s.base) / s.page_size, s.num_pages));
    block_until(t, lk, [&] { return s.ready_pages() >= static_cast<uint32_t>(n); },
                fmt("cb_wait_front(%s, %d pages): %u pages pushed", cb_name(s, cb).c_str(), n, s.ready_pages()));
    if (static_cast<uint32_t>(n) > s.waited) s.waited = n;
}

void api_cb_pop_front(EmuKernelCtx* ctx, int32_t cb, int32_t n) {
    Thread* t = self(ctx);
    check_abort(t);
    std::unique_lock<std::mutex> lk(t->core->mu);
    CBState& s = cb_of(t, cb, "cb_pop_front");
    if (n <= 0 || static_cast<uint32_t>(n) > s.waited)
        fail(t, fmt("cb_pop_front(%s, %d pages) pops pages not waited for: %u pages pushed, %u waited for with "
                    "cb_wait_front",
                    cb_name(s, cb).c_str(), n, s.ready_pages(), s.waited));
    for (const auto& w : t->pending_writes) {
        const uint8_t* lo = t->core->l1 + (s.rd_ptr - t->core->base());
        if (w.src < lo + size_t(n) * s.page_size && w.src + w.size > lo)
            fail(t, fmt("cb_pop_front(%s, %d pages) frees pages a noc_async_write is still reading: call "
                        "noc_async_write_barrier first",
                        cb_name(s, cb).c_str(), n));
    }
    s.waited -= n;
    s.popped += n;
    s.rd_ptr += n * s.page_size;
    if (s.rd_ptr == s.limit()) s.rd_ptr = s.base;
    make_progress(t->run);
    t->core->cv.notify_all();
}

bool api_cb_pages_available_at_front(EmuKernelCtx* ctx, int32_t cb, int32_t n) {
    Thread* t = self(ctx);
    check_abort(t);
    std::unique_lock<std::mutex> lk(t->core->mu);
    CBState& s = cb_of(t, cb, "cb_pages_available_at_front");
    bool ok = s.ready_pages() >= static_cast<uint32_t>(n);
    if (ok && static_cast<uint32_t>(n) > s.waited) s.waited = n;
    return ok;
}

bool api_cb_pages_reservable_at_back(EmuKernelCtx* ctx, int32_t cb, int32_t n) {
    Thread* t = self(ctx);
    check_abort(t);
    std::unique_lock<std::mutex> lk(t->core->mu);
    CBState& s = cb_of(t, cb, "cb_pages_reservable_at_back");
    bool ok = s.free_pages() >= static_cast<uint32_t>(n);
    if (ok && static_cast<uint32_t>(n) > s.reserved) s.reserved = n;
    return ok;
}

uint32_t api_get_write_ptr(EmuKernelCtx* ctx, uint32_t cb) {
    Thread* t = self(ctx);
    std::unique_lock<std::mutex> lk(t->core->mu);
    return cb_of(t, cb, "get_write_ptr").wr_ptr;
}

uint32_t api_get_read_ptr(EmuKernelCtx* ctx, uint32_t cb) {
    Thread* t = self(ctx);
    std::unique_lock<std::mutex> lk(t->core->mu);
    return cb_of(t, cb, "get_read_ptr").rd_ptr;
}

uint32_t api_cb_tile_front(EmuKernelCtx* ctx, uint32_t cb, uint32_t index, const char* call) {
    Thread* t = self(ctx);
    check_abort(t);
    std::unique_lock<std::mutex> lk(t->core->mu);
    CBState& s = cb_of(t, static_cast<int32_t>(cb), call);
    if (index >= s.waited)
        fail(t, fmt("%s: tile %u of %s but only %u pages were waited for with cb_wait_front", call, index,
                    cb_name(s, cb).c_str(), s.waited));
    uint32_t addr = s.rd_ptr + index * s.page_size;
    return addr >= s.limit() ? addr - s.size() : addr;
}

uint32_t api_cb_tile_back(EmuKernelCtx* ctx, uint32_t cb, uint32_t index, const char* call) {
    Thread* t = self(ctx);
    check_abort(t);
    std::unique_lock<std::mutex> lk(t->core->mu);
    CBState& s = cb_of(t, static_cast<int32_t>(cb), call);
    if (index >= s.reserved)
        fail(t, fmt("%s: tile %u of %s but only %u pages were reserved with cb_reserve_back", call, index,
                    cb_name(s, cb).c_str(), s.reserved));
    return s.wr_ptr + index * s.page_size;
}

// ---- NoC -----------------------------------------------------------------------

constexpr uint64_t LOCAL_MASK = (uint64_t(1) << 36) - 1;

uint64_t encode(uint32_t noc_x, uint32_t noc_y, uint64_t local) {
    return (uint64_t(noc_y) << 42) | (uint64_t(noc_x) << 36) | (local & LOCAL_MASK);
}

// An L1 range touched by the NoC must lie inside one circular buffer or one semaphore of
// the core: anything else is memory the program never allocated.
void check_l1_range(Thread* t, Core* c, uint32_t off, uint32_t size, const char* call, const char* side) {
    uint32_t addr = c->base() + off;
    if (off >= SEM_BASE && off < SEM_BASE + MAX_SEMAPHORES * L1_ALIGN) {
        uint32_t id = (off - SEM_BASE) / L1_ALIGN;
        if (!c->sem_valid[id] || off % L1_ALIGN || size > 4)
            fail(t, fmt("%s: %s L1 offset 0x%x on core (%u, %u) is not a 4-byte semaphore of that core", call, side,
                        off, c->x, c->y));
        return;
    }
    if (off < L1_UNRESERVED_BASE)
        fail(t, fmt("%s: %s L1 offset 0x%x on core (%u, %u) lies in the reserved region below 0x%x", call, side, off,
                    c->x, c->y, L1_UNRESERVED_BASE));
    for (uint32_t i = 0; i < NUM_CBS; ++i) {
        const CBState& s = c->cbs[i];
        if (!s.configured) continue;
        if (addr >= s.base && addr < s.limit()) {
            if (uint64_t(addr) + size > s.limit())
                fail(t, fmt("CB overflow: %s of %u bytes at byte %u of %s on core (%u, %u) runs past its end (%u "
                            "bytes)",
                            call, size, addr - s.base, cb_name(s, i).c_str(), c->x, c->y, s.size()));
            return;
        }
    }
    for (uint32_t i = 0; i < NUM_CBS; ++i) {
        const CBState& s = c->cbs[i];
        if (s.configured && addr == s.limit())
            fail(t, fmt("CB overflow: %s of %u bytes starts at the end of %s on core (%u, %u) (%u pages of %u bytes)",
                        call, size, cb_name(s, i).c_str(), c->x, c->y, s.num_pages, s.page_size));
    }
    fail(t, fmt("%s: %s L1 range 0x%x (+%u bytes) on core (%u, %u) is in no circular buffer or semaphore", call, side,
                off, size, c->x, c->y));
}

// Checks a range of this core's L1 used as the local side of a NoC transfer; returns its offset.
uint32_t local_l1(Thread* t, uint32_t addr, uint32_t size, const char* call, const char* side) {
    Core* c = t->core;
    uint32_t l1 = t->dev->l1_size();
    if (addr < c->base() || uint64_t(addr) + size > uint64_t(c->base()) + l1)
        fail(t, fmt("%s: %s L1 address 0x%x (+%u bytes) is outside this core's L1 (%u bytes)", call, side, addr,
                    size, l1));
    uint32_t off = addr - c->base();
    check_l1_range(t, c, off, size, call, side);
    return off;
}

// What an L1 offset of core `c` belongs to, for messages: "cb 3 ('k') byte 16", "semaphore 0".
std::string l1_owner(Core* c, uint32_t off) {
    uint32_t addr = c->base() + off;
    if (off >= SEM_BASE && off < SEM_BASE + MAX_SEMAPHORES * L1_ALIGN) return fmt("semaphore %u", (off - SEM_BASE) / L1_ALIGN);
    for (uint32_t i = 0; i < NUM_CBS; ++i) {
        const CBState& s = c->cbs[i];
        if (s.configured && addr >= s.base && addr < s.limit())
            return fmt("%s byte %u", cb_name(s, static_cast<int32_t>(i)).c_str(), addr - s.base);
    }
    return "no buffer";
}

// Resolves the remote side of a transfer: a DRAM bank page or another core's L1.
uint8_t* remote(Thread* t, uint64_t noc_addr, uint32_t size, bool is_read, const char* call, Core** dst_core,
                bool* is_dram) {
    uint32_t y = uint32_t(noc_addr >> 42) & 0x3f, x = uint32_t(noc_addr >> 36) & 0x3f;
    uint64_t a = noc_addr & LOCAL_MASK;
    Device* d = t->dev;
    *dst_core = nullptr;
    if (x == 0 && y >= DRAM_NOC_Y0) {
        uint32_t bank = y - DRAM_NOC_Y0;
        *is_dram = true;
        if (bank >= d->num_dram_banks()) fail(t, fmt("%s: DRAM bank %u does not exist", call, bank));
        const DramAlloc* b = d->find_dram(static_cast<uint32_t>(a));
        std::string bname = b ? fmt("buffer '%s'", b->name.c_str()) : std::string("no buffer");
        if (!b) fail(t, fmt("%s: DRAM address 0x%llx in bank %u is not in any buffer", call, (unsigned long long)a, bank));
        uint32_t in_page = static_cast<uint32_t>(a - b->addr) % b->aligned_page_size;
        if (in_page + size > b->aligned_page_size)
            fail(t, fmt("%s: %u bytes at offset %u of a page of %s cross its page boundary (page size %u)", call,
                        size, in_page, bname.c_str(), b->page_size));
        if (a + size > d->banks[bank].size())
            fail(t, fmt("%s: DRAM bank %u address 0x%llx (+%u) is past the end of the bank", call, bank,
                        (unsigned long long)a, size));
        return d->banks[bank].data() + a;
    }
    *is_dram = false;
    Core* c = d->core_at_noc(x, y);
    if (!c) fail(t, fmt("%s: no core at NoC (%u, %u)", call, x, y));
    uint32_t l1 = d->l1_size();
    uint32_t region = d->core_at(0, 0)->base();
    if (a < region || a >= region + uint64_t(l1) * d->grid_x() * d->grid_y())
        fail(t, fmt("%s: 0x%llx is not an L1 address", call, (unsigned long long)a));
    uint32_t off = static_cast<uint32_t>(a - region) % l1;
    if (uint64_t(off) + size > l1)
        fail(t, fmt("%s: remote L1 range 0x%x (+%u bytes) on core (%u, %u) is past its L1", call, off, size, c->x, c->y));
    check_l1_range(t, c, off, size, call, "remote");
    *dst_core = c;
    return c->l1 + off;
}

// The NoC moves data only between addresses that agree modulo the remote side's alignment
// (hw/inc/internal/debug/sanitize.h, debug_sanitize_noc_and_worker_addr: (worker_addr & mask) !=
// (noc_addr & mask) hangs with DebugSanitizeNocAlignment; on a card without the watcher a DRAM read
// that breaks it returns shifted data silently). Masks from Wormhole's noc_parameters.h: DRAM reads 32,
// DRAM writes 16, L1 16.
void check_relative_alignment(Thread* t, uint64_t noc_addr, bool is_dram, Core* rc, uint32_t l1_off, bool is_read,
                              const char* call) {
    uint64_t a = noc_addr & LOCAL_MASK;
    uint32_t align = is_dram ? (is_read ? DRAM_READ_ALIGN : DRAM_WRITE_ALIGN) : L1_ALIGN;
    uint32_t remote_off;
    std::string remote_what;
    if (is_dram) {
        uint32_t bank = uint32_t(noc_addr >> 42) - DRAM_NOC_Y0;
        const DramAlloc* b = t->dev->find_dram(static_cast<uint32_t>(a));
        remote_off = static_cast<uint32_t>(a);
        remote_what = fmt("DRAM address 0x%llx in bank %u (buffer '%s')", (unsigned long long)a, bank,
                          b ? b->name.c_str() : "?");
    } else {
        Device* d = t->dev;
        remote_off = static_cast<uint32_t>(a - d->core_at(0, 0)->base()) % d->l1_size();
        remote_what = fmt("L1 offset 0x%x on core (%u, %u) (%s)", remote_off, rc->x, rc->y,
                          l1_owner(rc, remote_off).c_str());
    }
    if ((remote_off & (align - 1)) == (l1_off & (align - 1))) return;
    fail(t, fmt("misaligned NoC access: %s: %s and local L1 offset 0x%x (%s) differ modulo %u (%u vs %u): the NoC "
                "needs (l1_addr & %u) == (%s_addr & %u) for %s %s on Wormhole (hw/inc/internal/debug/sanitize.h)",
                call, remote_what.c_str(), l1_off, l1_owner(t->core, l1_off).c_str(), align, remote_off & (align - 1),
                l1_off & (align - 1), align - 1, is_dram ? "dram" : "noc", align - 1, is_dram ? "DRAM" : "L1",
                is_read ? "reads" : "writes"));
}

void api_noc_read(EmuKernelCtx* ctx, uint64_t src, uint32_t dst, uint32_t size) {
    Thread* t = self(ctx);
    check_abort(t);
    Core* rc;
    bool is_dram;
    const uint8_t* s = remote(t, src, size, true, "noc_async_read", &rc, &is_dram);
    uint32_t off = local_l1(t, dst, size, "noc_async_read", "destination");
    check_relative_alignment(t, src, is_dram, rc, off, true, "noc_async_read");
    uint8_t* d = t->core->l1 + off;
    t->pending_reads.push_back({d, s, size, nullptr});
    t->stats.noc_bytes_read += size;
    if (is_dram) {
        t->stats.dram_bytes_read += size;
        t->stats.dram_bytes_read_by_buffer[t->dev->find_dram(static_cast<uint32_t>(src & LOCAL_MASK))->name] += size;
    }
}

void api_noc_write(EmuKernelCtx* ctx, uint32_t src, uint64_t dst, uint32_t size) {
    Thread* t = self(ctx);
    check_abort(t);
    uint32_t off = local_l1(t, src, size, "noc_async_write", "source");
    const uint8_t* s = t->core->l1 + off;
    Core* rc;
    bool is_dram;
    uint8_t* d = remote(t, dst, size, false, "noc_async_write", &rc, &is_dram);
    check_relative_alignment(t, dst, is_dram, rc, off, false, "noc_async_write");
    t->pending_writes.push_back({d, s, size, rc});
    t->stats.noc_bytes_written += size;
    if (is_dram) {
        t->stats.dram_bytes_written += size;
        t->stats.dram_bytes_written_by_buffer[t->dev->find_dram(static_cast<uint32_t>(dst & LOCAL_MASK))->name] += size;
    }
}

void flush(Thread* t, std::vector<PendingCopy>& q) {
    for (auto& p : q) {
        if (p.dst_core && p.dst_core != t->core) {
            std::lock_guard<std::mutex> g(p.dst_core->mu);
            std::memmove(p.dst, p.src, p.size);
            p.dst_core->cv.notify_all();
        } else {
            std::memmove(p.dst, p.src, p.size);
        }
    }
    if (!q.empty()) make_progress(t->run);
    q.clear();
}

void api_noc_read_barrier(EmuKernelCtx* ctx) {
    Thread* t = self(ctx);
    check_abort(t);
    flush(t, t->pending_reads);
}

void api_noc_write_barrier(EmuKernelCtx* ctx) {
    Thread* t = self(ctx);
    check_abort(t);
    flush(t, t->pending_writes);
}

uint32_t api_get_semaphore(EmuKernelCtx* ctx, uint32_t id) {
    Thread* t = self(ctx);
    if (id >= MAX_SEMAPHORES || !t->core->sem_valid[id])
        fail(t, fmt("get_semaphore(%u): semaphore %u is not created on this core", id, id));
    return t->core->base() + SEM_BASE + id * L1_ALIGN;
}

uint32_t* own_sem(Thread* t, volatile uint32_t* sem, const char* call) {
    uint32_t a = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(sem));
    uint32_t off = a - t->core->base();
    if (a < t->core->base() || off < SEM_BASE || off >= SEM_BASE + MAX_SEMAPHORES * L1_ALIGN || off % L1_ALIGN)
        fail(t, fmt("%s: address 0x%x is not one of this core's semaphores", call, a));
    return const_cast<uint32_t*>(sem);
}

void api_sem_wait(EmuKernelCtx* ctx, volatile uint32_t* sem, uint32_t val, bool at_least) {
    Thread* t = self(ctx);
    check_abort(t);
    uint32_t* p = own_sem(t, sem, at_least ? "noc_semaphore_wait_min" : "noc_semaphore_wait");
    uint32_t id = ((static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p)) - t->core->base()) - SEM_BASE) / L1_ALIGN;
    std::unique_lock<std::mutex> lk(t->core->mu);
    auto value = [&] { return __atomic_load_n(p, __ATOMIC_ACQUIRE); };
    block_until(t, lk, [&] { return at_least ? value() >= val : value() == val; },
                fmt("%s(semaphore %u, %u): value %u", at_least ? "noc_semaphore_wait_min" : "noc_semaphore_wait", id,
                    val, value()));
}

void api_sem_set(EmuKernelCtx* ctx, volatile uint32_t* sem, uint32_t val) {
    Thread* t = self(ctx);
    check_abort(t);
    uint32_t* p = own_sem(t, sem, "noc_semaphore_set");
    std::lock_guard<std::mutex> g(t->core->mu);
    __atomic_store_n(p, val, __ATOMIC_RELEASE);
    make_progress(t->run);
    t->core->cv.notify_all();
}

void api_sem_inc(EmuKernelCtx* ctx, uint64_t dst, uint32_t incr, bool posted) {
    Thread* t = self(ctx);
    check_abort(t);
    if (!posted) ++t->pending_atomics;
    Core* rc;
    bool is_dram;
    uint8_t* p = remote(t, dst, 4, false, "noc_semaphore_inc", &rc, &is_dram);
    if (is_dram) fail(t, "noc_semaphore_inc: the destination is DRAM, not a semaphore in L1");
    uint32_t off = static_cast<uint32_t>(p - rc->l1);
    if (off < SEM_BASE || off >= SEM_BASE + MAX_SEMAPHORES * L1_ALIGN || !rc->sem_valid[(off - SEM_BASE) / L1_ALIGN])
        fail(t, fmt("noc_semaphore_inc: L1 offset 0x%x on core (%u, %u) is not a semaphore of that core", off, rc->x,
                    rc->y));
    std::lock_guard<std::mutex> g(rc->mu);
    __atomic_add_fetch(reinterpret_cast<uint32_t*>(p), incr, __ATOMIC_ACQ_REL);
    make_progress(t->run);
    rc->cv.notify_all();
}

void api_noc_atomic_barrier(EmuKernelCtx* ctx) {
    Thread* t = self(ctx);
    check_abort(t);
    t->pending_atomics = 0;  // the increments land when they are made: only the acks are modelled
}

uint64_t api_interleaved_page_addr(EmuKernelCtx* ctx, bool is_dram, uint32_t base, uint32_t page_id,
                                   uint32_t aligned_page_size, uint32_t offset) {
    Thread* t = self(ctx);
    if (!is_dram) fail(t, "interleaved L1 buffers are not supported by the emulator (TensorAccessorArgs without IsDram)");
    uint32_t nb = t->dev->num_dram_banks();
    uint64_t local = uint64_t(base) + uint64_t(page_id / nb) * aligned_page_size + offset;
    return encode(0, DRAM_NOC_Y0 + page_id % nb, local);
}

uint64_t api_worker_noc_addr(EmuKernelCtx* ctx, uint32_t noc_x, uint32_t noc_y, uint32_t l1_addr) {
    Thread* t = self(ctx);
    if (!t->dev->core_at_noc(noc_x, noc_y))
        fail(t, fmt("get_noc_addr: no worker core at NoC (%u, %u) (logical (x, y) is at NoC (x+1, y+1))", noc_x,
                    noc_y));
    return encode(noc_x, noc_y, l1_addr);
}

const EmuApi g_api = [] {
    EmuApi a{};
    a.fail = api_fail;
    a.cb_reserve_back = api_cb_reserve_back;
    a.cb_push_back = api_cb_push_back;
    a.cb_wait_front = api_cb_wait_front;
    a.cb_pop_front = api_cb_pop_front;
    a.cb_pages_available_at_front = api_cb_pages_available_at_front;
    a.cb_pages_reservable_at_back = api_cb_pages_reservable_at_back;
    a.get_write_ptr = api_get_write_ptr;
    a.get_read_ptr = api_get_read_ptr;
    a.noc_read = api_noc_read;
    a.noc_write = api_noc_write;
    a.noc_read_barrier = api_noc_read_barrier;
    a.noc_write_barrier = api_noc_write_barrier;
    a.sem_wait = api_sem_wait;
    a.sem_set = api_sem_set;
    a.sem_inc = api_sem_inc;
    a.noc_atomic_barrier = api_noc_atomic_barrier;
    a.get_semaphore = api_get_semaphore;
    a.interleaved_page_addr = api_interleaved_page_addr;
    a.worker_noc_addr = api_worker_noc_addr;
    a.cb_tile_front = api_cb_tile_front;
    a.cb_tile_back = api_cb_tile_back;
    return a;
}();

const char* ROLE_NAMES[] = {"reader", "writer", "compute"};

uint32_t role_index(const std::string& role) {
    for (uint32_t i = 0; i < 3; ++i)
        if (role == ROLE_NAMES[i]) return i;
    throw EmuError("kernel role '" + role + "': expected reader, writer or compute");
}

}  // namespace

std::string Thread::where() const {
    return fmt("core (%u, %u) kernel '%s' (%s)", core->x, core->y, kernel->name.c_str(), kernel->role.c_str());
}

const EmuApi* kernel_api() { return &g_api; }

void* load_kernel(const std::string& so_path) {
    static std::mutex mu;
    static std::map<std::string, void*> loaded;
    std::lock_guard<std::mutex> g(mu);
    auto it = loaded.find(so_path);
    if (it != loaded.end()) return it->second;
    void* h = dlopen(so_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) throw EmuError("cannot load kernel " + so_path + ": " + dlerror());
    void* entry = dlsym(h, "emu_kernel_entry");
    if (!entry) throw EmuError("kernel " + so_path + " has no emu_kernel_entry (not built by the emulator JIT?)");
    loaded[so_path] = entry;
    return entry;
}

Device::Device(uint32_t grid_x, uint32_t grid_y, uint32_t num_dram_banks, uint32_t l1_size)
    : grid_x_(grid_x), grid_y_(grid_y), num_banks_(num_dram_banks), l1_size_(l1_size) {
    if (grid_x == 0 || grid_y == 0 || grid_x > 30 || grid_y > 30)
        throw EmuError(fmt("grid %ux%u: expected 1..30 cores per side", grid_x, grid_y));
    if (num_dram_banks == 0 || num_dram_banks > 31) throw EmuError("num_dram_banks: expected 1..31");
    if (l1_size % L1_ALIGN || l1_size <= L1_UNRESERVED_BASE)
        throw EmuError(fmt("l1_size %u: expected a multiple of 16 above the reserved 0x%x", l1_size, L1_UNRESERVED_BASE));
    // Kernels hold L1 addresses in uint32_t, as on the card: map every core's L1 below 2 GiB.
    l1_region_size_ = size_t(l1_size) * grid_x * grid_y;
    void* p = mmap(nullptr, l1_region_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (p == MAP_FAILED) throw EmuError("cannot map L1 below 2 GiB (MAP_32BIT)");
    l1_region_ = static_cast<uint8_t*>(p);
    for (uint32_t y = 0; y < grid_y; ++y)
        for (uint32_t x = 0; x < grid_x; ++x) {
            auto c = std::make_unique<Core>();
            c->x = x;
            c->y = y;
            c->noc_x = x + 1;
            c->noc_y = y + 1;
            c->l1 = l1_region_ + size_t(l1_size) * (y * grid_x + x);
            cores_.push_back(std::move(c));
        }
    banks.resize(num_dram_banks);
    dram_top = 0x40;  // address 0 stays invalid
}

Device::~Device() {
    if (l1_region_) munmap(l1_region_, l1_region_size_);
}

Core* Device::core_at(uint32_t x, uint32_t y) {
    if (x >= grid_x_ || y >= grid_y_) return nullptr;
    return cores_[y * grid_x_ + x].get();
}

Core* Device::core_at_noc(uint32_t noc_x, uint32_t noc_y) {
    if (noc_x == 0 || noc_y == 0) return nullptr;
    return core_at(noc_x - 1, noc_y - 1);
}

uint32_t Device::alloc_dram(const std::string& name, uint32_t num_pages, uint32_t page_size) {
    if (num_pages == 0 || page_size == 0) throw EmuError("DRAM buffer '" + name + "': empty");
    DramAlloc a;
    a.name = name;
    a.page_size = page_size;
    a.aligned_page_size = (page_size + DRAM_READ_ALIGN - 1) / DRAM_READ_ALIGN * DRAM_READ_ALIGN;
    a.num_pages = num_pages;
    a.pages_per_bank = (num_pages + num_banks_ - 1) / num_banks_;
    a.addr = dram_top;
    uint64_t end = uint64_t(a.addr) + uint64_t(a.pages_per_bank) * a.aligned_page_size;
    if (end > (uint64_t(1) << 32) - 1) throw EmuError("DRAM buffer '" + name + "': out of DRAM address space");
    dram_top = static_cast<uint32_t>((end + 63) / 64 * 64);
    for (auto& b : banks) b.resize(dram_top, 0);
    allocs.push_back(a);
    return a.addr;
}

const DramAlloc* Device::find_dram(uint32_t addr) const {
    for (const auto& a : allocs)
        if (addr >= a.addr && addr < a.addr + uint64_t(a.pages_per_bank) * a.aligned_page_size) return &a;
    return nullptr;
}

void Device::write_dram(uint32_t addr, uint32_t page_size, const uint8_t* data, size_t nbytes) {
    const DramAlloc* a = find_dram(addr);
    if (!a || a->addr != addr || a->page_size != page_size)
        throw EmuError(fmt("write_dram: no buffer at 0x%x with page size %u", addr, page_size));
    if (nbytes != size_t(a->num_pages) * page_size)
        throw EmuError(fmt("write_dram '%s': got %zu bytes, expected %u pages x %u bytes", a->name.c_str(), nbytes,
                           a->num_pages, page_size));
    for (uint32_t p = 0; p < a->num_pages; ++p)
        std::memcpy(banks[p % num_banks_].data() + addr + size_t(p / num_banks_) * a->aligned_page_size,
                    data + size_t(p) * page_size, page_size);
}

void Device::read_dram(uint32_t addr, uint32_t page_size, uint8_t* out, size_t nbytes) const {
    const DramAlloc* a = find_dram(addr);
    if (!a || a->addr != addr || a->page_size != page_size || nbytes != size_t(a->num_pages) * page_size)
        throw EmuError(fmt("read_dram: no buffer at 0x%x with page size %u and %zu bytes", addr, page_size, nbytes));
    for (uint32_t p = 0; p < a->num_pages; ++p)
        std::memcpy(out + size_t(p) * page_size,
                    banks[p % num_banks_].data() + addr + size_t(p / num_banks_) * a->aligned_page_size, page_size);
}

void Device::free_all_dram() {
    allocs.clear();
    dram_top = 0x40;
    for (auto& b : banks) {
        b.clear();
        b.shrink_to_fit();
    }
}

std::vector<KernelStats> Device::run(const std::vector<KernelSpec>& kernels, const std::vector<CBSpec>& cbs,
                                     const std::vector<SemaphoreSpec>& sems, double deadlock_ms) {
    std::lock_guard<std::mutex> one_run(run_mu_);
    g_deadlock_ms = deadlock_ms;
    // Fresh core state: L1 poisoned so reads of unwritten memory show up as garbage, not zeros.
    for (auto& c : cores_) {
        for (auto& s : c->cbs) s = CBState{};
        for (auto& v : c->sem_valid) v = false;
        c->l1_top = L1_UNRESERVED_BASE;
        std::memset(c->l1, 0xA5, l1_size_);
    }
    auto core_or_throw = [&](uint32_t x, uint32_t y, const std::string& what) {
        Core* c = core_at(x, y);
        if (!c) throw EmuError(fmt("%s: core (%u, %u) is outside the %ux%u grid", what.c_str(), x, y, grid_x_, grid_y_));
        return c;
    };
    // Circular buffers take the same L1 offset on every core of their range, like the card's allocator.
    for (const auto& cb : cbs) {
        std::string what = cb.name.empty() ? fmt("cb %u", cb.index) : fmt("cb %u ('%s')", cb.index, cb.name.c_str());
        if (cb.index >= NUM_CBS) throw EmuError(what + ": index out of range 0..31");
        if (cb.num_pages == 0 || cb.page_size == 0 || cb.page_size % L1_ALIGN)
            throw EmuError(fmt("%s: %u pages of %u bytes; expected pages > 0 and a page size that is a multiple of 16",
                               what.c_str(), cb.num_pages, cb.page_size));
        uint32_t offset = L1_UNRESERVED_BASE;
        for (auto [x, y] : cb.cores) offset = std::max(offset, core_or_throw(x, y, what)->l1_top);
        offset = (offset + CB_BASE_ALIGN - 1) / CB_BASE_ALIGN * CB_BASE_ALIGN;
        uint64_t end = uint64_t(offset) + uint64_t(cb.num_pages) * cb.page_size;
        for (auto [x, y] : cb.cores) {
            Core* c = core_at(x, y);
            if (end > l1_size_)
                throw EmuError(fmt("L1 overflow on core (%u, %u): %s (%u x %u bytes) ends at %llu bytes, L1 has %u "
                                   "(%u free above the reserved region)",
                                   x, y, what.c_str(), cb.num_pages, cb.page_size, (unsigned long long)end, l1_size_,
                                   l1_size_ - L1_UNRESERVED_BASE));
            CBState& s = c->cbs[cb.index];
            if (s.configured) throw EmuError(fmt("%s: configured twice on core (%u, %u)", what.c_str(), x, y));
            s.configured = true;
            s.name = cb.name;
            s.data_format = cb.data_format;
            s.base = c->base() + offset;
            s.page_size = cb.page_size;
            s.num_pages = cb.num_pages;
            s.wr_ptr = s.rd_ptr = s.base;
            c->l1_top = static_cast<uint32_t>(end);
        }
    }
    for (const auto& sem : sems) {
        if (sem.id >= MAX_SEMAPHORES) throw EmuError(fmt("semaphore %u: id out of range 0..%u", sem.id, MAX_SEMAPHORES - 1));
        for (auto [x, y] : sem.cores) {
            Core* c = core_or_throw(x, y, fmt("semaphore %u", sem.id));
            c->sem_valid[sem.id] = true;
            *reinterpret_cast<uint32_t*>(c->l1 + SEM_BASE + sem.id * L1_ALIGN) = sem.initial_value;
        }
    }

    Run run;
    std::map<std::pair<Core*, uint32_t>, std::string> role_taken;
    for (const auto& k : kernels) {
        uint32_t r = role_index(k.role);
        EmuKernelEntry entry = reinterpret_cast<EmuKernelEntry>(load_kernel(k.so_path));
        (void)entry;
        if (k.common_runtime_args.size() > MAX_RTAS)
            throw EmuError(fmt("kernel '%s': %zu common runtime args, at most %u", k.name.c_str(),
                               k.common_runtime_args.size(), MAX_RTAS));
        for (auto [x, y] : k.cores) {
            Core* c = core_or_throw(x, y, "kernel '" + k.name + "'");
            auto key = std::make_pair(c, r);
            if (role_taken.count(key))
                throw EmuError(fmt("core (%u, %u): kernels '%s' and '%s' both run as %s", x, y, role_taken[key].c_str(),
                                   k.name.c_str(), k.role.c_str()));
            role_taken[key] = k.name;
            auto t = std::make_unique<Thread>();
            t->run = &run;
            t->dev = this;
            t->core = c;
            t->kernel = &k;
            t->role_index = r;
            auto it = k.runtime_args.find({x, y});
            static const std::vector<uint32_t> none;
            const auto& rta = it == k.runtime_args.end() ? none : it->second;
            if (rta.size() > MAX_RTAS)
                throw EmuError(fmt("kernel '%s' core (%u, %u): %zu runtime args, at most %u", k.name.c_str(), x, y,
                                   rta.size(), MAX_RTAS));
            // Runtime args live in the core's L1, as on the card.
            uint32_t* rta_l1 = reinterpret_cast<uint32_t*>(c->l1 + RTA_BASE + r * RTA_STRIDE);
            uint32_t* crta_l1 = reinterpret_cast<uint32_t*>(c->l1 + CRTA_BASE + r * RTA_STRIDE);
            std::copy(rta.begin(), rta.end(), rta_l1);
            std::copy(k.common_runtime_args.begin(), k.common_runtime_args.end(), crta_l1);
            t->ctx.api = &g_api;
            t->ctx.rta = rta_l1;
            t->ctx.rta_count = static_cast<uint32_t>(rta.size());
            t->ctx.crta = crta_l1;
            t->ctx.crta_count = static_cast<uint32_t>(k.common_runtime_args.size());
            t->ctx.my_x = c->noc_x;
            t->ctx.my_y = c->noc_y;
            t->ctx.runtime = t.get();
            t->stats.kernel = k.name;
            t->stats.x = x;
            t->stats.y = y;
            run.threads.push_back(std::move(t));
        }
    }
    run.live = static_cast<int>(run.threads.size());
    std::vector<std::thread> workers;
    workers.reserve(run.threads.size());
    for (auto& tp : run.threads) {
        Thread* t = tp.get();
        workers.emplace_back([t, this, &run] {
            auto entry = reinterpret_cast<EmuKernelEntry>(load_kernel(t->kernel->so_path));
            try {
                entry(&t->ctx);
                if (!t->pending_reads.empty() || !t->pending_writes.empty())
                    fail(t, fmt("kernel returned with %zu noc_async_read(s) and %zu noc_async_write(s) still in "
                                "flight: missing noc_async_read_barrier / noc_async_write_barrier",
                                t->pending_reads.size(), t->pending_writes.size()));
                // firmware/src/tt-1xx/brisck.cc and ncrisck.cc assert after kernel_main:
                // ASSERT(ncrisc_noc_nonposted_atomics_flushed(NOC_INDEX), DebugAssertNCriscNOCNonpostedAtomicsFlushedTripped)
                if (t->pending_atomics)
                    fail(t, fmt("kernel returned with %u non-posted atomic(s) (noc_semaphore_inc) not flushed: missing "
                                "noc_async_atomic_barrier (firmware asserts ncrisc_noc_nonposted_atomics_flushed)",
                                t->pending_atomics));
            } catch (const Aborted&) {
            } catch (const EmuError& e) {
                set_error(&run, this, e.what());
            } catch (const std::exception& e) {
                set_error(&run, this, t->where() + ": " + e.what());
            }
            run.live.fetch_sub(1);
            make_progress(&run);
            std::lock_guard<std::mutex> g(t->core->mu);
            t->core->cv.notify_all();
        });
    }
    for (auto& w : workers) w.join();
    if (!run.error.empty()) throw EmuError(run.error);
    std::vector<KernelStats> stats;
    for (auto& t : run.threads) stats.push_back(t->stats);
    return stats;
}

}  // namespace emu
