#!/usr/bin/env bash
# compare.sh — side-by-side benchmark on one machine, in one run:
#   direct (load generator → upstream), coregate, nginx and HAProxy, each proxy with one worker
#   pinned to PROXY_CPU (default 0), the load generator and the upstream (a second nginx)
#   pinned to LOAD_CPU (default 1). Same load for every contender, one after another.
#
# Per contender: requests/s, latency p50/p99 and, for proxies, the proxy's CPU time per request
# (utime+stime of all its processes and threads from /proc/PID/stat, sampled just before and
# just after the timed run, divided by the requests completed).
#
# Output: a markdown table on stdout, and the same figures as JSON in
# bench/results/compare-<UTC date>.json (or --out FILE / RESULTS_DIR=DIR).
#
# Run `bench/scripts/compare.sh --help` for the options.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

# ---------------------------------------------------------------------------------------------
# Settings (environment-overridable)
DURATION=${DURATION:-10}          # seconds of each timed run
WARMUP=${WARMUP:-2}               # seconds of warm-up before each timed run (not counted)
CONNS=${CONNS:-64}                # client connections
THREADS=${THREADS:-1}             # load generator threads
PROXY_CPU=${PROXY_CPU:-0}         # CPU the proxy runs on
LOAD_CPU=${LOAD_CPU:-1}           # CPU the load generator and the upstream run on
COREGATE=${COREGATE:-$REPO_ROOT/target/release/coregate}
# The bundled generator when it is built, else wrk.
if [ -z "${LOADGEN:-}" ]; then
    if [ -x "${COREGATE_BENCH:-$REPO_ROOT/target/release/coregate-bench}" ]; then LOADGEN=coregate-bench; else LOADGEN=wrk; fi
fi
COREGATE_BENCH=${COREGATE_BENCH:-$REPO_ROOT/target/release/coregate-bench}
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/bench/results}
START_TIMEOUT=${START_TIMEOUT:-10} # seconds to wait for a server to accept connections
ACCESS_LOG=${ACCESS_LOG:-off}     # off | on: coregate and nginx (the proxy) write an access log file
ACCESS_FORMAT=${ACCESS_FORMAT:-combined}  # coregate's log.access_format when ACCESS_LOG=on: combined | json

ALL_CONTENDERS=(direct coregate nginx haproxy)
ONLY=""
INSTALL=0
OUT=""

usage() {
    cat <<EOF
Usage: bench/scripts/compare.sh [--only LIST] [--out FILE] [--install] [--help]

Compares, on this machine and in one run, the same closed-loop load against:
  direct    load generator -> upstream (no proxy)
  coregate  coregate run --config <generated>, [runtime] workers = 1, pin = true
  nginx     nginx, worker_processes 1, upstream keepalive 64
  haproxy   haproxy, nbthread 1, http-reuse always
The upstream is a second nginx answering 'ok\\n' to every request.

Options:
  --only LIST   comma-separated subset of: ${ALL_CONTENDERS[*]} (default: all)
  --out FILE    where to write the JSON results
                (default: \$RESULTS_DIR/compare-<UTC date>.json, RESULTS_DIR=bench/results)
  --install     install missing tools first: apt-get update && apt-get install -y nginx haproxy wrk
  -h, --help    this text

Environment (defaults in brackets):
  DURATION [10]  WARMUP [2]  CONNS [64]  THREADS [1]  PROXY_CPU [0]  LOAD_CPU [1]
  COREGATE [target/release/coregate]   LOADGEN [wrk] (or coregate-bench)
  COREGATE_BENCH [target/release/coregate-bench]   RESULTS_DIR [bench/results]
  START_TIMEOUT [10] seconds a server may take to accept connections
  ACCESS_LOG [off]  on: coregate logs to <work>/coregate/access.log (log.access_log, format
                    ACCESS_FORMAT [combined] or json) and nginx to <work>/nginx/access.log
                    (combined, buffer=64k flush=100ms: the same batching); haproxy logs nothing
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --only) ONLY=${2:?--only needs a list}; shift 2 ;;
        --only=*) ONLY=${1#--only=}; shift ;;
        --out) OUT=${2:?--out needs a file}; shift 2 ;;
        --out=*) OUT=${1#--out=}; shift ;;
        --install) INSTALL=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

