#!/usr/bin/env bash
# The conformance check's own environment (tools/conformance/README.md):
#   - Debian packages: clang-19 and the riscv64 C/C++ headers it syntax-checks kernels with;
#   - .venv-tt: Python 3.10 or 3.12 (ttnn 0.81.1 has wheels for those only) with ttnn==0.81.1 and numpy<2,
#     and no torch.
# Idempotent and cached: a second run checks a stamp and the installed packages, and installs nothing.
# Any step that cannot be done exits non-zero with what is missing (the test then FAILS, never skips).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${TT_SPECDEC_TT_VENV:-.venv-tt}
TTNN_REQ="ttnn==0.81.1"
NUMPY_REQ="numpy<2"
APT_PKGS="clang-19 libstdc++-12-dev-riscv64-cross libc6-dev-riscv64-cross linux-libc-dev-riscv64-cross picolibc-riscv64-unknown-elf"

missing=""
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "conformance setup: installing Debian packages:$missing" >&2
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    echo "conformance setup: FAILED: need root (or sudo) to apt-get install$missing" >&2; exit 2
  fi
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq >&2 || { echo "conformance setup: FAILED: apt-get update" >&2; exit 2; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >&2 \
    || { echo "conformance setup: FAILED: apt-get install$missing" >&2; exit 2; }
fi

STAMP="$VENV/.tt_specdec_conformance"
WANT="$TTNN_REQ $NUMPY_REQ"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ]; then
  exit 0
fi
PY=${TT_SPECDEC_TT_PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.12 /root/.pyenv/versions/3.12.1/bin/python3.12 "$HOME/.pyenv/versions/3.12.1/bin/python3.12" \
           python3.10 /root/.pyenv/versions/3.10.13/bin/python3.10; do
    # a pyenv shim exists for versions that are not selected: try it, not just find it
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; assert sys.version_info[:2] in ((3, 10), (3, 12))' \
         >/dev/null 2>&1; then PY=$(command -v "$c"); break; fi
  done
fi
if [ -z "$PY" ]; then
  echo "conformance setup: FAILED: no Python 3.12 or 3.10 found (ttnn 0.81.1 has wheels for cp310/cp312 only);" \
       "set TT_SPECDEC_TT_PYTHON" >&2; exit 2
fi
echo "conformance setup: creating $VENV with $PY and installing $WANT" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" \
  || { echo "conformance setup: FAILED: $PY -m venv $VENV" >&2; exit 2; }
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: "$TTNN_REQ" "$NUMPY_REQ" >&2 \
  || { echo "conformance setup: FAILED: pip install $WANT into $VENV" >&2; exit 2; }
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "conformance setup: FAILED: torch got into $VENV; the check must run without torch" >&2; exit 2
fi
echo "$WANT" > "$STAMP"
