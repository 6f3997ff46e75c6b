#!/usr/bin/env bash
# The accelerator run of the GPU issue, as one command (under 8 minutes on an
# H100). Prepare here first:
#   python benchmarks/gpu_table1.py pack --data /tmp/sed_bench   # .gpu/
# then, through the device tool: command "bash benchmarks/gpu_run.sh",
# carry [".gpu"]. Every step writes under $OUT (at most 8 files come back):
#   pytest_gpu.log  the GPU tests (tests/test_gpu.py and the gpu-marked ones)
#   speed.json      gpu_speed.py: matmul peak, forward TFLOP/s, clips/s, RTF
#   results.json    gpu_table1.py train: events and histories of each run
#   frames.npz      the frame probabilities of the validation soundscapes
#   run.log         everything printed
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
timeout ${SPEED_TIMEOUT:-120} $PY benchmarks/gpu_speed.py --out "$OUT/speed.json"
echo "== speed: $((SECONDS - start)) s"
start=$SECONDS
timeout ${TRAIN_TIMEOUT:-260} $PY benchmarks/gpu_table1.py train --pack .gpu \
    --out "$OUT" --budget ${TRAIN_BUDGET:-150} "$@"
echo "== Table 1 training: $((SECONDS - start)) s"
ls -la "$OUT"
