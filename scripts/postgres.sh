#!/usr/bin/env bash
# A local PostgreSQL server for the tests of Optuna workers on a database (tests/test_postgres.py)
# and for trying `mlt optimize --storage postgresql://...` by hand.
#
#   bash scripts/postgres.sh          # install when missing (apt-get, as root), start, print the URL
#   bash scripts/postgres.sh --stop   # stop the server (its data folder stays)
#
# Idempotent: an installed PostgreSQL is not installed again, a running server is not started
# again, an existing role and database are kept. The last line on stdout is the SQLAlchemy URL
# (driver psycopg 3); everything else goes to stderr. Settings (environment):
#   MLT_PG_DIR   data folder          (default /tmp/mlt-postgres)
#   MLT_PG_PORT  TCP port, 127.0.0.1  (default 55432)
# The role and database are `mlt` / `mlt_test` with password `mlt`: a throwaway server for tests,
# listening on the loopback interface only.
set -euo pipefail

DIR="${MLT_PG_DIR:-/tmp/mlt-postgres}"
PORT="${MLT_PG_PORT:-55432}"
USER_NAME=mlt
PASSWORD=mlt
DB=mlt_test
log() { echo "postgres.sh: $*" >&2; }

find_bin() {  # the newest installed server's bin folder (Debian keeps them versioned)
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
    done
    command -v pg_ctl >/dev/null 2>&1 && { dirname "$(command -v pg_ctl)"; return 0; }
    return 1
}

BIN="$(find_bin || true)"
if [ -z "$BIN" ]; then
    if [ "$(id -u)" != 0 ]; then
        log "PostgreSQL is not installed and installing it needs root (apt-get install postgresql)"
        exit 1
    fi
    log "installing PostgreSQL (apt-get install postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
    BIN="$(find_bin)"
fi

# initdb and postgres refuse to run as root: as root, run them as the `postgres` user
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if [ "${1:-}" = "--stop" ]; then
    if [ -f "$DIR/data/postmaster.pid" ]; then
        as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >&2
    fi
    exit 0
fi

mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && { id postgres >/dev/null 2>&1 || useradd --system postgres; chown postgres "$DIR"; }
if [ ! -f "$DIR/data/PG_VERSION" ]; then
    log "creating a cluster in $DIR/data"
    as_owner "$BIN/initdb" -D "$DIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
fi
if ! as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
    log "starting the server on 127.0.0.1:$PORT"
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=200" start >&2 \
        || { tail -20 "$DIR/server.log" >&2; exit 1; }
fi

psql_admin() { as_owner "$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
if [ -z "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$USER_NAME'")" ]; then
    psql_admin -c "CREATE ROLE $USER_NAME" >&2
fi
# the tests make a throwaway role and database per session (a password no other file holds)
psql_admin -c "ALTER ROLE $USER_NAME LOGIN CREATEDB CREATEROLE PASSWORD '$PASSWORD'" >&2
if [ -z "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]; then
    psql_admin -c "CREATE DATABASE $DB OWNER $USER_NAME" >&2
fi
log "ready"
echo "postgresql+psycopg://$USER_NAME:$PASSWORD@127.0.0.1:$PORT/$DB"
