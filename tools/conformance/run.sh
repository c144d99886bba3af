#!/usr/bin/env bash
# The conformance check with its own environment: sets up .venv-tt (setup.sh; quick when done),
# then runs check.py in it. Arguments go to check.py (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tools/conformance/setup.sh
exec "${TT_SPECDEC_TT_VENV:-.venv-tt}/bin/python" tools/conformance/check.py "$@"
