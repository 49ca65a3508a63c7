#!/usr/bin/env bash
# rnnbench's GPU check, one command, under 5 minutes on one GPU (issue 18 item 6, issue 19 item 3):
#   1. tests/test_gpu.py: cuDNN gets flat weights (no per-call copy) and matches the CPU; fused equals custom on
#      CUDA; autocast (bf16, fp16) trains every implementation; `trainer=gpu` runs at 32-true, bf16-mixed and
#      16-mixed finish and record the device; `rnnbench-bench --device cuda` measures;
#   2. rnnbench-bench --device cuda at the two benchmark shapes (64x100x32x128, 32x200x64x256): every cell on cuDNN
#      (fused) and on the custom path, train and forward time, peak memory, ratios to torch.nn.LSTM -> JSON + md.
#
#   benchmarks/gpu_check.sh run [DIR]            results into DIR (default: $OUT, else ./gpu-check)
#   benchmarks/gpu_check.sh run --dry-run [DIR]  the same steps on CPU at a tiny shape: checks the script itself
#   benchmarks/gpu_check.sh wheels DIR [HAVE]    where pip reaches PyPI: wheels (CPython 3.12, manylinux x86-64) of
#                                                every dependency the check needs beyond torch, at the versions
#                                                installed here, less the names listed in the file HAVE (what the
#                                                GPU machine already has), for a machine without network: put them
#                                                in .whl/ at the checkout's top
#
# `run` uses $PYTHON (default python3) with the checkout's src/ on PYTHONPATH; wheels in .whl/ at the checkout's
# top, if any, are installed first into a temporary folder. Without a CUDA GPU (and without --dry-run) it stops at
# once with one line and exit code 3. Each step has its own time limit (5 min in all; expected: 2-3 min), and
# writes its log and results as it ends, so a step cut short loses only itself; exit code 1 if any step failed.
# DIR gets 7 files: device.json, nvidia-smi.txt, gpu_tests.txt, and per shape bench_<shape>.txt (the markdown
# tables) and bench_cuda_<shape>.json (the rnnbench-bench document).
# The compiled time loops stay off (RNNBENCH_COMPILED_LOOPS unset): their first build alone takes minutes.
set -uo pipefail
here=$PWD
absolute() { case $1 in /*) echo "$1" ;; *) echo "$here/$1" ;; esac; }
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
verb=${1:-}
shift || true

die() { echo "gpu_check: $1" >&2; exit "${2:-2}"; }

if [ "$verb" = wheels ]; then
    [ -n "${1:-}" ] || die "usage: benchmarks/gpu_check.sh wheels DIR [HAVE]"
    dir=$(absolute "$1"); have=$(absolute "${2:-/dev/null}")
    pins=$("$PYTHON" - "$have" <<'PY'
# rnnbench's dependency closure from the installed metadata, markers read for CPython 3.12 on Linux.
import importlib.metadata as md, re, sys
from packaging.requirements import Requirement
have = set(re.split(r"[\s,]+", open(sys.argv[1]).read().lower().replace("_", "-"))) - {""}
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux", "platform_system": "Linux",
       "platform_machine": "x86_64", "implementation_name": "cpython", "os_name": "posix", "extra": ""}
own = ("torch", "triton")  # the GPU machine's CUDA build, with its nvidia-* libraries
lazy = ("music21", "mlxtend")  # imported by their tasks alone (chorales, seq_digits), which the check never builds
skip = lambda n: n in have or n in own or n in lazy or n.startswith("nvidia-")
todo, pins = ["rnnbench"], {}
while todo:
    for text in md.requires(todo.pop()) or []:
        req = Requirement(text)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if (req.marker and not req.marker.evaluate(env)) or name in pins or skip(name):
            continue
        pins[name] = md.version(name)
        todo.append(name)
print("\n".join(f"{n}=={v}" for n, v in sorted(pins.items())))
PY
) || die "could not read rnnbench's installed dependencies (pip install -e . first)"
    mkdir -p "$dir"
    for pin in $pins; do
        "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            --platform manylinux1_x86_64 -d "$dir" "$pin" 2>/dev/null && continue
        # no wheel published (antlr4-python3-runtime 4.9.3, which hydra-core pins, is a source archive only):
        # build it here, usable there only if it is pure Python
        built=$(mktemp -d)
        "$PYTHON" -m pip wheel -q --no-deps -w "$built" "$pin" > /dev/null 2>&1 && ls "$built"/*-none-any.whl > /dev/null 2>&1 \
            || die "no CPython 3.12 wheel for $pin, and it does not build as a pure-Python one" 1
        mv "$built"/*-none-any.whl "$dir"/
    done
    echo "gpu_check: $(ls "$dir" | wc -l) wheels in $dir ($(du -sh "$dir" | cut -f1))"
    exit 0
fi

[ "$verb" = run ] || die "usage: benchmarks/gpu_check.sh run [--dry-run] [DIR] | wheels DIR [HAVE]"
dry=0
if [ "${1:-}" = --dry-run ]; then dry=1; shift; fi
out=$(absolute "${1:-${OUT:-gpu-check}}")
if [ -d .whl ]; then
    site=$(mktemp -d)
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl || die "installing .whl/ failed" 1
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 WANDB_MODE=offline
export RNNBENCH_CACHE=${RNNBENCH_CACHE:-$(mktemp -d)}
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)' 2>/dev/null
case $? in
    0) device=cuda ;;
    3) [ $dry = 1 ] || die "no CUDA GPU here (torch.cuda.is_available() is False); run it on a GPU machine, or add --dry-run" 3
       device=cpu ;;
    *) die "$PYTHON cannot import torch" 3 ;;
esac
if ! err=$("$PYTHON" -c 'import rnnbench.training.train, rnnbench.benchmark' 2>&1); then
    die "rnnbench does not import ($(echo "$err" | tail -n 1)): pip install -e . there, or carry wheels in .whl/ ('wheels')" 3
fi

mkdir -p "$out"
failed=()
step() {  # step NAME LIMIT_S COMMAND...: run, log to $out/NAME.txt, remember a failure
    local name=$1 limit=$2; shift 2
    echo "gpu_check: $name ..."
    timeout "$limit" "$@" > "$out/$name.txt" 2>&1 || failed+=("$name (exit $?)")
    tail -n 3 "$out/$name.txt"
}
"$PYTHON" -c 'import json, sys, torch; from rnnbench.tracking.device import device_record
print(json.dumps(device_record(torch.device(sys.argv[1]), "32-true"), indent=1))' "$device" > "$out/device.json"
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$out/nvidia-smi.txt" 2>&1
fi
step gpu_tests 150 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_gpu.py
shapes=(64x100x32x128 32x200x64x256) grid=(--repeats 10 --warmup 2)  # every cell, impl, direction, sizing, mode
[ $dry = 0 ] || shapes=(4x5x3x8) grid=(--repeats 2 --warmup 0 --cells lstm gru --directions uni)
for shape in "${shapes[@]}"; do
    step "bench_$shape" 75 "$PYTHON" -m rnnbench.benchmark --device "$device" --threads 1 --shapes "$shape" \
        "${grid[@]}" --json "$out/bench_${device}_$shape.json"  # its log holds the markdown tables
done
if [ ${#failed[@]} -gt 0 ]; then echo "gpu_check: failed: ${failed[*]} (logs in $out/)"; exit 1; fi
echo "gpu_check: done on $device: $(ls "$out" | tr '\n' ' ')"
