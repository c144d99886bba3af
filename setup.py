from setuptools import find_packages, setup

setup(
    name="tt_specdec",
    version="0.1.0",
    description="Speculative decoding for Tenstorrent hardware (ttnn / TT-Metal), lossless, with a CPU path",
    python_requires=">=3.10",
    packages=find_packages(include=["tt_specdec", "tt_specdec.*"]),
    package_data={"tt_specdec.models": ["weights/*.safetensors"]},
    # torch is pinned to the CPU wheel that lies on this machine's disk; an open range pulls a CUDA build
    install_requires=["torch>=2.1,<=2.13.0", "numpy", "safetensors"],
    extras_require={
        "test": ["pytest", "hypothesis"],
        "plot": ["matplotlib"],
    },
    entry_points={"console_scripts": ["tt-specdec=tt_specdec.cli:main"]},
)
