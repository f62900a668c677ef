#!/usr/bin/env bash
# The checks a CPU cannot make, on a machine with an NVIDIA GPU (CI has none, so they run here):
# cuda device choice, bf16 and fp16 (with the gradient scaler's state through a checkpoint and a
# resume), torch.compile, NCCL DDP with the GPUs present, a deliberately huge batch running out of
# memory cleanly, and export parity of GPU-trained weights through plan -> train-baseline ->
# finalize; then images/s on the GPU against the CPU. One PASS/FAIL/SKIP line per check, and the
# exit status is the number of failures. Sized to finish in under 8 minutes on one H200.
#
#   bash scripts/gpu-check.sh [WORKDIR]       # needs torch built for CUDA and mlt's dependencies
#   PYTHON=/path/to/venv/bin/python bash scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
WORK="${1:-/tmp/mlt-gpu-check}"
rm -rf "$WORK" && mkdir -p "$WORK"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "FAIL: torch sees no CUDA device here: $("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>&1)"
    exit 1
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
timeout 470 "$PY" scripts/gpu_check.py --workdir "$WORK"
