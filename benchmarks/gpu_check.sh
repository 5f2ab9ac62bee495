#!/usr/bin/env bash
# The GPU check: one script for a lent GPU machine, under 8 minutes in all.
#
#   benchmarks/gpu_check.sh [--dry-run] [--out DIR] [--python PY] [--venv DIR]
#
# 1. venv:   a virtual environment with a CUDA build of torch (reuses a CUDA torch that PY already has,
#            through --system-site-packages; else pip installs $TORCH_SPEC from $GPU_CHECK_WHEELS, a folder
#            of wheels, or from $TORCH_INDEX); geopurify itself runs from src/ (PYTHONPATH), not installed.
# 2. tests:  the tests marked `cuda` (pytest -m cuda): pooling, sparse conv forward and backward against
#            the CPU, the student, a short train plus segment on the GPU.
# 3. timing: benchmarks/gpu_timing.py: segment and a training step on cuda and on the cpu, side by side.
# 4. report: gpu_check_report.md (+ gpu_timing.json, gpu_check.log) in $OUT if set, else --out DIR,
#            else ./gpu_check_out.
#
# --dry-run does the CPU side only, quickly (the test suite runs it): prints the plan, checks that the
# files it calls exist, uses PY as it is (no venv, no download), collects the cuda tests without running
# them and runs gpu_timing.py --tiny on the cpu. Exit status: 0 every step passed, 1 a step failed,
# 3 bad arguments.
set -uo pipefail

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

DRY=0
OUT_DIR="${OUT:-}"
PY="${PYTHON:-python3}"
VENV=""
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
TORCH_INDEX="${TORCH_INDEX:-https://download.pytorch.org/whl/cu128}"
WHEELS="${GPU_CHECK_WHEELS:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --out) OUT_DIR="${2:?--out needs a folder}"; shift ;;
        --python) PY="${2:?--python needs an interpreter}"; shift ;;
        --venv) VENV="${2:?--venv needs a folder}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 3 ;;
    esac
    shift
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${OUT_DIR:-$PWD/gpu_check_out}"
VENV="${VENV:-$OUT_DIR/venv}"
mkdir -p "$OUT_DIR" || { echo "gpu_check.sh: cannot create $OUT_DIR" >&2; exit 3; }
REPORT="$OUT_DIR/gpu_check_report.md"
TIMING_JSON="$OUT_DIR/gpu_timing.json"
LOG="$OUT_DIR/gpu_check.log"
: > "$LOG"
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"

# step timeouts (seconds): 210 + 120 + 120 = 7.5 minutes at most
T_VENV=210 T_TESTS=120 T_TIMING=120
MODE=$([ "$DRY" = 1 ] && echo "dry run (CPU side only)" || echo "full")
STATUS=()
FAILED=0
NO_CUDA=0

say() { echo "gpu_check: $*" | tee -a "$LOG"; }
record() {  # record NAME STATUS SECONDS DETAIL
    STATUS+=("| $1 | $2 | $3 | $4 |")
    [ "$2" = "ok" ] || [ "$2" = "skipped" ] || FAILED=1
}
run_step() {  # run_step NAME TIMEOUT CMD...: runs, logs, records; returns the command's status
    local name="$1" limit="$2"; shift 2
    local t0 t1 rc
    say "[$name] $*"
    t0=$(date +%s)
    timeout "$limit" "$@" >> "$LOG" 2>&1
    rc=$?
    t1=$(date +%s)
    if [ $rc -eq 0 ]; then
        record "$name" ok "$((t1 - t0))" "\`$*\`"
    elif [ $rc -eq 124 ]; then
        record "$name" "FAILED (timeout ${limit} s)" "$((t1 - t0))" "\`$*\`"
    else
        record "$name" "FAILED (exit $rc)" "$((t1 - t0))" "\`$*\`"
    fi
    return $rc
}

# ---------------------------------------------------------------- plan and files
say "mode: $MODE; repo $REPO; report $REPORT"
say "plan: 1 venv ($([ "$DRY" = 1 ] && echo "use $PY as it is" || echo "$VENV with $TORCH_SPEC, CUDA")); 2 tests (pytest -m cuda$([ "$DRY" = 1 ] && echo ", collect only")); 3 timing (gpu_timing.py$([ "$DRY" = 1 ] && echo " --tiny --devices cpu" || echo " --devices cuda cpu")); 4 report"
missing=()
for f in benchmarks/gpu_timing.py tests/gpu/test_cuda.py tests/pooling/test_pool.py tests/conftest.py \
         src/geopurify/__init__.py pyproject.toml; do
    [ -f "$REPO/$f" ] || missing+=("$f")
