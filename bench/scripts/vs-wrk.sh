#!/usr/bin/env bash
# vs-wrk.sh — is coregate-bench at least as fast as wrk? Same upstream (nginx, `return 200`,
# 1 worker pinned to CPU 1), same threads and connections, both generators pinned to CPU 0,
# alternating for ROUNDS rounds. Prints req/s and the generator's own CPU µs per request
# (utime+stime from /proc/PID/stat at the end of the run / requests).
# Usage: bench/scripts/vs-wrk.sh    (env: ROUNDS [3] DURATION [5] CONNS [64])
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-5}; CONNS=${CONNS:-64}
BENCH=${COREGATE_BENCH:-$ROOT/target/release/coregate-bench}
for tool in nginx wrk taskset; do command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install -y nginx wrk)" >&2; exit 1; }; done
[ -x "$BENCH" ] || { echo "build first: cargo build --release" >&2; exit 1; }
dir=$(mktemp -d); port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $dir/nginx.pid; error_log $dir/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 10000000;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  server { listen 127.0.0.1:$port; location / { return 200 "ok\n"; } } }
CONF
taskset -c 1 nginx -p "$dir" -c "$dir/nginx.conf" &
ngx=$!
trap 'kill $ngx 2>/dev/null; wait $ngx 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
# run NAME CMD...: runs CMD pinned to CPU 0, prints "| NAME | req/s | cpu µs per request |";
# the CPU is the child's utime+stime as the shell's `times` builtin reports it after the exit.
run() {
    local name=$1; shift
    local cpu reqs
    cpu=$( { taskset -c 0 "$@" >"$dir/out" 2>/dev/null || true; times; } | tail -1 |
        awk '{ n = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); n += p[1] * 60 + p[2] } print n }')
    reqs=$(grep -oP '^\s+\K[0-9]+(?= requests in)' "$dir/out")
    awk -v n="$name" -v r="$reqs" -v d="$DURATION" -v c="$cpu" \
        'BEGIN { printf "| %s | %.0f | %.2f |\n", n, r / d, c * 1e6 / r }'
}
echo "| generator | req/s | CPU µs/req |"
echo "|---|---:|---:|"
for _ in $(seq "$ROUNDS"); do
    run wrk wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$port/"
    run coregate-bench "$BENCH" -t1 -c"$CONNS" -d"${DURATION}s" --quiet "http://127.0.0.1:$port/"
done
