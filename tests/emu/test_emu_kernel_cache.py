"""The emulator's compiled-kernel cache key (runtime/emu.py) covers what a kernel really includes: its
#include closure, followed through headers as g++ resolves it (the including file's folder, then the
compile's -I folders), and nothing else. Kernel trees here are temporary copies, never the real sources."""
import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from tt_specdec.ops.kv_write.program import kv_write_program
from tt_specdec.runtime import emu

OPS = Path(emu.__file__).resolve().parents[1] / "ops"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture()
def tree(tmp_path) -> Path:
    """ops/op/kernels/reader_k.cpp -> ../../shared/kernels/a.hpp -> sub/b.hpp (beside a.hpp) and local.hpp
    (found through -I <kernel folder> only), plus a file beside the kernel that nothing includes."""
    root = tmp_path / "tree"
    write(root / "ops/op/kernels/reader_k.cpp",
          '#include <cstdint>\n#include "api/dataflow/dataflow_api.h"\n#include "../../shared/kernels/a.hpp"\n'
          "void kernel_main() {}\n")
    write(root / "ops/shared/kernels/a.hpp", '#pragma once\n#include "sub/b.hpp"\n  #  include "local.hpp"\n')
    write(root / "ops/shared/kernels/sub/b.hpp", '#pragma once\n#include "../a.hpp"\nconstexpr int B = 1;\n')  # a cycle
    write(root / "ops/op/kernels/local.hpp", "#pragma once\nconstexpr int LOCAL = 1;\n")
    write(root / "ops/op/kernels/unrelated.hpp", "constexpr int UNRELATED = 1;\n")
    return root


def test_key_follows_includes_through_headers(tree):
    kernel = tree / "ops/op/kernels/reader_k.cpp"
    before = emu._kernel_sources_digest(kernel)
    for header in ("ops/shared/kernels/sub/b.hpp", "ops/op/kernels/local.hpp", "ops/shared/kernels/a.hpp"):
        original = (tree / header).read_text()
        (tree / header).write_text(original + "// edited\n")
        assert emu._kernel_sources_digest(kernel) != before, f"{header} is included, its edit must change the key"
        (tree / header).write_text(original)
        assert emu._kernel_sources_digest(kernel) == before


def test_key_leaves_out_files_nothing_includes(tree):
    kernel = tree / "ops/op/kernels/reader_k.cpp"
    before = emu._kernel_sources_digest(kernel)
    (tree / "ops/op/kernels/unrelated.hpp").write_text("constexpr int UNRELATED = 2;\n")
    write(tree / "ops/op/kernels/new_beside.hpp", "constexpr int NEW = 1;\n")
    assert emu._kernel_sources_digest(kernel) == before


def test_key_names_files_by_their_path_in_the_tree(tree, tmp_path):
    kernel = tree / "ops/op/kernels/reader_k.cpp"
    before = emu._kernel_sources_digest(kernel)
    moved = shutil.copytree(tree, tmp_path / "elsewhere" / "tree")  # another checkout: the same key
    assert emu._kernel_sources_digest(moved / "ops/op/kernels/reader_k.cpp") == before


def test_a_header_beside_the_including_file_comes_before_the_include_folders(tree):
    """g++ looks for "local.hpp" beside a.hpp before the -I folders: the same bytes there are another file."""
    kernel = tree / "ops/op/kernels/reader_k.cpp"
    before = emu._kernel_sources_digest(kernel)
    shutil.copy(tree / "ops/op/kernels/local.hpp", tree / "ops/shared/kernels/local.hpp")
    shadowed = emu._kernel_sources_digest(kernel)
    assert shadowed != before
    (tree / "ops/op/kernels/local.hpp").write_text("constexpr int LOCAL = 2;\n")  # no longer included
    assert emu._kernel_sources_digest(kernel) == shadowed

def test_an_edited_shared_header_is_compiled_again(tmp_path, monkeypatch):
    """A copy of kv_write's writer and the shared kernels folder: an edit of tile_rows.hpp reaches the
    compiler (no stale .so is served), and the unedited tree is found again without a compile."""
    monkeypatch.setenv("TT_SPECDEC_CACHE", str(tmp_path / "cache"))
    shutil.copytree(OPS / "kv_write" / "kernels", tmp_path / "ops/kv_write/kernels")
    shutil.copytree(OPS / "kernels", tmp_path / "ops/kernels")
    real = next(k for k in kv_write_program(2, 3, 1, 32, torch.bfloat16, S=64).kernels if k.role == "writer")
    kernel = dataclasses.replace(real, source=str(tmp_path / "ops/kv_write/kernels" / Path(real.source).name))
    so = emu.compile_kernel(kernel, {})
    shared = tmp_path / "ops/kernels/tile_rows.hpp"
    original = shared.read_text()
    shared.write_text(original + '#error "tile_rows.hpp edited"\n')
    with pytest.raises(emu.EmuError, match="tile_rows.hpp edited"):
        emu.compile_kernel(kernel, {})
    shared.write_text(original)
    write(tmp_path / "ops/kv_write/kernels/notes.hpp", "// beside the kernel, included by nothing\n")
    compiled = emu.compile_stats.compiled
    assert emu.compile_kernel(kernel, {}) == so and emu.compile_stats.compiled == compiled
