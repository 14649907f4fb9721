#!/usr/bin/env bash
# Keyturn's load benchmark, from scratch (BENCHMARKS.md has the results and
# how to read them). From the repository root:
#
#   bash cmd/keyturn-bench/run.sh
#
# It builds keyturn and keyturn-bench; times one argon2id hash; starts a
# PostgreSQL-backed server on a throwaway database and a SQLite-backed one
# in a temporary directory, each with a bench config (a confidential client
# with password, refresh_token and client_credentials; a resource server with
# introspect: true; test users created with `keyturn users create`); runs
# every scenario at each concurrency; runs pgbench on the same database with
# the same single-statement rotation, for the ratio "Keyturn refresh req/s ÷
# PostgreSQL rotation tx/s"; runs the floor (cmd/keyturn-bench/floor, the
# irreducible work of a refresh) on the same database and load as Keyturn's
# refresh runs, for "Keyturn ÷ floor" (req/s and server CPU per request);
# with SEED_SESSIONS, refreshes of that many seeded sessions on Keyturn and
# the floor; a refresh run on two Keyturn processes on one database,
# round-robin; runs a password flood with refreshes alongside;
# profiles refresh, client_credentials, introspection and password under
# load; and runs the Go benchmarks. Every
# process and database it starts is stopped or dropped on exit, failure or
# Ctrl-C. Everything listens on loopback.
#
# Knobs (environment):
#   DURATION=15          seconds per run
#   CONCURRENCY="16 64"  concurrencies of every scenario
#   SCENARIOS="refresh password client_credentials introspect mixed"
#   BACKENDS="postgres sqlite"
#   SESSIONS=            refresh sessions (default: the concurrency)
#   FLOOR=1              the floor on the same refresh load as Keyturn, at each concurrency (0: skip; needs refresh in SCENARIOS)
#   SEED_SESSIONS=0      also refresh runs (Keyturn, the floor, two instances) on this many live sessions inserted straight
#                        into the database (keyturn-bench -seed-sessions N -config FILE), each request a uniformly random one;
#                        0: off; e.g. 1000000. The families table is emptied before each seeded run.
#   TWO_INSTANCES=1      a refresh run on two Keyturn processes on one database (keyturn-bench -url URL1,URL2, round-robin)
#                        at each concurrency, seeded too with SEED_SESSIONS (0: skip)
#   FLOOD=1              the password floods with refreshes alongside (0: skip)
#   TWO_PROCS=           GOMAXPROCS of each of the two instances (default: half the CPUs, at least 1: two instances
#                        sharing one machine each get half of it, as a container CPU limit would give, which Go reads)
#   TWO_CONNS=8          max_open_conns of each of the two instances (half of the one instance's 16)
#   USERS=64             test users bench-1 ... bench-N, each worker logging in as its own users in
#                        turn, so that, as in production, no one (username, address) counter takes every login
#   PROFILE="refresh client_credentials introspect password"  scenarios to CPU-profile on PostgreSQL at c=16 ("" for none)
#   ALGS="ES256 EdDSA RS256"  client_credentials runs (fresh SQLite server each, c=16) with these signing algorithms ("" for none)
#   GOBENCH=1            run `go test -bench . ./server/` too (0: skip)
#   QUIET_WAIT=120       seconds to wait, before each run, for the machine to go idle (other jobs skew results)
#   MAX_OTHERS=15 RETRIES=3  a run during which other jobs used over MAX_OTHERS % CPU is repeated, up to RETRIES times
#   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres   a PostgreSQL that lets PGUSER create databases
#   SERVER_YAML=         extra YAML appended to every Keyturn config (e.g. $'login:\n  hash_processors: shared')
#   PORT=18080           first of the loopback ports used
#   OUT=/tmp/keyturn-bench-<time>  where results are kept (JSON per run, logs, profiles, summary.md)
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DURATION=${DURATION:-15}
CONCURRENCY=${CONCURRENCY:-"16 64"}
SCENARIOS=${SCENARIOS:-"refresh password client_credentials introspect mixed"}
BACKENDS=${BACKENDS:-"postgres sqlite"}
SESSIONS=${SESSIONS:-}
FLOOR=${FLOOR:-1}
SEED_SESSIONS=${SEED_SESSIONS:-0}
TWO_INSTANCES=${TWO_INSTANCES:-1}
FLOOD=${FLOOD:-1}
TWO_CONNS=${TWO_CONNS:-8}
TWO_PROCS=${TWO_PROCS:-$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))}
USERS=${USERS:-64}
PROFILE=${PROFILE-"refresh client_credentials introspect password"}
ALGS=${ALGS-"ES256 EdDSA RS256"}
GOBENCH=${GOBENCH:-1}
QUIET_WAIT=${QUIET_WAIT:-120}
MAX_OTHERS=${MAX_OTHERS:-15}
RETRIES=${RETRIES:-3}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
SERVER_YAML=${SERVER_YAML:-}
PORT=${PORT:-18080}
OUT=${OUT:-/tmp/keyturn-bench-$(date +%Y%m%d-%H%M%S)}

case $DURATION in '' | *[!0-9]*) echo "DURATION must be whole seconds" >&2; exit 2 ;; esac
if (( DURATION < 1 || DURATION > 600 )); then echo "DURATION must be 1 to 600 seconds" >&2; exit 2; fi
case $SEED_SESSIONS in '' | *[!0-9]*) echo "SEED_SESSIONS must be a whole number" >&2; exit 2 ;; esac
for tool in go curl jq psql createdb dropdb pgbench openssl; do
	command -v "$tool" >/dev/null || { echo "run.sh needs $tool" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/keyturn-bench-work.XXXXXX)
