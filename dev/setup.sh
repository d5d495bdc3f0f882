#!/usr/bin/env bash
# Create .venv (Python 3.11) and install soilwatch with its pinned dependencies; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
# torch/torchvision are pinned in pyproject.toml; pip takes them from the local wheel cache when it has them.
stamp=.venv/.soilwatch-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q -e ".[test,train]" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
  .venv/bin/python -c "import soilwatch, detector, models" 
  touch "$stamp"
fi
