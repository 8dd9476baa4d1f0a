#!/usr/bin/env bash
# The real test environment: throwaway PostgreSQL 15 clusters with Supabase's roles, the
# migrations in supabase/migrations applied, and postrust (a PostgREST-compatible server) in
# front of each. Everything it starts is stopped when it exits.
#
#   scripts/test-env.sh -- <command...>   run the command inside the environment
#   scripts/test-env.sh                   print the environment as `export` lines, wait for Ctrl-C
#
# Two instances are started: "main", shared by every test (each test uses its own account ids),
# and "chaos", which the tests that stop the database or rewrite the schema version use (nextest
# runs those one at a time, see .config/nextest.toml).
#
# Exported to the command:
#   GIFTD_TEST_PG_URL         superuser URL of the main database (psql)
#   GIFTD_TEST_REST_URL       postrust in front of it
#   GIFTD_TEST_SERVICE_KEY    JWT with role service_role (what giftd is configured with)
#   GIFTD_TEST_ANON_KEY       JWT with role anon (what a web page holds)
#   GIFTD_TEST_JWT_SECRET     HS256 secret, so tests can mint player JWTs (role authenticated)
#   GIFTD_TEST_CHAOS_PG_URL, GIFTD_TEST_CHAOS_REST_URL   the chaos instance (same keys)
#   GIFTD_TEST_CHAOS_PG_CTL   executable: `$GIFTD_TEST_CHAOS_PG_CTL stop|start` stops
#                             (immediate, like a crash) or starts the chaos database
#   GIFTD_TEST_ENV_DIR        where data and logs live while it runs
#
# Settings: GIFTD_PG_BIN (default /usr/lib/postgresql/15/bin), GIFTD_POSTRUST (path to the
# postrust binary; default: on PATH, else ~/.cache/giftd/tools/bin/postrust, built there with
# `cargo install postrust-server --version 3.1.0` when missing), GIFTD_TEST_ENV_KEEP=1 keeps the
# data directory after exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_BIN="${GIFTD_PG_BIN:-/usr/lib/postgresql/15/bin}"
TOOLS="${HOME}/.cache/giftd/tools"
POSTRUST_VERSION="3.1.0"

log() { printf 'test-env: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ $# -gt 0 && "$1" != "--ctl" ]]; then
  [[ "$1" == "--" ]] || die "usage: scripts/test-env.sh [-- <command...>]"
  shift
  [[ $# -gt 0 ]] || die "usage: scripts/test-env.sh [-- <command...>]"
fi

[[ -x "$PG_BIN/initdb" ]] || die "PostgreSQL 15 not found in $PG_BIN (apt-get install postgresql-15, or set GIFTD_PG_BIN)"
command -v psql >/dev/null || die "psql not found"
command -v openssl >/dev/null || die "openssl not found (needed to sign the test JWTs)"
command -v curl >/dev/null || die "curl not found"

# initdb refuses to run as root: the clusters belong to `postgres` when we are root.
if [[ "$(id -u)" == 0 ]]; then
  id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user to own the clusters"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

# Starts postrust for the instance in directory $1 (settings in $1/postrust.env), replacing the
# one running there, and waits until it answers.
# Returns 2 when the port was taken (the caller may pick another), dies on other failures.
start_postrust() {
  local dir="$1" pid
  # shellcheck disable=SC1091
  source "$dir/postrust.env"
  if [[ -f "$dir/postrust.pid" ]]; then
    kill "$(cat "$dir/postrust.pid")" 2>/dev/null || true
  fi
  local log_start=0
  [[ -f "$dir/postrust.log" ]] && log_start=$(wc -c <"$dir/postrust.log")
  ( set -a; source "$dir/postrust.env"; exec "$POSTRUST_BIN" ) >>"$dir/postrust.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/postrust.pid"
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      if tail -c +"$((log_start + 1))" "$dir/postrust.log" | grep -q 'Address already in use'; then
        return 2
      fi
      cat "$dir/postrust.log" >&2; die "postrust exited ($dir)"
    fi
    if curl -s -o /dev/null "http://127.0.0.1:$PGRST_SERVER_PORT/"; then
      # Answered, but maybe by another process that holds the port: ours must still be alive.
      sleep 0.05
      kill -0 "$pid" 2>/dev/null && return 0
      continue
    fi
    sleep 0.1
  done
  die "postrust did not answer on port $PGRST_SERVER_PORT ($dir)"
}

pg_ctl_instance() {
  local dir="$1" action="$2"
  case "$action" in
    stop) as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null ;;
    start)
      as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "$(cat "$dir/postgres.opts")" start >/dev/null \
        || { tail -n 20 "$dir/postgres.log" >&2; die "postgres did not start ($dir)"; }
      ;;
    *) die "unknown action $action" ;;
  esac
}

