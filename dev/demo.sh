#!/usr/bin/env bash
# The main job on a fresh clone: set up, make demo imagery, detect, show the result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/setup.sh
exec .venv/bin/soilwatch demo --overwrite "$@"
