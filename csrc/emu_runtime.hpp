// Host emulator of a Tenstorrent device for the TT-Metal kernel API: cores with an L1
// arena each, interleaved DRAM banks, circular buffers, semaphores, the NoC; every
// kernel runs on its own thread per (core, RISC) and every API call is checked.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "emu/abi.h"

namespace emu {

// A violation of the kernel API's rules; the message names core, kernel and buffer.
struct EmuError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// L1 map of every core (bytes): runtime args, semaphores, then circular buffers.
constexpr uint32_t RTA_BASE = 0x100;
constexpr uint32_t RTA_STRIDE = 0x600;  // 341 args (the real limit) * 4 B, rounded up
constexpr uint32_t CRTA_BASE = 0x1300;
constexpr uint32_t SEM_BASE = 0x2800;
constexpr uint32_t MAX_SEMAPHORES = 16;
constexpr uint32_t L1_UNRESERVED_BASE = 0x18000;  // firmware, mailboxes and args live below on a card
constexpr uint32_t NUM_CBS = 32;
constexpr uint32_t MAX_RTAS = 341;
constexpr uint32_t DRAM_NOC_Y0 = 32;  // DRAM bank b answers at NoC (0, 32 + b)
// NoC alignment of Wormhole B0 (ttnn 0.81.1 hw/inc/internal/tt-1xx/wormhole/noc/noc_parameters.h):
// NOC_L1_{READ,WRITE}_ALIGNMENT_BYTES 16, NOC_DRAM_READ_ALIGNMENT_BYTES 32, NOC_DRAM_WRITE_ALIGNMENT_BYTES 16.
// hw/inc/internal/debug/sanitize.h (debug_sanitize_noc_and_worker_addr) requires the local L1 address
// and the remote address to agree modulo the remote side's alignment: (l1 & (A-1)) == (noc & (A-1)).
constexpr uint32_t L1_ALIGN = 16;
constexpr uint32_t DRAM_READ_ALIGN = 32;
constexpr uint32_t DRAM_WRITE_ALIGN = 16;
// The allocator places circular buffers at addresses aligned to the DRAM alignment
// (tt-metal tt_metal/impl/program/program.cpp, ProgramImpl::allocate_circular_buffers:
// computed_addr = align(computed_addr, allocator->get_alignment(BufferType::DRAM))).
constexpr uint32_t CB_BASE_ALIGN = 32;

struct CBState {
    bool configured = false;
    std::string name;
    uint32_t data_format = 0;
    uint32_t base = 0;  // absolute (host) address, < 2^31
    uint32_t page_size = 0;
    uint32_t num_pages = 0;
    uint32_t wr_ptr = 0;
    uint32_t rd_ptr = 0;
    uint64_t pushed = 0;  // pages ever pushed (tiles_received)
    uint64_t popped = 0;  // pages ever popped (tiles_acked)
    uint32_t reserved = 0;  // pages the producer may still push (claimed by cb_reserve_back)
    uint32_t waited = 0;    // pages the consumer may still pop (seen by cb_wait_front)
    uint32_t size() const { return page_size * num_pages; }
    uint32_t limit() const { return base + size(); }
    uint32_t free_pages() const { return num_pages - static_cast<uint32_t>(pushed - popped); }
    uint32_t ready_pages() const { return static_cast<uint32_t>(pushed - popped); }
};

struct Core {
    uint32_t x = 0, y = 0;          // logical coordinates
    uint32_t noc_x = 0, noc_y = 0;  // NoC coordinates
    uint8_t* l1 = nullptr;
    std::mutex mu;
    std::condition_variable cv;
    CBState cbs[NUM_CBS];
    bool sem_valid[MAX_SEMAPHORES] = {};
    uint32_t l1_top = L1_UNRESERVED_BASE;
    uint32_t base() const { return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(l1)); }
};

struct DramAlloc {
    std::string name;
    uint32_t addr = 0;  // the same bank address in every bank
    uint32_t page_size = 0;
    uint32_t aligned_page_size = 0;
    uint32_t num_pages = 0;
    uint32_t pages_per_bank = 0;
};

