#!/usr/bin/env bash
# The prepared GPU check (see bench/perf/gpu_check.py): each step in its own process under its
# own time cap, so that one slow step cannot eat a lent machine's lease (8 minutes in all).
#   bash bench/perf/gpu_check.sh [OUT_DIR]        on a machine with a CUDA GPU and CuPy
#   bash bench/perf/gpu_check.sh OUT_DIR --dry    CPU only, small sizes (CI runs this)
set -uo pipefail
cd "$(dirname "$0")/../.."   # the folder holding the bench package
out="${1:-}"
shift || true
py="${PYTHON:-python3}"
if [ -z "$out" ]; then
    out=$("$py" -c "from bench.perf.gpu_check import default_out; print(default_out(False))")
fi
mkdir -p "$out"
status=0
# step name and its cap in seconds: 20 + 150 + 45 + 120 + 130 + 15 = 480 s
for step_cap in info:20 tests:150 parity:45 speed:120 fig4:130 summary:15; do
    step=${step_cap%%:*}
    cap=${step_cap##*:}
    start=$(date +%s)
    timeout --signal=INT --kill-after=5 "$cap" "$py" -m bench gpu-check --out "$out" \
        --step "$step" "$@"
    code=$?
    echo "gpu-check: $step exit $code after $(( $(date +%s) - start )) s (cap $cap s)" >&2
    [ "$code" -eq 0 ] || status=1
done
exit $status
