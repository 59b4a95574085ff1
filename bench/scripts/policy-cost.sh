#!/usr/bin/env bash
# policy-cost.sh — what a route's policies cost: requests/s and coregate CPU µs per request on a
# plain route vs a guarded route (rate limit + API-key auth + circuit breaker), same upstream,
# same load, alternating in one run.
#
# Layout: coregate (workers = 1) pinned to PROXY_CPU; an nginx upstream answering "ok" and
# coregate-bench pinned to LOAD_CPU. The guarded route's rate limit is set far above the offered
# load, so every request pays for the bucket check but none is rejected (the figures would
# otherwise measure 429s). Rounds alternate the order (plain first, then guarded first) so drift
# on a shared machine does not favour one side. Target: guarded ≥ 0.9 × plain requests/s.
#
# Output: a markdown table on stdout and JSON in $RESULTS_DIR/policy-cost-<UTC date>.json.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
COREGATE=${COREGATE:-$REPO_ROOT/target/release/coregate}
COREGATE_BENCH=${COREGATE_BENCH:-$REPO_ROOT/target/release/coregate-bench}
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/bench/results}
API_KEY=bench-key-0123456789

case "${1:-}" in
    -h | --help)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        echo "Environment: DURATION [$DURATION] WARMUP [$WARMUP] ROUNDS [$ROUNDS] CONNS [$CONNS]"
        echo "  PROXY_CPU [$PROXY_CPU] LOAD_CPU [$LOAD_CPU] COREGATE COREGATE_BENCH RESULTS_DIR"
        exit 0
        ;;
esac

die() { printf '[policy-cost] ERROR: %s\n' "$*" >&2; exit 1; }
log() { printf '[policy-cost] %s\n' "$*" >&2; }
for tool in nginx taskset; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
[ -x "$COREGATE" ] || die "$COREGATE missing (cargo build --release)"
[ -x "$COREGATE_BENCH" ] || die "$COREGATE_BENCH missing (cargo build --release)"

WORK=$(mktemp -d /tmp/policy-cost.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -f "$WORK/nginx.pid" ]; then kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {   # wait_port PORT: poll until something accepts, bounded
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    die "nothing listens on port $1"
}
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

UP_PORT=$(free_port)
GW_PORT=$(free_port)
mkdir -p "$WORK/nginx/logs"
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx;
    fastcgi_temp_path $WORK/nginx; uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
    server { listen 127.0.0.1:$UP_PORT; keepalive_requests 1000000; location / { return 200 "ok\n"; } }
}
EOF
taskset -c "$LOAD_CPU" nginx -p "$WORK/nginx" -c "$WORK/nginx.conf"
wait_port "$UP_PORT"

cat >"$WORK/coregate.toml" <<EOF
[runtime]
workers = 1

[[listener]]
name = "web"
bind = "127.0.0.1:$GW_PORT"

[[route]]
listener = "web"
path_prefix = "/plain"
upstream = "plain"

[[route]]
listener = "web"
path_prefix = "/guarded"
upstream = "guarded"
rate_limit = { rps = 100000000, burst = 100000000, key = "client_ip" }
auth = { api_key = { keys = ["$API_KEY"] } }

[[upstream]]
name = "plain"
endpoints = ["127.0.0.1:$UP_PORT"]

[[upstream]]
name = "guarded"
endpoints = ["127.0.0.1:$UP_PORT"]
[upstream.circuit_breaker]
error_rate = 0.5
EOF
"$COREGATE" check --config "$WORK/coregate.toml" >/dev/null || die "coregate refused the config"
taskset -c "$PROXY_CPU" "$COREGATE" run --config "$WORK/coregate.toml" >"$WORK/coregate.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_port "$GW_PORT"

# run_one PATH → prints "rps cpu_us_per_req p99_us"
run_one() {
    local path=$1 json="$WORK/run.json" t0 t1
    taskset -c "$LOAD_CPU" "$COREGATE_BENCH" -c "$CONNS" -d "${WARMUP}s" -H "x-api-key: $API_KEY" \
        "http://127.0.0.1:$GW_PORT$path" >/dev/null 2>&1 || die "warm-up against $path failed"
    t0=$(ticks "$GW_PID")
    taskset -c "$LOAD_CPU" "$COREGATE_BENCH" -c "$CONNS" -d "${DURATION}s" -H "x-api-key: $API_KEY" \
        --json "$json" "http://127.0.0.1:$GW_PORT$path" >/dev/null 2>&1 || die "run against $path failed"
    t1=$(ticks "$GW_PID")
    python3 - "$json" "$((t1 - t0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ticks, hz = int(sys.argv[2]), int(sys.argv[3])
req = r["requests"]
bad = sum(v for k, v in r.get("status", {}).items() if not k.startswith("2"))
if bad or sum(r.get("errors", {}).values()):
    sys.exit(f"non-2xx or errors in the run: {r.get('status')} {r.get('errors')}")
print(f'{r["requests_per_sec"]:.0f} {ticks / hz * 1e6 / req:.2f} {r["latency_us"]["p99"]:.0f}')
PY
}

mkdir -p "$RESULTS_DIR"
OUT="$RESULTS_DIR/policy-cost-$(date -u +%Y-%m-%dT%H%M%SZ).json"
declare -a ROWS
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order=(plain guarded); else order=(guarded plain); fi
    for which in "${order[@]}"; do
        log "round $round: /$which"
        read -r rps cpu p99 < <(run_one "/$which")
        ROWS+=("$round $which $rps $cpu $p99")
    done
done

printf '%s\n' "${ROWS[@]}" >"$WORK/rows.txt"
python3 - "$OUT" "$WORK/rows.txt" <<'PY'
import json, statistics, sys
rows = [l.split() for l in open(sys.argv[2]).read().splitlines() if l.strip()]
by = {}
for rnd, which, rps, cpu, p99 in rows:
    by.setdefault(int(rnd), {})[which] = {"rps": float(rps), "cpu_us_per_req": float(cpu), "p99_us": float(p99)}
print("| round | plain req/s | guarded req/s | ratio | plain CPU µs/req | guarded CPU µs/req | CPU ratio |")
print("|---:|---:|---:|---:|---:|---:|---:|")
ratios, cratios = [], []
for rnd in sorted(by):
    p, g = by[rnd]["plain"], by[rnd]["guarded"]
    r, c = g["rps"] / p["rps"], g["cpu_us_per_req"] / p["cpu_us_per_req"]
    ratios.append(r); cratios.append(c)
    print(f"| {rnd} | {p['rps']:.0f} | {g['rps']:.0f} | {r:.3f} | {p['cpu_us_per_req']:.2f} | {g['cpu_us_per_req']:.2f} | {c:.3f} |")
med, cmed = statistics.median(ratios), statistics.median(cratios)
print(f"\nmedian guarded/plain: req/s {med:.3f} (target >= 0.90: {'met' if med >= 0.9 else 'NOT met'}), CPU per request {cmed:.3f}")
json.dump({"rounds": by, "median_rps_ratio": med, "median_cpu_ratio": cmed}, open(sys.argv[1], "w"), indent=2)
PY
log "results: $OUT"