log() { printf '[compare] %s\n' "$*" >&2; }
warn() { printf '[compare] WARNING: %s\n' "$*" >&2; }
die() { printf '[compare] ERROR: %s\n' "$*" >&2; exit 1; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in DURATION WARMUP CONNS THREADS PROXY_CPU LOAD_CPU START_TIMEOUT; do
    is_uint "${!v}" || die "$v must be a non-negative integer (got '${!v}')"
done
[ "$DURATION" -ge 1 ] || die "DURATION must be at least 1"
{ [ "$CONNS" -ge 1 ] && [ "$THREADS" -ge 1 ]; } || die "CONNS and THREADS must be at least 1"
[ "$PROXY_CPU" != "$LOAD_CPU" ] || die "PROXY_CPU and LOAD_CPU must differ"
case "$ACCESS_LOG" in off|on) ;; *) die "ACCESS_LOG must be off or on (got '$ACCESS_LOG')" ;; esac
case "$ACCESS_FORMAT" in combined|json) ;; *) die "ACCESS_FORMAT must be combined or json (got '$ACCESS_FORMAT')" ;; esac

# Contender selection, kept in the canonical order.
CONTENDERS=()
if [ -z "$ONLY" ]; then
    CONTENDERS=("${ALL_CONTENDERS[@]}")
else
    IFS=',' read -r -a wanted <<<"$ONLY"
    for w in "${wanted[@]}"; do
        case " ${ALL_CONTENDERS[*]} " in
            *" $w "*) ;;
            *) die "--only: unknown contender '$w' (known: ${ALL_CONTENDERS[*]})" ;;
        esac
    done
    for c in "${ALL_CONTENDERS[@]}"; do
        for w in "${wanted[@]}"; do
            if [ "$c" = "$w" ]; then CONTENDERS+=("$c"); break; fi
        done
    done
