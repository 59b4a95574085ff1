#!/usr/bin/env bash
# l4-compare.sh — L4 (TCP) forwarding throughput, side by side on one machine, in one run:
#   direct         iperf3 client -> iperf3 server (no proxy): the ceiling of this setup
#   coregate       coregate run, one `protocol = "tcp"` listener, splice(2) path (the default)
#   coregate-copy  the same with `splice = false` (buffered copy), to show what splice buys
#   haproxy        mode tcp, option splice-auto, nbthread 1
#   nginx          stream { proxy_pass }, worker_processes 1
# each for STREAMS parallel streams (default "1 16": iperf3 -P 1, then -P 16), one after another.
#
# Per run: throughput (iperf3 -J, end.sum_received: bytes the server received in the timed run)
# and, for proxies, the proxy's CPU per GiB forwarded: utime+stime of all its processes and
# threads (/proc/PID/stat and /proc/PID/task/*/stat), sampled just before and just after the
# timed iperf3 run, divided by the GiB received. Ratios to direct and to HAProxy are printed
# next to them, with the issue's targets: coregate single stream >= 0.9x direct, coregate CPU
# per GiB <= HAProxy's.
#
# CPU placement. Every proxy runs one worker pinned to PROXY_CPU (default 0). By default the
# iperf3 client AND the iperf3 server are both pinned to LOAD_CPU (default 1), so the proxy has
# its CPU to itself: its CPU per GiB is measured without interference, and anything else found
# running on PROXY_CPU during the run (a build, a test suite) is flagged. It also makes direct
# and proxied runs compete for the same load CPU: on loopback the sender pays for most of the
# receiver's TCP processing, so direct puts ~all the work on LOAD_CPU and a proxied run puts
# about the same work there (client send + server receive) plus the proxy's on PROXY_CPU;
# "vs direct" then asks "does the proxy keep up with one CPU's worth of loopback traffic".
# SPLIT=1 moves the iperf3 server to PROXY_CPU instead: direct then gets two CPUs (client on
# one, server on the other), and every proxy shares its CPU with the server, so "vs direct"
# becomes the harsher "what does the proxy cost the whole two-CPU pipeline". CPU per GiB stays
# per process and comparable; the busy-CPU check then discounts the iperf3 server's own time.
# The default is the one to record; SPLIT=1 is a second opinion on the throughput ratio.
#
# Warm-up. Before each timed run an untimed iperf3 run of WARMUP seconds with the same streams
# goes through the same proxy (it is also the end-to-end check that the proxy forwards). The
# timed run itself has no --omit: every byte the proxy moves inside the CPU sampling window is a
# byte iperf3 counts, so CPU/GiB is not inflated by uncounted warm-up bytes.
#
# iperf3 opens a control connection plus one data connection per stream, all through the proxy.
# Readiness of every server is its listening socket in /proc/net/tcp (what `ss -ltn` shows),
# polled with a bound; a test connection would be taken by iperf3 for a client's control
# connection (and a proxy would pass it on to iperf3).
#
# coregate: if the binary is missing, `coregate check` rejects the generated config, `coregate
# run` refuses it (a build without the TCP forwarder does: "protocol = "tcp" is not enforced"),
# or iperf3 fails through it, that contender is reported as skipped with the reason, and the
# others still run. For haproxy and nginx such a failure stops the script.
#
# Output: a markdown table on stdout, and the same figures as JSON in
# bench/results/l4-compare-<UTC date>.json (or --out FILE / RESULTS_DIR=DIR).
#
# Run `bench/scripts/l4-compare.sh --help` for the options.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

# ---------------------------------------------------------------------------------------------
# Settings (environment-overridable)
DURATION=${DURATION:-10}          # seconds of each timed run
WARMUP=${WARMUP:-2}               # seconds of the untimed run before each timed run (0: none)
STREAMS=${STREAMS:-"1 16"}        # parallel streams per run (iperf3 -P), space-separated
PROXY_CPU=${PROXY_CPU:-0}         # CPU the proxy runs on
LOAD_CPU=${LOAD_CPU:-1}           # CPU the iperf3 client (and by default server) runs on
SPLIT=${SPLIT:-0}                 # 1: the iperf3 server runs on PROXY_CPU instead of LOAD_CPU
COREGATE=${COREGATE:-$REPO_ROOT/target/release/coregate}
IPERF3=${IPERF3:-iperf3}
IPERF_ARGS=${IPERF_ARGS:-}        # extra iperf3 client arguments, e.g. "-Z" or "-l 1M"
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/bench/results}
START_TIMEOUT=${START_TIMEOUT:-10} # seconds a server may take to listen
BUSY_PCT=${BUSY_PCT:-10}          # flag a run when others used PROXY_CPU more than this %

ALL_CONTENDERS=(direct coregate coregate-copy haproxy nginx)
ONLY=""
INSTALL=0
OUT=""

