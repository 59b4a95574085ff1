# shellcheck shell=bash
# lib-http-cost.sh — what policy-cost.sh and ops-cost.sh share: settings, an nginx upstream
# answering "ok" on LOAD_CPU, port helpers, and `run_one PATH` (warm-up, then a timed
# coregate-bench run against the gateway GW_PID on GW_PORT, printing "rps cpu_us_per_req p99_us").
# The sourcing script sets NAME (for messages and temp dirs), HELP_LINES (its header length) and
# BENCH_ARGS (extra coregate-bench arguments) first.

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)  # this library's directory: bench/scripts
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

case "${1:-}" in
    -h | --help)
        sed -n "2,${HELP_LINES}p" "$0" | sed 's/^# \{0,1\}//'
        echo "Environment: DURATION [$DURATION] WARMUP [$WARMUP] ROUNDS [$ROUNDS] CONNS [$CONNS]"
        echo "  PROXY_CPU [$PROXY_CPU] LOAD_CPU [$LOAD_CPU] COREGATE COREGATE_BENCH RESULTS_DIR"
        exit 0
        ;;
esac

die() { printf '[%s] ERROR: %s\n' "$NAME" "$*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$NAME" "$*" >&2; }
for tool in nginx taskset; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
[ -x "$COREGATE" ] || die "$COREGATE missing (cargo build --release)"
[ -x "$COREGATE_BENCH" ] || die "$COREGATE_BENCH missing (cargo build --release)"

WORK=$(mktemp -d "/tmp/$NAME.XXXXXX")
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

# run_one PATH → prints "rps cpu_us_per_req p99_us"
run_one() {
    local path=$1 json="$WORK/run.json" t0 t1
    taskset -c "$LOAD_CPU" "$COREGATE_BENCH" -c "$CONNS" -d "${WARMUP}s" "${BENCH_ARGS[@]}" \
        "http://127.0.0.1:$GW_PORT$path" >/dev/null 2>&1 || die "warm-up against $path failed"
    t0=$(ticks "$GW_PID")
    taskset -c "$LOAD_CPU" "$COREGATE_BENCH" -c "$CONNS" -d "${DURATION}s" "${BENCH_ARGS[@]}" \
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

