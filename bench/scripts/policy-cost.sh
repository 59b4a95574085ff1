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

NAME=policy-cost
HELP_LINES=13
API_KEY=bench-key-0123456789
BENCH_ARGS=(-H "x-api-key: $API_KEY")
# shellcheck source=bench/scripts/lib-http-cost.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-http-cost.sh"

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
