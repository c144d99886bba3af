// The core's fp32 FMA rate, against which bench/bench_linear.py reads the linear's GFLOP/s.
#pragma once

#include <cstdint>

namespace tt_cpu {

// GFLOP/s of `iterations` rounds of 12 independent 8-lane FMA chains on the calling thread, no memory
double fma_peak_gflops(int64_t iterations);

}  // namespace tt_cpu