fi
[ ${#CONTENDERS[@]} -gt 0 ] || die "no contender selected"
selected() { case " ${CONTENDERS[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# ---------------------------------------------------------------------------------------------
# Tools
need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
check_tools() {
    need_apt=()
    have nginx || need_apt+=(nginx)                       # the upstream is always nginx
    if selected haproxy && ! have haproxy; then need_apt+=(haproxy); fi
    if [ "$LOADGEN" = wrk ] && ! have wrk; then need_apt+=(wrk); fi
    have curl || need_apt+=(curl)
    have taskset || need_apt+=(util-linux)
    have getconf || need_apt+=(libc-bin)
    have timeout || need_apt+=(coreutils)
}
# A peer that is not installed is skipped, saying so (unless --install asks for it).
if [ "$INSTALL" = 0 ] && selected haproxy && ! have haproxy; then
    log "haproxy is not installed: skipping it (apt-get install haproxy, or pass --install)"
    kept=()
    for c in "${CONTENDERS[@]}"; do [ "$c" = haproxy ] || kept+=("$c"); done
    CONTENDERS=("${kept[@]}")
fi
check_tools
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$INSTALL" = 1 ]; then
        log "installing: ${need_apt[*]}"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y nginx haproxy wrk "${need_apt[@]}"
        check_tools
        [ ${#need_apt[@]} -eq 0 ] || die "still missing after install: ${need_apt[*]}"
    else
        die "missing tools: ${need_apt[*]}
    install them with:  apt-get update && apt-get install -y ${need_apt[*]}
    (or run this script with --install)"
    fi
fi
case "$LOADGEN" in
    wrk) ;;
    coregate-bench) [ -x "$COREGATE_BENCH" ] || die "LOADGEN=coregate-bench but $COREGATE_BENCH is not executable (cargo build --release)" ;;
    *) die "LOADGEN must be wrk or coregate-bench (got '$LOADGEN')" ;;
esac
if selected coregate; then
    [ -x "$COREGATE" ] || die "coregate binary not found at $COREGATE
    build it with 'cargo build --release' at the repository root, or point COREGATE=path at one"
fi

# CPUs: both must be in this process's allowed set.
allowed_cpus=$(awk '/^Cpus_allowed_list:/ {print $2}' /proc/self/status)
cpu_allowed() {
    local cpu=$1 range lo hi
    IFS=',' read -r -a ranges <<<"$allowed_cpus"
    for range in "${ranges[@]}"; do
        lo=${range%-*}; hi=${range#*-}
        if [ "$cpu" -ge "$lo" ] && [ "$cpu" -le "$hi" ]; then return 0; fi
    done
    return 1
}
cpu_allowed "$PROXY_CPU" || die "PROXY_CPU=$PROXY_CPU is not in the allowed CPUs ($allowed_cpus)"
cpu_allowed "$LOAD_CPU" || die "LOAD_CPU=$LOAD_CPU is not in the allowed CPUs ($allowed_cpus)"

CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------------
# Process bookkeeping and cleanup
WORK=$(mktemp -d /tmp/coregate-compare.XXXXXX)
STARTED=()   # pids of every server this script started

descendants() {   # every descendant pid of $1 (children, grandchildren, ...)
    local p kids k
    kids=$(pgrep -P "$1" 2>/dev/null || true)
    for k in $kids; do
        echo "$k"
        descendants "$k"
    done
}

alive() {   # running and not a zombie
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [ "${st%% *}" != Z ]
}

stop_pid() {   # TERM, wait (bounded), then KILL; also its descendants
    local pid=$1 i kids
    kids=$(descendants "$pid")
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
    fi
    for k in $pid $kids; do
        if alive "$k"; then kill -KILL "$k" 2>/dev/null || true; fi
    done
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    # a running load generator: TERM reaches wrk through timeout(1), which forwards it
    if [ -n "${LOADPID:-}" ] && alive "$LOADPID"; then kill -TERM "$LOADPID" 2>/dev/null || true; fi
    for pid in ${STARTED[@]+"${STARTED[@]}"}; do
        stop_pid "$pid"
    done
    if [ "${KEEP_WORK:-0}" = 1 ]; then
        log "kept work directory $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

forget_pid() {
    local keep=() p
    for p in "${STARTED[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    STARTED=("${keep[@]+"${keep[@]}"}")
}

# ---------------------------------------------------------------------------------------------
# Ports
USED_PORTS=" "
listening_ports() {   # local ports in use (any state) from /proc/net/tcp{,6}, decimal
    local hex
    awk 'FNR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u \
        | while read -r hex; do printf '%d ' "$((16#$hex))"; done
}
free_port() {
    local inuse port tries
    inuse=" $(listening_ports) "
    for ((tries = 0; tries < 200; tries++)); do
        port=$((20000 + RANDOM % 30000))
        case "$inuse$USED_PORTS" in *" $port "*) continue ;; esac
        USED_PORTS+="$port "
        echo "$port"
        return 0
    done
    die "could not find a free port"
}

wait_accepting() {   # wait_accepting NAME PID PORT LOGFILE — polls, bounded by START_TIMEOUT
    local name=$1 pid=$2 port=$3 logf=$4 deadline
    deadline=$((SECONDS + START_TIMEOUT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if ! alive "$pid"; then
            [ -f "$logf" ] && sed 's/^/    /' "$logf" >&2
            die "$name exited before accepting connections (log above)"
        fi
        if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    [ -f "$logf" ] && sed 's/^/    /' "$logf" >&2
    die "$name did not accept connections on 127.0.0.1:$port within ${START_TIMEOUT}s"
}

# ---------------------------------------------------------------------------------------------
# CPU accounting from /proc
proc_ticks() {   # utime+stime of one process (all its threads), in clock ticks; 0 if gone
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }            # fields from 3 (state) on; comm may hold spaces
    # shellcheck disable=SC2086
    set -- $s
    echo $(( ${12} + ${13} ))   # fields 14 (utime) and 15 (stime)
}
tree_ticks() {   # sum over $1 and its descendants (nginx master + worker, ...)
    local total=0 p
    for p in "$1" $(descendants "$1"); do
        total=$((total + $(proc_ticks "$p")))
    done
    echo "$total"
}

cpu_jiffies() {   # cpu_jiffies N → "task total irq" for CPU N from /proc/stat (clock ticks)
    # task = user + nice + system + steal (time processes, or the hypervisor, took);
    # irq = irq + softirq (much of it loopback packet processing caused by the proxy itself)
    awk -v c="cpu$1" '$1 == c {
        task = $2 + $3 + $4 + $9; irq = $7 + $8
        print task, task + irq + $5 + $6, irq; exit }' /proc/stat
}
foreign_pct() {   # foreign_pct TASK0 TOTAL0 TASK1 TOTAL1 OWN → % of the window others used the CPU
    awk -v b=$(($3 - $1)) -v t=$(($4 - $2)) -v own="$5" 'BEGIN {
        f = (t > 0) ? (b - own) * 100 / t : 0; if (f < 0) f = 0; printf "%.1f", f }'
}

# ---------------------------------------------------------------------------------------------
# Load generator: the one function to change when coregate-bench replaces wrk.
# run_load URL SECONDS RAWFILE → prints "requests rps p50_us p99_us socket_errors non_2xx"
to_us() {   # wrk time ("612.00us", "1.23ms", "2.00s", "1.00m") → integer microseconds
    awk -v t="$1" 'BEGIN {
        n = t + 0; u = t; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 1 : (u == "ms") ? 1e3 : (u == "s") ? 1e6 : (u == "m") ? 6e7 : (u == "h") ? 3.6e9 : -1
        if (f < 0) { print "null"; exit }
        printf "%.0f\n", n * f }'
}
json_num() {   # json_num KEY FILE → first numeric value of "KEY": in FILE (flat scan)
    grep -o "\"$1\"[[:space:]]*:[[:space:]]*[-0-9.eE+]*" "$2" | head -n1 | sed 's/.*:[[:space:]]*//'
}
run_load() {
    local url=$1 secs=$2 raw=$3 limit=$(( $2 + 30 ))
    case "$LOADGEN" in
    wrk)
        taskset -c "$LOAD_CPU" timeout "$limit" \
            wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency "$url" >"$raw" 2>&1 &
        LOADPID=$!
        wait "$LOADPID" || { sed 's/^/    /' "$raw" >&2; die "wrk failed against $url"; }
        LOADPID=""
        awk '
            /^[[:space:]]+50%/ { p50 = $2 }
            /^[[:space:]]+99%/ { p99 = $2 }
            / requests in /    { req = $1 }
            /^Requests\/sec:/  { rps = $2 }
            /Socket errors:/   { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
            /Non-2xx or 3xx responses:/ { bad = $NF }
            END { printf "%s %s %s %s %d %d\n", req, rps, p50, p99, err, bad }' "$raw" \
        | { read -r req rps p50 p99 err bad
            if [ -z "$req" ] || [ -z "$rps" ] || [ -z "$p99" ]; then sed 's/^/    /' "$raw" >&2; die "could not parse wrk output"; fi
            echo "$req $rps $(to_us "$p50") $(to_us "$p99") $err $bad"; }
        ;;
    coregate-bench)
        local json=$raw.json
        taskset -c "$LOAD_CPU" timeout "$limit" \
            "$COREGATE_BENCH" -t "$THREADS" -c "$CONNS" -d "${secs}s" --json "$json" "$url" >"$raw" 2>&1 &
        LOADPID=$!
        wait "$LOADPID" || { sed 's/^/    /' "$raw" >&2; die "coregate-bench failed against $url"; }
        LOADPID=""
        local req rps p50 p99 err s2xx
        req=$(json_num requests "$json"); rps=$(json_num requests_per_sec "$json")
        p50=$(json_num p50 "$json"); p99=$(json_num p99 "$json")
        err=$(awk -v f="$json" 'BEGIN {
                while ((getline l < f) > 0) s = s l
                if (match(s, /"errors"[[:space:]]*:[[:space:]]*\{[^}]*\}/)) {
                    e = substr(s, RSTART, RLENGTH); n = 0
                    while (match(e, /:[[:space:]]*[0-9]+/)) { n += substr(e, RSTART + 1) + 0; e = substr(e, RSTART + RLENGTH) }
                    print n
                } else print 0 }')
        s2xx=$(awk -v f="$json" 'BEGIN {
                while ((getline l < f) > 0) s = s l
                bad = 0
                if (match(s, /"status"[[:space:]]*:[[:space:]]*\{[^}]*\}/)) {
                    e = substr(s, RSTART, RLENGTH)
                    while (match(e, /"[0-9]+"[[:space:]]*:[[:space:]]*[0-9]+/)) {
                        kv = substr(e, RSTART, RLENGTH); e = substr(e, RSTART + RLENGTH)
                        code = kv; gsub(/"|:.*/, "", code); cnt = kv; sub(/.*:[[:space:]]*/, "", cnt)
                        if (code < 200 || code >= 400) bad += cnt
                    }
                }
                print bad }')
        if [ -z "$req" ] || [ -z "$rps" ] || [ -z "$p99" ]; then sed 's/^/    /' "$json" >&2; die "could not parse coregate-bench JSON"; fi
        printf '%s %s %.0f %.0f %s %s\n' "$req" "$rps" "$p50" "$p99" "$err" "$s2xx"
        ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# Servers. Each start_* sets PORT and PID of the started server and registers it for cleanup.
