#!/usr/bin/env bash
# access-log-cost.sh — what the access log costs: requests/s and coregate CPU µs per request with
# log.access_log = "off" vs a file, same upstream, same load, alternating in one run.
#
# Layout: two coregate processes (workers = 1), identical but for [log], both pinned to
# PROXY_CPU (only the one under load is busy); an nginx upstream answering "ok" and
# coregate-bench pinned to LOAD_CPU. Rounds alternate the order (off first, then on first) so
# drift on a shared machine does not favour one side. After the rounds the "on" gateway is
# stopped and its file counted: lines written vs requests sent, and lines it reported dropped.
# Target (issue 8): on ≥ 0.95 × off requests/s.
#
# Output: a markdown table on stdout and JSON in $RESULTS_DIR/access-log-cost-<UTC date>.json.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ACCESS_FORMAT=${ACCESS_FORMAT:-combined}
COREGATE=${COREGATE:-$REPO_ROOT/target/release/coregate}
COREGATE_BENCH=${COREGATE_BENCH:-$REPO_ROOT/target/release/coregate-bench}
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/bench/results}

case "${1:-}" in
    -h | --help)
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
        echo "Environment: DURATION [$DURATION] WARMUP [$WARMUP] ROUNDS [$ROUNDS] CONNS [$CONNS]"
        echo "  PROXY_CPU [$PROXY_CPU] LOAD_CPU [$LOAD_CPU] ACCESS_FORMAT [$ACCESS_FORMAT] (combined | json)"
        echo "  COREGATE COREGATE_BENCH RESULTS_DIR"
        exit 0
        ;;
esac

die() { printf '[access-log-cost] ERROR: %s\n' "$*" >&2; exit 1; }
log() { printf '[access-log-cost] %s\n' "$*" >&2; }
case "$ACCESS_FORMAT" in combined | json) ;; *) die "ACCESS_FORMAT must be combined or json" ;; esac
for tool in nginx taskset python3; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
[ -x "$COREGATE" ] || die "$COREGATE missing (cargo build --release)"
[ -x "$COREGATE_BENCH" ] || die "$COREGATE_BENCH missing (cargo build --release)"

WORK=$(mktemp -d /tmp/access-log-cost.XXXXXX)
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

declare -A PORT PID
start_gateway() {   # start_gateway NAME ACCESS_LOG_VALUE
    local name=$1 access=$2
    PORT[$name]=$(free_port)
    cat >"$WORK/$name.toml" <<EOF
[runtime]
workers = 1

[log]
access_log = $access
access_format = "$ACCESS_FORMAT"

[[listener]]
name = "web"
bind = "127.0.0.1:${PORT[$name]}"

[[route]]
listener = "web"
upstream = "up"

[[upstream]]
name = "up"
endpoints = ["127.0.0.1:$UP_PORT"]
EOF
    "$COREGATE" check --config "$WORK/$name.toml" >/dev/null || die "coregate refused $WORK/$name.toml"
    taskset -c "$PROXY_CPU" "$COREGATE" run --config "$WORK/$name.toml" >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    PIDS+=("${PID[$name]}")
    wait_port "${PORT[$name]}"
}
start_gateway off '"off"'
start_gateway on "\"$WORK/access.log\""

# run_one NAME → prints "rps cpu_us_per_req p99_us requests"
run_one() {
    local name=$1 json="$WORK/run.json" t0 t1 url="http://127.0.0.1:${PORT[$1]}/"
    taskset -c "$LOAD_CPU" "$COREGATE_BENCH" -c "$CONNS" -d "${WARMUP}s" --json "$WORK/warm.json" "$url" \
        >/dev/null 2>&1 || die "warm-up against $name failed"
    t0=$(ticks "${PID[$name]}")
    taskset -c "$LOAD_CPU" "$COREGATE_BENCH" -c "$CONNS" -d "${DURATION}s" --json "$json" "$url" \
        >/dev/null 2>&1 || die "run against $name failed"
    t1=$(ticks "${PID[$name]}")
    python3 - "$json" "$WORK/warm.json" "$((t1 - t0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r, w = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ticks, hz = int(sys.argv[3]), int(sys.argv[4])
req = r["requests"]
bad = sum(v for k, v in r.get("status", {}).items() if not k.startswith("2"))
if bad or sum(r.get("errors", {}).values()):
    sys.exit(f"non-2xx or errors in the run: {r.get('status')} {r.get('errors')}")
print(f'{r["requests_per_sec"]:.0f} {ticks / hz * 1e6 / req:.2f} {r["latency_us"]["p99"]:.0f} {req + w["requests"]}')
PY
}

