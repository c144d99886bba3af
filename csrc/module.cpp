// tt_specdec._emu: a thin binding of the emulator runtime; programs are described and
// kernels JIT-compiled in Python (tt_specdec/emu.py).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "emu_runtime.hpp"

namespace py = pybind11;
using emu::Device;

namespace {

std::vector<std::pair<uint32_t, uint32_t>> cores_of(const py::dict& d) {
    return d["cores"].cast<std::vector<std::pair<uint32_t, uint32_t>>>();
}

}  // namespace

PYBIND11_MODULE(_emu, m) {
    m.doc() = "Host emulator of the TT-Metal kernel API (see DESIGN.md, 'The host emulator').";
    py::register_exception<emu::EmuError>(m, "EmuError", PyExc_RuntimeError);

    m.attr("L1_UNRESERVED_BASE") = emu::L1_UNRESERVED_BASE;
    m.attr("NUM_CBS") = emu::NUM_CBS;
    m.attr("MAX_SEMAPHORES") = emu::MAX_SEMAPHORES;
    m.attr("MAX_RUNTIME_ARGS") = emu::MAX_RTAS;

    py::class_<Device>(m, "Device")
        .def(py::init<uint32_t, uint32_t, uint32_t, uint32_t>(), py::arg("grid_x"), py::arg("grid_y"),
             py::arg("num_dram_banks"), py::arg("l1_size"))
        .def_property_readonly("grid", [](const Device& d) { return py::make_tuple(d.grid_x(), d.grid_y()); })
        .def_property_readonly("num_dram_banks", &Device::num_dram_banks)
        .def_property_readonly("l1_size", &Device::l1_size)
        .def("noc_coord", [](Device& d, uint32_t x, uint32_t y) {
            emu::Core* c = d.core_at(x, y);
            if (!c) throw emu::EmuError("noc_coord: core outside the grid");
            return py::make_tuple(c->noc_x, c->noc_y);
        })
        .def("alloc_dram", &Device::alloc_dram, py::arg("name"), py::arg("num_pages"), py::arg("page_size"))
        .def("write_dram",
             [](Device& d, uint32_t addr, uint32_t page_size, py::buffer data) {
                 py::buffer_info info = data.request();
                 d.write_dram(addr, page_size, static_cast<const uint8_t*>(info.ptr), info.size * info.itemsize);
             })
        .def("read_dram",
             [](Device& d, uint32_t addr, uint32_t page_size, size_t nbytes) {
                 std::string out(nbytes, '\0');
                 d.read_dram(addr, page_size, reinterpret_cast<uint8_t*>(out.data()), nbytes);
                 return py::bytes(out);
             })
        .def("free_all_dram", &Device::free_all_dram)
        .def(
            "run",
            [](Device& d, const py::list& kernels, const py::list& cbs, const py::list& sems, double deadlock_ms) {
                std::vector<emu::KernelSpec> ks;
                for (auto item : kernels) {
                    auto k = item.cast<py::dict>();
                    emu::KernelSpec s;
                    s.name = k["name"].cast<std::string>();
                    s.role = k["role"].cast<std::string>();
                    s.so_path = k["so_path"].cast<std::string>();
                    s.cores = cores_of(k);
                    for (auto kv : k["runtime_args"].cast<py::dict>())
                        s.runtime_args[kv.first.cast<std::pair<uint32_t, uint32_t>>()] =
                            kv.second.cast<std::vector<uint32_t>>();
                    s.common_runtime_args = k["common_runtime_args"].cast<std::vector<uint32_t>>();
                    ks.push_back(std::move(s));
                }
                std::vector<emu::CBSpec> cs;
                for (auto item : cbs) {
                    auto c = item.cast<py::dict>();
                    emu::CBSpec s;
                    s.name = c["name"].cast<std::string>();
                    s.index = c["index"].cast<uint32_t>();
                    s.num_pages = c["num_pages"].cast<uint32_t>();
                    s.page_size = c["page_size"].cast<uint32_t>();
                    s.data_format = c["data_format"].cast<uint32_t>();
                    s.cores = cores_of(c);
                    cs.push_back(std::move(s));
                }
                std::vector<emu::SemaphoreSpec> ss;
                for (auto item : sems) {
                    auto c = item.cast<py::dict>();
                    emu::SemaphoreSpec s;
                    s.id = c["id"].cast<uint32_t>();
                    s.initial_value = c["initial_value"].cast<uint32_t>();
                    s.cores = cores_of(c);
                    ss.push_back(std::move(s));
                }
                std::vector<emu::KernelStats> stats;
                {
                    py::gil_scoped_release release;
                    stats = d.run(ks, cs, ss, deadlock_ms);
                }
                py::list out;
                for (const auto& s : stats) {
                    py::dict e;
                    e["kernel"] = s.kernel;
                    e["core"] = py::make_tuple(s.x, s.y);
                    e["noc_bytes_read"] = s.noc_bytes_read;
                    e["noc_bytes_written"] = s.noc_bytes_written;
                    e["dram_bytes_read"] = s.dram_bytes_read;
                    e["dram_bytes_written"] = s.dram_bytes_written;
                    e["dram_bytes_read_by_buffer"] = s.dram_bytes_read_by_buffer;
                    e["dram_bytes_written_by_buffer"] = s.dram_bytes_written_by_buffer;
                    out.append(e);
                }
                return out;
            },
            py::arg("kernels"), py::arg("cbs"), py::arg("semaphores"), py::arg("deadlock_ms") = 200.0);
}
