#!/usr/bin/env bash
# The five-minute device check (issue 31): run from the project root on a lent GPU machine.
#
# Here, once, before the device call (wheels for the device's Python 3.12, into .whl/):
#     bench/gpu_check.sh --wheels
#   = ../shared/tools/gpu-carry/make-wheels.sh, plus pytest and its two dependencies (pinned in
#     envs/requirements.txt; the device image has no pytest), some 1 MB more.
# On the device (the device tool's run, carry [".whl"], timeout_s 540):
#     bench/gpu_check.sh --device cuda
#   installs the carried wheels into /tmp/site (nothing else: no network there), puts a
#   `dmlbench` command on PATH for the Snakemake rules, and runs `python3 -m bench.gpu_check`:
#   the CUDA-only tests, the compile check for 1- and 3-channel images, the epoch log's read
#   order timed, bench.train_speed at one batch size, the demo config through Snakemake timed,
#   bench.overhead --loop-probe. Everything lands in $OUT (gpu_check.json, logs/).
# Here, as a smoke test (tests/unit/bench/test_gpu_check.py runs it, under a minute):
#     OUT=/tmp/check bench/gpu_check.sh --device cpu
set -u
cd "$(dirname "$0")/.." || exit 2

if [ "${1:-}" = "--wheels" ]; then
  ../shared/tools/gpu-carry/make-wheels.sh || exit
  for n in pytest pluggy iniconfig; do
    pin=$(grep -iE "^${n}==" envs/requirements.txt | head -1)
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      -d .whl "$pin" || echo "FAILED: $pin"
  done
  du -sh .whl
  exit 0
fi

PY=${PYTHON:-python3}
if [ -d .whl ] && ! "$PY" -c "import fastai, snakemake" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit
  export PYTHONPATH=/tmp/site:$PWD/src:$PWD PATH=/tmp/site/bin:$PATH
  printf '#!/bin/sh\nexec %s -m dmlbench "$@"\n' "$PY" > /tmp/site/bin/dmlbench
  chmod +x /tmp/site/bin/dmlbench
else
  export PYTHONPATH=$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/dmlbench-inductor}
exec "$PY" -m bench.gpu_check --out "${OUT:-gpu_check}" "$@"
