#!/usr/bin/env bash
# The speculative step on a mock n150 (tools/conformance/step.py) in the conformance environment: sets up .venv-tt
# (setup.sh; quick when done), then runs step.py in it. Arguments go to step.py (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tools/conformance/setup.sh
exec "${TT_SPECDEC_TT_VENV:-.venv-tt}/bin/python" tools/conformance/step.py "$@"