nginx_common_http() {   # temp paths inside the prefix, so nothing is written elsewhere
    cat <<EOF
    access_log off;
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
EOF
}

start_nginx() {   # start_nginx NAME CPU CONFFILE PREFIX PORT
    local name=$1 cpu=$2 conf=$3 prefix=$4 port=$5
    nginx -t -q -p "$prefix" -e "$prefix/error.log" -c "$conf" >"$prefix/check.log" 2>&1 \
        || { sed 's/^/    /' "$prefix/check.log" >&2; die "$name: nginx -t rejected $conf"; }
    taskset -c "$cpu" nginx -p "$prefix" -e "$prefix/error.log" -c "$conf" -g 'daemon off;' \
        >"$prefix/stdout.log" 2>&1 &
    PID=$!
    STARTED+=("$PID")
    wait_accepting "$name" "$PID" "$port" "$prefix/error.log"
}

start_upstream() {
    local dir=$WORK/upstream
    mkdir -p "$dir"
    UP_PORT=$(free_port)
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
$(nginx_common_http "$dir")
    server {
        listen 127.0.0.1:$UP_PORT backlog=4096;
        location / {
            default_type text/plain;
            return 200 "ok\n";
        }
    }
}
EOF
    start_nginx "upstream nginx" "$LOAD_CPU" "$dir/nginx.conf" "$dir" "$UP_PORT"
    UP_PID=$PID
}

