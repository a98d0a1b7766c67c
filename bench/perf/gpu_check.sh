#!/usr/bin/env bash
# The prepared GPU check (bench/perf/gpu_check.py; docs/gpu.md says how to run it on a lent GPU).
#
#   bash bench/perf/gpu_check.sh --prepare          HERE, where the package index is reachable:
#       downloads the wheels the GPU machine's image lacks (array-api-compat, array-api-strict,
#       threadpoolctl; Python 3.12) into .gpu-wheels/ with the source commit (prepared_from.json: the tree
#       that travels has no .git). The folder is git-ignored: carry it.
#   bash bench/perf/gpu_check.sh [OUT_DIR] [--dry]  THERE: installs those wheels offline into a
#       private folder and runs every step, each in its own process under its own time cap
#       (290 s of caps in all: a second run fits a 15-minute lease), refreshing OUT_DIR/
#       summary.json after each. --dry: CPU only, small sizes (the tests run it).
#
# Environment: PYTHON (python3), GPU_CHECK_WHEELS (.gpu-wheels), GPU_CHECK_WORK (fig4's work
# folder, emptied first; results/gpu/_work), GPU_CHECK_CAP_<STEP> (a step's cap in seconds),
# GPU_CHECK_STEPS (only these steps, e.g. "fig4,tests" for a rerun; default all),
# GPU_CHECK_CAP_SCALE (every default cap times this: the dry run on a shared, loaded CPU).
set -uo pipefail
cd "$(dirname "$0")/../.."   # the repository root: the folder holding bench/ and lae_core/
py="${PYTHON:-python3}"
wheels="${GPU_CHECK_WHEELS:-.gpu-wheels}"
work="${GPU_CHECK_WORK:-results/gpu/_work}"
# What the image lacks (its package list: docs/gpu.md); pure Python, one version of each
NEEDED=("array-api-compat>=1.9" "array-api-strict>=2.2" "threadpoolctl>=3")

die() { echo "gpu-check: $*" >&2; exit 2; }

prepare() {
    rm -rf "$wheels" && mkdir -p "$wheels" || die "cannot create $wheels"
    local platforms=() n
    for n in 28 27 17; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${platforms[@]}" --platform manylinux2014_x86_64 \
        -d "$wheels" "${NEEDED[@]}" \
        || die "pip could not download ${NEEDED[*]} (is the package index reachable?)"
    local commit dirty
    commit=$(git rev-parse HEAD 2>/dev/null) || die "not a git checkout: no commit to record"
    dirty=false
    # untracked files travel too (all but the ignored ones): they make the tree dirty
    [ -z "$(git status --porcelain)" ] || dirty=true
    # provenance (bench.sweep.env.git_state) reads this where the tree has no .git
    printf '{"commit": "%s", "dirty": %s, "prepared_utc": "%s"}\n' "$commit" "$dirty" \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$wheels/prepared_from.json"
    echo "gpu-check: prepared $wheels/: $(ls "$wheels" | tr '\n' ' ')(commit ${commit:0:12}," \
         "dirty $dirty)"
}

install_wheels() {
    # The machine reaches no index: the prepared wheels, by file, into a private folder
    if ls "$wheels"/*.whl >/dev/null 2>&1; then
        site=$(mktemp -d "${TMPDIR:-/tmp}/lae-gpu-check-site.XXXXXX")
        trap 'rm -rf "$site"' EXIT
        "$py" -m pip install -q --no-index --no-deps --no-compile --find-links "$wheels" \
            --target "$site" "$wheels"/*.whl || die "offline install of $wheels/*.whl failed"
        export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    elif ! "$py" -c "import array_api_compat" 2>/dev/null; then
        die "array-api-compat is missing and $wheels/ holds no wheels: run" \
            "'bash bench/perf/gpu_check.sh --prepare' where the index is reachable, and carry" \
            "$wheels"
    fi
}

cap_of() {   # a step's cap: GPU_CHECK_CAP_<STEP>, else the default times GPU_CHECK_CAP_SCALE
    local var="GPU_CHECK_CAP_${1^^}"
    [ -n "${!var:-}" ] && { echo "${!var}"; return; }
    awk -v cap="$2" -v scale="${GPU_CHECK_CAP_SCALE:-1}" \
        'BEGIN { c = cap * scale; printf "%d\n", (c == int(c)) ? c : int(c) + 1 }'
}

[ "${1:-}" = "--prepare" ] && { prepare; exit $?; }
out="${1:-}"
[ "$out" = "--dry" ] && out=""
dry=()
for arg in "$@"; do [ "$arg" = "--dry" ] && dry=(--dry); done
install_wheels
if [ -z "$out" ]; then
    if [ ${#dry[@]} -eq 0 ] && command -v nvidia-smi >/dev/null; then
        device=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 \
                 | tr -c 'A-Za-z0-9._\n-' '-')
    else
        device=dry
    fi
    out="results/gpu/$(date -u +%Y-%m-%d)-${device}"
fi
mkdir -p "$out" || die "cannot create $out"
out=$(cd "$out" && pwd)
export PYTHONUNBUFFERED=1
status=0
done_steps=""
# Step and default cap (s), most informative first: 10 + 45 + 60 + 20 + 120 + 35 = 290 s; the
# summary refresh after each is capped at 1-2 s more (standard library only, ~0.1 s).
for step_cap in info:10 smoke:45 speed:60 parity:20 fig4:120 tests:35; do
    step=${step_cap%%:*}
    case ",${GPU_CHECK_STEPS:-$step}," in *",$step,"*) ;; *) continue ;; esac
    cap=$(cap_of "$step" "${step_cap##*:}")
    start=$(date +%s.%N)
    timeout --signal=INT --kill-after=5 "$cap" \
        "$py" -m bench.perf.gpu_check --out "$out" --step "$step" --work "$work" "${dry[@]}"
    code=$?
    seconds=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $start }")
    echo "gpu-check: $step exit $code after $seconds s (cap $cap s)" >&2
    [ "$code" -eq 0 ] || status=1
    done_steps="${done_steps:+$done_steps,}$step:$code:$seconds:$cap"
    timeout --kill-after=1 2 "$py" -m bench.perf.gpu_summary "$out" --steps "$done_steps" \
        "${dry[@]}" || echo "gpu-check: the summary refresh after $step failed" >&2
done
echo "gpu-check: files in $out: $(ls "$out" | tr '\n' ' ')" >&2
exit $status
