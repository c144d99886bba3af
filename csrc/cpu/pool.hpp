// A tiny thread pool shared by the decoder's kernels and the sampling rows: tasks are claimed, not assigned.
// The caller and the workers take task indices from one atomic counter, so a worker that is
// descheduled (a busy machine) just takes fewer tasks and the caller never waits for it to wake;
// a task's result does not depend on who runs it. Workers spin briefly between calls, then sleep.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "simd.hpp"

namespace tt_cpu {

class Pool {
public:
    void set_threads(int n) {
        stop_workers();
        n_threads_ = n < 1 ? 1 : n;
        quit_ = false;
        for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker(); });
    }
    int threads() const { return n_threads_; }
    ~Pool() { stop_workers(); }

    // fn(i) for i in 0..n-1, spread over the threads; returns when all n are done
    void run(int64_t n, const std::function<void(int64_t)>& fn) {
        if (n_threads_ == 1 || n <= 1) {
            for (int64_t i = 0; i < n; ++i) fn(i);
            return;
        }
        uint64_t gen = (claim_.load() >> 32) + 1;
        task_fn_.store(&fn, std::memory_order_relaxed);
        tasks_.store(n, std::memory_order_relaxed);
        done_.store(0);
        claim_.store(gen << 32, std::memory_order_release);  // publishes task_fn_, tasks_
        {
            std::lock_guard<std::mutex> lock(mu_);  // wakes sleeping workers; spinning ones see claim_
        }
        cv_.notify_all();
        work(gen);
        while (done_.load(std::memory_order_acquire) != n) pause();
    }

private:
    static void pause() {
#ifdef TT_CPU_AVX2
        _mm_pause();
#endif
    }
    // claim and run tasks of generation `gen` until none are left (or a newer job started)
    void work(uint64_t gen) {
        for (;;) {
            uint64_t c = claim_.load(std::memory_order_acquire);
            if ((c >> 32) != gen || static_cast<int64_t>(c & 0xffffffffu) >= tasks_.load(std::memory_order_relaxed)) return;
            if (claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) {
                (*task_fn_.load(std::memory_order_relaxed))(static_cast<int64_t>(c & 0xffffffffu));  // the caller waits for it: fn stays valid
                done_.fetch_add(1, std::memory_order_acq_rel);
            }
        }
    }
    void worker() {
        uint64_t seen = claim_.load() >> 32;
        for (;;) {
            // spin a little (the next call usually follows within microseconds), then sleep
            for (int spin = 0; spin < 20000 && (claim_.load(std::memory_order_acquire) >> 32) == seen && !quit_; ++spin)
                pause();
            if ((claim_.load(std::memory_order_acquire) >> 32) == seen) {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait_for(lock, std::chrono::milliseconds(50),
                             [&] { return (claim_.load() >> 32) != seen || quit_; });
            }
            if (quit_) return;
            seen = claim_.load(std::memory_order_acquire) >> 32;
            work(seen);
        }
    }
    void stop_workers() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            quit_ = true;
        }
        cv_.notify_all();
        for (auto& t : workers_) t.join();
        workers_.clear();
    }
    int n_threads_ = 1;
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::atomic<uint64_t> claim_{0};  // generation << 32 | next task index
    std::atomic<int64_t> done_{0};    // tasks of the current generation finished
    std::atomic<bool> quit_{false};
    std::atomic<int64_t> tasks_{0};  // published by the release store of claim_
    std::atomic<const std::function<void(int64_t)>*> task_fn_{nullptr};
};

// the one pool of the module (an inline function's static: one object across its files)
inline Pool& pool() {
    static Pool p;
    return p;
}

}  // namespace tt_cpu