BIN=$WORK/bin
DB=keyturn_bench_$$_$RANDOM
DB_CREATED=0
PIDS=()
mkdir -p "$OUT"

# cleanup stops everything this script started, drops its database and
# removes its scratch directory; it runs on every exit.
cleanup() {
	local status=$? pid
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if (( DB_CREATED )); then
		dropdb --if-exists --force "$DB" || echo "run.sh: could not drop database $DB" >&2
	fi
	rm -rf "$WORK"
	if (( status != 0 )); then echo "run.sh: failed (exit $status); partial results in $OUT" >&2; fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '\n== %s\n' "$*"; }

# forget removes a stopped process from PIDS.
forget() {
	local keep=() p
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

# stop PID: SIGTERM, wait for it (servers shut down gracefully; a load
# tool reports what it did until then), forget it.
stop() {
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	forget "$1"
}

# wait_quiet waits up to QUIET_WAIT seconds for the machine's CPUs to be
# less than 25 % busy over one second, so that runs do not measure someone
# else's build; it says so when it gives up.
wait_quiet() {
	local waited=0 a b busy
	while :; do
		read -r -a a < /proc/stat
		sleep 1
		read -r -a b < /proc/stat
		local ta=0 tb=0 ia=$((a[4] + a[5])) ib=$((b[4] + b[5])) i
		for i in 1 2 3 4 5 6 7 8; do ta=$((ta + a[i])); tb=$((tb + b[i])); done
		busy=$(( tb > ta ? 100 * ((tb - ta) - (ib - ia)) / (tb - ta) : 0 ))
		if (( busy < 25 )); then return; fi
		waited=$((waited + 1))
		if (( waited >= QUIET_WAIT )); then
			echo "   (machine still ${busy}% busy after ${QUIET_WAIT}s; running anyway)"
			return
		fi
	done
}

# OURS matches the commands a run itself keeps busy (the server, the
# database, the load tools and the kernel's I/O and network work); anything
# else busy during a run is another job on a shared machine.
OURS='^(keyturn|keyturn-bench|profserve.test|postgres|pgbench|kworker|ksoftirqd|jbd2|migration|rcu_)'

# cpu_snapshot: "command ticks" for every process (comm may hold spaces).
cpu_snapshot() {
	# cat, not awk's own file list: a process that exits between the glob
	# and the read must not end the snapshot (mawk stops at a missing file);
	# and cat's failure for it must not fail the pipe (pipefail, then set -e:
	# on a busy machine that ended whole runs).
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } |
		awk '{ o = index($0, "("); c = match($0, /\)[^)]*$/); comm = substr($0, o + 1, c - o - 1);
		       split(substr($0, c + 2), f, " "); t[comm] += f[12] + f[13] }
		     END { for (k in t) printf "%s\t%d\n", k, t[k] }'
}

# others_percent BEFORE AFTER SECONDS: CPU % (100 = one core) of processes
# not matching OURS between two snapshots.
others_percent() {
	awk -F'\t' -v secs="$3" -v ours="$OURS" 'FNR == NR { b[$1] = $2; next }
		$1 !~ ours { d = $2 - b[$1]; if (d > 0) sum += d }
		END { printf "%d", sum / secs }' "$1" "$2"
}

# command_percent BEFORE AFTER SECONDS REGEX: CPU % (100 = one core) of the
# processes whose command matches REGEX.
command_percent() {
	awk -F'\t' -v secs="$3" -v re="$4" 'FNR == NR { b[$1] = $2; next }
		$1 ~ re { d = $2 - b[$1]; if (d > 0) sum += d }
		END { printf "%d", sum / secs }' "$1" "$2"
}

# ---------------------------------------------------------------- build
log "build ($(go version | cut -d' ' -f3-), into $BIN)"
mkdir -p "$BIN"
(cd "$ROOT" && go build -o "$BIN/keyturn" ./cmd/keyturn && go build -o "$BIN/keyturn-bench" ./cmd/keyturn-bench &&
	go build -o "$BIN/keyturn-floor" ./cmd/keyturn-bench/floor)
# -seed-sessions and a comma-separated -url came in together (issue 15):
# without them the seeded and two-instance runs cannot be made.
SCALE_FLAGS=0
if "$BIN/keyturn-bench" -h 2>&1 | grep -- '-seed-sessions' >/dev/null; then SCALE_FLAGS=1; fi  # not grep -q: with pipefail, its early exit would fail the pipe
if (( SEED_SESSIONS > 0 && ! SCALE_FLAGS )); then echo "SEED_SESSIONS needs keyturn-bench -seed-sessions, which this build lacks" >&2; exit 2; fi
if [[ -n $PROFILE ]]; then
	(cd "$ROOT" && go test -c -o "$BIN/profserve.test" ./cmd/keyturn-bench)
fi

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
	echo "nproc: $(nproc)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel: $(uname -r)"
	echo "go: $(go version | cut -d' ' -f3)"
	echo "postgres: $(psql -d postgres -Atc 'show server_version') synchronous_commit=$(psql -d postgres -Atc 'show synchronous_commit') fsync=$(psql -d postgres -Atc 'show fsync') shared_buffers=$(psql -d postgres -Atc 'show shared_buffers')"
	echo "duration: ${DURATION}s per run; concurrency: $CONCURRENCY"
} | tee "$OUT/machine.txt"

