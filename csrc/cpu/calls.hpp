// tt_specdec._cpu's Python-facing calls (bound in module.cpp): each checks its torch tensors at the
// boundary, as FlashInfer's csrc/ does before a launch (dtype, shape, contiguous CPU memory), raising
// ValueError "name: got X, expected Y" before anything is written; then runs its kernel without the GIL.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "decoder.hpp"

namespace tt_cpu::calls {

namespace py = pybind11;

// W [N, K] float32 or bfloat16, packed (and rounded to bf16) once for one matrix path
// path: a MatrixPath name, or None for the process's default_path()
std::shared_ptr<PackedLinear> packed_linear(py::handle weight, const std::optional<std::string>& path);
// out [M, N] = x [M, K] @ W^T, float32
void linear_forward(const PackedLinear& self, py::handle x, py::handle out);

// out [B, T, Hq, D] = verify attention of q [B, T, Hq, D] on caches [B, Hkv, S, D] at positions pos [B]
void attention(py::handle q, py::handle k_cache, py::handle v_cache, py::handle out, const std::vector<int64_t>& pos,
               float scale);

// cos, sin [max_len, head_dim] float32
std::unique_ptr<CpuModel> cpu_model(int64_t dim, int64_t n_heads, int64_t n_kv, int64_t head_dim, int64_t ffn,
                                    float eps, py::handle cos, py::handle sin, const std::optional<std::string>& path);
// norms [dim] float32; the linears' shapes must be the model's
void add_layer(CpuModel& self, py::handle attn_norm, py::handle ffn_norm, std::shared_ptr<PackedLinear> qkv,
               std::shared_ptr<PackedLinear> wo, std::shared_ptr<PackedLinear> gate_up,
               std::shared_ptr<PackedLinear> down);
void set_head(CpuModel& self, py::handle norm, std::shared_ptr<PackedLinear> head);
// x [B, T, dim] in and out, caches [layers, B, Hkv, S, D], pos [B], logits [B, T, V] or None, parents
// [B * T] (a token tree) or None; hidden [B, T, n, dim] float32 with hidden_layers (n increasing block
// counts in 1..layers), or both None
void model_forward(CpuModel& self, py::handle x, py::handle k_cache, py::handle v_cache,
                   const std::vector<int64_t>& pos, py::handle logits, const std::optional<std::vector<int64_t>>& parents,
                   py::handle hidden, const std::optional<std::vector<int64_t>>& hidden_layers);
// out [M, V] = the final norm and head of x [M, dim]
void model_logits(CpuModel& self, py::handle x, py::handle out);

// x [M, N] float32, out [M] int64, prob [M] float32 or None
bool argmax_rows(py::handle x, py::handle out, py::handle prob);
// x [R, V] float32, out [R, V] float64
bool probs_rows(py::handle x, double temperature, int64_t top_k, double top_p, py::handle out);
// p [R, V] float64, in place
void nucleus_rows(py::handle p, double top_p);
// p [R, V] float64, u [R] float64, out [R] int64
void sample_rows(py::handle p, py::handle u, py::handle out);
// x [R, V] float32, tables [3, 256] int64, w [R, V] int64, z [R] int64
bool fixed_probs_rows(py::handle x, int64_t scale, int64_t shift, int64_t top_k, int64_t top_p_fixed, py::handle tables,
                      py::handle w, py::handle z, bool avx512);
// pw [R, V] int64, z [R] int64, q [R, V] float32, out [R, V] int64
void residual_rows(py::handle pw, py::handle z, py::handle q, py::handle out);
// w [R, V] int64, u [R] int64, out [R] int64
void sample_fixed_rows(py::handle w, py::handle u, py::handle out);

double fma_peak_gflops(int64_t iterations);

}  // namespace tt_cpu::calls
