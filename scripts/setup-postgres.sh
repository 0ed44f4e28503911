#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests, on 127.0.0.1 only: Debian's package
# (installed if missing), a fresh cluster in $TRIALRUN_PG_DIR, password authentication.
# Writes the SQLAlchemy URL (with its password) to $TRIALRUN_PG_DIR/url (mode 600) and
# never prints it. Stop it with: bash scripts/setup-postgres.sh stop
set -euo pipefail
DIR="${TRIALRUN_PG_DIR:-/tmp/trialrun-pg}"
PORT="${TRIALRUN_PG_PORT:-54329}"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

if [ "${1:-}" = stop ]; then
  BIN="$(bin_dir)"
  [ -n "$BIN" ] && [ -f "$DIR/data/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null
  exit 0
fi

if [ -z "$(bin_dir)" ]; then
  echo "setup-postgres: installing postgresql from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq postgresql >/dev/null
fi
BIN="$(bin_dir)"

if [ -f "$DIR/data/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  echo "setup-postgres: already running ($DIR)" >&2
  exit 0
fi
rm -rf "$DIR" && mkdir -p "$DIR"
PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)"
printf '%s\n' "$PASSWORD" > "$DIR/pwfile"
[ "$(id -u)" = 0 ] && chown -R postgres "$DIR"
as_pg "$BIN/initdb" -D "$DIR/data" -U trialrun --pwfile="$DIR/pwfile" -A scram-sha-256 >/dev/null
rm -f "$DIR/pwfile"
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start \
  -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DIR -c fsync=off" >/dev/null
umask 077
printf 'postgresql+psycopg://trialrun:%s@127.0.0.1:%s/postgres\n' "$PASSWORD" "$PORT" > "$DIR/url"
[ "$(id -u)" = 0 ] && chown "$(id -un)" "$DIR/url"
echo "setup-postgres: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT; URL in $DIR/url" >&2