# Secrets of this run only: random, in the environment (never in argv).
KEYTURN_SECRET=$(head -c 32 /dev/urandom | base64)
KEYTURN_BENCH_CLIENT_SECRET=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
KEYTURN_BENCH_INTROSPECT_SECRET=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
KEYTURN_BENCH_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
export KEYTURN_SECRET KEYTURN_BENCH_CLIENT_SECRET KEYTURN_BENCH_INTROSPECT_SECRET KEYTURN_BENCH_PASSWORD
# The floor reads the master secret from a file (private to this user) and
# knows the bench client by its secret's digest, as a secret_hash spells it.
(umask 077 && printf '%s\n' "$KEYTURN_SECRET" > "$WORK/secret.key")
BENCH_SECRET_HASH=sha256:$(printf '%s' "$KEYTURN_BENCH_CLIENT_SECRET" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')

# until_quiet NAME COMMAND...: run COMMAND, which sets OTHERS to the CPU %
# other jobs used during it, again while OTHERS is over MAX_OTHERS, up to
# RETRIES times in all. A failing COMMAND stops the script (set -e).
OTHERS=0
until_quiet() {
	local name=$1 attempt
	shift
	for attempt in $(seq "$RETRIES"); do
		"$@"
		if (( OTHERS <= MAX_OTHERS )) || (( attempt == RETRIES )); then return; fi
		echo "   ($name: other jobs used ${OTHERS}% CPU during the run; again)"
	done
}

# ---------------------------------------------------------------- argon2id
# hash_once FILE: time argon2id once (keyturn-bench -measure-hash).
hash_once() {
	local start
	wait_quiet
	cpu_snapshot > "$WORK/cpu.before"
	start=$(date +%s.%N)
	"$BIN/keyturn-bench" -measure-hash 20 -json > "$1"
	cpu_snapshot > "$WORK/cpu.after"
	OTHERS=$(others_percent "$WORK/cpu.before" "$WORK/cpu.after" "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')")
}

# measure_hash FILE: time argon2id, again if other jobs were busy meanwhile.
measure_hash() {
	until_quiet argon2id hash_once "$1"
	jq -r '"   \(.params): median \(.median_ms) ms; limit = \(.cpus) / \(.median_ms) ms = \(.limit_per_second | floor) logins/s (\(.cpus) at once: \(.parallel_per_second | floor)/s)"' "$1"
}

log "argon2id: one hash with passhash.Default, and the password-grant limit (again at the end: the VM's speed drifts)"
measure_hash "$OUT/hash.json"

# write_config (the bench config) is in config.sh, shared with ab.sh.
# shellcheck source=cmd/keyturn-bench/config.sh
source "$ROOT/cmd/keyturn-bench/config.sh"

# create_users CONFIG: the test users, with `keyturn users create`.
create_users() {
	local i
	for i in $(seq "$USERS"); do
		printf '%s\n' "$KEYTURN_BENCH_PASSWORD" |
			"$BIN/keyturn" users create --username "bench-$i" --password-stdin --config "$1" > /dev/null
	done
	echo "   $USERS users created (bench-1 ... bench-$USERS)"
}

SERVER_PID=
# start_server NAME CONFIG PORT [COMMAND...]: start a server (default:
# keyturn serve) and wait until it answers.
start_server() {
	local name=$1 cfg=$2 port=$3
	shift 3
	if (( $# == 0 )); then set -- "$BIN/keyturn" serve --config "$cfg"; fi
	"$@" >> "$OUT/server-$name.log" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	for _ in $(seq 150); do
		if curl -sf "http://127.0.0.1:$port/.well-known/oauth-authorization-server" >/dev/null; then return; fi
		kill -0 "$SERVER_PID" 2>/dev/null || { echo "server $name exited; see $OUT/server-$name.log" >&2; tail -20 "$OUT/server-$name.log" >&2; return 1; }
		sleep 0.2
	done
	echo "server $name did not answer in 30s" >&2
	return 1
}

# others_in JSON: CPU % of other jobs during a keyturn-bench run.
others_in() {
	jq --arg ours "$OURS" '[(.usage.cpu_by_command // [])[] | select(.command | test($ours) | not) | .cpu_percent] | add // 0 | floor' "$1"
}

# bench NAME PORT ARGS...: one keyturn-bench run against the server
# SERVER_PID, JSON into $OUT/NAME.json, one line on stdout. A run during
# which other jobs used more than MAX_OTHERS % CPU is repeated (up to
# RETRIES times); the report says how busy they were.
bench() {
	until_quiet "$1" bench_once "$@"
	summary_line "$OUT/$1.json"
}

# bench_once NAME PORT ARGS...: one run of bench. PORT may be a
# comma-separated list: the requests go to each in turn (round-robin).
bench_once() {
	local name=$1 port=$2 urls
	shift 2
	urls=$(printf 'http://127.0.0.1:%s\n' ${port//,/ } | paste -sd, -)
	if [[ " $* " == *" -seed-sessions "* ]]; then psql -q -d "$DB" -c "TRUNCATE families"; fi
	wait_quiet
	"$BIN/keyturn-bench" -url "$urls" -client-id bench -username bench -users "$USERS" \
		-introspect-client-id rs -pid "$SERVER_PID" -label "$name" -json "$@" > "$OUT/$name.json"
	OTHERS=$(others_in "$OUT/$name.json")
}

summary_line() {
	jq -r --arg ours "$OURS" '"   \(.label): \(.total.requests_per_second | floor) req/s (ok \(.total.ok_per_second | floor)/s), p50 \(.total.p50_ms) ms, p90 \(.total.p90_ms) ms, p99 \(.total.p99_ms) ms, max \(.total.max_ms) ms; errors \(.total.errors) \(.errors_by_code | tostring); server CPU \(.usage.cpu_percent | floor)%, RSS max \(.usage.max_rss_mib | floor) MiB; machine \(.usage.machine_cpu_busy_percent | floor)% busy, \(.usage.machine_cpu_steal_percent | floor)% stolen [\((.usage.cpu_by_command // [])[:5] | map("\(.command) \(.cpu_percent)%") | join(", "))]; other jobs \([(.usage.cpu_by_command // [])[] | select(.command | test($ours) | not) | .cpu_percent] | add // 0)%"' "$1"
}

sessions_args() { if [[ -n $SESSIONS ]]; then echo "-sessions $SESSIONS"; fi; }

# run_scenarios BACKEND CONFIG PORT: every scenario at every concurrency,
# each on a server started for it, so that its CPU and RSS are its own (a
# password run leaves the heap grown by argon2id's 19 MiB per hash).
run_scenarios() {
	local backend=$1 cfg=$2 port=$3 s c
	for c in $CONCURRENCY; do
		for s in $SCENARIOS; do
			start_server "$backend" "$cfg" "$port"
			# shellcheck disable=SC2046
			bench "$backend-$s-c$c" "$port" -scenario "$s" -c "$c" -d "${DURATION}s" $(sessions_args)
			stop "$SERVER_PID"
		done
	done
}

# start_floor PORT KEYTURN_PORT: the floor on 127.0.0.1:PORT, on Keyturn's
# database (a pool as large as Keyturn's) and master secret, serving the
# bench client and issuing access tokens as that Keyturn; every request
# that is not a refresh grant (the readiness probe, keyturn-bench's setup
# logins) is forwarded to the Keyturn on KEYTURN_PORT, which must be up.
start_floor() {
	start_server floor "" "$1" "$BIN/keyturn-floor" -listen "127.0.0.1:$1" -database-url "$PG_URL&pool_max_conns=16" \
		-client-id bench -client-secret-hash "$BENCH_SECRET_HASH" -secret-file "$WORK/secret.key" \
		-issuer "http://127.0.0.1:$2" -fallback "http://127.0.0.1:$2"
}

# floor_run NAME ARGS...: a keyturn-bench run (ARGS) against the floor,
# with a Keyturn on PG_PORT for its setup logins; the server CPU and RSS
# reported are the floor's.
floor_run() {
	local name=$1 keyturn_pid
	shift
	start_server postgres "$WORK/pg.yaml" "$PG_PORT"
	keyturn_pid=$SERVER_PID
	start_floor "$FLOOR_PORT" "$PG_PORT"
	bench "$name" "$FLOOR_PORT" "$@"
	stop "$SERVER_PID"
	stop "$keyturn_pid"
}

# two_run NAME ARGS...: a keyturn-bench run (ARGS) against two Keyturn
# processes on one database (PG_PORT and PG2_PORT, one issuer), each
# request to the next in turn. The server CPU in the summary is both
# processes' (command keyturn); the RSS is the second's.
two_run() {
	local name=$1 first
	shift
	start_server postgres "$WORK/pg1.yaml" "$PG_PORT" env GOMAXPROCS="$TWO_PROCS" "$BIN/keyturn" serve --config "$WORK/pg1.yaml"
	first=$SERVER_PID
	start_server postgres-2 "$WORK/pg2.yaml" "$PG2_PORT" env GOMAXPROCS="$TWO_PROCS" "$BIN/keyturn" serve --config "$WORK/pg2.yaml"
	bench "$name" "$PG_PORT,$PG2_PORT" "$@"
	stop "$SERVER_PID"
	stop "$first"
}

# seed_args: keyturn-bench's flags for a seeded run (bench_once empties
# the families table before each, so that it holds the seeded sessions only).
seed_args() { echo "-seed-sessions $SEED_SESSIONS -config $WORK/pg.yaml"; }

# storage_line FILE WHEN: rows, rotations, size per session (table alone, and
# with indexes and TOAST) and how many updates were HOT (DESIGN.md §2: a
# rotation rewrites one row; a HOT update touches no index).
storage_line() {
	psql -q -d "$DB" -Atc "SELECT 'storage ($2): ' || count(*) || ' families rows (sessions) after ' || coalesce(sum(generation), 0) || ' rotations (max ' || coalesce(max(generation), 0) || ' on one session); table ' || pg_size_pretty(pg_table_size('families')) || ', ' || pg_size_pretty(pg_table_size('families') / greatest(count(*), 1)) || ' per session; with indexes ' || pg_size_pretty(pg_total_relation_size('families')) || ', ' || pg_total_relation_size('families') / greatest(count(*), 1) || ' bytes per session' FROM families" | tee "$1"
	psql -q -d "$DB" -Atc "SELECT 'families updates since the database was created: ' || n_tup_upd || ', of which HOT ' || n_tup_hot_upd || ' (' || round(100.0 * n_tup_hot_upd / greatest(n_tup_upd, 1), 1) || ' %)' FROM pg_stat_user_tables WHERE relname = 'families'" | tee -a "$1"
}

# flood NAME CONFIG PORT: a password flood (c=16) saturating the hash
# slots and, from 2s into it, a refresh run (c=16) whose p99 is the figure:
# are refreshes still served? The flood is stopped (SIGTERM: it reports
# what it did until then) when the refresh run is over, so it covers the
# refresh run's setup and measured time.
flood() {
	until_quiet "$1" flood_once "$@"
	summary_line "$OUT/$1-password.json"
	summary_line "$OUT/$1-refresh.json"
}

# flood_once NAME CONFIG PORT: one run of flood, on a server of its own.
flood_once() {
	local name=$1 cfg=$2 port=$3 flood_pid
	start_server "$name" "$cfg" "$port"
	wait_quiet
	"$BIN/keyturn-bench" -url "http://127.0.0.1:$port" -client-id bench -username bench -users "$USERS" -pid "$SERVER_PID" \
		-scenario password -c 16 -d "$((DURATION + 120))s" -label "$name-password" -json > "$OUT/$name-password.json" &
	flood_pid=$!
	PIDS+=("$flood_pid")
	sleep 2
	"$BIN/keyturn-bench" -url "http://127.0.0.1:$port" -client-id bench -username bench -users "$USERS" -pid "$SERVER_PID" \
		-scenario refresh -c 16 -d "${DURATION}s" -label "$name-refresh" -json > "$OUT/$name-refresh.json"
	stop "$flood_pid"
	stop "$SERVER_PID"
	OTHERS=$(others_in "$OUT/$name-refresh.json")
}

# ---------------------------------------------------------------- pgbench
FAMILY_COLUMNS="id, client_id, user_id, scope, generation, salt, key_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, rotated_at, revoked_at, revoke_reason"

# pgbench_setup: a scratch copy of the families table (same columns,
# indexes and constraints), 10,000 live rows, in the bench database.
pgbench_setup() {
	local now_us=$(( $(date +%s) * 1000000 ))
	psql -q -v ON_ERROR_STOP=1 -d "$DB" <<-EOF
	CREATE TABLE bench_families (LIKE families INCLUDING ALL);
	INSERT INTO bench_families ($FAMILY_COLUMNS)
	SELECT i::text, 'bench', 'user-' || i, 'read', 0, decode(md5(i::text), 'hex'), 'k1',
	       $now_us, $now_us, $now_us + 432000000000, $now_us + 2592000000000, NULL, NULL, ''
	FROM generate_series(0, 9999) AS i;
	VACUUM ANALYZE bench_families;
	EOF
	# Keyturn's rotation (storage/sqlstore/families.go rotateSQL), one
	# statement per transaction. Client k rotates row k, carrying the
	# generation the previous rotation returned (\gset), as a client carries
	# its refresh token: a stale generation would match no row, and \gset
	# would abort the client.
	local rotate="UPDATE bench_families
SET generation = generation + 1, rotated_at = :now, last_used_at = :now, idle_expires_at = :idle
WHERE id = :id AND generation = :r_generation AND revoked_at IS NULL
  AND idle_expires_at > :now AND absolute_expires_at > :now
RETURNING $FAMILY_COLUMNS \\gset r_"
	printf '%s\n' '\set id :client_id' "$rotate" > "$WORK/rotate.sql"
	# A refresh of a session the instance has not seen: GetFamily's SELECT
	# (getFamilySQL), then the rotation. A known session sends rotate.sql.
	printf '%s\n' '\set id :client_id' "SELECT $FAMILY_COLUMNS FROM bench_families WHERE id = :id;" "$rotate" \
		> "$WORK/refresh-path.sql"
}

# run_pgbench NAME SCRIPT CLIENTS: prepared mode, fixed duration; tx/s into $OUT/NAME.txt.
run_pgbench() {
	local name=$1
	until_quiet "$name" pgbench_once "$@" "$(( $(date +%s) * 1000000 ))"
	echo "   $name: $(grep -E '^tps' "$OUT/$name.txt" | head -1), $(grep -E 'latency average' "$OUT/$name.txt"); $(grep -E '^postgres:' "$OUT/$name.txt"), $(grep -E '^pgbench:' "$OUT/$name.txt"), other jobs ${OTHERS}% CPU"
}

# pgbench_once NAME SCRIPT CLIENTS NOW_US: one run of run_pgbench.
pgbench_once() {
	local name=$1 script=$2 clients=$3 now_us=$4 pid window
	# CPU is sampled from 1s after the start to 1s before the end, while
	# pgbench's backends exist (a process that has exited is not counted).
	window=$(( DURATION > 2 ? DURATION - 2 : 1 ))
	psql -q -d "$DB" -c "UPDATE bench_families SET generation = 0" -c "CHECKPOINT"
	wait_quiet
	pgbench -n -M prepared -c "$clients" -j 2 -T "$DURATION" \
		-D now="$now_us" -D idle=$(( now_us + 432000000000 )) -D r_generation=0 \
		-f "$script" "$DB" > "$OUT/$name.txt" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	sleep 1
	cpu_snapshot > "$WORK/cpu.before"
	sleep "$window"
	cpu_snapshot > "$WORK/cpu.after"
	if ! wait "$pid"; then forget "$pid"; cat "$OUT/$name.txt" >&2; return 1; fi
	forget "$pid"
	if grep -q aborted "$OUT/$name.txt"; then cat "$OUT/$name.txt" >&2; return 1; fi
	OTHERS=$(others_percent "$WORK/cpu.before" "$WORK/cpu.after" "$window")
	{
		echo "other jobs: ${OTHERS}% CPU"
		echo "postgres: $(command_percent "$WORK/cpu.before" "$WORK/cpu.after" "$window" '^postgres')% CPU"
		echo "pgbench: $(command_percent "$WORK/cpu.before" "$WORK/cpu.after" "$window" '^pgbench')% CPU"
	} >> "$OUT/$name.txt"
}

pgbench_tps() { grep -E '^tps' "$OUT/$1.txt" | head -1 | awk '{print $3}'; }

# ---------------------------------------------------------------- PostgreSQL
if [[ " $BACKENDS " == *" postgres "* ]]; then
	PG_PORT=$((PORT + 1))
	PG_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB?sslmode=disable"
	log "PostgreSQL: database $DB, server on 127.0.0.1:$PG_PORT"
	createdb "$DB"
	DB_CREATED=1
	write_config "$WORK/pg.yaml" "$PG_PORT" "$PG_URL" "$WORK/pg-data"
	"$BIN/keyturn" migrate --config "$WORK/pg.yaml" >> "$OUT/server-postgres.log" 2>&1
	create_users "$WORK/pg.yaml"
	pgbench_setup

	log "pgbench on $DB (no Keyturn running): single-statement rotation, then Keyturn's two statements"
	run_pgbench pgbench-rotate-c16 "$WORK/rotate.sql" 16
	run_pgbench pgbench-refresh-path-c16 "$WORK/refresh-path.sql" 16
	for c in $CONCURRENCY; do
		if [[ $c != 16 ]]; then run_pgbench "pgbench-rotate-c$c" "$WORK/rotate.sql" "$c"; fi
	done
	log "Keyturn on PostgreSQL (a fresh server process per run)"
	run_scenarios postgres "$WORK/pg.yaml" "$PG_PORT"

	# The second instance: the first's config but for its listen address.
	PG2_PORT=$((PORT + 10)) FLOOR_PORT=$((PORT + 11))
	write_config "$WORK/pg2.yaml" "$PG_PORT" "$PG_URL" "$WORK/pg-data"
	sed -i "s|^listen: .*|listen: 127.0.0.1:$PG2_PORT|" "$WORK/pg2.yaml"
	# Each of the two gets half the connections, so that the database sees
	# as many as from one instance (the pool size is the fleet's budget).
	cp "$WORK/pg.yaml" "$WORK/pg1.yaml"
	sed -i "s|^  max_open_conns: .*|  max_open_conns: $TWO_CONNS|" "$WORK/pg1.yaml" "$WORK/pg2.yaml"
	if [[ $FLOOR == 1 && " $SCENARIOS " == *" refresh "* ]]; then
		log "the floor (cmd/keyturn-bench/floor, on 127.0.0.1:$FLOOR_PORT) on the load of postgres-refresh: Keyturn ÷ floor"
		for c in $CONCURRENCY; do
			# shellcheck disable=SC2046
			floor_run "floor-refresh-c$c" -scenario refresh -c "$c" -d "${DURATION}s" $(sessions_args)
		done
	fi
	if [[ $TWO_INSTANCES == 1 ]] && (( ! SCALE_FLAGS )); then
		log "two instances: skipped (this keyturn-bench has no comma-separated -url)"
	elif [[ $TWO_INSTANCES == 1 ]]; then
		log "two Keyturn instances on one database (127.0.0.1:$PG_PORT and :$PG2_PORT, GOMAXPROCS $TWO_PROCS and $TWO_CONNS connections each), round-robin"
		for c in $CONCURRENCY; do
			# shellcheck disable=SC2046
			two_run "postgres-refresh-2inst-c$c" -scenario refresh -c "$c" -d "${DURATION}s" $(sessions_args)
		done
	fi
	if (( SEED_SESSIONS > 0 )); then
		log "$SEED_SESSIONS seeded sessions, each request a uniformly random one: Keyturn, the floor$( [[ $TWO_INSTANCES == 1 ]] && echo ', two instances')"
		for c in $CONCURRENCY; do
			for target in postgres floor 2inst; do
				case $target in
				postgres)
					start_server postgres "$WORK/pg.yaml" "$PG_PORT"
					# shellcheck disable=SC2046
					bench "postgres-refresh-seed$SEED_SESSIONS-c$c" "$PG_PORT" -scenario refresh -c "$c" -d "${DURATION}s" $(seed_args)
					stop "$SERVER_PID" ;;
				floor)
					if [[ $FLOOR == 1 ]]; then
						# shellcheck disable=SC2046
						floor_run "floor-refresh-seed$SEED_SESSIONS-c$c" -scenario refresh -c "$c" -d "${DURATION}s" $(seed_args)
					fi ;;
				2inst)
					if [[ $TWO_INSTANCES == 1 ]]; then
						# shellcheck disable=SC2046
						two_run "postgres-refresh-seed$SEED_SESSIONS-2inst-c$c" -scenario refresh -c "$c" -d "${DURATION}s" $(seed_args)
					fi ;;
				esac
			done
		done
		storage_line "$OUT/postgres-storage-seeded.txt" "after the last seeded run"
	fi

	if [[ $FLOOD == 1 ]]; then
		log "password flood (c=16) with refreshes alongside (c=16), PostgreSQL, default hash slots (GOMAXPROCS)"
		flood flood "$WORK/pg.yaml" "$PG_PORT"
		log "the same with login.max_concurrent_hashes: 1 (a core left for everything else; queue 32, so that the flood and the refresh run's setup logins wait rather than being shed)"
		write_config "$WORK/pg-1hash.yaml" "$PG_PORT" "$PG_URL" "$WORK/pg-data" $'login:\n  max_concurrent_hashes: 1\n  max_queued_hashes: 32'
		flood flood-1hash "$WORK/pg-1hash.yaml" "$PG_PORT"
		log "the same with login.hash_processors: shared (GOMAXPROCS = CPUs: hashes and requests share the processors)"
		write_config "$WORK/pg-shared.yaml" "$PG_PORT" "$PG_URL" "$WORK/pg-data" $'login:\n  hash_processors: shared'
		flood flood-shared "$WORK/pg-shared.yaml" "$PG_PORT"
	fi

	log "pgbench again, after the Keyturn runs (the two figures bracket them)"
	run_pgbench pgbench-rotate-c16-after "$WORK/rotate.sql" 16

	for s in $PROFILE; do
		log "CPU profile: $s, c=16, PostgreSQL (the server in a test binary, profiled during the measured run only; see profile_test.go)"
		start_server "profile-$s" "$WORK/pg.yaml" "$PG_PORT" env \
			KEYTURN_BENCH_PROFILE_CONFIG="$WORK/pg.yaml" KEYTURN_BENCH_PROFILE_SECONDS=$((DURATION + 300)) \
			KEYTURN_BENCH_PROFILE_OUT="$OUT/profile-$s" \
			"$BIN/profserve.test" -test.run '^TestServeForProfile$' -test.v
		RETRIES=1 bench "profile-$s" "$PG_PORT" -scenario "$s" -c 16 -d "${DURATION}s" -signal-after-setup
		stop "$SERVER_PID"
		go tool pprof -top -nodecount=50 "$BIN/profserve.test" "$OUT/profile-$s.cpu.pprof" > "$OUT/profile-$s.top.txt" 2>/dev/null
		go tool pprof -top -cum -nodecount=80 "$BIN/profserve.test" "$OUT/profile-$s.cpu.pprof" > "$OUT/profile-$s.cum.txt" 2>/dev/null
		go tool pprof -top -sample_index=alloc_space -nodecount=40 -base "$OUT/profile-$s.allocs-start.pprof" \
			"$BIN/profserve.test" "$OUT/profile-$s.allocs.pprof" > "$OUT/profile-$s.alloc.txt" 2>/dev/null || true
		sed -n '1,25p' "$OUT/profile-$s.top.txt"
	done

	# One row per session however often it rotated (DESIGN.md §2): rows =
	# logins, whatever the number of refreshes.
	storage_line "$OUT/postgres-storage.txt" "at the end"
fi

# ---------------------------------------------------------------- SQLite
if [[ " $BACKENDS " == *" sqlite "* ]]; then
	SQ_PORT=$((PORT + 2))
	log "SQLite: $WORK/sqlite-data, server on 127.0.0.1:$SQ_PORT"
	write_config "$WORK/sqlite.yaml" "$SQ_PORT" "sqlite://$WORK/sqlite-data/keyturn.db" "$WORK/sqlite-data"
	create_users "$WORK/sqlite.yaml"
	run_scenarios sqlite "$WORK/sqlite.yaml" "$SQ_PORT"
fi

# ---------------------------------------------------------------- signing algorithms
i=3
for alg in $ALGS; do
	port=$((PORT + i)); i=$((i + 1))
	log "client_credentials with $alg access tokens (SQLite, fresh keys), c=16"
	write_config "$WORK/$alg.yaml" "$port" "sqlite://$WORK/$alg-data/keyturn.db" "$WORK/$alg-data"
	start_server "$alg" "$WORK/$alg.yaml" "$port" env KEYTURN_KEYS_ALGORITHM="$alg" "$BIN/keyturn" serve --config "$WORK/$alg.yaml"
	bench "sqlite-client_credentials-$alg-c16" "$port" -scenario client_credentials -c 16 -d "${DURATION}s"
	stop "$SERVER_PID"
done

# ---------------------------------------------------------------- Go benchmarks
if [[ $GOBENCH == 1 ]]; then
	log "Go benchmarks: per-request CPU work, no network or database (server/bench_test.go)"
	wait_quiet
	if (cd "$ROOT" && go test -run '^$' -bench . -benchmem -count 1 ./server/) > "$OUT/gobench.txt" 2>&1; then
		grep -E '^Benchmark' "$OUT/gobench.txt"
	else
		echo "   go test -bench failed (see $OUT/gobench.txt); continuing"
	fi
fi

log "argon2id again"
measure_hash "$OUT/hash-after.json"

# ---------------------------------------------------------------- summary
# ratio TEXT A B: "A ÷ B" in ok req/s and in server CPU per request, when
# both runs were made (the CPU of a two-instance run is both processes').
ratio() {
	[[ -f $OUT/$2.json && -f $OUT/$3.json ]] || return 0
	jq -s -r --arg text "$1" 'map({ok: .total.ok_per_second, rps: .total.requests_per_second,
			cpu: (if (.label | test("2inst")) then ([(.usage.cpu_by_command // [])[] | select(.command == "keyturn") | .cpu_percent] | add // 0) else .usage.cpu_percent end)})
		| map(. + {us: (if .rps > 0 then .cpu * 10000 / .rps else 0 end)})
		| "\($text): \(.[0].ok | floor) / \(.[1].ok | floor) ok req/s = \(if .[1].ok > 0 then (.[0].ok * 1000 / .[1].ok | floor / 10) else "-" end) %; server CPU per request \(.[0].us | floor) / \(.[1].us | floor) µs = \(if .[1].us > 0 then (.[0].us * 100 / .[1].us | floor / 100) else "-" end)×"' \
		"$OUT/$2.json" "$OUT/$3.json"
}

log "summary ($OUT/summary.md)"
{
	echo "| run | req/s | ok/s | p50 ms | p90 ms | p99 ms | max ms | errors | server CPU % | server CPU µs/req | server RSS max MiB | machine busy % | steal % | other jobs CPU % |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	for f in "$OUT"/*.json; do
		[[ $(basename "$f") == hash*.json ]] && continue
		# Two instances: the CPU of both (every process named keyturn).
		jq -r --arg ours "$OURS" '(if (.label | test("2inst")) then ([(.usage.cpu_by_command // [])[] | select(.command == "keyturn") | .cpu_percent] | add // 0) else .usage.cpu_percent end) as $cpu | "| \(.label) | \(.total.requests_per_second | floor) | \(.total.ok_per_second | floor) | \(.total.p50_ms) | \(.total.p90_ms) | \(.total.p99_ms) | \(.total.max_ms) | \(.total.errors) \(if .total.errors > 0 then (.errors_by_code | tostring) else "" end) | \($cpu | floor) | \(if .total.requests_per_second > 0 then ($cpu * 10000 / .total.requests_per_second | floor) else "" end) | \(.usage.max_rss_mib * 10 | floor / 10) | \(.usage.machine_cpu_busy_percent | floor) | \(.usage.machine_cpu_steal_percent | floor) | \([(.usage.cpu_by_command // [])[] | select(.command | test($ours) | not) | .cpu_percent] | add // 0) |"' "$f"
	done
	echo
	for f in hash hash-after; do
		jq -r --arg when "$f" '"argon2id (\(.params)), \(if $when == "hash" then "at the start" else "at the end" end): one hash \(.median_ms) ms (median of \(.hashes)); limit \(.cpus) / \(.median_ms) ms = \(.limit_per_second * 10 | floor / 10) logins/s; \(.cpus) hashes at once achieved \(.parallel_per_second * 10 | floor / 10)/s"' "$OUT/$f.json"
	done
	jq -s -r '"argon2id limit, mean of both: \((.[0].limit_per_second + .[1].limit_per_second) / 2 * 10 | floor / 10) logins/s"' "$OUT/hash.json" "$OUT/hash-after.json"
	if [[ -f $OUT/pgbench-rotate-c16.txt ]]; then
		rot=$(pgbench_tps pgbench-rotate-c16)
		after=$(pgbench_tps pgbench-rotate-c16-after)
		path=$(pgbench_tps pgbench-refresh-path-c16)
		kt=$(jq -r '.total.ok_per_second' "$OUT/postgres-refresh-c16.json" 2>/dev/null || echo 0)
		echo "pgbench single-statement rotation, c=16: $rot tx/s (before), $after tx/s (after); Keyturn's two statements (select + rotate): $path tx/s"
		awk -v k="$kt" -v r="$rot" -v a="$after" -v p="$path" 'BEGIN {
			printf "ratio Keyturn refresh req/s / pgbench rotation tx/s (c=16, PostgreSQL): %.0f / %.0f = %.1f %% (against the later pgbench: %.1f %%; against the two-statement pgbench: %.1f %%)\n", k, r, 100*k/r, 100*k/a, 100*k/p }'
	fi
	for f in flood flood-1hash flood-shared; do
		if [[ -f $OUT/$f-password.json ]]; then
			jq -r '"\(.label): \(.total.ok_per_second * 10 | floor / 10) logins/s ok, errors \(.errors_by_code | tostring)"' "$OUT/$f-password.json"
			jq -r '"\(.label) (during the flood): \(.total.ok_per_second | floor) req/s, p99 \(.total.p99_ms) ms, errors \(.total.errors)"' "$OUT/$f-refresh.json"
		fi
	done
	for c in $CONCURRENCY; do
		ratio "Keyturn ÷ floor, refresh, c=$c" postgres-refresh-c$c floor-refresh-c$c
		ratio "Keyturn ÷ floor, refresh, $SEED_SESSIONS sessions, c=$c" postgres-refresh-seed$SEED_SESSIONS-c$c floor-refresh-seed$SEED_SESSIONS-c$c
		ratio "Keyturn, $SEED_SESSIONS sessions ÷ the concurrency's sessions, c=$c" postgres-refresh-seed$SEED_SESSIONS-c$c postgres-refresh-c$c
		ratio "two instances ÷ one, refresh, c=$c" postgres-refresh-2inst-c$c postgres-refresh-c$c
		ratio "two instances ÷ one, refresh, $SEED_SESSIONS sessions, c=$c" postgres-refresh-seed$SEED_SESSIONS-2inst-c$c postgres-refresh-seed$SEED_SESSIONS-c$c
		ratio "two instances, $SEED_SESSIONS sessions ÷ one instance, the concurrency's sessions, c=$c" postgres-refresh-seed$SEED_SESSIONS-2inst-c$c postgres-refresh-c$c
	done
	for f in postgres-storage-seeded postgres-storage; do
		if [[ -f $OUT/$f.txt ]]; then cat "$OUT/$f.txt"; fi
	done
} | tee "$OUT/summary.md"
echo
echo "results: $OUT"
