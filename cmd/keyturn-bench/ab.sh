#!/usr/bin/env bash
# Alternating A/B passes of one keyturn-bench scenario against two Keyturn
# builds or settings on one PostgreSQL database, for before/after figures on
# a machine whose speed drifts from minute to minute (BENCHMARKS.md): each
# round runs A then B, each on a fresh server process, so drift hits both.
#
#   bash cmd/keyturn-bench/ab.sh KEYTURN_A KEYTURN_B [YAML_A [YAML_B]]
#
# KEYTURN_A/B are keyturn binaries (the same one twice to compare settings);
# YAML_A/B are appended to each side's config (e.g. $'login:\n  hash_processors: shared').
# Knobs: ROUNDS=3 SCENARIO=refresh CONCURRENCY=16 DURATION=10 USERS=16
# PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres PORT=18300. Prints one line
# per run: req/s, p50/p99, server CPU per request, RSS. Loopback only; the
# database and servers it starts are dropped and stopped on exit.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
(( $# >= 2 )) || { sed -n '2,15p' "${BASH_SOURCE[0]}" >&2; exit 2; }
BIN_A=$1 BIN_B=$2 YAML_A=${3:-} YAML_B=${4:-}
ROUNDS=${ROUNDS:-3} SCENARIO=${SCENARIO:-refresh} CONCURRENCY=${CONCURRENCY:-16}
DURATION=${DURATION:-10} USERS=${USERS:-16} PORT=${PORT:-18300}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
for tool in go curl jq createdb dropdb; do
	command -v "$tool" >/dev/null || { echo "ab.sh needs $tool" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/keyturn-ab.XXXXXX)
DB=keyturn_ab_$$_$RANDOM
SERVER=
cleanup() {
	if [[ -n $SERVER ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
	dropdb --if-exists "$DB" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
(cd "$ROOT" && go build -o "$WORK/keyturn-bench" ./cmd/keyturn-bench)

KEYTURN_SECRET=$(head -c 32 /dev/urandom | base64)
KEYTURN_BENCH_CLIENT_SECRET=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
KEYTURN_BENCH_INTROSPECT_SECRET=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
KEYTURN_BENCH_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
export KEYTURN_SECRET KEYTURN_BENCH_CLIENT_SECRET KEYTURN_BENCH_INTROSPECT_SECRET KEYTURN_BENCH_PASSWORD

# shellcheck source=cmd/keyturn-bench/config.sh
source "$ROOT/cmd/keyturn-bench/config.sh"
URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB?sslmode=disable"
write_config "$WORK/a.yaml" "$PORT" "$URL" "$WORK/data" "$YAML_A"
write_config "$WORK/b.yaml" "$PORT" "$URL" "$WORK/data" "$YAML_B"
createdb "$DB"
"$BIN_A" migrate --config "$WORK/a.yaml" > /dev/null
for i in $(seq "$USERS"); do
	printf '%s\n' "$KEYTURN_BENCH_PASSWORD" | "$BIN_A" users create --username "bench-$i" --password-stdin --config "$WORK/a.yaml" > /dev/null
done

# run TAG BIN CONFIG: one measurement on a fresh server.
run() {
	"$2" serve --config "$3" >> "$WORK/server.log" 2>&1 &
	SERVER=$!
	for _ in $(seq 150); do
		curl -sf "http://127.0.0.1:$PORT/.well-known/oauth-authorization-server" > /dev/null && break
		kill -0 "$SERVER" 2>/dev/null || { tail -20 "$WORK/server.log" >&2; exit 1; }
		sleep 0.1
	done
	"$WORK/keyturn-bench" -url "http://127.0.0.1:$PORT" -client-id bench -username bench -users "$USERS" \
		-pid "$SERVER" -scenario "$SCENARIO" -c "$CONCURRENCY" -d "${DURATION}s" -json > "$WORK/run.json"
	kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
	jq -r --arg t "$1" '"\($t): \(.total.requests_per_second | floor) req/s, p50 \(.total.p50_ms) / p99 \(.total.p99_ms) ms, server \(.usage.cpu_percent | floor) % = \(.usage.cpu_percent * 10000 / .total.requests_per_second | floor) µs/req, RSS \(.usage.max_rss_mib | floor) MiB, machine \(.usage.machine_cpu_busy_percent | floor) % busy, errors \(.total.errors)"' "$WORK/run.json"
}
echo "$SCENARIO, c=$CONCURRENCY, ${DURATION}s per run, $ROUNDS rounds; A: $BIN_A${YAML_A:+ + $YAML_A}; B: $BIN_B${YAML_B:+ + $YAML_B}"
for r in $(seq "$ROUNDS"); do
	run "A$r" "$BIN_A" "$WORK/a.yaml"
	run "B$r" "$BIN_B" "$WORK/b.yaml"
done
