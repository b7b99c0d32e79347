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
step "torch (CPU wheel pinned by constraints), build tools"
$PIP install -q torch==2.13.0 "setuptools>=77.0.3,<81" wheel ninja
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
"$VENV/bin/python" -c "import mmcv._ext, mmseg.models, mmdet.models, mmrefseg; print('mmrefseg', mmrefseg.__version__, 'ready')"