start_coregate() {
    local dir=$WORK/coregate
    mkdir -p "$dir"
    PORT=$(free_port)
    local access='"off"'
    [ "$ACCESS_LOG" = on ] && access="\"$dir/access.log\""
    cat >"$dir/coregate.toml" <<EOF
# generated by bench/scripts/compare.sh
[runtime]
workers = 1
pin = true
shutdown_timeout = "2s"

[log]
level = "warn,coregate::runtime::worker=info"   # keeps the reuse line logged at stop
access_log = $access
access_format = "$ACCESS_FORMAT"

[[listener]]
name = "bench"
bind = "127.0.0.1:$PORT"
protocol = "http"
backlog = 4096

[[route]]
listener = "bench"
path_prefix = "/"
upstream = "up"

[[upstream]]
name = "up"
endpoints = ["127.0.0.1:$UP_PORT"]
max_idle_per_worker = 64
EOF
    "$COREGATE" check --config "$dir/coregate.toml" >"$dir/check.log" 2>&1 \
        || { sed 's/^/    /' "$dir/check.log" >&2; die "coregate check rejected the generated config $dir/coregate.toml"; }
    taskset -c "$PROXY_CPU" "$COREGATE" run --config "$dir/coregate.toml" >"$dir/run.log" 2>&1 &
    PID=$!
    STARTED+=("$PID")
    wait_accepting coregate "$PID" "$PORT" "$dir/run.log"
}

start_nginx_proxy() {
    local dir=$WORK/nginx
    mkdir -p "$dir"
    PORT=$(free_port)
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
$(nginx_common_http "$dir")
    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$PORT backlog=4096;
$( [ "$ACCESS_LOG" = on ] && echo "        access_log $dir/access.log combined buffer=64k flush=100ms;")
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    start_nginx nginx "$PROXY_CPU" "$dir/nginx.conf" "$dir" "$PORT"
}

start_haproxy() {
    local dir=$WORK/haproxy
    mkdir -p "$dir"
    PORT=$(free_port)
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread 1
    cpu-map 1/1 $PROXY_CPU
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 60s

frontend fe
    bind 127.0.0.1:$PORT
    default_backend be

backend be
    server up 127.0.0.1:$UP_PORT
EOF
    haproxy -c -q -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1 \
        || { sed 's/^/    /' "$dir/check.log" >&2; die "haproxy -c rejected $dir/haproxy.cfg"; }
    taskset -c "$PROXY_CPU" haproxy -f "$dir/haproxy.cfg" -db >"$dir/run.log" 2>&1 &
    PID=$!
    STARTED+=("$PID")
    wait_accepting haproxy "$PID" "$PORT" "$dir/run.log"
}

# ---------------------------------------------------------------------------------------------
# One-off correctness check: status 200 and the upstream's body.
check_response() {   # check_response NAME PORT → 0 if 200 + "ok"
    local name=$1 port=$2 code body
    code=$(curl -sS --max-time 5 -o "$WORK/$name.body" -w '%{http_code}' "http://127.0.0.1:$port/" 2>"$WORK/$name.curlerr") || code="curl-failed: $(cat "$WORK/$name.curlerr")"
    body=$(cat "$WORK/$name.body" 2>/dev/null || true)
    if [ "$code" = 200 ] && [ "$body" = ok ]; then return 0; fi
    LAST_CHECK="status $code, body '$(printf '%s' "$body" | head -c 80 | tr '\n' ' ')'"
    return 1
}

