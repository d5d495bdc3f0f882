#!/usr/bin/env bash
# Set up and run the whole test suite (lint + pytest). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/setup.sh
.venv/bin/ruff check .
# Browser tests (tests/service/web) drive Debian's Chromium through Playwright (nothing downloads a browser);
# a CJK font so the review map's Chinese renders in their screenshots.
if [ "$(id -u)" = 0 ] && { [ ! -x /usr/bin/chromium ] || [ ! -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ]; }; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-wqy-zenhei >/dev/null
fi
if [ -z "${SOILWATCH_TEST_POSTGRES_URL:-}" ] && [ "$(id -u)" = 0 ] && [ "${SOILWATCH_SKIP_POSTGRES:-0}" != 1 ]; then
  SOILWATCH_TEST_POSTGRES_URL=$(bash dev/postgres.sh)
  export SOILWATCH_TEST_POSTGRES_URL
fi
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected nothing: that is not a failure of the code, but say so loudly.
if [ "$rc" = 5 ]; then echo "WARNING: pytest collected no tests" >&2; exit 0; fi
exit "$rc"
