#!/usr/bin/env bash
# The prepared GPU check (see bench/perf/gpu_check.py): tests with CuPy, CPU/GPU parity, per-epoch
# timings and the fig4 preset, all under one results folder.
#   bash bench/perf/gpu_check.sh [OUT_DIR]        on a machine with a CUDA GPU and CuPy
#   bash bench/perf/gpu_check.sh OUT_DIR --dry    CPU only, small sizes (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/../.."   # the folder holding the bench package
out="${1:-}"
shift || true
exec "${PYTHON:-python3}" -m bench gpu-check ${out:+--out "$out"} "$@"
