#!/usr/bin/env bash
# Start a PostgreSQL server on 127.0.0.1:5432 for the storage tests and print the line that points them
# at it. Idempotent: installs, creates the cluster, role and database only when missing.
# Usage (after apt-get update): eval "$(bash .ci/postgres.sh)"
# Everything but the final export line goes to stderr, so eval only sees the export.
set -euo pipefail

PG_USER="${RR_PG_USER:-rr}"
PG_PASSWORD="${RR_PG_PASSWORD:-rr-test}"
PG_DB="${RR_PG_DB:-rr_test}"
PG_PORT=5432

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

{
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
  fi
  version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
  if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
    as_root pg_createcluster "$version" main --port "$PG_PORT"
  fi
  if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
    as_root pg_ctlcluster "$version" main start -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT"
  fi
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
    sleep 1
  done
  pg_isready -h 127.0.0.1 -p "$PG_PORT"

  # CREATEDB: the tests make a fresh database per test module.
  if ! as_postgres psql -p "$PG_PORT" -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'" | grep -q 1; then
    as_postgres psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -c "CREATE ROLE \"$PG_USER\" LOGIN CREATEDB PASSWORD '$PG_PASSWORD'"
  fi
  # pg_signal_backend: DROP DATABASE ... WITH (FORCE) of a scratch database may have to end an
  # autovacuum worker in it, which needs this role.
  as_postgres psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qc "GRANT pg_signal_backend TO \"$PG_USER\""
  if ! as_postgres psql -p "$PG_PORT" -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    as_postgres createdb -p "$PG_PORT" -O "$PG_USER" "$PG_DB"
  fi
} >&2

echo "export RR_TEST_POSTGRES_URL=postgresql+psycopg://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