# Internal: `test-env.sh --ctl <instance dir> stop|start`, what GIFTD_TEST_CHAOS_PG_CTL runs.
# postrust 3.1.0 does not reconnect its pool after the database restarts (PostgREST does), so
# `start` restarts postrust too, on the same port.
if [[ "${1:-}" == "--ctl" ]]; then
  [[ $# -eq 3 ]] || die "usage: test-env.sh --ctl <instance dir> stop|start"
  pg_ctl_instance "$2" "$3"
  if [[ "$3" == start ]]; then
    # The tests know postrust by its port: it must come back on the same one.
    start_postrust "$2" || die "postrust could not bind its port again ($2/postrust.log)"
  fi
  exit 0
fi

# --- postrust -------------------------------------------------------------------------------
find_postrust() {
  if [[ -n "${GIFTD_POSTRUST:-}" ]]; then
    [[ -x "$GIFTD_POSTRUST" ]] || die "GIFTD_POSTRUST=$GIFTD_POSTRUST is not executable"
    echo "$GIFTD_POSTRUST"
  elif [[ -x "$TOOLS/bin/postrust" ]]; then
    echo "$TOOLS/bin/postrust"
  elif command -v postrust >/dev/null; then
    command -v postrust
  else
    log "postrust-server $POSTRUST_VERSION is not installed: building it into $TOOLS (about 6 minutes, once)"
    # --locked is left out on purpose: it fails with this machine's registry mirror.
    cargo install postrust-server --version "$POSTRUST_VERSION" --root "$TOOLS" >&2 \
      || die "cargo install postrust-server failed"
    echo "$TOOLS/bin/postrust"
  fi
}
POSTRUST="$(find_postrust)"

# --- workspace and cleanup ------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/giftd-test-env.XXXXXX")"
chmod 755 "$WORK"
[[ "$(id -u)" == 0 ]] && chown postgres: "$WORK"
PIDFILES=()
INTERACTIVE=0
[[ $# -eq 0 ]] && INTERACTIVE=1
CLUSTERS=()

cleanup() {
  local status=$?
  set +e
  for pidfile in "${PIDFILES[@]}"; do
    [[ -f "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null
  done
  for data in "${CLUSTERS[@]}"; do
    if [[ -f "$data/postmaster.pid" ]]; then
      as_pg "$PG_BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1
    fi
  done
  # shellcheck disable=SC2046
  kill $(jobs -p) 2>/dev/null
  # Ctrl-C is how the interactive mode ends: not a failure.
  if [[ $INTERACTIVE == 1 && $status == 130 ]]; then status=0; fi
  if [[ "${GIFTD_TEST_ENV_KEEP:-0}" == 1 || $status -ne 0 ]]; then
    log "kept $WORK (logs: $WORK/*/postgres.log $WORK/*/postrust.log)"
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Ports are picked below Linux's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by
# default), which every outgoing connection of the tests takes its local port from: a port picked
# there can be taken by a test's own client between the pick and the server's bind. What is left
# is a race with another test environment picking the same port, so every server started here is
# retried on a new port when its bind fails.
PORT_LOW=10000
PORT_HIGH=$(( $(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768) - 1 ))
(( PORT_HIGH > PORT_LOW + 1000 )) || die "the ephemeral port range starts at $((PORT_HIGH + 1)): no room below it for test servers (see /proc/sys/net/ipv4/ip_local_port_range)"
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((PORT_LOW + (RANDOM * 32768 + RANDOM) % (PORT_HIGH - PORT_LOW)))
    if ! port_in_use "$port"; then echo "$port"; return; fi
  done
  die "no free loopback port found in $PORT_LOW-$PORT_HIGH"
}

# --- keys -----------------------------------------------------------------------------------
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
JWT_SECRET="giftd-test-$(openssl rand -hex 24)"
jwt() {
  local header payload sig
  header="$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | b64url)"
  payload="$(printf '%s' "$1" | b64url)"
  sig="$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$JWT_SECRET" -binary | b64url)"
  printf '%s.%s.%s' "$header" "$payload" "$sig"
}
NOW="$(date +%s)"
EXP=$((NOW + 10 * 365 * 86400))
SERVICE_KEY="$(jwt "{\"iss\":\"giftd-test-env\",\"role\":\"service_role\",\"iat\":$NOW,\"exp\":$EXP}")"
ANON_KEY="$(jwt "{\"iss\":\"giftd-test-env\",\"role\":\"anon\",\"iat\":$NOW,\"exp\":$EXP}")"
AUTHENTICATOR_PASSWORD="$(openssl rand -hex 16)"

# Supabase's roles and auth helpers, as a Supabase project has them.
ROLES_SQL="
create role anon nologin noinherit;
create role authenticated nologin noinherit;
create role service_role nologin noinherit bypassrls;
create role authenticator noinherit login password '$AUTHENTICATOR_PASSWORD';
grant anon, authenticated, service_role to authenticator;
grant usage on schema public to anon, authenticated, service_role;
create schema auth;
grant usage on schema auth to anon, authenticated, service_role;
create function auth.jwt() returns jsonb language sql stable as \$\$
  select coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb
\$\$;
create function auth.uid() returns uuid language sql stable as \$\$
  select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')::uuid
\$\$;
create function auth.role() returns text language sql stable as \$\$
  select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                  nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')::text
\$\$;
grant execute on function auth.jwt(), auth.uid(), auth.role() to anon, authenticated, service_role;
-- What a Supabase project grants by default on everything created in public: the migrations
-- must revoke what is private, so the tests run against these grants too.
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
"

# start_instance NAME -> sets <NAME>_PG_URL, <NAME>_REST_URL, <NAME>_DIR
start_instance() {
  local name="$1" dir="$WORK/$1" port rest_port pid
  mkdir -p "$dir"
  [[ "$(id -u)" == 0 ]] && chown postgres: "$dir"
  as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed for $name"; }
  CLUSTERS+=("$dir/data")
  # Another process may take the free port before postgres binds it: try a few.
  local attempt
  for attempt in 1 2 3 4 5; do
    port="$(free_port)"
    # The shared instance trades durability for speed. The chaos instance is crashed on
    # purpose (immediate stop), so it keeps PostgreSQL's durability: a commit giftd was told
    # about must survive the crash, as on a real server.
    local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [[ "$name" == chaos ]] && durability="-c fsync=on -c synchronous_commit=on"
    printf '%s' "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir $durability -c max_connections=200 -c wal_level=logical" >"$dir/postgres.opts"
    if as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "$(cat "$dir/postgres.opts")" start >/dev/null; then
      break
    fi
    [[ $attempt == 5 ]] && { tail -n 20 "$dir/postgres.log" >&2; die "postgres did not start for $name"; }
    log "postgres did not start on port $port, trying another"
  done
  local url="postgresql://postgres@127.0.0.1:$port/postgres"
  psql "$url" -X -q -v ON_ERROR_STOP=1 -c "$ROLES_SQL" >/dev/null || die "creating roles failed for $name"
  # A Supabase project has the realtime publication already; a bare PostgreSQL does not. The
  # chaos instance looks like Supabase, the main one like a bare database, so the migration's
  # "create it when absent" runs both ways.
  if [[ "$name" == chaos ]]; then
    psql "$url" -X -q -v ON_ERROR_STOP=1 -c "create publication supabase_realtime" >/dev/null
  fi
  local migration
  for migration in "$ROOT"/supabase/migrations/*.sql; do
    psql "$url" -X -q -v ON_ERROR_STOP=1 -1 -f "$migration" >/dev/null \
      || die "migration $(basename "$migration") failed for $name"
  done

  PIDFILES+=("$dir/postrust.pid")
  local status
  for attempt in 1 2 3 4 5; do
    rest_port="$(free_port)"
    {
      printf 'POSTRUST_BIN=%q\n' "$POSTRUST"
      printf 'PGRST_COMPAT_MODE=true\n'
      printf 'PGRST_DB_ERRORS_VERBATIM=%q\n' '*'
      printf 'PGRST_DB_CHANNEL_ENABLED=true\n'
      printf 'PGRST_DB_URI=%q\n' "postgresql://authenticator:$AUTHENTICATOR_PASSWORD@127.0.0.1:$port/postgres"
      printf 'PGRST_DB_ANON_ROLE=anon\n'
      printf 'PGRST_DB_SCHEMAS=public\n'
      printf 'PGRST_JWT_SECRET=%q\n' "$JWT_SECRET"
      printf 'PGRST_SERVER_HOST=127.0.0.1\n'
      printf 'PGRST_SERVER_PORT=%q\n' "$rest_port"
      printf 'RUST_LOG=%q\n' "${GIFTD_TEST_POSTRUST_LOG:-warn}"
    } >"$dir/postrust.env"
    chmod 600 "$dir/postrust.env"
    status=0
    start_postrust "$dir" || status=$?
    [[ $status == 0 ]] && break
    [[ $attempt == 5 ]] && die "postrust found its port taken five times ($dir/postrust.log)"
    log "postrust found port $rest_port taken, trying another"
  done

  printf -v "${name^^}_PG_URL" '%s' "$url"
  printf -v "${name^^}_REST_URL" '%s' "http://127.0.0.1:$rest_port"
  printf -v "${name^^}_DIR" '%s' "$dir"
  log "$name: postgres on 127.0.0.1:$port, postrust on 127.0.0.1:$rest_port"
}

start_instance main
start_instance chaos

# `$GIFTD_TEST_CHAOS_PG_CTL stop` crashes the chaos database (immediate shutdown), `start`
# brings it (and its postrust) back on the same ports.
PG_CTL_SCRIPT="$WORK/chaos-pg-ctl"
printf '#!/usr/bin/env bash\nexec %q --ctl %q "$@"\n' "$ROOT/scripts/test-env.sh" "$CHAOS_DIR" >"$PG_CTL_SCRIPT"
chmod 755 "$PG_CTL_SCRIPT"

export GIFTD_TEST_PG_URL="$MAIN_PG_URL"
export GIFTD_TEST_REST_URL="$MAIN_REST_URL"
export GIFTD_TEST_CHAOS_PG_URL="$CHAOS_PG_URL"
export GIFTD_TEST_CHAOS_REST_URL="$CHAOS_REST_URL"
export GIFTD_TEST_CHAOS_PG_CTL="$PG_CTL_SCRIPT"
export GIFTD_TEST_SERVICE_KEY="$SERVICE_KEY"
export GIFTD_TEST_ANON_KEY="$ANON_KEY"
export GIFTD_TEST_JWT_SECRET="$JWT_SECRET"
export GIFTD_TEST_ENV_DIR="$WORK"

if [[ $# -eq 0 ]]; then
  for var in GIFTD_TEST_PG_URL GIFTD_TEST_REST_URL GIFTD_TEST_CHAOS_PG_URL GIFTD_TEST_CHAOS_REST_URL \
    GIFTD_TEST_CHAOS_PG_CTL GIFTD_TEST_SERVICE_KEY GIFTD_TEST_ANON_KEY GIFTD_TEST_JWT_SECRET GIFTD_TEST_ENV_DIR; do
    printf 'export %s=%q\n' "$var" "${!var}"
  done
  # For `giftd check` by hand against the main instance (a bare PostgREST base, so rest_url).
  printf 'export GIFTD_SUPABASE_REST_URL=%q\nexport SUPABASE_SERVICE_ROLE_KEY=%q\n' \
    "$MAIN_REST_URL" "$SERVICE_KEY"
  log "ready; press Ctrl-C to stop"
  while true; do sleep 3600 & wait $!; done
fi

set +e
"$@"
status=$?
set -e
exit "$status"
