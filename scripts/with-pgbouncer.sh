#!/usr/bin/env bash
# Runs a command with DATABASE_URL pointing at a PgBouncer of its own in
# transaction mode, in front of the server of SERVER_URL (default: the
# machine's PostgreSQL at 127.0.0.1:5432), and stops PgBouncer afterwards.
#
#   scripts/with-pgbouncer.sh npm test -- test/engine test/bulk-jobs
#
# PgBouncer listens on 127.0.0.1:${PGBOUNCER_PORT:-6439}; its configuration,
# log and pid file live in a temporary folder, removed at the end. Every
# database of the server is reachable through it (a wildcard entry), so the
# test and bench runners' own databases are too. The URL it gives the command
# ends in `?pooler=transaction`, which tells the service that no session state
# survives a transaction (README, "Behind a connection pooler"); the command
# also gets it as POOLER_URL, and the server's own as DIRECT_DATABASE_URL. Needs the
# `pgbouncer` binary (Debian: apt-get install pgbouncer); as root it runs
# PgBouncer as the `postgres` user, since PgBouncer refuses to run as root.
set -euo pipefail

SERVER_URL="${SERVER_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PORT="${PGBOUNCER_PORT:-6439}"
# Server connections per database and user: well under the server's max_connections.
POOL_SIZE="${PGBOUNCER_POOL_SIZE:-20}"

if ! command -v pgbouncer >/dev/null; then
  echo "with-pgbouncer: pgbouncer is not installed (apt-get install -y pgbouncer)" >&2
  exit 2
fi

server_host=$(node -e 'console.log(new URL(process.argv[1]).hostname)' "$SERVER_URL")
server_port=$(node -e 'console.log(new URL(process.argv[1]).port || 5432)' "$SERVER_URL")
server_user=$(node -e 'console.log(decodeURIComponent(new URL(process.argv[1]).username) || "postgres")' "$SERVER_URL")
server_password=$(node -e 'console.log(decodeURIComponent(new URL(process.argv[1]).password))' "$SERVER_URL")

dir=$(mktemp -d /tmp/pgbouncer.XXXXXX)
run_as=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$dir"
  run_as=(-u postgres)
fi

cleanup() {
  if [ -f "$dir/pgbouncer.pid" ]; then
    kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -f "$dir/pgbouncer.pid" ] || break; sleep 0.1; done
  fi
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

password_part=""
[ -n "$server_password" ] && password_part=" password=$server_password"
cat >"$dir/pgbouncer.ini" <<EOF
[databases]
; The service sends no timeouts through a pooler in transaction mode (src/database/pooler.ts):
; each server connection gets the ones it would have sent, as a role's settings would give them.
* = host=$server_host port=$server_port user=$server_user$password_part connect_query='SET statement_timeout = 60000; SET idle_in_transaction_session_timeout = 60000; SET random_page_cost = 1.1'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = 2000
max_db_connections = $POOL_SIZE
server_reset_query =
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
log_connections = 0
log_disconnections = 0
EOF
printf '"%s" ""\n' "$server_user" >"$dir/userlist.txt"
[ "$(id -u)" = 0 ] && chown postgres "$dir"/*

pgbouncer -d "${run_as[@]}" "$dir/pgbouncer.ini"
for _ in $(seq 1 50); do
  if node -e 'const s=require("net").connect(+process.argv[1],"127.0.0.1",()=>process.exit(0));s.on("error",()=>process.exit(1))' "$PORT"; then
    break
  fi
  sleep 0.1
done

url="postgres://${server_user}@127.0.0.1:${PORT}/postgres?pooler=transaction"
echo "with-pgbouncer: PgBouncer $(pgbouncer --version | head -n1 | awk '{print $2}') (transaction mode) at 127.0.0.1:$PORT in front of $server_host:$server_port"
set +e
DATABASE_URL="$url" POOLER_URL="$url" DIRECT_DATABASE_URL="$SERVER_URL" "$@"
code=$?
set -e
if [ "$code" != 0 ] && [ -f "$dir/pgbouncer.log" ]; then
  echo "with-pgbouncer: the last lines of PgBouncer's log:" >&2
  tail -n 20 "$dir/pgbouncer.log" >&2
fi
exit "$code"
