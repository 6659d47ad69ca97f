#!/usr/bin/env bash
# The GPU benchmarks at the real model shapes (random weights), as one prepared device run.
#
# Here (with network to PyPI), once per session: fetch the wheels the GPU machine lacks.
#   bash bench/gpu_checks.sh prepare            # .whl/ is git-ignored; `prepare qlora` adds bitsandbytes
# On the device machine (the `device` tool's run, carry [".whl"], timeout_s <= 600):
#   bash bench/gpu_checks.sh run critic constrained    # then, in a second call: run round
#   (any of: critic round constrained rl sft; RR_GPU_BUDGET_S caps one call, default 570 s)
# Each benchmark gets its own time limit and writes its log to $OUT/<name>.log; the figures go into
# bench/README.md (and the summary in the README) with the device name the logs print.
set -uo pipefail
cd "$(dirname "$0")/.."

# Missing on the GPU image (it has torch, transformers, accelerate, peft, pillow, pyyaml, tqdm).
WHEELS=(diffusers==0.42.1 importlib_metadata xgrammar==0.2.8 apache-tvm-ffi pydantic pydantic-core
        annotated-types typing-inspection)

prepare() {  # `prepare qlora` also fetches bitsandbytes (for the sft check's QLoRA run)
  mkdir -p .whl
  [[ "${1:-}" == qlora ]] && WHEELS+=(bitsandbytes)
  for wheel in "${WHEELS[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
      --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d .whl "$wheel" || { echo "could not fetch $wheel" >&2; exit 1; }
  done
  du -sh .whl
}

START=$SECONDS
BUDGET=${RR_GPU_BUDGET_S:-570}  # one device call may run 600 s

run_one() {  # name, time limit in seconds, command...
  local name=$1 limit=$2
  shift 2
  if (( SECONDS - START + limit > BUDGET )); then
    echo "== $name skipped: ${limit}s would pass the ${BUDGET}s budget of this call (run it in the next one)"
    return
  fi
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" 2>&1 | tee "${OUT:-/tmp}/$name.log"
  echo "== $name exit ${PIPESTATUS[0]} after $((SECONDS - START))s"
}

# Sized for a 15-minute device budget (H200 estimates from the issue's figures: plain generate
# 21 tok/s at batch 1, a compile 50-100 s): `run critic constrained` in one call (~500 s), `run
# round` in a second (~240 s).
run() {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
  export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor  # shared by the benchmarks of one call: same shapes compile once
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "${OUT:-/tmp}/gpu.txt"
  for check in "$@"; do
    case $check in
      critic) run_one critic_speed 300 python3 -m bench.critic_speed --real-shape --skip-overhead \
                --new-tokens 128 --image-side 1024 --repeats 1 --fast-batch-sizes 1 8 --static-batch-sizes 1 \
                --prefix-batch-sizes 4 ;;
      constrained) run_one constrained_speed 200 python3 -m bench.constrained_speed --real-shape \
                     --batch-sizes 1 --repeats 2 --caps both ;;
      round) run_one round_latency 240 python3 -m bench.round_latency --real-shape --rounds 2 --new-tokens 256 ;;
      rl) run_one rl_step 300 python3 -m bench.rl_step --real-shape ;;
      sft)  # QLoRA needs bitsandbytes, not on the GPU image: `prepare qlora` carries it (43 MB)
        methods=lora; python3 -c "import bitsandbytes" 2>/dev/null && methods=lora,qlora
        run_one sft_speed 300 python3 -m bench.sft_speed --real-shape --methods "$methods" ;;
      *) echo "unknown check $check (critic, round, constrained, rl, sft)" >&2 ;;
    esac
  done
}

case "${1:-}" in
  prepare) shift; prepare "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: bash bench/gpu_checks.sh prepare | run CHECK..." >&2; exit 2 ;;
esac