usage() {
    cat <<EOF
Usage: bench/scripts/l4-compare.sh [--only LIST] [--out FILE] [--install] [--help]

Compares, on this machine and in one run, TCP throughput (iperf3) and the proxy's CPU per GiB
forwarded, for:
  direct         iperf3 client -> iperf3 server (no proxy)
  coregate       coregate run --config <generated>: workers = 1, pin = true, one
                 protocol = "tcp" listener (splice, the default)
  coregate-copy  the same with splice = false (buffered copy)
  haproxy        mode tcp, option splice-auto, nbthread 1
  nginx          stream { server { proxy_pass } }, worker_processes 1
each with every stream count in STREAMS. Proxies run on PROXY_CPU; the iperf3 client and
server on LOAD_CPU (SPLIT=1: the server on PROXY_CPU). A coregate that cannot run the config
(no TCP forwarder in this build) is reported as skipped, with the reason.

Options:
  --only LIST   comma-separated subset of: ${ALL_CONTENDERS[*]} (default: all)
  --out FILE    where to write the JSON results
                (default: \$RESULTS_DIR/l4-compare-<UTC date>.json, RESULTS_DIR=bench/results)
  --install     install missing tools first:
                apt-get update && apt-get install -y iperf3 haproxy nginx libnginx-mod-stream
  -h, --help    this text

Environment (defaults in brackets):
  DURATION [10] seconds timed   WARMUP [2] seconds untimed before each timed run (0: none)
  STREAMS ["1 16"]   PROXY_CPU [0]   LOAD_CPU [1]   SPLIT [0] (1: iperf3 server on PROXY_CPU)
  COREGATE [target/release/coregate]   IPERF3 [iperf3]   IPERF_ARGS [] extra client args
  RESULTS_DIR [bench/results]   START_TIMEOUT [10] seconds a server may take to listen
  BUSY_PCT [10] flag a run when other processes used PROXY_CPU more than this % of it
  KEEP_WORK [0] 1: keep the temporary directory (configs, logs, iperf3 JSON)
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
        *) echo "l4-compare.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

