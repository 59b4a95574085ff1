#!/usr/bin/env bash
# tls-compare.sh — TLS termination, side by side on one machine, in one run (issue 7):
#   full TLS 1.3 handshakes with an ECDSA P-256 and with an RSA 2048 certificate, and HTTPS
#   keep-alive requests/s, for coregate and for nginx with the same certificates, one worker
#   each pinned to PROXY_CPU (default 0); every client, and the plain-HTTP upstream, on LOAD_CPU
#   (default 1).
#
# Contenders (one after another):
#   coregate     coregate run: [runtime] workers = 1, pin = true; two TLS listeners (one per
#                certificate), each with a route to the upstream. coregate is a proxy, so every
#                HTTPS request it serves goes on to the upstream over pooled keep-alive HTTP.
#   nginx-proxy  nginx as a TLS proxy to the same upstream: worker_processes 1, proxy_pass with
#                `keepalive 64`, HTTP/1.1 upstream connections. This is the like-for-like
#                comparison, and the one the targets are computed against.
#   nginx-term   nginx terminating TLS and answering `return 200 "ok\n"` itself: no upstream hop.
#                The ceiling of "TLS in front of a trivial response"; not comparable with a proxy
#                for requests/s (it does less work per request), reported for reference.
# The upstream is a plain-HTTP nginx (worker_processes 1, `return 200 "ok\n"`) on LOAD_CPU.
#
# Certificates: made here with the openssl CLI in the temporary directory, self-signed, one
# ECDSA P-256 and one RSA 2048, the same files for every server. TLS settings are each server's
# defaults (TLS 1.2 and 1.3, session tickets on: 2 TLS 1.3 tickets per handshake from both).
# Before measuring, `openssl s_client` connects once to each port of each server and the
# negotiated protocol, cipher suite, key-exchange group and signature are printed (OpenSSL 3
# client defaults on both sides give TLSv1.3, TLS_AES_256_GCM_SHA384, X25519): a difference
# between servers is a warning, and so is anything but TLSv1.3.
#
# Handshakes. The client is `openssl s_time -new -tls1_3 -time N`: a C loop that makes a new TCP
# connection, a full TLS 1.3 handshake with a fresh SSL object (no session is ever offered: -new,
# so no ticket is reused and no resumption can happen; s_time prints 'r' for a resumed one, which
# is counted and reported), a close_notify and a close. A Python ssl loop was the alternative; it
# spends more client CPU per handshake (interpreter, socket objects) on the very CPU that limits
# the client side, and measures nothing s_time does not. HS_CLIENTS s_time processes (default 4)
# run in parallel on LOAD_CPU, so the server always has a handshake to work on while a client
# computes; one client alone leaves both CPUs idle half the time, ping-ponging.
# On 2 cores the client side can be the bottleneck (an ECDSA handshake costs the client, which
# verifies the signature and does the key exchange, about as much as the server), so the raw
# handshakes/s achieved is not the server's capacity. The figure that is: the server's CPU per
# full handshake, utime+stime of all its processes and threads (/proc/PID/stat, nginx master +
# worker) over the timed run / handshakes completed, and from it handshakes/s per worker =
# 1e6 / (CPU µs per handshake), what one fully busy core would do. Both are reported, with each
# CPU's busy share: PROXY_CPU near 100 % means the raw rate was the server's limit.
# A handshake counts when s_time completed it, i.e. received the server's Finished: by then the
# server has done the key exchange and the signature, the expensive part. s_time then closes
# without reading the two session tickets the server sends, so the kernel answers them with a
# reset; coregate's own count (logged at stop, printed under the tables) calls a handshake whose
# reset overtakes the end of its accept "failed". That does not change what the server spent.
#
# HTTPS keep-alive: wrk (Debian's is linked with OpenSSL) -t THREADS -c CONNS --latency over
# https to the ECDSA listener (HTTPS_CERT=rsa: the RSA one); a WARMUP run first, in which the
# connections' handshakes happen. Reported: requests/s, p50/p99 latency, the server's CPU µs per
# request, and the upstream's (for the proxies).
#
# Interference. Per timed run the script reads /proc/stat for both CPUs and subtracts what this
# test's own processes used (the server on PROXY_CPU; on LOAD_CPU the clients, as this shell's
# reaped-children time, and the upstream). When anything else used more than BUSY_PCT % of
# either CPU, the row is marked "‡ unreliable" (another build or test suite was running).
#
# Targets (issue 7), printed under the tables: coregate full handshakes/s per worker ≥ 1.2×
# nginx-proxy's, with ECDSA and with RSA; coregate HTTPS requests/s ≥ 1.2× nginx-proxy's.
#
# Output: markdown tables on stdout, and the same figures as JSON in
# bench/results/tls-compare-<UTC date>.json (or --out FILE / RESULTS_DIR=DIR).
#
# Run `bench/scripts/tls-compare.sh --help` for the options.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

# ---------------------------------------------------------------------------------------------
# Settings (environment-overridable)
DURATION=${DURATION:-10}          # seconds of each timed run
WARMUP=${WARMUP:-2}               # seconds of the untimed run before each timed run (0: none)
HS_CLIENTS=${HS_CLIENTS:-4}       # parallel openssl s_time clients for the handshake runs
CONNS=${CONNS:-64}                # wrk connections for the HTTPS keep-alive run
THREADS=${THREADS:-1}             # wrk threads
HTTPS_CERT=${HTTPS_CERT:-ecdsa}   # certificate of the listener the HTTPS run uses: ecdsa | rsa
TESTS=${TESTS:-"hs-ecdsa hs-rsa https"}  # which runs, space- or comma-separated
PROXY_CPU=${PROXY_CPU:-0}         # CPU the server under test runs on
LOAD_CPU=${LOAD_CPU:-1}           # CPU of the clients and the upstream
COREGATE=${COREGATE:-$REPO_ROOT/target/release/coregate}
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/bench/results}
START_TIMEOUT=${START_TIMEOUT:-10} # seconds a server may take to listen
BUSY_PCT=${BUSY_PCT:-10}          # flag a run when others used one of its CPUs more than this %

ALL_CONTENDERS=(coregate nginx-proxy nginx-term)
ALL_TESTS=(hs-ecdsa hs-rsa https)
ONLY=""
INSTALL=0
OUT=""