# ---------------------------------------------------------------------------------------------
# Machine info
json_str() {   # JSON string literal
    printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\000-\037')"
}
RUN_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
KERNEL=$(uname -r)
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
[ -n "$CPU_MODEL" ] || CPU_MODEL=$(lscpu 2>/dev/null | awk -F': +' '/Model name/ {print $2; exit}')
[ -n "$CPU_MODEL" ] || CPU_MODEL=unknown
NPROC=$(nproc)
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/^nginx version: //')
HAPROXY_VERSION=""
if selected haproxy; then HAPROXY_VERSION=$(haproxy -v 2>&1 | head -n1 | awk '{print $3}'); fi
LOADGEN_VERSION=""
if [ "$LOADGEN" = wrk ]; then
    LOADGEN_VERSION=$(wrk -v 2>&1 | head -n1 | awk '{print $2}' || true)
else
    LOADGEN_VERSION=$("$COREGATE_BENCH" --version 2>&1 | head -n1 || true)
fi
COREGATE_VERSION=""
if selected coregate; then COREGATE_VERSION=$("$COREGATE" --version 2>&1 | head -n1 || true); fi

if [ -z "$OUT" ]; then
    OUT=$RESULTS_DIR/compare-${RUN_DATE//:/}.json
fi

log "$RUN_DATE  kernel $KERNEL  cpu '$CPU_MODEL'  nproc $NPROC"
log "contenders: ${CONTENDERS[*]}; load: $LOADGEN -t$THREADS -c$CONNS, warm-up ${WARMUP}s, timed ${DURATION}s; proxy on CPU $PROXY_CPU, load+upstream on CPU $LOAD_CPU"

# ---------------------------------------------------------------------------------------------
# Run
declare -A R_REQ R_RPS R_P50 R_P99 R_ERR R_BAD R_CPU R_UPCPU R_PROXIED R_FOREIGN R_IRQ

start_upstream
log "upstream nginx on 127.0.0.1:$UP_PORT (pid $UP_PID, CPU $LOAD_CPU)"
check_response direct "$UP_PORT" || die "the upstream itself answered $LAST_CHECK, expected 200 'ok'"

for c in "${CONTENDERS[@]}"; do
    PID=""
    case "$c" in
        direct) PORT=$UP_PORT ;;
        coregate) start_coregate ;;
        nginx) start_nginx_proxy ;;
        haproxy) start_haproxy ;;
    esac
    if [ -n "$PID" ]; then
        log "$c on 127.0.0.1:$PORT (pid $PID, CPU $PROXY_CPU)"
    fi
    R_PROXIED[$c]=true
    if ! check_response "$c" "$PORT"; then
        if [ "$c" = coregate ]; then
            warn "coregate answered $LAST_CHECK instead of the upstream's 200 'ok': it is not proxying yet, so its figures are NOT a proxy measurement"
            R_PROXIED[$c]=false
        else
            die "$c answered $LAST_CHECK, expected 200 'ok' from the upstream"
        fi
    fi
    url="http://127.0.0.1:$PORT/"
    if [ "$WARMUP" -gt 0 ]; then
        log "$c: warm-up ${WARMUP}s"
        run_load "$url" "$WARMUP" "$WORK/$c.warmup.txt" >/dev/null
    fi
    log "$c: measuring ${DURATION}s"
    before=0; [ -n "$PID" ] && before=$(tree_ticks "$PID")
    up_before=$(tree_ticks "$UP_PID")
    read -r cpu_busy0 cpu_total0 cpu_irq0 < <(cpu_jiffies "$PROXY_CPU")
    run_load "$url" "$DURATION" "$WORK/$c.txt" >"$WORK/$c.result"
    after=0; [ -n "$PID" ] && after=$(tree_ticks "$PID")
    up_after=$(tree_ticks "$UP_PID")
    read -r cpu_busy1 cpu_total1 cpu_irq1 < <(cpu_jiffies "$PROXY_CPU")
    read -r req rps p50 p99 err bad <"$WORK/$c.result" || die "$c: no result from the load generator"
    R_REQ[$c]=$req; R_RPS[$c]=$rps; R_P50[$c]=$p50; R_P99[$c]=$p99; R_ERR[$c]=$err; R_BAD[$c]=$bad
    if [ -n "$PID" ] && [ "$req" -gt 0 ]; then
        R_CPU[$c]=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
    else
        R_CPU[$c]=""
    fi
    R_UPCPU[$c]=$(awk -v t=$((up_after - up_before)) -v hz="$CLK_TCK" -v n="$req" 'BEGIN { if (n > 0) printf "%.3f", t * 1e6 / hz / n }')
    # Time the proxy's CPU spent running anything but the proxy (another build, say): figures
    # are unreliable when it is large. Interrupt/softirq time is kept apart (proxy_cpu_irq_us_per_req).
    R_IRQ[$c]=$(awk -v t=$((cpu_irq1 - cpu_irq0)) -v hz="$CLK_TCK" -v n="$req" 'BEGIN { if (n > 0) printf "%.3f", t * 1e6 / hz / n }')
    R_FOREIGN[$c]=$(foreign_pct "$cpu_busy0" "$cpu_total0" "$cpu_busy1" "$cpu_total1" $((after - before)))
    if awk -v f="${R_FOREIGN[$c]}" 'BEGIN { exit !(f > 10) }'; then
        warn "$c: CPU $PROXY_CPU was ${R_FOREIGN[$c]}% busy with other work during the timed run: the machine is not quiet, figures are unreliable"
    fi
    if [ "$err" -gt 0 ] || [ "$bad" -gt 0 ]; then
        warn "$c: $err socket errors, $bad non-2xx/3xx responses during the timed run"
    fi
    if [ -n "$PID" ]; then
        stop_pid "$PID"
        forget_pid "$PID"
    fi
    if [ "$c" = coregate ]; then
        # coregate logs its upstream connection reuse per worker when it stops.
        COREGATE_REUSE=$(grep -oP 'reuse_ratio=\K[0-9.]+' "$WORK/coregate/run.log" | tail -n1 || true)
        if [ "$ACCESS_LOG" = on ]; then
            # Lines written (warm-up, check request and timed run) and lines dropped (warnings).
            COREGATE_ACCESS_LINES=$(wc -l <"$WORK/coregate/access.log" 2>/dev/null || echo 0)
            COREGATE_ACCESS_DROPPED=$({ grep -oP 'access log: lines dropped.*?dropped=\K[0-9]+' "$WORK/coregate/run.log" || true; } \
                | awk '{ s += $1 } END { print s + 0 }')
        fi
    fi