log() { printf '[l4-compare] %s\n' "$*" >&2; }
warn() { printf '[l4-compare] WARNING: %s\n' "$*" >&2; }
die() { printf '[l4-compare] ERROR: %s\n' "$*" >&2; exit 1; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in DURATION WARMUP PROXY_CPU LOAD_CPU START_TIMEOUT BUSY_PCT; do
    is_uint "${!v}" || die "$v must be a non-negative integer (got '${!v}')"
done
[ "$DURATION" -ge 1 ] || die "DURATION must be at least 1"
[ "$PROXY_CPU" != "$LOAD_CPU" ] || die "PROXY_CPU and LOAD_CPU must differ"
case "$SPLIT" in 0|1) ;; *) die "SPLIT must be 0 or 1 (got '$SPLIT')" ;; esac
read -r -a STREAM_LIST <<<"$STREAMS"
[ ${#STREAM_LIST[@]} -gt 0 ] || die "STREAMS is empty"
for s in "${STREAM_LIST[@]}"; do
    { is_uint "$s" && [ "$s" -ge 1 ] && [ "$s" -le 128 ]; } || die "STREAMS: '$s' is not a stream count from 1 to 128"
done
if [ "$SPLIT" = 1 ]; then SERVER_CPU=$PROXY_CPU; else SERVER_CPU=$LOAD_CPU; fi
read -r -a EXTRA_ARGS <<<"$IPERF_ARGS"

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

# Why a contender (or one of its runs) was skipped; empty: it ran.
declare -A SKIP=()

# ---------------------------------------------------------------------------------------------
# Tools
have() { command -v "$1" >/dev/null 2>&1; }

# nginx's stream module: built in (--with-stream), or a dynamic module to load_module by its
# absolute path (the nginx under test runs with its own prefix, so a relative path would not
# resolve). Debian: libnginx-mod-stream, /usr/lib/nginx/modules/ngx_stream_module.so, enabled
# through /usr/share/nginx/modules-available/mod-stream.conf. Sets NGINX_STREAM_LOAD (the
# load_module line, possibly empty) or returns 1 with NGINX_STREAM_WHY.
NGINX_STREAM_LOAD=""
NGINX_STREAM_WHY=""
find_nginx_stream() {
    local v prefix modpath cand conf rel
    NGINX_STREAM_LOAD=""; NGINX_STREAM_WHY=""
    v=$(nginx -V 2>&1) || true
    if [[ $v == *"--with-stream "* || $v == *"--with-stream" ]]; then return 0; fi   # static
    if [[ $v != *"--with-stream=dynamic"* ]]; then
        NGINX_STREAM_WHY="this nginx was built without the stream module"
        return 1
    fi
    prefix=$(grep -oP -- '--prefix=\K[^ ]+' <<<"$v" || true); prefix=${prefix:-/usr/share/nginx}
    modpath=$(grep -oP -- '--modules-path=\K[^ ]+' <<<"$v" || true); modpath=${modpath:-$prefix/modules}
    for cand in "$modpath/ngx_stream_module.so" /usr/lib/nginx/modules/ngx_stream_module.so \
        "$prefix/modules/ngx_stream_module.so"; do
        if [ -f "$cand" ]; then NGINX_STREAM_LOAD="load_module $cand;"; return 0; fi
    done
    # A modules-available snippet may name another file, relative to nginx's compiled prefix.
    for conf in /usr/share/nginx/modules-available/*stream*.conf /etc/nginx/modules-enabled/*stream*.conf; do
        [ -f "$conf" ] || continue
        while read -r rel; do
            case "$rel" in /*) cand=$rel ;; *) cand=$prefix/$rel ;; esac
            if [[ $cand == *ngx_stream_module.so ]] && [ -f "$cand" ]; then
                NGINX_STREAM_LOAD="load_module $cand;"; return 0
            fi
        done < <(grep -oP '^\s*load_module\s+\K[^;]+' "$conf" || true)
    done
    NGINX_STREAM_WHY="the stream module is dynamic and ngx_stream_module.so was not found (apt-get install libnginx-mod-stream, or pass --install)"
    return 1
}

missing_required() {   # tools without which nothing runs
    MISSING=()
    have "$IPERF3" || MISSING+=(iperf3)
    have taskset || MISSING+=(util-linux)
    have getconf || MISSING+=(libc-bin)
    have timeout || MISSING+=(coreutils)
    have pgrep || MISSING+=(procps)
}
if [ "$INSTALL" = 1 ]; then
    missing_required
    want=("${MISSING[@]+"${MISSING[@]}"}")
    if selected haproxy && ! have haproxy; then want+=(haproxy); fi
    if selected nginx && { ! have nginx || ! find_nginx_stream; }; then want+=(nginx libnginx-mod-stream); fi
    if [ ${#want[@]} -gt 0 ]; then
        log "installing: iperf3 haproxy nginx libnginx-mod-stream ${want[*]}"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y iperf3 haproxy nginx libnginx-mod-stream "${want[@]}"
    fi
fi
missing_required
if [ ${#MISSING[@]} -gt 0 ]; then
    die "missing tools: ${MISSING[*]}
    install them with:  apt-get update && apt-get install -y ${MISSING[*]}
    (or run this script with --install)"
fi
# A peer proxy that is not usable is skipped, saying so.
if selected haproxy && ! have haproxy; then
    SKIP[haproxy]="haproxy is not installed (apt-get install haproxy, or pass --install)"
fi
if selected nginx; then
    if ! have nginx; then
        SKIP[nginx]="nginx is not installed (apt-get install nginx libnginx-mod-stream, or pass --install)"
    elif ! find_nginx_stream; then
        SKIP[nginx]=$NGINX_STREAM_WHY
    fi
fi
for c in coregate coregate-copy; do
    if selected "$c" && [ ! -x "$COREGATE" ]; then
        SKIP[$c]="coregate binary not found at $COREGATE (cargo build --release, or COREGATE=path)"
    fi
done
for c in "${!SKIP[@]}"; do log "skipping $c: ${SKIP[$c]}"; done

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
WORK=$(mktemp -d /tmp/coregate-l4-compare.XXXXXX)
STARTED=()   # pids of every server this script started
LOADPID=""   # the running iperf3 client (through timeout(1))

descendants() {   # every descendant pid of $1 (children, grandchildren, ...)
    local kids k
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
    local pid=$1 i kids k
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
    # a running client: TERM reaches iperf3 through timeout(1), which forwards it
    if [ -n "${LOADPID:-}" ] && alive "$LOADPID"; then stop_pid "$LOADPID"; fi
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
local_ports() {   # local ports in use (any state) from /proc/net/tcp{,6}, decimal
    local hex
    awk 'FNR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u \
        | while read -r hex; do printf '%d ' "$((16#$hex))"; done
}
free_port() {
    local inuse port tries
    inuse=" $(local_ports) "
    for ((tries = 0; tries < 200; tries++)); do
        port=$((20000 + RANDOM % 30000))
        case "$inuse$USED_PORTS" in *" $port "*) continue ;; esac
        USED_PORTS+="$port "
        echo "$port"
        return 0
    done
    die "could not find a free port"
}

listening() {   # listening PORT → 0 if a socket listens on 127.0.0.1:PORT (or the wildcard)
    local hex
    hex=$(printf '%04X' "$1")
    awk -v p=":$hex" 'FNR > 1 && $4 == "0A" && ($2 == "0100007F" p || $2 == "00000000" p) { f = 1 }
        END { exit !f }' /proc/net/tcp
}

# wait_listening NAME PID PORT LOGFILE → 0 once listening; 1 with WHY set if the process exited
# or did not listen within START_TIMEOUT (polled, bounded).
wait_listening() {
    local name=$1 pid=$2 port=$3 logf=$4 deadline
    WHY=""
    deadline=$((SECONDS + START_TIMEOUT))
    while [ "$SECONDS" -le "$deadline" ]; do
        if ! alive "$pid"; then
            WHY="$name exited before listening on 127.0.0.1:$port: $(last_error "$logf")"
            return 1
        fi
        if listening "$port"; then return 0; fi
        sleep 0.05
    done
    WHY="$name did not listen on 127.0.0.1:$port within ${START_TIMEOUT}s"
    return 1
}

last_error() {   # the most telling line of a log: the last one saying error, else the last one
    local line=""
    if [ -s "$1" ]; then
        line=$(grep -iE 'error|refus|fail|unknown' "$1" | tail -n1 || true)
        [ -n "$line" ] || line=$(tail -n1 "$1")
    fi
    printf '%s' "${line:-no output}" | tr -d '\000-\037' | cut -c1-300
}

# ---------------------------------------------------------------------------------------------
# CPU accounting from /proc
proc_ticks() {   # utime+stime of one process and all its threads, in clock ticks; 0 if gone
    local f s whole=0 tasks=0
    # /proc/PID/stat: the whole thread group, threads that already exited included.
    if s=$(cat "/proc/$1/stat" 2>/dev/null); then
        s=${s##*) }            # fields from 3 (state) on; comm may hold spaces
        # shellcheck disable=SC2086
        set -- $s
        whole=$((${12} + ${13}))   # fields 14 (utime) and 15 (stime)
    fi
    # /proc/PID/task/*/stat: each live thread. Only a cross-check: it misses threads that exited
    # between the two samples (a thread-per-connection proxy's would read ~0), so the larger of
    # the two is taken, which is /proc/PID/stat's whenever the kernel keeps its books.
    for f in /proc/"$1"/task/*/stat; do
        s=$(cat "$f" 2>/dev/null) || continue
        s=${s##*) }
        # shellcheck disable=SC2086
        set -- $s
        tasks=$((tasks + ${12} + ${13}))
    done
    echo $((whole > tasks ? whole : tasks))
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
    # irq = irq + softirq (much of it loopback packet processing caused by the traffic itself)
    awk -v c="cpu$1" '$1 == c {
        task = $2 + $3 + $4 + $9; irq = $7 + $8
        print task, task + irq + $5 + $6, irq; exit }' /proc/stat
}
now_ns() { date +%s%N; }
foreign_pct() {   # foreign_pct BUSY TOTAL OWN → % of the window others kept the CPU busy
    awk -v b="$1" -v t="$2" -v own="$3" 'BEGIN {
        f = (t > 0) ? (b - own) * 100 / t : 0; if (f < 0) f = 0; printf "%.1f", f }'
}
over() { awk -v f="$1" -v m="$BUSY_PCT" 'BEGIN { exit !(f > m) }'; }   # over PCT → PCT > BUSY_PCT
busy_pct() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f", (t > 0) ? b * 100 / t : 0 }'; }

# ---------------------------------------------------------------------------------------------
# iperf3
# iperf_num FILE SECTION KEY → KEY's value inside the top-level-ish object "SECTION": { ... } of
# iperf3's pretty-printed -J output (one key per line), empty if absent.
iperf_num() {
    awk -v sec="\"$2\":" -v key="\"$3\":" '
        index($0, sec) { inside = 1; next }
        inside && /^[[:space:]]*}/ { exit }
        inside && $1 == key { v = $2; sub(/,$/, "", v); print v; exit }' "$1"
}
iperf_error() {   # the "error" string of iperf3's JSON, or empty
    grep -oP '^\s*"error":\s*"\K[^"]*' "$1" 2>/dev/null | head -n1 || true
}

start_iperf_server() {
    local dir=$WORK/iperf3-server
    mkdir -p "$dir"
    SRV_PORT=$(free_port)
    taskset -c "$SERVER_CPU" "$IPERF3" -s -B 127.0.0.1 -p "$SRV_PORT" >"$dir/run.log" 2>&1 &
    SRV_PID=$!
    STARTED+=("$SRV_PID")
    wait_listening "iperf3 server" "$SRV_PID" "$SRV_PORT" "$dir/run.log" || die "$WHY"
}
restart_iperf_server() {   # after a failed run: the server may be left mid-test
    stop_pid "$SRV_PID"
    forget_pid "$SRV_PID"
    local dir=$WORK/iperf3-server
    taskset -c "$SERVER_CPU" "$IPERF3" -s -B 127.0.0.1 -p "$SRV_PORT" >>"$dir/run.log" 2>&1 &
    SRV_PID=$!
    STARTED+=("$SRV_PID")
    wait_listening "iperf3 server" "$SRV_PID" "$SRV_PORT" "$dir/run.log" || die "$WHY"
}

# run_iperf PORT STREAMS SECONDS JSONFILE → 0 on success; 1 with WHY set.
run_iperf() {
    local port=$1 streams=$2 secs=$3 json=$4 limit=$(( $3 + 30 )) err rc=""
    WHY=""
    taskset -c "$LOAD_CPU" timeout "$limit" "$IPERF3" -c 127.0.0.1 -p "$port" -P "$streams" \
        -t "$secs" -J --connect-timeout 5000 ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"} >"$json" 2>"$json.err" &
    LOADPID=$!
    wait "$LOADPID" || rc=$?
    LOADPID=""
    if [ -z "$rc" ] && [ -n "$(iperf_num "$json" sum_received bytes)" ]; then return 0; fi
    err=$(iperf_error "$json")
    [ -n "$err" ] || err=$(last_error "$json.err")
    if [ "$rc" = 124 ]; then err="no result within ${limit}s (timed out); $err"; fi
    WHY="iperf3 -P $streams failed${rc:+ (exit $rc)}: $err"
    return 1
}

# ---------------------------------------------------------------------------------------------
# Proxies. Each start_* sets PORT and PID of the started proxy and registers it for cleanup;
# it returns 1 with WHY set when the proxy could not be started.
start_coregate() {   # start_coregate NAME SPLICE(true|false)
    local name=$1 splice=$2 dir=$WORK/$1 splice_line=""
    mkdir -p "$dir"
    PORT=$(free_port)
    if [ "$splice" = false ]; then splice_line="splice = false   # buffered-copy path"; fi
    cat >"$dir/coregate.toml" <<EOF
# generated by bench/scripts/l4-compare.sh
[runtime]
workers = 1
pin = true               # pins to the first CPU of its affinity mask: started under taskset
shutdown_timeout = "2s"

[log]
level = "warn"
access_log = "off"

[[listener]]
name = "l4"
bind = "127.0.0.1:$PORT"
protocol = "tcp"
backlog = 4096
upstream = "sink"
$splice_line

[[upstream]]
name = "sink"
endpoints = ["127.0.0.1:$SRV_PORT"]
EOF
    if ! "$COREGATE" check --config "$dir/coregate.toml" >"$dir/check.log" 2>&1; then
        WHY="coregate check rejected the config: $(last_error "$dir/check.log")"
        return 1
    fi
    taskset -c "$PROXY_CPU" "$COREGATE" run --config "$dir/coregate.toml" >"$dir/run.log" 2>&1 &
    PID=$!
    STARTED+=("$PID")
    wait_listening "coregate" "$PID" "$PORT" "$dir/run.log"
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
    mode tcp
    option splice-auto
    timeout connect 2s
    timeout client 60s
    timeout server 60s

frontend fe
    bind 127.0.0.1:$PORT
    default_backend be

backend be
    server sink 127.0.0.1:$SRV_PORT
EOF
    if ! haproxy -c -q -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1; then
        WHY="haproxy -c rejected $dir/haproxy.cfg: $(last_error "$dir/check.log")"
        return 1
    fi
    taskset -c "$PROXY_CPU" haproxy -f "$dir/haproxy.cfg" -db >"$dir/run.log" 2>&1 &
    PID=$!
    STARTED+=("$PID")
    wait_listening haproxy "$PID" "$PORT" "$dir/run.log"
}

start_nginx_stream() {
    local dir=$WORK/nginx
    mkdir -p "$dir"
    PORT=$(free_port)
    cat >"$dir/nginx.conf" <<EOF
$NGINX_STREAM_LOAD
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
stream {
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        proxy_pass 127.0.0.1:$SRV_PORT;
    }
}
EOF
    if ! nginx -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/check.log" 2>&1; then
        WHY="nginx -t rejected $dir/nginx.conf: $(last_error "$dir/check.log")"
        return 1
    fi
    taskset -c "$PROXY_CPU" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' \
        >"$dir/stdout.log" 2>&1 &
    PID=$!
    STARTED+=("$PID")
    wait_listening nginx "$PID" "$PORT" "$dir/error.log"
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
IPERF3_VERSION=$("$IPERF3" --version 2>&1 | head -n1 | awk '{print $2}' || true)
NGINX_VERSION=""
if selected nginx && have nginx; then NGINX_VERSION=$(nginx -v 2>&1 | sed 's/^nginx version: //'); fi
HAPROXY_VERSION=""
if selected haproxy && have haproxy; then HAPROXY_VERSION=$(haproxy -v 2>&1 | head -n1 | awk '{print $3}'); fi
COREGATE_VERSION=""
if { selected coregate || selected coregate-copy; } && [ -x "$COREGATE" ]; then
    COREGATE_VERSION=$("$COREGATE" --version 2>&1 | head -n1 || true)
fi
TCP_CC=$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown)

if [ -z "$OUT" ]; then
    OUT=$RESULTS_DIR/l4-compare-${RUN_DATE//:/}.json
fi

log "$RUN_DATE  kernel $KERNEL  cpu '$CPU_MODEL'  nproc $NPROC"
log "contenders: ${CONTENDERS[*]}; streams: ${STREAM_LIST[*]}; warm-up ${WARMUP}s, timed ${DURATION}s; proxy on CPU $PROXY_CPU, iperf3 client on CPU $LOAD_CPU, server on CPU $SERVER_CPU"

# ---------------------------------------------------------------------------------------------
# Run. Results are keyed "contender/streams".
declare -A R_BYTES R_SECS R_BPS R_RETR R_TICKS R_WALL R_FOREIGN R_LFOREIGN R_FLAG R_IRQ R_PROXYBUSY R_LOADBUSY R_SRVTICKS R_CCPU R_SCPU RUN_SKIP

# run_failed CONTENDER STREAMS WHY: coregate's run is marked skipped (the iperf3 server, maybe
# left mid-test, is restarted); any other contender's failure stops the script.
run_failed() {
    local why=$3 lf=$WORK/$1/run.log
    [ -f "$lf" ] || lf=$WORK/$1/error.log
    if [ -n "$PID" ] && ! alive "$PID"; then why+="; $1 exited: $(last_error "$lf")"; fi
    case "$1" in
        coregate*) RUN_SKIP[$1/$2]=$why; warn "$1 -P $2 skipped: $why"; restart_iperf_server ;;
        *) die "$1 -P $2: $why" ;;
    esac
}

start_iperf_server
log "iperf3 server on 127.0.0.1:$SRV_PORT (pid $SRV_PID, CPU $SERVER_CPU)"

for c in "${CONTENDERS[@]}"; do
    if [ -n "${SKIP[$c]:-}" ]; then continue; fi
    PID=""; WHY=""; ok=0
    case "$c" in
        direct) PORT=$SRV_PORT; ok=1 ;;
        coregate) start_coregate "$c" true && ok=1 ;;
        coregate-copy) start_coregate "$c" false && ok=1 ;;
        haproxy) start_haproxy && ok=1 ;;
        nginx) start_nginx_stream && ok=1 ;;
    esac
    if [ "$ok" = 0 ]; then
        if [ -n "$PID" ]; then stop_pid "$PID"; forget_pid "$PID"; fi
        case "$c" in
            coregate*) SKIP[$c]=$WHY; warn "skipping $c: $WHY"; continue ;;
            *) die "$c: $WHY" ;;
        esac
    fi
    if [ -n "$PID" ]; then log "$c on 127.0.0.1:$PORT (pid $PID, CPU $PROXY_CPU)"; fi

    for s in "${STREAM_LIST[@]}"; do
        k="$c/$s"
        if [ "$WARMUP" -gt 0 ]; then
            log "$c -P $s: warm-up ${WARMUP}s"
            if ! run_iperf "$PORT" "$s" "$WARMUP" "$WORK/$c-$s.warmup.json"; then
                run_failed "$c" "$s" "warm-up: $WHY"; continue
            fi
        fi
        log "$c -P $s: measuring ${DURATION}s"
        t0=$(now_ns)
        before=0; [ -n "$PID" ] && before=$(tree_ticks "$PID")
        srv_before=$(proc_ticks "$SRV_PID")
        read -r pbusy0 ptotal0 pirq0 < <(cpu_jiffies "$PROXY_CPU")
        read -r lbusy0 ltotal0 lirq0 < <(cpu_jiffies "$LOAD_CPU")
        json=$WORK/$c-$s.json
        run_ok=1
        run_iperf "$PORT" "$s" "$DURATION" "$json" || run_ok=0
        after=0; [ -n "$PID" ] && after=$(tree_ticks "$PID")
        srv_after=$(proc_ticks "$SRV_PID")
        read -r pbusy1 ptotal1 pirq1 < <(cpu_jiffies "$PROXY_CPU")
        read -r lbusy1 ltotal1 lirq1 < <(cpu_jiffies "$LOAD_CPU")
        t1=$(now_ns)
        if [ "$run_ok" = 0 ]; then
            run_failed "$c" "$s" "$WHY"; continue
        fi
        R_BYTES[$k]=$(iperf_num "$json" sum_received bytes)
        R_SECS[$k]=$(iperf_num "$json" sum_received seconds)
        R_BPS[$k]=$(iperf_num "$json" sum_received bits_per_second)
        R_RETR[$k]=$(iperf_num "$json" sum_sent retransmits)
        R_CCPU[$k]=$(iperf_num "$json" cpu_utilization_percent host_total)
        R_SCPU[$k]=$(iperf_num "$json" cpu_utilization_percent remote_total)
        R_WALL[$k]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
        R_TICKS[$k]=""; [ -n "$PID" ] && R_TICKS[$k]=$((after - before))
        R_SRVTICKS[$k]=$((srv_after - srv_before))
        R_IRQ[$k]=$((pirq1 - pirq0))
        # Share of the window in which each CPU ran processes other than this test's: a build or
        # a test suite makes the figures unreliable. PROXY_CPU's own: the proxy (and, with
        # SPLIT=1, the iperf3 server). LOAD_CPU's own: the iperf3 client, whose CPU time is
        # iperf3's own figure (cpu_utilization_percent.host_total x its run time: the client has
        # exited by the second sample), and the iperf3 server unless SPLIT=1.
        srv=$((srv_after - srv_before))
        own=$(( ${R_TICKS[$k]:-0} + (SPLIT == 1 ? srv : 0) ))
        R_FOREIGN[$k]=$(foreign_pct $((pbusy1 - pbusy0)) $((ptotal1 - ptotal0)) "$own")
        own=$(awk -v p="${R_CCPU[$k]:-0}" -v t="${R_SECS[$k]:-0}" -v hz="$CLK_TCK" -v srv=$((SPLIT == 1 ? 0 : srv)) \
            'BEGIN { printf "%.0f", p / 100 * t * hz + srv }')
        R_LFOREIGN[$k]=$(foreign_pct $((lbusy1 - lbusy0)) $((ltotal1 - ltotal0)) "$own")
        # Busy share (processes + interrupts) of each CPU: near 100 % marks the limiting side.
        R_PROXYBUSY[$k]=$(busy_pct $((pbusy1 - pbusy0 + pirq1 - pirq0)) $((ptotal1 - ptotal0)))
        R_LOADBUSY[$k]=$(busy_pct $((lbusy1 - lbusy0 + lirq1 - lirq0)) $((ltotal1 - ltotal0)))
        # Flag the run when a CPU it uses was busy with other work (direct, SPLIT=0: LOAD_CPU only).
        R_FLAG[$k]=""
        if [ "$c" != direct ] || [ "$SPLIT" = 1 ]; then
            if over "${R_FOREIGN[$k]}"; then R_FLAG[$k]="CPU $PROXY_CPU ${R_FOREIGN[$k]}%"; fi
        fi
        if over "${R_LFOREIGN[$k]}"; then R_FLAG[$k]+="${R_FLAG[$k]:+, }CPU $LOAD_CPU ${R_LFOREIGN[$k]}%"; fi
        if [ -n "${R_FLAG[$k]}" ]; then
            warn "$c -P $s: other processes used ${R_FLAG[$k]} of the timed run: the machine is not quiet, figures are unreliable"
        fi
    done
    if [ -n "$PID" ]; then
        stop_pid "$PID"
        forget_pid "$PID"
    fi
done

# ---------------------------------------------------------------------------------------------
# Derived figures
ratio() {   # ratio A B → A/B with 2 decimals, or "-"
    if [ -z "$1" ] || [ -z "$2" ] || [ "$1" = - ] || [ "$2" = - ]; then echo "-"; return; fi
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "-" }'
}
per_gib() {   # per_gib TICKS BYTES → milliseconds of CPU per GiB received, or "-"
    if [ -z "$1" ] || [ -z "$2" ]; then echo "-"; return; fi
    awk -v t="$1" -v hz="$CLK_TCK" -v b="$2" 'BEGIN {
        if (b > 0) printf "%.1f\n", t * 1000 / hz / (b / 1073741824); else print "-" }'
}
orn() { if [ "$1" = - ] || [ -z "$1" ]; then echo null; else echo "$1"; fi; }   # "-" → null
ran() { [ -n "${R_BYTES[$1]:-}" ]; }
why_skipped() { local c=${1%/*}; printf '%s' "${SKIP[$c]:-${RUN_SKIP[$1]:-}}"; }

declare -A D_GBPS D_VSDIRECT D_VSHAP D_CPU D_CPUVSHAP D_PCPU D_IRQ D_SRVCPU
for c in "${CONTENDERS[@]}"; do
    for s in "${STREAM_LIST[@]}"; do
        k="$c/$s"
        ran "$k" || continue
        D_GBPS[$k]=$(awk -v b="${R_BPS[$k]}" 'BEGIN { printf "%.2f", b / 1e9 }')
        D_CPU[$k]="-"; D_PCPU[$k]="-"
        if [ -n "${R_TICKS[$k]}" ]; then
            D_CPU[$k]=$(per_gib "${R_TICKS[$k]}" "${R_BYTES[$k]}")
            D_PCPU[$k]=$(awk -v t="${R_TICKS[$k]}" -v hz="$CLK_TCK" -v w="${R_WALL[$k]}" 'BEGIN {
                printf "%.0f", (w > 0) ? t * 100 / hz / w : 0 }')
        fi
        D_IRQ[$k]=$(per_gib "${R_IRQ[$k]}" "${R_BYTES[$k]}")
        D_SRVCPU[$k]=$(per_gib "${R_SRVTICKS[$k]}" "${R_BYTES[$k]}")
    done
done
for c in "${CONTENDERS[@]}"; do
    for s in "${STREAM_LIST[@]}"; do
        k="$c/$s"
        ran "$k" || continue
        D_VSDIRECT[$k]=$(ratio "${R_BPS[$k]}" "${R_BPS[direct/$s]:-}")
        D_VSHAP[$k]=$(ratio "${R_BPS[$k]}" "${R_BPS[haproxy/$s]:-}")
        D_CPUVSHAP[$k]=$(ratio "${D_CPU[$k]}" "${D_CPU[haproxy/$s]:-}")
    done
done

# Targets from the issue: coregate single stream >= 0.9x direct; coregate CPU/GiB <= HAProxy's.
target_line() {   # target_line VALUE OP LIMIT → "met" / "NOT met" / "n/a"
    if [ -z "$1" ] || [ "$1" = - ]; then echo "n/a"; return; fi
    if awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { exit !((op == ">=") ? v >= l : v <= l) }'; then
        echo "met"
    else
        echo "NOT met"
    fi
}
T1_VAL=${D_VSDIRECT[coregate/1]:--}
T1=$(target_line "$T1_VAL" ">=" 0.9)
declare -A T2_VAL T2
for s in "${STREAM_LIST[@]}"; do
    T2_VAL[$s]=${D_CPUVSHAP[coregate/$s]:--}
    T2[$s]=$(target_line "${T2_VAL[$s]}" "<=" 1.0)
done

# ---------------------------------------------------------------------------------------------
# Report
echo "## coregate L4 throughput comparison"
echo
echo "- date: $RUN_DATE"
echo "- kernel: $KERNEL; CPU: $CPU_MODEL; nproc: $NPROC; TCP congestion control: $TCP_CC"
echo "- load: iperf3 $IPERF3_VERSION, client on CPU $LOAD_CPU, server on CPU $SERVER_CPU$( [ "$SPLIT" = 1 ] && echo " (SPLIT=1)"); ${WARMUP}s warm-up run, then ${DURATION}s measured${IPERF_ARGS:+; extra client args: $IPERF_ARGS}"
echo "- proxies: 1 worker each on CPU $PROXY_CPU${COREGATE_VERSION:+; $COREGATE_VERSION}${HAPROXY_VERSION:+; haproxy $HAPROXY_VERSION}${NGINX_VERSION:+; $NGINX_VERSION}"
echo
echo "| contender | streams | Gbit/s | vs direct | vs haproxy | CPU ms/GiB | vs haproxy | irq ms/GiB | CPU $PROXY_CPU busy % | CPU $LOAD_CPU busy % | retr |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for s in "${STREAM_LIST[@]}"; do
    for c in "${CONTENDERS[@]}"; do
        k="$c/$s"
        if ! ran "$k"; then
            printf '| %s | %s | skipped | - | - | - | - | - | - | - | - |\n' "$c" "$s"
            continue
        fi
        name=$c
        if [ -n "${R_FLAG[$k]}" ]; then name="$c ‡"; fi
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$s" "${D_GBPS[$k]}" \
            "${D_VSDIRECT[$k]}" "${D_VSHAP[$k]}" "${D_CPU[$k]}" "${D_CPUVSHAP[$k]}" \
            "$( [ "$c" = direct ] && echo - || echo "${D_IRQ[$k]}")" "${R_PROXYBUSY[$k]}" "${R_LOADBUSY[$k]}" "${R_RETR[$k]:--}"
    done
done
echo
echo "Targets (issue):"
echo "- coregate single stream ≥ 0.9× direct: $T1_VAL → $T1"
for s in "${STREAM_LIST[@]}"; do
    echo "- coregate CPU per GiB ≤ HAProxy's, $s stream(s): ${T2_VAL[$s]}× → ${T2[$s]}"
done
notes=()
for c in "${CONTENDERS[@]}"; do
    if [ -n "${SKIP[$c]:-}" ]; then notes+=("- $c skipped: ${SKIP[$c]}"); continue; fi
    for s in "${STREAM_LIST[@]}"; do
        k="$c/$s"
        if [ -n "${RUN_SKIP[$k]:-}" ]; then notes+=("- $c, $s stream(s) skipped: ${RUN_SKIP[$k]}"); continue; fi
        if ran "$k" && [ -n "${R_FLAG[$k]}" ]; then
            notes+=("- ‡ $c, $s stream(s): other processes used ${R_FLAG[$k]} of the timed run (not a quiet machine): unreliable")
        fi
    done
done
if [ ${#notes[@]} -gt 0 ]; then
    echo
    printf '%s\n' "${notes[@]}"
fi
echo
echo "Gbit/s: iperf3's end.sum_received over the timed run. CPU ms/GiB: the proxy's utime+stime (all its processes and threads) over the timed run / GiB received (clock tick $((1000 / CLK_TCK)) ms). irq ms/GiB: irq+softirq time on CPU $PROXY_CPU over the run / GiB, not in the process times: mostly loopback packet processing the proxy's sends set off. CPU N busy %: share of the run in which that CPU ran anything (processes or interrupts): near 100 marks the limiting side. retr: TCP retransmits iperf3's senders counted (end.sum_sent); on loopback these are drops, usually a receive buffer overrun."

mkdir -p "$(dirname "$OUT")"
{
    printf '{\n'
    printf '  "date": %s,\n' "$(json_str "$RUN_DATE")"
    printf '  "machine": { "kernel": %s, "cpu_model": %s, "nproc": %s, "tcp_congestion_control": %s },\n' \
        "$(json_str "$KERNEL")" "$(json_str "$CPU_MODEL")" "$NPROC" "$(json_str "$TCP_CC")"
    printf '  "settings": { "streams": [%s], "warmup_s": %s, "duration_s": %s, "proxy_cpu": %s, "load_cpu": %s, "server_cpu": %s, "split": %s, "iperf_args": %s, "clk_tck": %s },\n' \
        "$(IFS=,; echo "${STREAM_LIST[*]}")" "$WARMUP" "$DURATION" "$PROXY_CPU" "$LOAD_CPU" "$SERVER_CPU" \
        "$( [ "$SPLIT" = 1 ] && echo true || echo false)" "$(json_str "$IPERF_ARGS")" "$CLK_TCK"
    printf '  "versions": { "iperf3": %s, "nginx": %s, "haproxy": %s, "coregate": %s },\n' \
        "$(json_str "$IPERF3_VERSION")" "$(json_str "$NGINX_VERSION")" "$(json_str "$HAPROXY_VERSION")" "$(json_str "$COREGATE_VERSION")"
    printf '  "targets": {\n'
    printf '    "coregate_single_stream_vs_direct": { "value": %s, "target_min": 0.9, "met": %s },\n' \
        "$(orn "$T1_VAL")" "$(case "$T1" in met) echo true ;; "NOT met") echo false ;; *) echo null ;; esac)"
    printf '    "coregate_cpu_per_gib_vs_haproxy": ['
    first=1
    for s in "${STREAM_LIST[@]}"; do
        [ "$first" = 1 ] || printf ','
        first=0
        printf ' { "streams": %s, "value": %s, "target_max": 1.0, "met": %s }' "$s" "$(orn "${T2_VAL[$s]}")" \
            "$(case "${T2[$s]}" in met) echo true ;; "NOT met") echo false ;; *) echo null ;; esac)"
    done
    printf ' ]\n  },\n'
    printf '  "results": [\n'
    rows=()
    for s in "${STREAM_LIST[@]}"; do
        for c in "${CONTENDERS[@]}"; do
            k="$c/$s"
            if ! ran "$k"; then
                rows+=("$(printf '    { "contender": %s, "streams": %s, "status": "skipped", "skip_reason": %s }' \
                    "$(json_str "$c")" "$s" "$(json_str "$(why_skipped "$k")")")")
                continue
            fi
            rows+=("$(printf '    { "contender": %s, "streams": %s, "status": "ok", "bytes_received": %s, "seconds": %s, "gbit_per_s": %s, "vs_direct": %s, "vs_haproxy": %s, "retransmits": %s, "proxy_cpu_s": %s, "proxy_cpu_pct": %s, "cpu_ms_per_gib": %s, "cpu_vs_haproxy": %s, "proxy_cpu_irq_ms_per_gib": %s, "proxy_cpu_foreign_pct": %s, "load_cpu_foreign_pct": %s, "unreliable": %s, "iperf3_server_cpu_ms_per_gib": %s, "proxy_cpu_busy_pct": %s, "load_cpu_busy_pct": %s, "iperf3_cpu_pct": { "client": %s, "server": %s }, "wall_s": %s }' \
                "$(json_str "$c")" "$s" "${R_BYTES[$k]}" "${R_SECS[$k]}" "${D_GBPS[$k]}" \
                "$(orn "${D_VSDIRECT[$k]}")" "$(orn "${D_VSHAP[$k]}")" "${R_RETR[$k]:-null}" \
                "$( [ -n "${R_TICKS[$k]}" ] && awk -v t="${R_TICKS[$k]}" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }' || echo null)" \
                "$(orn "${D_PCPU[$k]}")" "$(orn "${D_CPU[$k]}")" "$(orn "${D_CPUVSHAP[$k]}")" \
                "$(orn "${D_IRQ[$k]}")" "${R_FOREIGN[$k]}" "${R_LFOREIGN[$k]}" "$( [ -n "${R_FLAG[$k]}" ] && echo true || echo false)" "$(orn "${D_SRVCPU[$k]}")" "${R_PROXYBUSY[$k]}" "${R_LOADBUSY[$k]}" \
                "$(orn "${R_CCPU[$k]}")" "$(orn "${R_SCPU[$k]}")" "${R_WALL[$k]}")")
        done
    done
    n=${#rows[@]}
    for ((i = 0; i < n; i++)); do
        printf '%s%s\n' "${rows[$i]}" "$( [ "$i" -lt $((n - 1)) ] && echo ,)"
    done
    printf '  ]\n}\n'
} >"$OUT"
log "JSON written to $OUT"
