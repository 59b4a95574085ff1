#!/usr/bin/env bash
# ops-cost.sh — what operating features cost: requests/s and coregate CPU µs per request with the
# access log off, with the access log on (a file, combined format), and with /metrics scraped
# every second on the admin listener; same upstream, same load, in rounds that rotate the order.
#
# Layout: coregate (workers = 1) pinned to PROXY_CPU; an nginx upstream answering "ok" and
# coregate-bench pinned to LOAD_CPU. Each variant runs its own coregate with its own config.
#
# Output: a markdown table on stdout and JSON in $RESULTS_DIR/ops-cost-<UTC date>.json.
set -euo pipefail

NAME=ops-cost
HELP_LINES=9
BENCH_ARGS=()
# shellcheck source=bench/scripts/lib-http-cost.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-http-cost.sh"
command -v curl >/dev/null || die "curl is not installed"

ADMIN_PORT=$(free_port)
SCRAPER=""

# start_gateway VARIANT: a coregate for that variant; sets GW_PID (and SCRAPER for metrics).
start_gateway() {
    local extra=""
    case $1 in
        off) ;;
        access_log) extra="[log]
access_log = \"$WORK/access.log\"" ;;
        metrics) extra="[admin]
listen = \"127.0.0.1:$ADMIN_PORT\"" ;;
    esac
    cat >"$WORK/coregate.toml" <<EOF
[runtime]
workers = 1
$extra

[[listener]]
name = "web"
bind = "127.0.0.1:$GW_PORT"

[[route]]
listener = "web"
upstream = "app"

[[upstream]]
name = "app"
endpoints = ["127.0.0.1:$UP_PORT"]
EOF
    "$COREGATE" check --config "$WORK/coregate.toml" >/dev/null || die "coregate refused the $1 config"
    taskset -c "$PROXY_CPU" "$COREGATE" run --config "$WORK/coregate.toml" >"$WORK/coregate.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_port "$GW_PORT"
    SCRAPER=""
    if [ "$1" = metrics ]; then
        wait_port "$ADMIN_PORT"
        (while sleep 1; do curl -s -o /dev/null "http://127.0.0.1:$ADMIN_PORT/metrics" || true; done) &
        SCRAPER=$!
        PIDS+=("$SCRAPER")
    fi
}

stop_gateway() {
    if [ -n "$SCRAPER" ]; then kill "$SCRAPER" 2>/dev/null || true; fi
    kill "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
}

mkdir -p "$RESULTS_DIR"
OUT="$RESULTS_DIR/ops-cost-$(date -u +%Y-%m-%dT%H%M%SZ).json"
VARIANTS=(off access_log metrics)
ROWS=()
for round in $(seq 1 "$ROUNDS"); do
    shift_by=$(((round - 1) % 3))
    order=("${VARIANTS[@]:$shift_by}" "${VARIANTS[@]:0:$shift_by}")
    for which in "${order[@]}"; do
        log "round $round: $which"
        start_gateway "$which"
        read -r rps cpu p99 < <(run_one "/")
        stop_gateway
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
print("| round | off req/s | access_log req/s | metrics req/s | off CPU µs/req | access_log CPU µs/req | metrics CPU µs/req |")
print("|---:|---:|---:|---:|---:|---:|---:|")
ratios = {"access_log": [], "metrics": []}
cpu = {"access_log": [], "metrics": []}
for rnd in sorted(by):
    r = by[rnd]
    for k in ratios:
        ratios[k].append(r[k]["rps"] / r["off"]["rps"])
        cpu[k].append(r[k]["cpu_us_per_req"] / r["off"]["cpu_us_per_req"])
    print(f"| {rnd} | {r['off']['rps']:.0f} | {r['access_log']['rps']:.0f} | {r['metrics']['rps']:.0f} "
          f"| {r['off']['cpu_us_per_req']:.2f} | {r['access_log']['cpu_us_per_req']:.2f} | {r['metrics']['cpu_us_per_req']:.2f} |")
summary = {k: {"median_rps_ratio": statistics.median(ratios[k]), "median_cpu_ratio": statistics.median(cpu[k])} for k in ratios}
for k, v in summary.items():
    print(f"\n{k} vs off: median req/s {v['median_rps_ratio']:.3f}, CPU per request {v['median_cpu_ratio']:.3f}")
json.dump({"rounds": by, "summary": summary}, open(sys.argv[1], "w"), indent=2)
PY
log "results: $OUT"