usage() {
    cat <<EOF
Usage: bench/scripts/tls-compare.sh [--only LIST] [--tests LIST] [--out FILE] [--install] [--help]

Compares TLS termination, one worker each on PROXY_CPU, clients and upstream on LOAD_CPU:
  coregate     coregate run --config <generated>: workers = 1, two TLS listeners
               (ECDSA P-256, RSA 2048) routed to a plain-HTTP nginx upstream
  nginx-proxy  nginx, worker_processes 1, TLS + proxy_pass to the same upstream (keepalive 64)
  nginx-term   nginx, worker_processes 1, TLS + return 200 "ok\\n" (no upstream hop)
Runs (TESTS):
  hs-ecdsa     full TLS 1.3 handshakes, ECDSA P-256 certificate: HS_CLIENTS x
               openssl s_time -new -tls1_3; server CPU µs per handshake and
               handshakes/s per worker = 1e6 / that, plus the raw handshakes/s
  hs-rsa       the same with the RSA 2048 certificate
  https        wrk -t\$THREADS -c\$CONNS --latency over https (keep-alive): req/s,
               p50/p99, server CPU µs per request
Targets: coregate >= 1.2x nginx-proxy on handshakes/s per worker (both certificates) and
on HTTPS requests/s.

Options:
  --only LIST   comma-separated subset of: ${ALL_CONTENDERS[*]} (default: all)
  --tests LIST  comma-separated subset of: ${ALL_TESTS[*]} (default: TESTS)
  --out FILE    where to write the JSON results
                (default: \$RESULTS_DIR/tls-compare-<UTC date>.json, RESULTS_DIR=bench/results)
  --install     install missing tools first:
                apt-get update && apt-get install -y nginx wrk openssl curl
  -h, --help    this text

Environment (defaults in brackets):
  DURATION [10] seconds timed   WARMUP [2] seconds untimed before each timed run (0: none)
  HS_CLIENTS [4] parallel s_time clients   CONNS [64] and THREADS [1] for wrk
  HTTPS_CERT [ecdsa] certificate of the HTTPS run: ecdsa | rsa
  TESTS ["hs-ecdsa hs-rsa https"]   PROXY_CPU [0]   LOAD_CPU [1]
  COREGATE [target/release/coregate]   RESULTS_DIR [bench/results]
  START_TIMEOUT [10] seconds a server may take to listen
  BUSY_PCT [10] flag a run (‡) when other processes used one of its CPUs more than this %
  KEEP_WORK [0] 1: keep the temporary directory (certificates, configs, logs, client output)
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --only) ONLY=${2:?--only needs a list}; shift 2 ;;
        --only=*) ONLY=${1#--only=}; shift ;;
        --tests) TESTS=${2:?--tests needs a list}; shift 2 ;;
        --tests=*) TESTS=${1#--tests=}; shift ;;
        --out) OUT=${2:?--out needs a file}; shift 2 ;;
        --out=*) OUT=${1#--out=}; shift ;;
        --install) INSTALL=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "tls-compare.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

log() { printf '[tls-compare] %s\n' "$*" >&2; }
warn() { printf '[tls-compare] WARNING: %s\n' "$*" >&2; }
die() { printf '[tls-compare] ERROR: %s\n' "$*" >&2; exit 1; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in DURATION WARMUP HS_CLIENTS CONNS THREADS PROXY_CPU LOAD_CPU START_TIMEOUT BUSY_PCT; do
    is_uint "${!v}" || die "$v must be a non-negative integer (got '${!v}')"
done
[ "$DURATION" -ge 1 ] || die "DURATION must be at least 1"
{ [ "$HS_CLIENTS" -ge 1 ] && [ "$CONNS" -ge 1 ] && [ "$THREADS" -ge 1 ]; } \
    || die "HS_CLIENTS, CONNS and THREADS must be at least 1"
[ "$PROXY_CPU" != "$LOAD_CPU" ] || die "PROXY_CPU and LOAD_CPU must differ"
case "$HTTPS_CERT" in ecdsa|rsa) ;; *) die "HTTPS_CERT must be ecdsa or rsa (got '$HTTPS_CERT')" ;; esac