done

# ---------------------------------------------------------------------------------------------
# Report
ratio() {   # ratio A B → A/B with 2 decimals, or "-"
    if [ -z "$1" ] || [ -z "$2" ]; then echo "-"; return; fi
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "-" }'
}
NGINX_RPS=${R_RPS[nginx]:-}
NGINX_CPU=${R_CPU[nginx]:-}
DIRECT_RPS=${R_RPS[direct]:-}

echo "## coregate side-by-side comparison"
echo
echo "- date: $RUN_DATE"
echo "- kernel: $KERNEL; CPU: $CPU_MODEL; nproc: $NPROC"
echo "- load: $LOADGEN ${LOADGEN_VERSION} -t$THREADS -c$CONNS, ${WARMUP}s warm-up then ${DURATION}s measured, on CPU $LOAD_CPU"
echo "- upstream: $NGINX_VERSION, 1 worker on CPU $LOAD_CPU, \`return 200 \"ok\\n\"\`"
echo "- proxies: 1 worker each on CPU $PROXY_CPU${COREGATE_VERSION:+; $COREGATE_VERSION}${HAPROXY_VERSION:+; haproxy $HAPROXY_VERSION}"
if [ "$ACCESS_LOG" = on ]; then
    echo "- access log: on (coregate $ACCESS_FORMAT to a file; nginx combined, buffer=64k flush=100ms; haproxy none)"
else
    echo "- access log: off"
fi
echo
echo "| contender | req/s | vs direct | vs nginx | p50 µs | p99 µs | CPU µs/req | vs nginx |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
footnote=0
for c in "${CONTENDERS[@]}"; do
    name=$c
    if [ "${R_PROXIED[$c]}" = false ]; then name="$c †"; footnote=1; fi
    cpu=${R_CPU[$c]:-}
    printf '| %s | %.0f | %s | %s | %s | %s | %s | %s |\n' "$name" "${R_RPS[$c]}" \
        "$(ratio "${R_RPS[$c]}" "$DIRECT_RPS")" \
        "$(ratio "${R_RPS[$c]}" "$NGINX_RPS")" "${R_P50[$c]}" "${R_P99[$c]}" \
        "$( [ -n "$cpu" ] && printf '%.2f' "$cpu" || echo -)" \
        "$( [ -n "$cpu" ] && ratio "$cpu" "$NGINX_CPU" || echo -)"
done
if [ "$footnote" = 1 ]; then
    echo
    echo "† did not return the upstream's body on the check request: not proxying, not a proxy measurement."
