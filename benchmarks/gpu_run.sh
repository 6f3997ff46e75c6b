#!/usr/bin/env bash
# Table 1 at the report's size on an accelerator, as one command. Prepare here:
#   python -m benchmarks.data --data /tmp/sed_bench --pack .gpu
# then, through the device tool: command "bash benchmarks/gpu_run.sh",
# carry [".gpu"]. Every step writes under $OUT (at most 8 files come back):
#   pytest_gpu.log  the GPU tests (tests/test_gpu.py and the gpu-marked ones)
#   speed.json      benchmarks.gpu_speed: matmul peak, forward, clips/s, RTF
#   table1/         benchmarks.table1 run: one record per run
#   run.log         everything printed
# Extra arguments go to `benchmarks.table1 run` (e.g. --seeds 0 1 2).
# A step that fails or overruns its own timeout leaves the others running.
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if [ -z "${SKIP_INSTALL:-}" ]; then  # SKIP_INSTALL=1: a check where all is installed
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .gpu/wheels/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
$PY -c "
import numpy, sklearn, skorch, librosa, soundfile, torch, sed_eval
print('numpy', numpy.__version__, 'sklearn', sklearn.__version__, 'skorch',
      skorch.__version__, 'librosa', librosa.__version__, 'torch', torch.__version__,
      'cuda', torch.cuda.is_available())" || exit 1
start=$SECONDS
timeout 150 $PY -m pytest -m gpu -p no:cacheprovider -q -rs \
    tests/test_gpu.py tests/test_persistence.py 2>&1 | tee "$OUT/pytest_gpu.log"
echo "== GPU tests: $((SECONDS - start)) s"
start=$SECONDS
timeout ${SPEED_TIMEOUT:-120} $PY -m benchmarks.gpu_speed --out "$OUT/speed.json"
echo "== speed: $((SECONDS - start)) s"
start=$SECONDS
timeout ${TRAIN_TIMEOUT:-260} $PY -m benchmarks.table1 run --pack .gpu \
    --out "$OUT/table1" --device cuda --train-dtype bfloat16 \
    --n-filters 64 --crnn-filters 64 --budget ${TRAIN_BUDGET:-150} "$@"
echo "== Table 1 training: $((SECONDS - start)) s"
ls -la "$OUT" "$OUT/table1"
