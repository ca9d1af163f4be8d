#!/usr/bin/env bash
# Set up Quagga on a Debian machine: system packages, a virtual environment, the Python packages.
# Idempotent; safe to re-run.  Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v iverilog >/dev/null 2>&1 || need_apt+=(iverilog)
for tool in make g++ perl; do command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool"); done
# jemalloc: the allocator of training processes (training/allocator.py)
have_jemalloc=""
for lib in /usr/lib/*/libjemalloc.so.2 /usr/lib64/libjemalloc.so.2 /usr/lib/libjemalloc.so.2; do
  if [ -e "$lib" ]; then have_jemalloc=1; fi
done
[ -n "$have_jemalloc" ] || need_apt+=(libjemalloc2)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing system packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# pip only: it takes the local CPU build of torch==2.13.0 (uv/poetry would fetch a CUDA build).
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[dev]'
echo "setup: done; the command line is .venv/bin/quagga"
