// The Python-facing calls (calls.hpp): tensor checks at the boundary, then the kernels.
#include "calls.hpp"

#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "fixed_rows.hpp"
#include "fma_peak.hpp"
#include "sampling_rows.hpp"

namespace tt_cpu::calls {

namespace {

enum class DType { f32, f64, i64, bf16 };

const char* dtype_name(DType d) {
    switch (d) {
        case DType::f32: return "torch.float32";
        case DType::f64: return "torch.float64";
        case DType::i64: return "torch.int64";
        default: return "torch.bfloat16";
    }
}

// torch's Tensor type, dtypes and the attribute names read from a tensor, looked up once (references kept for
// the life of the process): the checks then cost a few attribute reads per tensor, no string building
struct Torch {
    py::handle tensor, f32, f64, i64, bf16;
    py::handle dtype, is_cpu, shape, is_contiguous, data_ptr;
};
const Torch& torch_handles() {
    static const Torch t = [] {
        py::module_ torch = py::module_::import("torch");
        auto keep = [&](const char* name) { return py::object(torch.attr(name)).release(); };
        auto name = [](const char* n) { return py::str(n).release(); };
        return Torch{keep("Tensor"), keep("float32"), keep("float64"), keep("int64"), keep("bfloat16"),
                     name("dtype"), name("is_cpu"), name("shape"), name("is_contiguous"), name("data_ptr")};
    }();
    return t;
}
py::handle dtype_handle(DType d) {
    const Torch& t = torch_handles();
    switch (d) {
        case DType::f32: return t.f32;
        case DType::f64: return t.f64;
        case DType::i64: return t.i64;
        default: return t.bf16;
    }
}

std::string shape_str(const std::vector<int64_t>& v) {  // -1 (any size) as *
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + (v[i] < 0 ? std::string("*") : std::to_string(v[i]));
    return s + "]";
}

[[noreturn]] void fail(const char* name, const std::string& got, const std::string& expected) {
    throw std::invalid_argument(std::string(name) + ": got " + got + ", expected " + expected);
}

struct Tensor {
    void* data;
    std::vector<int64_t> shape;
    DType dtype;
};

// `obj` as the argument `name`: a torch.Tensor of one of `dtypes` in contiguous CPU memory, of shape `shape`
// (-1: any size); `dims` names its dimensions for the message, e.g. "[R, V]"
Tensor tensor(py::handle obj, const char* name, std::initializer_list<DType> dtypes, const char* dims,
              const std::vector<int64_t>& shape) {
    if (!py::isinstance(obj, torch_handles().tensor))
        fail(name, py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>(),
             "a torch.Tensor " + std::string(dims));
    const Torch& t = torch_handles();
    py::object dtype = obj.attr(t.dtype);
    auto match = std::find_if(dtypes.begin(), dtypes.end(), [&](DType d) { return dtype.is(dtype_handle(d)); });
    if (match == dtypes.end()) {
        std::string want;
        for (DType d : dtypes) want += (want.empty() ? "" : " or ") + std::string(dtype_name(d));
        fail(name, "dtype " + py::str(dtype).cast<std::string>(), want);
    }
    if (py::object(obj.attr(t.is_cpu)).ptr() != Py_True)
        fail(name, "device " + py::str(obj.attr("device")).cast<std::string>(), "cpu");
    py::tuple size = obj.attr(t.shape);  // torch.Size, a tuple of ints
    std::vector<int64_t> got(size.size());
    for (size_t i = 0; i < got.size(); ++i) got[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(size.ptr(), i));
    bool same = got.size() == shape.size();
    for (size_t i = 0; same && i < got.size(); ++i) same = shape[i] < 0 || shape[i] == got[i];
    if (!same) fail(name, "shape " + shape_str(got), std::string(dims) + " = " + shape_str(shape));
    if (obj.attr(t.is_contiguous)().ptr() != Py_True) {  // its rule: a dimension of size 1 may have any stride
        std::vector<int64_t> want(got.size());
        int64_t step = 1;
        for (size_t i = got.size(); i-- > 0; step *= got[i]) want[i] = step;
        fail(name, "strides " + shape_str(obj.attr("stride")().cast<std::vector<int64_t>>()),
             "contiguous strides " + shape_str(want));
    }
    return {PyLong_AsVoidPtr(obj.attr(t.data_ptr)().ptr()), got, *match};
}

template <typename T>
T* data(const Tensor& t) {
    return static_cast<T*>(t.data);
}

void require(bool ok, const char* name, const std::string& got, const std::string& expected) {
    if (!ok) fail(name, got, expected);
}

// a linear of the model must map `k` inputs to `n` outputs
void check_linear(const std::shared_ptr<PackedLinear>& lin, const char* name, const char* dims, int64_t n, int64_t k,
                  MatrixPath path) {
    require(lin != nullptr, name, "None", "a PackedLinear " + std::string(dims));
    // one path per model: its decode and its verify then run the same kernel (exact mode)
    require(lin->path == path, name, std::string("a PackedLinear on path ") + path_name(lin->path),
            std::string("the model's path ") + path_name(path));
    require(lin->n == n && lin->k == k, name, "a PackedLinear [n, k] = " + shape_str({lin->n, lin->k}),
            std::string(dims) + " = " + shape_str({n, k}));
}

void check_sampling(double temperature, int64_t top_k, double top_p) {
    require(temperature > 0.0 && std::isfinite(temperature), "temperature", std::to_string(temperature),
            "a finite value > 0");
    require(top_k >= 0, "top_k", std::to_string(top_k), "an integer >= 0 (0 = no top-k)");
    require(top_p > 0.0 && top_p <= 1.0, "top_p", std::to_string(top_p), "a value in (0, 1]");
}

// pos[b] + T keys must fit the cache (and the RoPE table, `limit` = min(S, max_len))
void check_positions(const std::vector<int64_t>& pos, int64_t T, int64_t limit) {
    for (int64_t p : pos)
        require(p >= 0 && p + T <= limit, "pos", std::to_string(p) + " with T=" + std::to_string(T),
                "0 <= pos and pos + T <= " + std::to_string(limit));
}

}  // namespace

MatrixPath path_or_default(const std::optional<std::string>& path) {
    if (!path) return default_path();
    MatrixPath p = path_from_name(*path);
    if (!supported(p)) {
        std::string have;
        for (MatrixPath q : supported_paths()) have += (have.empty() ? "" : ", ") + std::string(path_name(q));
        fail("path", "'" + *path + "', which this CPU cannot run", "one of " + have);
    }
    return p;
}

std::shared_ptr<PackedLinear> packed_linear(py::handle weight, const std::optional<std::string>& path) {
    Tensor w = tensor(weight, "weight", {DType::f32, DType::bf16}, "[N, K]", {-1, -1});
    MatrixPath p = path_or_default(path);
    py::gil_scoped_release release;
    return std::make_shared<PackedLinear>(w.data, w.shape[0], w.shape[1], w.dtype == DType::bf16, p);
}

void linear_forward(const PackedLinear& self, py::handle x, py::handle out) {
    Tensor xs = tensor(x, "x", {DType::f32}, "[M, K]", {-1, self.k});
    Tensor os = tensor(out, "out", {DType::f32}, "[M, N]", {xs.shape[0], self.n});
    py::gil_scoped_release release;
    self.run(data<float>(xs), data<float>(os), xs.shape[0]);
}

void attention(py::handle q, py::handle k_cache, py::handle v_cache, py::handle out, const std::vector<int64_t>& pos,
               float scale) {
    Tensor qs = tensor(q, "q", {DType::f32}, "[B, T, Hq, D]", {static_cast<int64_t>(pos.size()), -1, -1, -1});
    int64_t B = qs.shape[0], T = qs.shape[1], Hq = qs.shape[2], D = qs.shape[3];
    Tensor ks = tensor(k_cache, "k_cache", {DType::f32}, "[B, Hkv, S, D]", {B, -1, -1, D});
    int64_t Hkv = ks.shape[1], S = ks.shape[2];
    require(Hkv >= 1 && Hq % Hkv == 0, "k_cache", "Hkv = " + std::to_string(Hkv),
            "a divisor of q's Hq = " + std::to_string(Hq));
    Tensor vs = tensor(v_cache, "v_cache", {DType::f32}, "[B, Hkv, S, D]", ks.shape);
    Tensor os = tensor(out, "out", {DType::f32}, "[B, T, Hq, D]", qs.shape);
    check_positions(pos, T, S);
    py::gil_scoped_release release;
    attend(data<float>(qs), data<float>(ks), data<float>(vs), data<float>(os), pos.data(), B, T, Hq, Hkv, S, D, scale);
}

std::unique_ptr<CpuModel> cpu_model(int64_t dim, int64_t n_heads, int64_t n_kv, int64_t head_dim, int64_t ffn,
                                    float eps, py::handle cos, py::handle sin,
                                    const std::optional<std::string>& path) {
    require(dim >= 1 && ffn >= 1, "dim, ffn_dim", std::to_string(dim) + ", " + std::to_string(ffn), "sizes >= 1");
    require(n_kv >= 1 && n_heads % n_kv == 0, "n_kv_heads", std::to_string(n_kv),
            "a divisor of n_heads = " + std::to_string(n_heads));
    require(head_dim >= 2 && head_dim % 2 == 0, "head_dim", std::to_string(head_dim), "an even size (RoPE's halves)");
    Tensor c = tensor(cos, "cos", {DType::f32}, "[max_len, head_dim]", {-1, head_dim});
    Tensor s = tensor(sin, "sin", {DType::f32}, "[max_len, head_dim]", c.shape);
    return std::make_unique<CpuModel>(dim, n_heads, n_kv, head_dim, ffn, eps, data<float>(c), data<float>(s),
                                      c.shape[0], path_or_default(path));
}

void add_layer(CpuModel& self, py::handle attn_norm, py::handle ffn_norm, std::shared_ptr<PackedLinear> qkv,
               std::shared_ptr<PackedLinear> wo, std::shared_ptr<PackedLinear> gate_up,
               std::shared_ptr<PackedLinear> down) {
    Tensor an = tensor(attn_norm, "attn_norm", {DType::f32}, "[dim]", {self.dim});
    Tensor fn = tensor(ffn_norm, "ffn_norm", {DType::f32}, "[dim]", {self.dim});
    int64_t qd = self.n_heads * self.head_dim;
    check_linear(qkv, "qkv", "[(n_heads + 2 n_kv_heads) head_dim, dim]", qd + 2 * self.n_kv * self.head_dim, self.dim, self.path);
    check_linear(wo, "wo", "[dim, n_heads head_dim]", self.dim, qd, self.path);
    check_linear(gate_up, "gate_up", "[2 ffn_dim, dim]", 2 * self.ffn, self.dim, self.path);
    check_linear(down, "down", "[dim, ffn_dim]", self.dim, self.ffn, self.path);
    self.add_layer(data<float>(an), data<float>(fn), qkv, wo, gate_up, down);
}

void set_head(CpuModel& self, py::handle norm, std::shared_ptr<PackedLinear> head) {
    Tensor ns = tensor(norm, "norm", {DType::f32}, "[dim]", {self.dim});
    check_linear(head, "head", "[V, dim]", head == nullptr ? 0 : head->n, self.dim, self.path);
    self.set_head(data<float>(ns), head);
}

void model_forward(CpuModel& self, py::handle x, py::handle k_cache, py::handle v_cache,
                   const std::vector<int64_t>& pos, py::handle logits, const std::optional<std::vector<int64_t>>& parents,
                   py::handle hidden, const std::optional<std::vector<int64_t>>& hidden_layers) {
    auto layers = static_cast<int64_t>(self.layers.size()), B = static_cast<int64_t>(pos.size());
    Tensor xs = tensor(x, "x", {DType::f32}, "[B, T, dim]", {B, -1, self.dim});
    int64_t T = xs.shape[1];
    Tensor ks = tensor(k_cache, "k_cache", {DType::f32}, "[layers, B, Hkv, S, D]",
                       {layers, B, self.n_kv, -1, self.head_dim});
    Tensor vs = tensor(v_cache, "v_cache", {DType::f32}, "[layers, B, Hkv, S, D]", ks.shape);
    int64_t S = ks.shape[3];
    check_positions(pos, T, std::min(S, self.max_len));
    float* out = nullptr;
    if (!logits.is_none()) {
        require(self.head != nullptr, "logits", "a tensor before set_head", "None");
        out = data<float>(tensor(logits, "logits", {DType::f32}, "[B, T, V]", {B, T, self.head->n}));
    }
    if (parents) {  // [B * T], row-major: the root first, every other row's parent before it
        require(static_cast<int64_t>(parents->size()) == B * T, "parents", std::to_string(parents->size()) + " values",
                "B * T = " + std::to_string(B * T));
        for (int64_t m = 0; m < B * T; ++m) {
            int64_t t = m % T, par = (*parents)[static_cast<size_t>(m)];
            require(t == 0 ? par == -1 : (par >= 0 && par < t), "parents",
                    std::to_string(par) + " for row " + std::to_string(t), t == 0 ? "-1 for row 0" : "0 .. " + std::to_string(t - 1));
        }
    }
    float* kept = nullptr;
    std::vector<int64_t> kept_layers;
    require(hidden.is_none() == !hidden_layers, "hidden, hidden_layers",
            hidden.is_none() ? "hidden_layers without hidden" : "hidden without hidden_layers", "both or neither");
    if (hidden_layers) {  // block counts whose output rows are copied out, in the order the blocks run
        kept_layers = *hidden_layers;
        auto n = static_cast<int64_t>(kept_layers.size());
        for (int64_t j = 0; j < n; ++j) {
            int64_t c = kept_layers[static_cast<size_t>(j)];
            require(c >= 1 && c <= layers && (j == 0 || c > kept_layers[static_cast<size_t>(j - 1)]), "hidden_layers",
                    std::to_string(c) + " at index " + std::to_string(j), "increasing block counts in 1.." + std::to_string(layers));
        }
        require(n >= 1, "hidden_layers", "an empty list", "at least one block count");
        kept = data<float>(tensor(hidden, "hidden", {DType::f32}, "[B, T, n, dim]", {B, T, n, self.dim}));
    }
    py::gil_scoped_release release;
    self.forward(data<float>(xs), data<float>(ks), data<float>(vs), B, T, S, pos, out, parents ? parents->data() : nullptr,
                 kept, kept_layers);
}

void model_logits(CpuModel& self, py::handle x, py::handle out) {
    require(self.head != nullptr, "self", "a CpuModel without a head", "set_head(...) before logits");
    Tensor xs = tensor(x, "x", {DType::f32}, "[M, dim]", {-1, self.dim});
    Tensor os = tensor(out, "out", {DType::f32}, "[M, V]", {xs.shape[0], self.head->n});
    py::gil_scoped_release release;
    self.head_logits(data<float>(xs), xs.shape[0], data<float>(os));
}

bool argmax_rows(py::handle x, py::handle out, py::handle prob) {
    Tensor xs = tensor(x, "x", {DType::f32}, "[M, N]", {-1, -1});
    int64_t M = xs.shape[0], N = xs.shape[1];
    require(N >= 1 || M == 0, "x", "shape " + shape_str(xs.shape), "[M, N] with N >= 1");
    Tensor os = tensor(out, "out", {DType::i64}, "[M]", {M});
    float* p = prob.is_none() ? nullptr : data<float>(tensor(prob, "prob", {DType::f32}, "[M]", {M}));
    py::gil_scoped_release release;
    return tt_cpu::argmax_rows(data<float>(xs), M, N, data<int64_t>(os), p);
}

bool probs_rows(py::handle x, double temperature, int64_t top_k, double top_p, py::handle out) {
    check_sampling(temperature, top_k, top_p);
    Tensor xs = tensor(x, "x", {DType::f32}, "[R, V]", {-1, -1});
    int64_t R = xs.shape[0], V = xs.shape[1];
    require(V >= 1 || R == 0, "x", "shape " + shape_str(xs.shape), "[R, V] with V >= 1");
    Tensor os = tensor(out, "out", {DType::f64}, "[R, V]", xs.shape);
    py::gil_scoped_release release;
    return tt_cpu::probs_rows(data<float>(xs), R, V, temperature, top_k, top_p, data<double>(os));
}

void nucleus_rows(py::handle p, double top_p) {
    require(top_p > 0.0 && top_p <= 1.0, "top_p", std::to_string(top_p), "a value in (0, 1]");
    Tensor ps = tensor(p, "p", {DType::f64}, "[R, V]", {-1, -1});
    require(ps.shape[1] >= 1 || ps.shape[0] == 0, "p", "shape " + shape_str(ps.shape), "[R, V] with V >= 1");
    py::gil_scoped_release release;
    tt_cpu::nucleus_rows(data<double>(ps), ps.shape[0], ps.shape[1], top_p);
}

void sample_rows(py::handle p, py::handle u, py::handle out) {
    Tensor ps = tensor(p, "p", {DType::f64}, "[R, V]", {-1, -1});
    int64_t R = ps.shape[0], V = ps.shape[1];
    require(V >= 1 || R == 0, "p", "shape " + shape_str(ps.shape), "[R, V] with V >= 1");
    Tensor us = tensor(u, "u", {DType::f64}, "[R]", {R});
    Tensor os = tensor(out, "out", {DType::i64}, "[R]", {R});
    py::gil_scoped_release release;
    tt_cpu::sample_rows(data<double>(ps), R, V, data<double>(us), data<int64_t>(os));
}

bool fixed_probs_rows(py::handle x, int64_t scale, int64_t shift, int64_t top_k, int64_t top_p_fixed, py::handle tables,
                      py::handle w, py::handle z, bool avx512) {
    // sampling.fixed_params' ranges: the products of step 3 stay below 2^63, top_p_fixed below 2^32 (0: off)
    require(scale >= (int64_t{1} << 30) && scale < (int64_t{1} << 31), "scale", std::to_string(scale),
            "2^30 <= scale < 2^31 (sampling.fixed_params)");
    require(shift >= -4096 && shift <= 4096, "shift", std::to_string(shift), "-4096 .. 4096 (sampling.fixed_params)");
    require(top_k >= 0, "top_k", std::to_string(top_k), "an integer >= 0 (0 = no top-k)");
    require(top_p_fixed >= 0 && top_p_fixed < (int64_t{1} << 32), "top_p_fixed", std::to_string(top_p_fixed),
            "0 .. 2^32 - 1 (0 = no top-p)");
    Tensor xs = tensor(x, "x", {DType::f32}, "[R, V]", {-1, -1});
    int64_t R = xs.shape[0], V = xs.shape[1];
    require((V >= 1 && V < (int64_t{1} << 31)) || R == 0, "x", "shape " + shape_str(xs.shape),
            "[R, V] with 1 <= V < 2^31");
    Tensor ts = tensor(tables, "tables", {DType::i64}, "[3, 256]", {3, 256});
    const int64_t* t = data<int64_t>(ts);
    for (int i = 0; i < 3 * 256; ++i)  // the products of step 4 stay below 2^63
        require(t[i] >= 0 && t[i] <= (int64_t{1} << 31), "tables", std::to_string(t[i]) + " at " + std::to_string(i),
                "values in 0 .. 2^31 (sampling.exp2_tables())");
    Tensor ws = tensor(w, "w", {DType::i64}, "[R, V]", xs.shape);
    Tensor zs = tensor(z, "z", {DType::i64}, "[R]", {R});
    py::gil_scoped_release release;
    return tt_cpu::fixed_probs_rows(data<float>(xs), R, V, scale, shift, top_k, top_p_fixed, t, data<int64_t>(ws),
                                    data<int64_t>(zs), avx512);
}

void residual_rows(py::handle pw, py::handle z, py::handle q, py::handle out) {
    Tensor ps = tensor(pw, "pw", {DType::i64}, "[R, V]", {-1, -1});
    int64_t R = ps.shape[0];
    Tensor zs = tensor(z, "z", {DType::i64}, "[R]", {R});
    Tensor qs = tensor(q, "q", {DType::f32}, "[R, V]", ps.shape);
    Tensor os = tensor(out, "out", {DType::i64}, "[R, V]", ps.shape);
    const int64_t* zv = data<int64_t>(zs);
    for (int64_t r = 0; r < R; ++r) require(zv[r] >= 0, "z", std::to_string(zv[r]) + " at row " + std::to_string(r),
                                            "a sum of weights >= 0");
    py::gil_scoped_release release;
    tt_cpu::residual_rows(data<int64_t>(ps), zv, data<float>(qs), R, ps.shape[1], data<int64_t>(os));
}

void sample_fixed_rows(py::handle w, py::handle u, py::handle out) {
    Tensor ws = tensor(w, "w", {DType::i64}, "[R, V]", {-1, -1});
    int64_t R = ws.shape[0], V = ws.shape[1];
    require(V >= 1 || R == 0, "w", "shape " + shape_str(ws.shape), "[R, V] with V >= 1");
    Tensor us = tensor(u, "u", {DType::i64}, "[R]", {R});
    Tensor os = tensor(out, "out", {DType::i64}, "[R]", {R});
    const int64_t* uv = data<int64_t>(us);
    for (int64_t r = 0; r < R; ++r)
        require(uv[r] >= 0 && uv[r] < (int64_t{1} << 24), "u", std::to_string(uv[r]) + " at row " + std::to_string(r),
                "0 .. 2^24 - 1 (sampling.uniform_bits)");
    py::gil_scoped_release release;
    tt_cpu::sample_fixed_rows(data<int64_t>(ws), R, V, uv, data<int64_t>(os));
}

double fma_peak_gflops(int64_t iterations) {
    require(iterations >= 1, "iterations", std::to_string(iterations), ">= 1");
    py::gil_scoped_release release;
    return tt_cpu::fma_peak_gflops(iterations);
}

}  // namespace tt_cpu::calls