# pick LIST KNOWN... → the known names LIST (comma or space separated) names, in canonical order
pick() {
    local list=$1 what=$2 w c out=()
    shift 2
    IFS=', ' read -r -a wanted <<<"$list"
    for w in "${wanted[@]}"; do
        [ -n "$w" ] || continue
        case " $* " in *" $w "*) ;; *) die "$what: unknown name '$w' (known: $*)" ;; esac
    done
    for c in "$@"; do
        for w in "${wanted[@]}"; do
            if [ "$c" = "$w" ]; then out+=("$c"); break; fi
        done
    done
    printf '%s\n' ${out[@]+"${out[@]}"}
}
if [ -z "$ONLY" ]; then ONLY=${ALL_CONTENDERS[*]}; fi
mapfile -t CONTENDERS < <(pick "$ONLY" --only "${ALL_CONTENDERS[@]}")
mapfile -t TEST_LIST < <(pick "$TESTS" --tests "${ALL_TESTS[@]}")
[ ${#CONTENDERS[@]} -gt 0 ] || die "no contender selected"
[ ${#TEST_LIST[@]} -gt 0 ] || die "no test selected"
selected() { case " ${CONTENDERS[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
testing() { case " ${TEST_LIST[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# Why a contender was skipped (coregate only; an nginx failure stops the script).
declare -A SKIP=()

# ---------------------------------------------------------------------------------------------
# Tools
have() { command -v "$1" >/dev/null 2>&1; }
missing_tools() {
    MISSING=()
    have nginx || MISSING+=(nginx)
    have openssl || MISSING+=(openssl)
    have curl || MISSING+=(curl)
    if testing https && ! have wrk; then MISSING+=(wrk); fi
    have taskset || MISSING+=(util-linux)
    have getconf || MISSING+=(libc-bin)
    have timeout || MISSING+=(coreutils)
    have pgrep || MISSING+=(procps)
}
missing_tools
if [ ${#MISSING[@]} -gt 0 ]; then
    if [ "$INSTALL" = 1 ]; then
        log "installing: nginx wrk openssl curl ${MISSING[*]}"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y nginx wrk openssl curl "${MISSING[@]}"
        missing_tools
        [ ${#MISSING[@]} -eq 0 ] || die "still missing after install: ${MISSING[*]}"
    else
        die "missing tools: ${MISSING[*]}
    install them with:  apt-get update && apt-get install -y ${MISSING[*]}
    (or run this script with --install)"
    fi
fi
if selected nginx-proxy || selected nginx-term; then
    nginx -V 2>&1 | grep -q -- '--with-http_ssl_module' || die "this nginx was built without http_ssl_module"
fi
if testing https; then
    # wrk without TLS support says so on its first https connection; ldd tells beforehand.
    # (Captured first: grep -q ending early would fail the pipeline under pipefail.)
    wrk_libs=$(ldd "$(command -v wrk)" 2>/dev/null || true)
    if [[ $wrk_libs != *libssl* ]]; then
        warn "wrk does not seem to be linked with OpenSSL: the https run may fail"
    fi
fi
if selected coregate && [ ! -x "$COREGATE" ]; then
    SKIP[coregate]="coregate binary not found at $COREGATE (cargo build --release, or COREGATE=path)"
    log "skipping coregate: ${SKIP[coregate]}"
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
WORK=$(mktemp -d /tmp/coregate-tls-compare.XXXXXX)
STARTED=()   # pids of every server this script started
LOADPIDS=()  # running clients (each through timeout(1), which forwards TERM)

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
    for pid in ${LOADPIDS[@]+"${LOADPIDS[@]}"}; do
        if alive "$pid"; then stop_pid "$pid"; fi
    done
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
        port=$((20000 + RANDOM % 12000))   # below the ephemeral range (32768+) the clients use
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

last_error() {   # the most telling line of a log: the last one saying error, else the last one
    local line=""
    if [ -s "$1" ]; then
        line=$(grep -iE 'error|refus|fail|unknown|emerg' "$1" | tail -n1 || true)
        [ -n "$line" ] || line=$(tail -n1 "$1")
    fi
    printf '%s' "${line:-no output}" | tr -d '\000-\037' | cut -c1-300
}

# wait_listening NAME PID LOGFILE PORT... → 0 once every port listens; 1 with WHY set if the
# process exited or a port did not listen within START_TIMEOUT (polled, bounded). Readiness is
# the listening socket in /proc/net/tcp: a test connection would count as a failed handshake.
wait_listening() {
    local name=$1 pid=$2 logf=$3 deadline port ok
    shift 3
    WHY=""
    deadline=$((SECONDS + START_TIMEOUT))
    while [ "$SECONDS" -le "$deadline" ]; do
        if ! alive "$pid"; then
            WHY="$name exited before listening: $(last_error "$logf")"
            return 1
        fi
        ok=1
        for port in "$@"; do listening "$port" || { ok=0; break; }; done
        if [ "$ok" = 1 ]; then return 0; fi
        sleep 0.05
    done
    WHY="$name did not listen on 127.0.0.1:{$*} within ${START_TIMEOUT}s"
    return 1
}

# ---------------------------------------------------------------------------------------------
# CPU accounting from /proc
proc_ticks() {   # utime+stime of one process and all its threads, in clock ticks; 0 if gone
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }            # fields from 3 (state) on; comm may hold spaces
    # shellcheck disable=SC2086
    set -- $s
    echo $((${12} + ${13}))   # fields 14 (utime) and 15 (stime)
}
tree_ticks() {   # sum over $1 and its descendants (nginx master + worker, ...)
    local total=0 p
    for p in "$1" $(descendants "$1"); do
        total=$((total + $(proc_ticks "$p")))
    done
    echo "$total"
}
children_ticks() {   # cutime+cstime of this shell: every child it has reaped (the clients)
    local s
    s=$(cat "/proc/$$/stat")
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    echo $((${14} + ${15}))   # fields 16 (cutime) and 17 (cstime)
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

# window_start / window_end KEY: the CPU sampling around one timed run of the server PID (and
# the upstream UP_PID, when there is one). window_end fills the R_* figures of KEY.
window_start() {
    W_T0=$(now_ns)
    W_SRV0=$(tree_ticks "$PID")
    W_UP0=0; [ -n "${UP_PID:-}" ] && W_UP0=$(tree_ticks "$UP_PID")
    W_KIDS0=$(children_ticks)
    read -r W_PB0 W_PT0 W_PI0 < <(cpu_jiffies "$PROXY_CPU")
    read -r W_LB0 W_LT0 W_LI0 < <(cpu_jiffies "$LOAD_CPU")
}
declare -A R_WALL R_SRVTICKS R_UPTICKS R_CLIENTTICKS R_IRQ R_FOREIGN R_LFOREIGN R_PBUSY R_LBUSY R_FLAG
window_end() {
    local k=$1 t1 srv1 up1 kids1 pb1 pt1 pi1 lb1 lt1 li1 own
    t1=$(now_ns)
    srv1=$(tree_ticks "$PID")
    up1=0; [ -n "${UP_PID:-}" ] && up1=$(tree_ticks "$UP_PID")
    kids1=$(children_ticks)
    read -r pb1 pt1 pi1 < <(cpu_jiffies "$PROXY_CPU")
    read -r lb1 lt1 li1 < <(cpu_jiffies "$LOAD_CPU")
    R_WALL[$k]=$(awk -v a="$W_T0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    R_SRVTICKS[$k]=$((srv1 - W_SRV0))
    R_UPTICKS[$k]=$((up1 - W_UP0))
    R_CLIENTTICKS[$k]=$((kids1 - W_KIDS0))
    R_IRQ[$k]=$((pi1 - W_PI0))
    # Others' share of each CPU: PROXY_CPU's own is the server; LOAD_CPU's the clients (reaped
    # by now, so in this shell's children time) and the upstream.
    R_FOREIGN[$k]=$(foreign_pct $((pb1 - W_PB0)) $((pt1 - W_PT0)) "${R_SRVTICKS[$k]}")
    own=$((R_CLIENTTICKS[$k] + R_UPTICKS[$k]))
    R_LFOREIGN[$k]=$(foreign_pct $((lb1 - W_LB0)) $((lt1 - W_LT0)) "$own")
    # Busy share (processes + interrupts) of each CPU: near 100 % marks the limiting side.
    R_PBUSY[$k]=$(busy_pct $((pb1 - W_PB0 + pi1 - W_PI0)) $((pt1 - W_PT0)))
    R_LBUSY[$k]=$(busy_pct $((lb1 - W_LB0 + li1 - W_LI0)) $((lt1 - W_LT0)))
    R_FLAG[$k]=""
    if over "${R_FOREIGN[$k]}"; then R_FLAG[$k]="CPU $PROXY_CPU ${R_FOREIGN[$k]}%"; fi
    if over "${R_LFOREIGN[$k]}"; then R_FLAG[$k]+="${R_FLAG[$k]:+, }CPU $LOAD_CPU ${R_LFOREIGN[$k]}%"; fi
    if [ -n "${R_FLAG[$k]}" ]; then
        warn "$k: other processes used ${R_FLAG[$k]} of the timed run: the machine is not quiet, figures are unreliable"
    fi
}

# ---------------------------------------------------------------------------------------------
# Certificates: self-signed, CN/SAN localhost and 127.0.0.1, the same files for every server.
make_certs() {
    local dir=$WORK/certs
    mkdir -p "$dir"
    openssl req -x509 -nodes -days 30 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$dir/ecdsa.key" -out "$dir/ecdsa.pem" -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" \
        -addext "keyUsage=critical,digitalSignature" -addext "extendedKeyUsage=serverAuth" \
        >"$dir/ecdsa.log" 2>&1 || die "openssl could not make the ECDSA certificate: $(last_error "$dir/ecdsa.log")"
    openssl req -x509 -nodes -days 30 -newkey rsa:2048 \
        -keyout "$dir/rsa.key" -out "$dir/rsa.pem" -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" \
        -addext "keyUsage=critical,digitalSignature,keyEncipherment" -addext "extendedKeyUsage=serverAuth" \
        >"$dir/rsa.log" 2>&1 || die "openssl could not make the RSA certificate: $(last_error "$dir/rsa.log")"
    CERT_DIR=$dir
}

# ---------------------------------------------------------------------------------------------
# Servers. Each start_* sets PID, PORT_ECDSA and PORT_RSA of the started server and registers it
# for cleanup; it returns 1 with WHY set when the server could not be started.
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

start_nginx() {   # start_nginx NAME CPU CONFFILE PREFIX PORT...
    local name=$1 cpu=$2 conf=$3 prefix=$4
    shift 4
    if ! nginx -t -q -p "$prefix" -e "$prefix/error.log" -c "$conf" >"$prefix/check.log" 2>&1; then
        WHY="nginx -t rejected $conf: $(last_error "$prefix/check.log")"
        return 1
    fi
    taskset -c "$cpu" nginx -p "$prefix" -e "$prefix/error.log" -c "$conf" -g 'daemon off;' \
        >"$prefix/stdout.log" 2>&1 &
    PID=$!
    STARTED+=("$PID")
    wait_listening "$name" "$PID" "$prefix/error.log" "$@"
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
    start_nginx "upstream nginx" "$LOAD_CPU" "$dir/nginx.conf" "$dir" "$UP_PORT" || die "upstream: $WHY"
    UP_PID=$PID
}

start_coregate() {
    local dir=$WORK/coregate
    mkdir -p "$dir"
    PORT_ECDSA=$(free_port); PORT_RSA=$(free_port)
    cat >"$dir/coregate.toml" <<EOF
# generated by bench/scripts/tls-compare.sh
[runtime]
workers = 1
pin = true               # pins to the first CPU of its affinity mask: started under taskset
shutdown_timeout = "2s"

[log]
level = "warn,coregate::runtime::worker=info"   # keeps the handshake counts logged at stop
access_log = "off"

[[listener]]
name = "tls-ecdsa"
bind = "127.0.0.1:$PORT_ECDSA"
backlog = 4096
tls = { cert = "$CERT_DIR/ecdsa.pem", key = "$CERT_DIR/ecdsa.key" }

[[listener]]
name = "tls-rsa"
bind = "127.0.0.1:$PORT_RSA"
backlog = 4096
tls = { cert = "$CERT_DIR/rsa.pem", key = "$CERT_DIR/rsa.key" }

[[route]]
listener = "tls-ecdsa"
path_prefix = "/"
upstream = "up"

[[route]]
listener = "tls-rsa"
path_prefix = "/"
upstream = "up"

[[upstream]]
name = "up"
endpoints = ["127.0.0.1:$UP_PORT"]
max_idle_per_worker = 64
EOF
    if ! "$COREGATE" check --config "$dir/coregate.toml" >"$dir/check.log" 2>&1; then
        WHY="coregate check rejected the config: $(last_error "$dir/check.log")"
        return 1
    fi
    taskset -c "$PROXY_CPU" "$COREGATE" run --config "$dir/coregate.toml" >"$dir/run.log" 2>&1 &
    PID=$!
    STARTED+=("$PID")
    wait_listening coregate "$PID" "$dir/run.log" "$PORT_ECDSA" "$PORT_RSA"
}

start_nginx_tls() {   # start_nginx_tls NAME proxy|term
    local name=$1 mode=$2 dir=$WORK/$1 location upstream_block="" kind port
    mkdir -p "$dir"
    PORT_ECDSA=$(free_port); PORT_RSA=$(free_port)
    if [ "$mode" = proxy ]; then
        upstream_block="    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }"
        location="proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";"
    else
        location="default_type text/plain;
            return 200 \"ok\\n\";"
    fi
    {
        echo "worker_processes 1;"
        echo "pid $dir/nginx.pid;"
        echo "error_log $dir/error.log warn;"
        echo "events { worker_connections 4096; }"
        echo "http {"
        nginx_common_http "$dir"
        echo "$upstream_block"
        for kind in ecdsa rsa; do
            if [ "$kind" = ecdsa ]; then port=$PORT_ECDSA; else port=$PORT_RSA; fi
            cat <<EOF
    server {
        listen 127.0.0.1:$port ssl backlog=4096;
        ssl_certificate $CERT_DIR/$kind.pem;
        ssl_certificate_key $CERT_DIR/$kind.key;
        ssl_protocols TLSv1.2 TLSv1.3;   # as coregate (min_version = "1.2")
        location / {
            $location
        }
    }
EOF
        done
        echo "}"
    } >"$dir/nginx.conf"
    start_nginx "$name" "$PROXY_CPU" "$dir/nginx.conf" "$dir" "$PORT_ECDSA" "$PORT_RSA"
}

# ---------------------------------------------------------------------------------------------
# Checks before measuring
# tls_params PORT OUTFILE → PARAMS="protocol cipher group signature" negotiated by openssl
# s_client with OpenSSL's client defaults (what wrk negotiates too); returns 1 with WHY set.
tls_params() {
    local port=$1 f=$2 proto cipher group sig
    WHY=""; PARAMS=""
    if ! timeout 10 openssl s_client -connect "127.0.0.1:$port" -brief </dev/null >"$f" 2>&1; then
        WHY="openssl s_client to 127.0.0.1:$port failed: $(last_error "$f")"
        return 1
    fi
    proto=$(awk -F': ' '/^Protocol version:/ {print $2; exit}' "$f")
    cipher=$(awk -F': ' '/^Ciphersuite:/ {print $2; exit}' "$f")
    group=$(awk -F': ' '/^(Server|Peer) Temp Key:/ {split($2, a, ","); print a[1]; exit}' "$f")
    sig=$(awk -F': ' '/^(Peer )?[Ss]ignature type:/ {print $2; exit}' "$f")
    if [ -z "$proto" ] || [ -z "$cipher" ]; then
        WHY="openssl s_client to 127.0.0.1:$port: no handshake summary ($(last_error "$f"))"
        return 1
    fi
    PARAMS="${proto:-?} ${cipher:-?} ${group:-?} ${sig:-?}"
}

check_https() {   # check_https NAME PORT → 0 if 200 + "ok"; else 1 with WHY set
    local name=$1 port=$2 code body
    code=$(curl -sS -k --max-time 5 -o "$WORK/$name.body" -w '%{http_code}' "https://127.0.0.1:$port/" \
        2>"$WORK/$name.curlerr") || code="curl failed: $(last_error "$WORK/$name.curlerr")"
    body=$(cat "$WORK/$name.body" 2>/dev/null || true)
    if [ "$code" = 200 ] && [ "$body" = ok ]; then return 0; fi
    WHY="https://127.0.0.1:$port/ answered status $code, body '$(printf '%s' "$body" | head -c 80 | tr '\n' ' ')', expected 200 'ok'"
    return 1
}

# ---------------------------------------------------------------------------------------------
# Clients
# run_handshakes PORT SECONDS TAG → HS_CLIENTS parallel `openssl s_time -new -tls1_3` on LOAD_CPU;
# sets HS_DONE (handshakes completed, from the one character s_time prints per connection),
# HS_REUSED (of them resumed: 'r'; must be 0) and HS_FAILED (clients that ended in an error).
run_handshakes() {
    local port=$1 secs=$2 tag=$3 limit=$(( $2 + 30 )) i rc out counts pids=()
    HS_DONE=0; HS_REUSED=0; HS_FAILED=0; HS_ERR=""
    for ((i = 0; i < HS_CLIENTS; i++)); do
        taskset -c "$LOAD_CPU" timeout "$limit" \
            openssl s_time -connect "127.0.0.1:$port" -new -tls1_3 -time "$secs" \
            >"$WORK/$tag.$i.out" 2>"$WORK/$tag.$i.err" &
        pids+=("$!")
    done
    LOADPIDS=("${pids[@]}")
    for i in "${!pids[@]}"; do
        rc=0
        wait "${pids[$i]}" || rc=$?
        out=$WORK/$tag.$i.out
        # The progress line holds one character per connection: '*' new (TLS 1.2/1.3), 'r' resumed.
        counts=$(awk '/^[*rt3]+$/ { n += length($0); r += gsub(/r/, "") } END { printf "%d %d", n, r }' "$out")
        HS_DONE=$((HS_DONE + ${counts% *}))
        HS_REUSED=$((HS_REUSED + ${counts#* }))
        if [ "$rc" != 0 ] || ! grep -q 'connections in .* real seconds' "$out"; then
            HS_FAILED=$((HS_FAILED + 1))
            HS_ERR="s_time exit $rc: $(last_error "$WORK/$tag.$i.err")"
        fi
    done
    LOADPIDS=()
}

to_us() {   # wrk time ("612.00us", "1.23ms", "2.00s", "1.00m") → integer microseconds
    awk -v t="$1" 'BEGIN {
        n = t + 0; u = t; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 1 : (u == "ms") ? 1e3 : (u == "s") ? 1e6 : (u == "m") ? 6e7 : (u == "h") ? 3.6e9 : -1
        if (f < 0) { print "null"; exit }
        printf "%.0f\n", n * f }'
}
# run_wrk URL SECONDS RAWFILE → 0 and "requests rps p50_us p99_us socket_errors non_2xx" in
# WRK_RESULT; 1 with WHY set.
run_wrk() {
    local url=$1 secs=$2 raw=$3 limit=$(( $2 + 30 )) rc=0 res
    WHY=""; WRK_RESULT=""
    taskset -c "$LOAD_CPU" timeout "$limit" \
        wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency "$url" >"$raw" 2>&1 &
    LOADPIDS=("$!")
    wait "${LOADPIDS[0]}" || rc=$?
    LOADPIDS=()
    if [ "$rc" != 0 ]; then WHY="wrk failed (exit $rc): $(last_error "$raw")"; return 1; fi
    res=$(awk '
        /^[[:space:]]+50%/ { p50 = $2 }
        /^[[:space:]]+99%/ { p99 = $2 }
        / requests in /    { req = $1 }
        /^Requests\/sec:/  { rps = $2 }
        /Socket errors:/   { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        END { if (req != "" && rps != "" && p99 != "") printf "%s %s %s %s %d %d\n", req, rps, p50, p99, err, bad }' "$raw")
    if [ -z "$res" ]; then WHY="could not parse wrk output: $(last_error "$raw")"; return 1; fi
    read -r req rps p50 p99 err bad <<<"$res"
    WRK_RESULT="$req $rps $(to_us "$p50") $(to_us "$p99") $err $bad"
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
OPENSSL_VERSION=$(openssl version 2>&1 | head -n1)
WRK_VERSION=""
if testing https; then WRK_VERSION=$(wrk -v 2>&1 | head -n1 | awk '{print $2}' || true); fi
COREGATE_VERSION=""
if selected coregate && [ -z "${SKIP[coregate]:-}" ]; then
    COREGATE_VERSION=$("$COREGATE" --version 2>&1 | head -n1 || true)
fi

if [ -z "$OUT" ]; then
    OUT=$RESULTS_DIR/tls-compare-${RUN_DATE//:/}.json
fi

log "$RUN_DATE  kernel $KERNEL  cpu '$CPU_MODEL'  nproc $NPROC"
log "contenders: ${CONTENDERS[*]}; runs: ${TEST_LIST[*]}; warm-up ${WARMUP}s, timed ${DURATION}s; server on CPU $PROXY_CPU, clients + upstream on CPU $LOAD_CPU"

# ---------------------------------------------------------------------------------------------
# Run. Results are keyed "contender/test".
declare -A TLS_PARAMS HS_N HS_R HS_BAD R_REQ R_RPS R_P50 R_P99 R_ERR R_BAD RUN_SKIP
CG_HANDSHAKES=""

make_certs
log "certificates in $CERT_DIR: ECDSA P-256 and RSA 2048, self-signed"
UP_PID=""
if selected coregate || selected nginx-proxy; then
    start_upstream
    log "upstream nginx on 127.0.0.1:$UP_PORT (pid $UP_PID, CPU $LOAD_CPU)"
fi

# contender_failed CONTENDER WHY: coregate is skipped (the others still run); nginx stops the script.
contender_failed() {
    if [ -n "${PID:-}" ]; then
        if ! alive "$PID"; then
            local lf=$WORK/$1/run.log
            [ -f "$lf" ] || lf=$WORK/$1/error.log
            WHY="$2; $1 exited: $(last_error "$lf")"
        else
            WHY=$2
        fi
        stop_pid "$PID"; forget_pid "$PID"; PID=""
    else
        WHY=$2
    fi
    case "$1" in
        coregate) SKIP[$1]=$WHY; warn "skipping $1: $WHY" ;;
        *) die "$1: $WHY" ;;
    esac
}

for c in "${CONTENDERS[@]}"; do
    if [ -n "${SKIP[$c]:-}" ]; then continue; fi
    PID=""; WHY=""; ok=0
    case "$c" in
        coregate) start_coregate && ok=1 ;;
        nginx-proxy) start_nginx_tls "$c" proxy && ok=1 ;;
        nginx-term) start_nginx_tls "$c" term && ok=1 ;;
    esac
    if [ "$ok" = 0 ]; then contender_failed "$c" "$WHY"; continue; fi
    # The term server has no upstream: its LOAD_CPU accounting must not count the upstream's.
    SERVER_PID=$PID
    log "$c on 127.0.0.1:$PORT_ECDSA (ECDSA) and :$PORT_RSA (RSA) (pid $PID, CPU $PROXY_CPU)"

    # What each port negotiates, and one HTTPS request end to end.
    for kind in ecdsa rsa; do
        if [ "$kind" = ecdsa ]; then port=$PORT_ECDSA; else port=$PORT_RSA; fi
        if ! tls_params "$port" "$WORK/$c.$kind.s_client"; then
            contender_failed "$c" "$WHY"; continue 2
        fi
        params=$PARAMS
        TLS_PARAMS[$c/$kind]=$params
        log "$c $kind: negotiated $params"
        [ "${params%% *}" = TLSv1.3 ] || warn "$c $kind: negotiated ${params%% *}, not TLSv1.3"
    done
    if [ "$HTTPS_CERT" = ecdsa ]; then HTTPS_PORT=$PORT_ECDSA; else HTTPS_PORT=$PORT_RSA; fi
    if ! check_https "$c" "$HTTPS_PORT"; then contender_failed "$c" "$WHY"; continue; fi

    for t in "${TEST_LIST[@]}"; do
        k="$c/$t"
        PID=$SERVER_PID
        saved_up=$UP_PID
        if [ "$c" = nginx-term ]; then UP_PID=""; fi
        case "$t" in
        hs-ecdsa|hs-rsa)
            if [ "$t" = hs-ecdsa ]; then port=$PORT_ECDSA; else port=$PORT_RSA; fi
            if [ "$WARMUP" -gt 0 ]; then
                log "$c $t: warm-up ${WARMUP}s ($HS_CLIENTS s_time clients)"
                run_handshakes "$port" "$WARMUP" "$c-$t.warmup"
            fi
            log "$c $t: measuring ${DURATION}s ($HS_CLIENTS s_time clients)"
            window_start
            run_handshakes "$port" "$DURATION" "$c-$t"
            window_end "$k"
            HS_N[$k]=$HS_DONE; HS_R[$k]=$HS_REUSED; HS_BAD[$k]=$HS_FAILED
            if [ "$HS_DONE" -eq 0 ]; then
                UP_PID=$saved_up
                RUN_SKIP[$k]="no handshake completed${HS_ERR:+ ($HS_ERR)}"
                if [ "$c" = coregate ]; then warn "$k: ${RUN_SKIP[$k]}"; continue; fi
                die "$k: ${RUN_SKIP[$k]}"
            fi
            if [ "$HS_FAILED" -gt 0 ]; then warn "$k: $HS_FAILED of $HS_CLIENTS s_time clients ended in an error: $HS_ERR"; fi
            if [ "$HS_REUSED" -gt 0 ]; then warn "$k: $HS_REUSED handshakes were resumed: not all full handshakes"; fi
            ;;
        https)
            url="https://127.0.0.1:$HTTPS_PORT/"
            if [ "$WARMUP" -gt 0 ]; then
                log "$c $t: warm-up ${WARMUP}s"
                if ! run_wrk "$url" "$WARMUP" "$WORK/$c-$t.warmup.txt"; then
                    UP_PID=$saved_up
                    RUN_SKIP[$k]="warm-up: $WHY"
                    if [ "$c" = coregate ]; then warn "$k: ${RUN_SKIP[$k]}"; continue; fi
                    die "$k: ${RUN_SKIP[$k]}"
                fi
            fi
            log "$c $t: measuring ${DURATION}s (wrk -t$THREADS -c$CONNS)"
            window_start
            run_ok=1
            run_wrk "$url" "$DURATION" "$WORK/$c-$t.txt" || run_ok=0
            window_end "$k"
            if [ "$run_ok" = 0 ]; then
                UP_PID=$saved_up
                RUN_SKIP[$k]=$WHY
                if [ "$c" = coregate ]; then warn "$k: ${RUN_SKIP[$k]}"; continue; fi
                die "$k: ${RUN_SKIP[$k]}"
            fi
            read -r req rps p50 p99 err bad <<<"$WRK_RESULT"
            R_REQ[$k]=$req; R_RPS[$k]=$rps; R_P50[$k]=$p50; R_P99[$k]=$p99; R_ERR[$k]=$err; R_BAD[$k]=$bad
            if [ "${R_ERR[$k]}" -gt 0 ] || [ "${R_BAD[$k]}" -gt 0 ]; then
                warn "$k: ${R_ERR[$k]} socket errors, ${R_BAD[$k]} non-2xx/3xx responses during the timed run"
            fi
            ;;
        esac
        UP_PID=$saved_up
    done
    PID=$SERVER_PID
    stop_pid "$PID"
    forget_pid "$PID"
    if [ "$c" = coregate ]; then
        # coregate logs its worker's completed and failed handshakes when it stops.
        CG_HANDSHAKES=$(grep -E 'TLS handshakes' "$WORK/coregate/run.log" | tail -n1 \
            | grep -oE '(handshakes|failed)=[0-9]+' | tr '\n' ' ' | sed 's/ $//' || true)
    fi
done

# ---------------------------------------------------------------------------------------------
# Derived figures
ratio() {   # ratio A B → A/B with 2 decimals, or "-"
    if [ -z "$1" ] || [ -z "$2" ] || [ "$1" = - ] || [ "$2" = - ]; then echo "-"; return; fi
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "-" }'
}
per_op() {   # per_op TICKS COUNT → µs of CPU per operation (2 decimals), or "-"
    if [ -z "$1" ] || [ -z "$2" ]; then echo "-"; return; fi
    awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { if (n > 0) printf "%.2f\n", t * 1e6 / hz / n; else print "-" }'
}
orn() { if [ "$1" = - ] || [ -z "$1" ]; then echo null; else echo "$1"; fi; }   # "-" → null
ran() { [ -n "${R_WALL[$1]:-}" ] && [ -z "${RUN_SKIP[$1]:-}" ]; }

declare -A D_RATE D_CPU D_PERWORKER D_IRQ D_UPCPU D_VSPROXY D_VSTERM D_CPUVSPROXY D_SRVPCT
for c in "${CONTENDERS[@]}"; do
    for t in "${TEST_LIST[@]}"; do
        k="$c/$t"
        ran "$k" || continue
        D_SRVPCT[$k]=$(awk -v t="${R_SRVTICKS[$k]}" -v hz="$CLK_TCK" -v w="${R_WALL[$k]}" 'BEGIN {
            printf "%.0f", (w > 0) ? t * 100 / hz / w : 0 }')
        if [ "$t" = https ]; then n=${R_REQ[$k]}; else n=${HS_N[$k]}; fi
        D_CPU[$k]=$(per_op "${R_SRVTICKS[$k]}" "$n")
        D_IRQ[$k]=$(per_op "${R_IRQ[$k]}" "$n")
        D_UPCPU[$k]=$(per_op "${R_UPTICKS[$k]}" "$n")
        if [ "$t" = https ]; then
            D_RATE[$k]=${R_RPS[$k]}
        else
            D_RATE[$k]=$(awk -v n="$n" -v w="${R_WALL[$k]}" 'BEGIN { printf "%.0f", (w > 0) ? n / w : 0 }')
            D_PERWORKER[$k]=$(awk -v c="${D_CPU[$k]}" 'BEGIN { if (c + 0 > 0) printf "%.0f", 1e6 / c; else print "-" }')
        fi
    done
done
metric() {   # metric KEY → the figure the targets compare: per-worker handshakes/s or req/s
    case "${1#*/}" in
        https) echo "${R_RPS[$1]:-}" ;;
        *) echo "${D_PERWORKER[$1]:-}" ;;
    esac
}
for c in "${CONTENDERS[@]}"; do
    for t in "${TEST_LIST[@]}"; do
        k="$c/$t"
        ran "$k" || continue
        D_VSPROXY[$k]=$(ratio "$(metric "$k")" "$(ran "nginx-proxy/$t" && metric "nginx-proxy/$t")")
        D_VSTERM[$k]=$(ratio "$(metric "$k")" "$(ran "nginx-term/$t" && metric "nginx-term/$t")")
        D_CPUVSPROXY[$k]=$(ratio "${D_CPU[$k]}" "$(ran "nginx-proxy/$t" && echo "${D_CPU[nginx-proxy/$t]}")")
    done
done

# Targets (issue 7): coregate >= 1.2x nginx-proxy.
target_line() {   # target_line VALUE LIMIT → "met" / "NOT met" / "n/a"
    if [ -z "$1" ] || [ "$1" = - ]; then echo "n/a"; return; fi
    if awk -v v="$1" -v l="$2" 'BEGIN { exit !(v >= l) }'; then echo "met"; else echo "NOT met"; fi
}
declare -A T_VAL T_RES T_TERM
for t in "${TEST_LIST[@]}"; do
    T_VAL[$t]=${D_VSPROXY[coregate/$t]:--}
    T_TERM[$t]=${D_VSTERM[coregate/$t]:--}
    T_RES[$t]=$(target_line "${T_VAL[$t]}" 1.2)
done
times_or_dash() { if [ -z "$1" ] || [ "$1" = - ]; then echo "-"; else echo "$1×"; fi; }
target_name() {
    case "$1" in
        hs-ecdsa) echo "full handshakes/s per worker, ECDSA P-256" ;;
        hs-rsa) echo "full handshakes/s per worker, RSA 2048" ;;
        https) echo "HTTPS keep-alive requests/s" ;;
    esac
}

# Negotiated parameters: the same on every server?
declare -A PARAM_SET=()
for c in "${CONTENDERS[@]}"; do
    for kind in ecdsa rsa; do
        if [ -n "${TLS_PARAMS[$c/$kind]:-}" ]; then PARAM_SET[$kind:${TLS_PARAMS[$c/$kind]}]=1; fi
    done
done
PARAMS_DIFFER=0
for kind in ecdsa rsa; do
    n=0
    for p in "${!PARAM_SET[@]}"; do [[ $p == "$kind:"* ]] && n=$((n + 1)); done
    if [ "$n" -gt 1 ]; then PARAMS_DIFFER=1; warn "the servers negotiated different TLS parameters with the $kind certificate (see the table)"; fi
done

# ---------------------------------------------------------------------------------------------
# Report
flagname() { if [ -n "${R_FLAG[$1]:-}" ]; then echo "$2 ‡"; else echo "$2"; fi; }
echo "## coregate TLS termination comparison"
echo
echo "- date: $RUN_DATE"
echo "- kernel: $KERNEL; CPU: $CPU_MODEL; nproc: $NPROC; $OPENSSL_VERSION"
echo "- servers: 1 worker each on CPU $PROXY_CPU${COREGATE_VERSION:+; $COREGATE_VERSION}; $NGINX_VERSION (nginx-proxy: proxy_pass to the upstream, keepalive 64; nginx-term: \`return 200\`)"
echo "- upstream (coregate, nginx-proxy): $NGINX_VERSION, 1 worker on CPU $LOAD_CPU, \`return 200 \"ok\\n\"\`"
echo "- handshakes: $HS_CLIENTS × \`openssl s_time -new -tls1_3\` on CPU $LOAD_CPU; https: wrk ${WRK_VERSION} -t$THREADS -c$CONNS on CPU $LOAD_CPU ($HTTPS_CERT certificate); ${WARMUP}s warm-up, then ${DURATION}s measured"
echo
echo "Negotiated (openssl s_client, client defaults):"
echo
echo "| contender | certificate | protocol | cipher suite | group | signature |"
echo "|---|---|---|---|---|---|"
for c in "${CONTENDERS[@]}"; do
    for kind in ecdsa rsa; do
        [ -n "${TLS_PARAMS[$c/$kind]:-}" ] || continue
        read -r proto cipher group sig <<<"${TLS_PARAMS[$c/$kind]}"
        echo "| $c | $kind | $proto | $cipher | $group | $sig |"
    done
done
if testing hs-ecdsa || testing hs-rsa; then
    echo
    echo "Full handshakes (server CPU per handshake → handshakes/s per worker):"
    echo
    echo "| contender | certificate | handshakes | raw hs/s | CPU µs/hs | hs/s per worker | vs nginx-proxy | vs nginx-term | irq µs/hs | CPU $PROXY_CPU busy % | CPU $LOAD_CPU busy % | resumed |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for t in hs-ecdsa hs-rsa; do
        testing "$t" || continue
        for c in "${CONTENDERS[@]}"; do
            k="$c/$t"
            if ! ran "$k"; then
                printf '| %s | %s | skipped | - | - | - | - | - | - | - | - | - |\n' "$c" "${t#hs-}"
                continue
            fi
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(flagname "$k" "$c")" "${t#hs-}" \
                "${HS_N[$k]}" "${D_RATE[$k]}" "${D_CPU[$k]}" "${D_PERWORKER[$k]}" "${D_VSPROXY[$k]}" "${D_VSTERM[$k]}" \
                "${D_IRQ[$k]}" "${R_PBUSY[$k]}" "${R_LBUSY[$k]}" "${HS_R[$k]}"
        done
    done
fi
if testing https; then
    echo
    echo "HTTPS keep-alive requests:"
    echo
    echo "| contender | req/s | vs nginx-proxy | vs nginx-term | p50 µs | p99 µs | CPU µs/req | vs nginx-proxy | upstream CPU µs/req | CPU $PROXY_CPU busy % | CPU $LOAD_CPU busy % | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for c in "${CONTENDERS[@]}"; do
        k="$c/https"
        if ! ran "$k"; then
            printf '| %s | skipped | - | - | - | - | - | - | - | - | - | - |\n' "$c"
            continue
        fi
        printf '| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(flagname "$k" "$c")" "${R_RPS[$k]}" \
            "${D_VSPROXY[$k]}" "${D_VSTERM[$k]}" "${R_P50[$k]}" "${R_P99[$k]}" "${D_CPU[$k]}" "${D_CPUVSPROXY[$k]}" \
            "$( [ "$c" = nginx-term ] && echo - || echo "${D_UPCPU[$k]}")" "${R_PBUSY[$k]}" "${R_LBUSY[$k]}" \
            "$((R_ERR[$k] + R_BAD[$k]))"
    done
fi
echo
echo "Targets (issue 7), coregate vs nginx-proxy (vs nginx-term in brackets, for reference):"
for t in "${TEST_LIST[@]}"; do
    echo "- $(target_name "$t") ≥ 1.2× nginx-proxy: $(times_or_dash "${T_VAL[$t]}") → ${T_RES[$t]} (vs nginx-term: $(times_or_dash "${T_TERM[$t]}"))"
done
notes=()
for c in "${CONTENDERS[@]}"; do
    if [ -n "${SKIP[$c]:-}" ]; then notes+=("- $c skipped: ${SKIP[$c]}"); continue; fi
    for t in "${TEST_LIST[@]}"; do
        k="$c/$t"
        if [ -n "${RUN_SKIP[$k]:-}" ]; then notes+=("- $c, $t skipped: ${RUN_SKIP[$k]}"); continue; fi
        ran "$k" || continue
        if [ -n "${R_FLAG[$k]}" ]; then
            notes+=("- ‡ $c, $t: other processes used ${R_FLAG[$k]} of the timed run (not a quiet machine): unreliable")
        fi
        if [ "$t" != https ] && [ "${HS_BAD[$k]}" -gt 0 ]; then
            notes+=("- $c, $t: ${HS_BAD[$k]} of $HS_CLIENTS s_time clients ended in an error (their handshakes up to then are counted)")
        fi
        if [ "$t" = https ] && [ $((R_ERR[$k] + R_BAD[$k])) -gt 0 ]; then
            notes+=("- $c, https: ${R_ERR[$k]} socket errors, ${R_BAD[$k]} non-2xx/3xx responses")
        fi
    done
done
if [ "$PARAMS_DIFFER" = 1 ]; then notes+=("- the servers did not negotiate the same TLS parameters: the comparison is not like for like"); fi
if [ -n "$CG_HANDSHAKES" ]; then
    notes+=("- coregate's own count at stop (warm-ups, checks and timed runs): $CG_HANDSHAKES. s_time closes right after its Finished without reading the server's session tickets, so its kernel resets the connection; coregate counts a handshake whose reset arrives before its accept has finished (client Finished read, tickets written) as failed. The signature and key exchange were done by then: the client-side count above is the one used.")
fi
if [ ${#notes[@]} -gt 0 ]; then
    echo
    printf '%s\n' "${notes[@]}"
fi
echo
echo "CPU µs/hs and µs/req: the server's utime+stime (all its processes and threads) over the timed run / handshakes (or requests) completed; clock tick $((1000000 / CLK_TCK)) µs. hs/s per worker = 1e6 / CPU µs per handshake: what one fully busy worker would do; raw hs/s is what the $HS_CLIENTS clients on CPU $LOAD_CPU achieved (the client side can be the limit: see the busy %). irq µs: irq+softirq time on CPU $PROXY_CPU per operation, not in the process times. CPU N busy %: share of the run that CPU ran anything. resumed: handshakes s_time reports as resumed (must be 0). ‡: other processes used more than $BUSY_PCT % of CPU $PROXY_CPU or $LOAD_CPU during the run."

mkdir -p "$(dirname "$OUT")"
{
    printf '{\n'
    printf '  "date": %s,\n' "$(json_str "$RUN_DATE")"
    printf '  "machine": { "kernel": %s, "cpu_model": %s, "nproc": %s },\n' \
        "$(json_str "$KERNEL")" "$(json_str "$CPU_MODEL")" "$NPROC"
    printf '  "settings": { "tests": [%s], "warmup_s": %s, "duration_s": %s, "handshake_clients": %s, "wrk_threads": %s, "wrk_connections": %s, "https_cert": %s, "proxy_cpu": %s, "load_cpu": %s, "busy_pct": %s, "clk_tck": %s },\n' \
        "$(first=1; for t in "${TEST_LIST[@]}"; do [ "$first" = 1 ] || printf ', '; first=0; json_str "$t"; done)" \
        "$WARMUP" "$DURATION" "$HS_CLIENTS" "$THREADS" "$CONNS" "$(json_str "$HTTPS_CERT")" "$PROXY_CPU" "$LOAD_CPU" "$BUSY_PCT" "$CLK_TCK"
    printf '  "versions": { "nginx": %s, "openssl": %s, "wrk": %s, "coregate": %s },\n' \
        "$(json_str "$NGINX_VERSION")" "$(json_str "$OPENSSL_VERSION")" "$(json_str "$WRK_VERSION")" "$(json_str "$COREGATE_VERSION")"
    printf '  "negotiated": ['
    first=1
    for c in "${CONTENDERS[@]}"; do
        for kind in ecdsa rsa; do
            [ -n "${TLS_PARAMS[$c/$kind]:-}" ] || continue
            read -r proto cipher group sig <<<"${TLS_PARAMS[$c/$kind]}"
            [ "$first" = 1 ] || printf ','
            first=0
            printf '\n    { "contender": %s, "cert": %s, "protocol": %s, "cipher": %s, "group": %s, "signature": %s }' \
                "$(json_str "$c")" "$(json_str "$kind")" "$(json_str "$proto")" "$(json_str "$cipher")" "$(json_str "$group")" "$(json_str "$sig")"
        done
    done
    printf '\n  ],\n'
    printf '  "coregate_handshake_counts": %s,\n' "$(json_str "$CG_HANDSHAKES")"
    printf '  "targets": ['
    first=1
    for t in "${TEST_LIST[@]}"; do
        [ "$first" = 1 ] || printf ','
        first=0
        printf '\n    { "test": %s, "what": %s, "coregate_vs_nginx_proxy": %s, "target_min": 1.2, "met": %s, "coregate_vs_nginx_term": %s }' \
            "$(json_str "$t")" "$(json_str "$(target_name "$t")")" "$(orn "${T_VAL[$t]}")" \
            "$(case "${T_RES[$t]}" in met) echo true ;; "NOT met") echo false ;; *) echo null ;; esac)" "$(orn "${T_TERM[$t]}")"
    done
    printf '\n  ],\n'
    printf '  "results": [\n'
    rows=()
    for c in "${CONTENDERS[@]}"; do
        for t in "${TEST_LIST[@]}"; do
            k="$c/$t"
            if ! ran "$k"; then
                rows+=("$(printf '    { "contender": %s, "test": %s, "status": "skipped", "skip_reason": %s }' \
                    "$(json_str "$c")" "$(json_str "$t")" "$(json_str "${SKIP[$c]:-${RUN_SKIP[$k]:-not run}}")")")
                continue
            fi
            common=$(printf '"wall_s": %s, "server_cpu_s": %s, "server_cpu_pct": %s, "proxy_cpu_busy_pct": %s, "load_cpu_busy_pct": %s, "proxy_cpu_foreign_pct": %s, "load_cpu_foreign_pct": %s, "unreliable": %s' \
                "${R_WALL[$k]}" "$(awk -v t="${R_SRVTICKS[$k]}" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')" \
                "${D_SRVPCT[$k]}" "${R_PBUSY[$k]}" "${R_LBUSY[$k]}" "${R_FOREIGN[$k]}" "${R_LFOREIGN[$k]}" \
                "$( [ -n "${R_FLAG[$k]}" ] && echo true || echo false)")
            if [ "$t" = https ]; then
                rows+=("$(printf '    { "contender": %s, "test": %s, "status": "ok", "requests": %s, "requests_per_sec": %s, "rps_vs_nginx_proxy": %s, "rps_vs_nginx_term": %s, "latency_us": { "p50": %s, "p99": %s }, "cpu_us_per_req": %s, "cpu_vs_nginx_proxy": %s, "proxy_cpu_irq_us_per_req": %s, "upstream_cpu_us_per_req": %s, "socket_errors": %s, "non_2xx_3xx": %s, %s }' \
                    "$(json_str "$c")" "$(json_str "$t")" "${R_REQ[$k]}" "${R_RPS[$k]}" "$(orn "${D_VSPROXY[$k]}")" "$(orn "${D_VSTERM[$k]}")" \
                    "${R_P50[$k]}" "${R_P99[$k]}" "$(orn "${D_CPU[$k]}")" "$(orn "${D_CPUVSPROXY[$k]}")" "$(orn "${D_IRQ[$k]}")" \
                    "$(if [ "$c" = nginx-term ]; then echo null; else orn "${D_UPCPU[$k]}"; fi)" "${R_ERR[$k]}" "${R_BAD[$k]}" "$common")")
            else
                rows+=("$(printf '    { "contender": %s, "test": %s, "status": "ok", "cert": %s, "handshakes": %s, "resumed": %s, "clients": %s, "clients_failed": %s, "handshakes_per_sec": %s, "cpu_us_per_handshake": %s, "handshakes_per_sec_per_worker": %s, "per_worker_vs_nginx_proxy": %s, "per_worker_vs_nginx_term": %s, "proxy_cpu_irq_us_per_handshake": %s, "client_cpu_us_per_handshake": %s, %s }' \
                    "$(json_str "$c")" "$(json_str "$t")" "$(json_str "${t#hs-}")" "${HS_N[$k]}" "${HS_R[$k]}" "$HS_CLIENTS" "${HS_BAD[$k]}" \
                    "${D_RATE[$k]}" "$(orn "${D_CPU[$k]}")" "$(orn "${D_PERWORKER[$k]}")" "$(orn "${D_VSPROXY[$k]}")" "$(orn "${D_VSTERM[$k]}")" \
                    "$(orn "${D_IRQ[$k]}")" "$(orn "$(per_op "${R_CLIENTTICKS[$k]}" "${HS_N[$k]}")")" "$common")")
            fi
        done
    done
    n=${#rows[@]}
    for ((i = 0; i < n; i++)); do
        printf '%s%s\n' "${rows[$i]}" "$( [ "$i" -lt $((n - 1)) ] && echo ,)"
    done
    printf '  ]\n}\n'
} >"$OUT"
log "JSON written to $OUT"
