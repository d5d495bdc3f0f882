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
  # pip's output (build-backend notices included) goes to a log, shown only when the install fails
  if ! .venv/bin/python -m pip install -q -e ".[test,train]" > .venv/pip-install.log 2>&1; then
    cat .venv/pip-install.log >&2
    echo "setup: pip install failed (output above, also in .venv/pip-install.log)" >&2
    exit 1
  fi
  .venv/bin/python -c "import soilwatch, detector, models" 
  touch "$stamp"
fi
# The shipped network's encoder starts from an aerial MobileNetV3 inside the kelp-o-matic wheel (MIT; only training
# from scratch needs it, models/changenet.py). Its own pins (torchvision<0.17) do not fit ours, so no dependencies.
if ! .venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('kelp_o_matic') is None)"; then
  if ! .venv/bin/python -m pip install -q --no-deps kelp-o-matic==0.8.0 > .venv/pip-install-kelp.log 2>&1; then
    cat .venv/pip-install-kelp.log >&2
    echo "setup: pip install --no-deps kelp-o-matic==0.8.0 failed (output above)" >&2
    exit 1
  fi
fi