mkdir -p "$RESULTS_DIR"
OUT="$RESULTS_DIR/access-log-cost-$(date -u +%Y-%m-%dT%H%M%SZ).json"
declare -a ROWS
SENT_ON=0
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order=(off on); else order=(on off); fi
    for which in "${order[@]}"; do
        log "round $round: access log $which"
        read -r rps cpu p99 sent < <(run_one "$which")
        ROWS+=("$round $which $rps $cpu $p99")
        if [ "$which" = on ]; then SENT_ON=$((SENT_ON + sent)); fi
    done
done

# Stop the "on" gateway (it writes its last lines), then count.
kill -TERM "${PID[on]}"
for _ in $(seq 1 200); do kill -0 "${PID[on]}" 2>/dev/null || break; sleep 0.05; done
LINES=$(wc -l <"$WORK/access.log")
DROPPED=$({ grep -oP 'access log: lines dropped.*?dropped=\K[0-9]+' "$WORK/on.log" || true; } | awk '{ s += $1 } END { print s + 0 }')
BYTES=$(stat -c %s "$WORK/access.log")

printf '%s\n' "${ROWS[@]}" >"$WORK/rows.txt"
python3 - "$OUT" "$WORK/rows.txt" "$SENT_ON" "$LINES" "$DROPPED" "$BYTES" "$ACCESS_FORMAT" <<'PY'
import json, statistics, sys
out, rows_file, sent, lines, dropped, size, fmt = sys.argv[1:8]
sent, lines, dropped, size = int(sent), int(lines), int(dropped), int(size)
rows = [l.split() for l in open(rows_file).read().splitlines() if l.strip()]
by = {}
for rnd, which, rps, cpu, p99 in rows:
    by.setdefault(int(rnd), {})[which] = {"rps": float(rps), "cpu_us_per_req": float(cpu), "p99_us": float(p99)}
print(f"access_format = {fmt}\n")
print("| round | off req/s | on req/s | ratio | off CPU µs/req | on CPU µs/req | CPU ratio | off p99 µs | on p99 µs |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
ratios, cratios = [], []
for rnd in sorted(by):
    a, b = by[rnd]["off"], by[rnd]["on"]
    r, c = b["rps"] / a["rps"], b["cpu_us_per_req"] / a["cpu_us_per_req"]
    ratios.append(r); cratios.append(c)
    print(f"| {rnd} | {a['rps']:.0f} | {b['rps']:.0f} | {r:.3f} | {a['cpu_us_per_req']:.2f} | {b['cpu_us_per_req']:.2f} | {c:.3f} | {a['p99_us']:.0f} | {b['p99_us']:.0f} |")
med, cmed = statistics.median(ratios), statistics.median(cratios)
print(f"\nmedian on/off: req/s {med:.3f} (target >= 0.95: {'met' if med >= 0.95 else 'NOT met'}), CPU per request {cmed:.3f}")
print(f"access log: {lines} lines ({size / max(lines, 1):.0f} bytes each) for {sent} requests sent (warm-ups included); {dropped} reported dropped")
json.dump({"access_format": fmt, "rounds": by, "median_rps_ratio": med, "median_cpu_ratio": cmed,
           "access_log": {"requests_sent": sent, "lines": lines, "dropped": dropped, "bytes": size}},
          open(out, "w"), indent=2)
PY
log "results: $OUT"