struct KernelSpec {
    std::string name;  // source file stem, for messages
    std::string role;  // reader | writer | compute
    std::string so_path;
    std::vector<std::pair<uint32_t, uint32_t>> cores;
    std::map<std::pair<uint32_t, uint32_t>, std::vector<uint32_t>> runtime_args;
    std::vector<uint32_t> common_runtime_args;
};

struct CBSpec {
    std::string name;
    uint32_t index = 0;
    uint32_t num_pages = 0;
    uint32_t page_size = 0;
    uint32_t data_format = 0;
    std::vector<std::pair<uint32_t, uint32_t>> cores;
};

struct SemaphoreSpec {
    uint32_t id = 0;
    uint32_t initial_value = 0;
    std::vector<std::pair<uint32_t, uint32_t>> cores;
};

struct KernelStats {
    std::string kernel;
    uint32_t x = 0, y = 0;
    uint64_t noc_bytes_read = 0;
    uint64_t noc_bytes_written = 0;
    uint64_t dram_bytes_read = 0;
    uint64_t dram_bytes_written = 0;
    std::map<std::string, uint64_t> dram_bytes_read_by_buffer;  // DRAM traffic per tensor of the program
    std::map<std::string, uint64_t> dram_bytes_written_by_buffer;
};

class Device;
struct Run;

struct PendingCopy {
    uint8_t* dst;
    const uint8_t* src;
    uint32_t size;
    Core* dst_core;  // L1 destination on another core: woken after the copy
};

// One kernel on one core: the state behind EmuKernelCtx::runtime.
struct Thread {
    EmuKernelCtx ctx{};
    Run* run = nullptr;
    Device* dev = nullptr;
    Core* core = nullptr;
    const KernelSpec* kernel = nullptr;
    uint32_t role_index = 0;
    std::string waiting;  // what this thread is blocked on, for the deadlock report
    std::vector<PendingCopy> pending_reads, pending_writes;
    uint32_t pending_atomics = 0;  // non-posted atomics not yet acked by noc_async_atomic_barrier
    KernelStats stats;
    std::string where() const;
};

struct Run {
    std::atomic<int> live{0};
    std::atomic<int> blocked{0};
    std::atomic<uint64_t> progress{0};
    std::atomic<bool> abort{false};
    std::mutex mu;  // guards error and every Thread::waiting
    std::string error;
    std::vector<std::unique_ptr<Thread>> threads;
};

class Device {
public:
    Device(uint32_t grid_x, uint32_t grid_y, uint32_t num_dram_banks, uint32_t l1_size);
    ~Device();

    uint32_t alloc_dram(const std::string& name, uint32_t num_pages, uint32_t page_size);
    void write_dram(uint32_t addr, uint32_t page_size, const uint8_t* data, size_t nbytes);
    void read_dram(uint32_t addr, uint32_t page_size, uint8_t* out, size_t nbytes) const;
    void free_all_dram();

    std::vector<KernelStats> run(const std::vector<KernelSpec>& kernels, const std::vector<CBSpec>& cbs,
                                 const std::vector<SemaphoreSpec>& sems, double deadlock_ms);

    uint32_t grid_x() const { return grid_x_; }
    uint32_t grid_y() const { return grid_y_; }
    uint32_t num_dram_banks() const { return num_banks_; }
    uint32_t l1_size() const { return l1_size_; }

    // Kernel API implementation (called through EmuApi).
    Core* core_at(uint32_t x, uint32_t y);
    Core* core_at_noc(uint32_t noc_x, uint32_t noc_y);
    const DramAlloc* find_dram(uint32_t addr) const;
    std::vector<std::vector<uint8_t>> banks;
    std::vector<DramAlloc> allocs;
    uint32_t dram_top = 0;

private:
    uint32_t grid_x_, grid_y_, num_banks_, l1_size_;
    std::mutex run_mu_;  // one program at a time: runs reset the cores' state
    uint8_t* l1_region_ = nullptr;
    size_t l1_region_size_ = 0;
    std::vector<std::unique_ptr<Core>> cores_;
};

const EmuApi* kernel_api();
void* load_kernel(const std::string& so_path);

}  // namespace emu
