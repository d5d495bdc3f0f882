#!/usr/bin/env bash
# Start a throwaway PostgreSQL 15 + PostGIS cluster on 127.0.0.1 and print its URL on stdout.
# Installs the Debian packages when missing. Used by dev/test.sh; safe to run twice.
set -euo pipefail
PGBIN=/usr/lib/postgresql/15/bin
if [ ! -x "$PGBIN/initdb" ] || [ ! -e /usr/share/postgresql/15/extension/postgis.control ]; then
  echo "installing postgresql-15 + postgis from Debian packages..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-15-postgis-3) >&2
fi
PGDATA=${SOILWATCH_PGDATA:-/tmp/soilwatch-pg}
PORT=${SOILWATCH_PGPORT:-54329}
if ! runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  rm -rf "$PGDATA"; mkdir -p "$PGDATA"; chown postgres "$PGDATA"
  runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off" \
    -l "$PGDATA/log" -w start >/dev/null
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