done
if [ ${#missing[@]} -gt 0 ]; then
    record files "FAILED" 0 "missing: ${missing[*]}"
else
    record files ok 0 "gpu_timing.py, tests/gpu/test_cuda.py, tests/pooling/test_pool.py, conftest (cuda marker)"
fi

# ---------------------------------------------------------------- 1. venv
VPY="$PY"
if [ "$DRY" = 1 ]; then
    if "$PY" -c "import torch, numpy, scipy, pytest" >> "$LOG" 2>&1; then
        record venv skipped 0 "dry run: $PY as it is ($("$PY" -c 'import torch; print("torch", torch.__version__)'))"
    else
        record venv "FAILED" 0 "$PY cannot import torch, numpy, scipy and pytest"
    fi
else
    build_venv() {
        local site=""
        if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
            site="--system-site-packages"  # this python already has a CUDA torch: reuse it, no download
        fi
        "$PY" -m venv $site "$VENV" || return 1
        local vpy="$VENV/bin/python"
        if ! "$vpy" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
            if [ -n "$WHEELS" ]; then
                "$vpy" -m pip install --no-index --find-links "$WHEELS" "$TORCH_SPEC" || return 1
            else
                "$vpy" -m pip install --index-url "$TORCH_INDEX" "$TORCH_SPEC" || return 1
            fi
        fi
        # geopurify's own dependencies and pytest, unless the (system) site already has them
        if ! "$vpy" -c "import numpy, scipy, PIL, plyfile, safetensors, tqdm, yaml, matplotlib, pytest" 2>/dev/null
        then
            local src=()
            [ -n "$WHEELS" ] && src=(--no-index --find-links "$WHEELS")
            "$vpy" -m pip install "${src[@]}" numpy scipy pillow plyfile safetensors tqdm pyyaml matplotlib \
                pytest || return 1
        fi
        "$vpy" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; \
print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
    }
    export PY VENV WHEELS TORCH_SPEC TORCH_INDEX
    export -f build_venv
    if run_step venv "$T_VENV" bash -c build_venv; then
        VPY="$VENV/bin/python"
    else
        NO_CUDA=1
        say "no CUDA torch: the cuda tests and timings need one, skipped; see $LOG"
    fi
fi

# ---------------------------------------------------------------- 2. the cuda-marked tests
cd "$REPO" || exit 1
if [ "$DRY" = 1 ]; then
    # collect only: the marker exists and selects the GPU tests; on this CPU they would skip cleanly
    if run_step tests "$T_TESTS" "$VPY" -m pytest -p no:cacheprovider -o addopts="" -m cuda --collect-only -q \
        tests/gpu tests/pooling/test_pool.py
    then
        n=$(grep -cE '^tests/.*::' "$LOG" || true)
        say "cuda-marked tests collected: $n"
        [ "$n" -ge 4 ] || record tests "FAILED" 0 "only $n cuda-marked tests collected (expected >= 4)"
    fi
elif [ "$NO_CUDA" = 1 ]; then
    record tests skipped 0 "no CUDA torch (venv step)"
else
    run_step tests "$T_TESTS" "$VPY" -m pytest -p no:cacheprovider -o addopts="" -m cuda -q -rs tests
fi

# ---------------------------------------------------------------- 3. timing: cuda against the cpu
if [ "$DRY" = 1 ]; then
    run_step timing "$T_TIMING" "$VPY" benchmarks/gpu_timing.py --tiny --devices cpu --json "$TIMING_JSON"
elif [ "$NO_CUDA" = 1 ]; then
    record timing skipped 0 "no CUDA torch (venv step)"
else
    run_step timing "$T_TIMING" "$VPY" benchmarks/gpu_timing.py --devices cuda cpu --repeat 3 --train-steps 3 \
        --json "$TIMING_JSON"
fi

# ---------------------------------------------------------------- 4. report
{
    echo "# GPU check ($MODE)"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n), $(uname -sm); python: $VPY"
    if command -v nvidia-smi > /dev/null 2>&1; then
        echo
        echo '```'
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -5
        echo '```'
    fi
    echo
    echo "| step | status | seconds | what ran |"
    echo "|---|---|---|---|"
    printf '%s\n' "${STATUS[@]}"
    echo
    if [ -f "$TIMING_JSON" ]; then
        echo "Timings (median seconds; segment = api.segment wall time, step = one distillation step):"
        echo
        "$VPY" - "$TIMING_JSON" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"torch {r['torch']}, CUDA {r['cuda']}, GPU {r['gpu']}; {r['voxels']} voxels at 2 cm")
print()
print("| device | segment s | train step s | segment speed-up vs cpu | step speed-up vs cpu |")
print("|---|---|---|---|---|")
for dev, f in r["devices"].items():
    if "skipped" in f:
        print(f"| {dev} | skipped: {f['skipped']} | | | |")
        continue
    up = f.get("segment_speedup_vs_cpu")
    st = f.get("train_step_speedup_vs_cpu")
    print(f"| {dev} | {f['segment_s']:.3f} | {f['train_step_s']:.4f} | "
          f"{'' if up is None else f'{up:.1f}x'} | {'' if st is None else f'{st:.1f}x'} |")
PYEOF
    fi
    echo
    echo "Full output: $(basename "$LOG")."
} > "$REPORT" 2>> "$LOG"
say "report: $REPORT"
[ "$FAILED" = 0 ] && say "all steps passed" || say "some step FAILED (see the report)"
exit "$FAILED"
