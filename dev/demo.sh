#!/usr/bin/env bash
# The main job on a fresh clone: set up, make demo imagery, a demo approved-project list and district
# boundaries, scan them through the supervision service, print the suspected violations and how to review
# them in the API. (`soilwatch demo` is the detector-only demo.) Extra arguments go to demo-service.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/setup.sh
exec .venv/bin/soilwatch demo-service "$@"