fi
for c in "${CONTENDERS[@]}"; do
    if awk -v f="${R_FOREIGN[$c]}" 'BEGIN { exit !(f > 10) }'; then
        echo "- $c: CPU $PROXY_CPU was ${R_FOREIGN[$c]}% busy with other processes during the timed run (not a quiet machine): unreliable"
    fi
    if [ "${R_ERR[$c]}" -gt 0 ] || [ "${R_BAD[$c]}" -gt 0 ]; then
        echo "- $c: ${R_ERR[$c]} socket errors, ${R_BAD[$c]} non-2xx/3xx responses"
    fi
done
if [ -n "${COREGATE_REUSE:-}" ]; then
    echo "- coregate upstream connection reuse (warm-up + timed run, from its stop log): $COREGATE_REUSE"
fi
if [ -n "${COREGATE_ACCESS_LINES:-}" ]; then
    echo "- coregate access log: $COREGATE_ACCESS_LINES lines written, ${COREGATE_ACCESS_DROPPED:-0} dropped (warm-up + timed run)"
fi
echo
echo "CPU µs/req: the proxy's utime+stime (all processes and threads) over the timed run / requests completed; clock tick $((1000000 / CLK_TCK)) µs."

mkdir -p "$(dirname "$OUT")"
{
    printf '{\n'
    printf '  "date": %s,\n' "$(json_str "$RUN_DATE")"
    printf '  "machine": { "kernel": %s, "cpu_model": %s, "nproc": %s },\n' \
        "$(json_str "$KERNEL")" "$(json_str "$CPU_MODEL")" "$NPROC"
    printf '  "settings": { "loadgen": %s, "loadgen_version": %s, "threads": %s, "connections": %s, "warmup_s": %s, "duration_s": %s, "proxy_cpu": %s, "load_cpu": %s, "clk_tck": %s, "access_log": %s, "access_format": %s },\n' \
        "$(json_str "$LOADGEN")" "$(json_str "$LOADGEN_VERSION")" "$THREADS" "$CONNS" "$WARMUP" "$DURATION" "$PROXY_CPU" "$LOAD_CPU" "$CLK_TCK" \
        "$(json_str "$ACCESS_LOG")" "$(json_str "$ACCESS_FORMAT")"
    if [ -n "${COREGATE_ACCESS_LINES:-}" ]; then
        printf '  "coregate_access_log": { "lines": %s, "dropped": %s },\n' "$COREGATE_ACCESS_LINES" "${COREGATE_ACCESS_DROPPED:-0}"
    fi
    printf '  "versions": { "nginx": %s, "haproxy": %s, "coregate": %s },\n' \
        "$(json_str "$NGINX_VERSION")" "$(json_str "$HAPROXY_VERSION")" "$(json_str "$COREGATE_VERSION")"
    printf '  "results": [\n'
    n=${#CONTENDERS[@]}; i=0
    for c in "${CONTENDERS[@]}"; do
        i=$((i + 1))
        cpu=${R_CPU[$c]:-}
        rr=$(ratio "${R_RPS[$c]}" "$NGINX_RPS"); cr="-"
        [ -n "$cpu" ] && cr=$(ratio "$cpu" "$NGINX_CPU")
        printf '    { "contender": %s, "upstream_body_ok": %s, "requests": %s, "requests_per_sec": %s, "rps_vs_direct": %s, "rps_vs_nginx": %s, "latency_us": { "p50": %s, "p99": %s }, "cpu_us_per_req": %s, "cpu_vs_nginx": %s, "upstream_cpu_us_per_req": %s, "proxy_cpu_foreign_pct": %s, "proxy_cpu_irq_us_per_req": %s, "socket_errors": %s, "non_2xx_3xx": %s }%s\n' \
            "$(json_str "$c")" "${R_PROXIED[$c]}" "${R_REQ[$c]}" "${R_RPS[$c]}" \
            "$(d=$(ratio "${R_RPS[$c]}" "$DIRECT_RPS"); [ "$d" = - ] && echo null || echo "$d")" \
            "$( [ "$rr" = - ] && echo null || echo "$rr")" \
            "${R_P50[$c]}" "${R_P99[$c]}" \
            "${cpu:-null}" "$( [ "$cr" = - ] && echo null || echo "$cr")" \
            "${R_UPCPU[$c]:-null}" "${R_FOREIGN[$c]}" "${R_IRQ[$c]:-null}" "${R_ERR[$c]}" "${R_BAD[$c]}" \
            "$(if [ "$i" -lt "$n" ]; then echo ,; fi)"
    done
    printf '  ]\n}\n'
} >"$OUT"
log "JSON written to $OUT"
