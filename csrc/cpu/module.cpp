// tt_specdec._cpu: the bindings alone; the calls (and their argument checks) are in calls.cpp, the kernels
// in decoder.cpp, sampling_rows.cpp, fixed_rows.cpp and fma_peak.cpp.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "calls.hpp"
#include "fixed_rows.hpp"
#include "matrix_path.hpp"
#include "pool.hpp"

namespace py = pybind11;
using namespace tt_cpu;

PYBIND11_MODULE(_cpu, m) {
    m.doc() = "Batch-invariant CPU kernels (bf16-weight linear, attention) for tt_specdec's CPU decoder";
    m.def("set_threads", [](int n) { pool().set_threads(n); }, py::arg("n"));
    m.def("threads", [] { return pool().threads(); });
    m.def("has_avx2", [] {
#ifdef TT_CPU_AVX2
        return true;
#else
        return false;
#endif
    });
    m.def("matrix_paths", [] {
        std::vector<std::string> names;
        for (MatrixPath p : supported_paths()) names.emplace_back(path_name(p));
        return names;
    }, "the linear's matrix paths this CPU can run (portable, avx2, avx512_bf16, amx), fastest last");
    m.def("matrix_path", [] { return std::string(path_name(default_path())); },
          "the process's matrix path: TT_SPECDEC_CPU_PATH when set, else the fastest this CPU runs; fixed at "
          "the first call");
    py::class_<PackedLinear, std::shared_ptr<PackedLinear>>(m, "PackedLinear")
        .def(py::init(&calls::packed_linear), py::arg("weight"), py::arg("path") = py::none(),
             "W [N, K] float32 or bfloat16, packed as bf16 panels (a copy) for one matrix path (None: "
             "matrix_path())")
        .def_property_readonly("path", [](const PackedLinear& l) { return std::string(path_name(l.path)); })
        .def_readonly("n", &PackedLinear::n)
        .def_readonly("k", &PackedLinear::k)
        .def("forward", &calls::linear_forward, py::arg("x"), py::arg("out"),
             "out [M, N] = x [M, K] @ W^T, float32 contiguous CPU tensors");
    py::class_<CpuModel>(m, "CpuModel")
        .def(py::init(&calls::cpu_model), py::arg("dim"), py::arg("n_heads"), py::arg("n_kv_heads"),
             py::arg("head_dim"), py::arg("ffn_dim"), py::arg("eps"), py::arg("cos"), py::arg("sin"),
             py::arg("path") = py::none(),
             "cos, sin [max_len, head_dim] float32 (copied); path: the matrix path every linear must be packed "
             "for (None: matrix_path())")
        .def_property_readonly("path", [](const CpuModel& c) { return std::string(path_name(c.path)); })
        .def("add_layer", &calls::add_layer, py::arg("attn_norm"), py::arg("ffn_norm"), py::arg("qkv"), py::arg("wo"),
             py::arg("gate_up"), py::arg("down"), "norms [dim] float32 (copied), the block's PackedLinears (shared)")
        .def("set_head", &calls::set_head, py::arg("norm"), py::arg("head"),
             "the final norm [dim] float32 (copied) and the head PackedLinear [V, dim]")
        .def("logits", &calls::model_logits, py::arg("x"), py::arg("out"),
             "out [M, V] = head(norm(x [M, dim])), float32")
        .def("forward", &calls::model_forward, py::arg("x"), py::arg("k_cache"), py::arg("v_cache"), py::arg("pos"),
             py::arg("logits"), py::arg("parents") = py::none(), py::arg("hidden") = py::none(),
             py::arg("hidden_layers") = py::none(),
             "x [B, T, dim] float32: embeddings in, final hidden states out; caches [layers, B, Hkv, S, D] written at "
             "pos[b]..pos[b]+T-1; logits [B, T, V] float32, or None; parents: None, or a token tree's [B * T] parent "
             "rows (-1 for row 0): row t then sits at position pos + its depth and sees the cache and its ancestors; "
             "hidden [B, T, n, dim] float32 with hidden_layers (n increasing block counts): the hidden state after "
             "each of those blocks, the same kernels run");
    m.def("argmax_rows", &calls::argmax_rows, py::arg("x"), py::arg("out"), py::arg("prob") = py::none(),
          "out[m] (int64) = index of the first maximum of row m of x [M, N] float32 (finite values); prob[m] "
          "(float32, when given) = its softmax probability; returns whether every value was finite");
    m.def("probs_rows", &calls::probs_rows, py::arg("x"), py::arg("temperature"), py::arg("top_k"), py::arg("top_p"),
          py::arg("out"),
          "out [R, V] float64 = ops.sampling.process_logits of the float32 rows x [R, V], to rounding; returns "
          "whether every x was finite");
    m.def("nucleus_rows", &calls::nucleus_rows, py::arg("p"), py::arg("top_p"),
          "top-p of the float64 probability rows p [R, V] in place (process_logits' rule), renormalised");
    m.def("sample_rows", &calls::sample_rows, py::arg("p"), py::arg("u"), py::arg("out"),
          "out[r] (int64) = ops.sampling.sample_inverse_cdf of the float64 row p[r] with the float64 uniform u[r]");
    m.def("fixed_probs_rows", &calls::fixed_probs_rows, py::arg("x"), py::arg("scale"), py::arg("shift"),
          py::arg("top_k"), py::arg("top_p_fixed"), py::arg("tables"), py::arg("w"), py::arg("z"), py::arg("avx512") = true,
          "w [R, V], z [R] (int64) = ops.accept_prefix.torch_impl.fixed_probs of the float32 rows x [R, V] (bit for "
          "bit; sampling.fixed_params' scale, shift, top_p_fixed; tables = sampling.exp2_tables() [3, 256] int64); "
          "returns whether every x was finite; avx512=False: the scalar loop even where the AVX-512 one runs");
    m.def("fixed_rows_avx512", &tt_cpu::fixed_rows_avx512, "whether fixed_probs_rows' AVX-512 loop runs on this CPU");
    m.def("residual_rows", &calls::residual_rows, py::arg("pw"), py::arg("z"), py::arg("q"), py::arg("out"),
          "out [R, V] (int64) = torch_impl.residual_weights of the weights pw [R, V], their sums z [R] and the "
          "float32 rows q [R, V]");
    m.def("sample_fixed_rows", &calls::sample_fixed_rows, py::arg("w"), py::arg("u"), py::arg("out"),
          "out[r] (int64) = torch_impl.sample_fixed of the int64 weights w[r] with the 24-bit integer uniform u[r]");
    m.def("fma_peak_gflops", &calls::fma_peak_gflops, py::arg("iterations"),
          "GFLOP/s of a register-only loop of fp32 FMAs on the calling thread (12 independent chains)");
    m.def("attention", &calls::attention, py::arg("q"), py::arg("k_cache"), py::arg("v_cache"), py::arg("out"),
          py::arg("pos"), py::arg("scale"),
          "out [B, T, Hq, D] = attention of q [B, T, Hq, D] on caches [B, Hkv, S, D], row t of b seeing keys "
          "0..pos[b]+t; float32");
}
