#!/usr/bin/env bash
# Create a virtualenv with the whole mmrefseg stack and install mmrefseg into it.
#
#   bash tools/setup_env.sh [VENV_DIR]      (default: .venv next to this repo)
#
# Order matters (see ../requirements/constraints.txt): torch first, then mmcv
# compiled with its ops against that torch without build isolation, then the
# rest. pip caches the built mmcv wheel, so a second venv on the same machine
# takes seconds instead of ~5 minutes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
export PIP_CONSTRAINT="$ROOT/requirements/constraints.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1
step() { echo "[setup_env $(date +%H:%M:%S)] $*"; }

step "virtualenv at $VENV"
"$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
TORCH_VERSION=2.13.0

# Is there a CUDA device here? TORCH_BUILD=cpu|cuda overrides the guess.
has_cuda_device() {
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    return 0
  fi
  [ -e /dev/nvidia0 ] || [ -n "$(ls -A /proc/driver/nvidia/gpus 2>/dev/null)" ]
}
TORCH_BUILD="${TORCH_BUILD:-auto}"
if [ "$TORCH_BUILD" = auto ]; then
  if has_cuda_device; then TORCH_BUILD=cuda; else TORCH_BUILD=cpu; fi
fi

# PyPI's Linux x86-64 torch 2.13.0 is the CUDA 13.0 build: it requires
# cuda-toolkit, cudnn, nccl, ... (about 2.7 GB) and cannot even be imported
# without them (libtorch_cuda.so links libcudnn.so.9), so installing it with
# --no-deps is no way to a CPU torch. The CPU build ("2.13.0+cpu", ~190 MB
# download) comes from the PyTorch CPU wheel index or a local wheel
# directory; pip finds it through the configured indexes/--find-links, or
# through TORCH_CPU_INDEX=<index url> (not tried unless set, so a machine
# that only reaches PyPI does not wait on a timeout).
install_cpu_torch() {
  local extra=()
  if [ -n "${TORCH_CPU_INDEX:-}" ]; then extra=(--extra-index-url "$TORCH_CPU_INDEX"); fi
  $PIP install -q "${extra[@]}" "torch==${TORCH_VERSION}+cpu"
}
step "torch $TORCH_VERSION: $TORCH_BUILD build wanted (no CUDA device found: cpu; TORCH_BUILD=cpu|cuda overrides)"
if [ "$TORCH_BUILD" = cpu ]; then
  if ! install_cpu_torch; then
    step "WARNING: no CPU build torch==${TORCH_VERSION}+cpu reachable by pip;" \
      "installing PyPI's CUDA build with ~2.7 GB of NVIDIA libraries. For the" \
      "CPU build rerun with TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu" \
      "or PIP_FIND_LINKS=<folder with the +cpu wheel>."
    $PIP install -q "torch==${TORCH_VERSION}"
  fi
else
  $PIP install -q "torch==${TORCH_VERSION}"
fi
# Pin the exact build for every later pip call in this script (and say so):
# a requirement such as peft's "torch>=x" can then never swap it.
TORCH_PIN="$VENV/torch-pin.txt"
"$VENV/bin/python" -c "import torch; print('torch==' + torch.__version__)" > "$TORCH_PIN"
export PIP_CONSTRAINT="$PIP_CONSTRAINT $TORCH_PIN"
"$VENV/bin/python" -c "import torch; c = torch.version.cuda; print('[setup_env] installed torch', torch.__version__ + ':', 'CUDA ' + c + ' build' if c else 'CPU-only build')"
step "build tools"
$PIP install -q "setuptools>=77.0.3,<81" wheel ninja
step "runtime requirements"
$PIP install -q -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt" "mmengine>=0.10.7,<1.0"
if ! "$VENV/bin/python" -c "import mmcv._ext" 2>/dev/null; then
  step "mmcv 2.1.0 with compiled ops (about 4-7 minutes on 2 cores the first time)"
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" CFLAGS="${CFLAGS:--g0}" \
    $PIP install -q --no-build-isolation mmcv==2.1.0
fi
step "mmsegmentation, mmdet, mmrefseg (editable)"
$PIP install -q mmsegmentation==1.2.2 mmdet==3.3.0
$PIP install -q --no-build-isolation -e "$ROOT[tests]"
step "import check"
"$VENV/bin/python" -c "import mmcv._ext, mmseg.models, mmdet.models, mmrefseg, torch; print('mmrefseg', mmrefseg.__version__, 'with torch', torch.__version__, 'ready')"
