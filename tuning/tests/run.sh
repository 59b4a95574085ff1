#!/usr/bin/env bash
# Tests of coregate-tune.
#
# Part one needs no privilege: the tool works on a fake /proc/sys and sysctl.d tree under
# --root, which is where the global keys (fs.*, net.core.netdev_max_backlog, busy polling) are
# exercised. Part two runs as root inside a private network namespace (unshare --net), where
# the net.* keys are the namespace's own: real kernel writes, real read-back, and the host's
# values are checked unchanged afterwards. Global keys are only read there (--dry-run).
#
#   bash tuning/tests/run.sh              part two skipped (with a message) without root/unshare
#   bash tuning/tests/run.sh --require-netns   ... or failed instead (CI)
#
# Prints one line per check and ends with "N passed, N failed"; exit 1 on any failure.
set -uo pipefail
export LC_ALL=C

HERE=$(cd "${0%/*}" && pwd)
TUNE=$(readlink -f "$HERE/../coregate-tune")
PROFILES=$(readlink -f "$HERE/../profiles")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/coregate-tune-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

pass=0
fail=0
ok() {
  pass=$((pass + 1))
  printf 'ok   %s\n' "$1"
}
not_ok() {
  fail=$((fail + 1))
  printf 'FAIL %s\n' "$1"
  if [[ -n ${2:-} ]]; then printf '%s\n' "$2" | sed 's/^/     | /'; fi
}
# check NAME COMMAND...: passes when the command succeeds.
check() {
  local name=$1
  shift
  if "$@"; then ok "$name"; else not_ok "$name" "${OUT:-}"; fi
}

# run ARGS...: runs the tool, output (stdout and stderr) in OUT, exit status in RC.
run() {
  OUT=$("$TUNE" "$@" 2>&1)
  RC=$?
}
has() { [[ $OUT == *"$1"* ]]; }
rc_is() { [[ $RC -eq $1 ]]; }

# The allowlist, from the tool itself.
mapfile -t ALL_KEYS < <("$TUNE" --root "$WORK" keys | awk 'NR > 1 && $2 != "refused:" { print $1 }')

# ---------------------------------------------------------------------------------------------
# A fake /proc/sys with typical defaults of a 6.x kernel (vectors tab-separated, as the kernel
# prints them).
fake_root() {
  local d=$1 k v
  rm -rf "$d"
  mkdir -p "$d/etc/sysctl.d"
  local -A defaults=(
    [net.ipv4.tcp_tw_reuse]=2 [net.ipv4.tcp_max_tw_buckets]=131072 [net.ipv4.tcp_fin_timeout]=60
    [net.ipv4.ip_local_port_range]=$'32768\t60999' [net.ipv4.tcp_timestamps]=1
    [net.ipv4.tcp_keepalive_time]=7200 [net.ipv4.tcp_keepalive_intvl]=75 [net.ipv4.tcp_keepalive_probes]=9
    [net.core.somaxconn]=4096 [net.ipv4.tcp_max_syn_backlog]=2048 [net.core.netdev_max_backlog]=1000
    [net.ipv4.tcp_syncookies]=1 [net.ipv4.tcp_rmem]=$'4096\t131072\t6291456'
    [net.ipv4.tcp_wmem]=$'4096\t16384\t4194304' [net.core.rmem_max]=212992 [net.core.wmem_max]=212992
    [net.core.rmem_default]=212992 [net.core.wmem_default]=212992
    [net.ipv4.tcp_slow_start_after_idle]=1 [net.ipv4.tcp_notsent_lowat]=4294967295
    [net.ipv4.tcp_fastopen]=1 [net.core.busy_poll]=0 [net.core.busy_read]=0
    [net.ipv4.tcp_mtu_probing]=0 [net.ipv4.tcp_rfc1337]=0 [net.ipv4.tcp_congestion_control]=cubic
    [net.core.default_qdisc]=fq_codel [fs.nr_open]=1048576 [fs.file-max]=9223372036854775807
  )
  for k in "${!defaults[@]}"; do
    v="$d/proc/sys/${k//.//}"
    mkdir -p "${v%/*}"
    printf '%s\n' "${defaults[$k]}" >"$v"
  done
}

# Every value under a /proc/sys, normalised, one "key=value" a line.
dump() {
  local ps=$1 k p
  local -a f
  for k in "${ALL_KEYS[@]}"; do
    p="$ps/${k//.//}"
    if [[ -r $p ]]; then
      f=()
      read -r -a f <"$p"
      printf '%s=%s\n' "$k" "${f[*]}"
    else
      printf '%s absent\n' "$k"
    fi
  done
}
val() {
  local -a f=()
  read -r -a f <"$1/${2//.//}"
  printf '%s' "${f[*]}"
}
# A whole tree's files and contents, to prove that nothing changed.
tree_sum() { (cd "$1" && find . -printf '%p %s %l\n' | sort && find . -type f -exec cat {} +) | cksum; }

# ---------------------------------------------------------------------------------------------
part_one() {
  printf '\n# part one: profiles, and a fake /proc/sys under --root\n'
  local R=$WORK/root P n line prev1 prev2 missing before after k bad

  # Every shipped profile parses, and every key in it has its reason and risk.
  for P in "$PROFILES"/*.conf; do
    fake_root "$R"
    run --root "$R" show "$P"
    check "profile ${P##*/} parses (show exits 0)" rc_is 0
    missing=""
    prev1="" prev2="" n=0
    while IFS= read -r line; do
      n=$((n + 1))
      if [[ $line =~ ^[a-z] || $line =~ ^#\ opt-in: ]]; then
        [[ $prev2 == "# why: "* && $prev1 == "# risk: "* ]] || missing+=" line $n"
      fi
      prev2=$prev1 prev1=$line
    done <"$P"
    OUT="keys without '# why:' and '# risk:' lines just above:$missing"
    check "profile ${P##*/}: every key has a why and a risk line" test -z "$missing"
    for k in net.ipv4.tcp_tw_reuse net.ipv4.tcp_max_tw_buckets net.ipv4.tcp_fin_timeout \
      net.ipv4.ip_local_port_range net.ipv4.tcp_timestamps net.ipv4.tcp_keepalive_time \
      net.ipv4.tcp_keepalive_intvl net.ipv4.tcp_keepalive_probes net.core.somaxconn \
      net.ipv4.tcp_max_syn_backlog net.core.netdev_max_backlog net.ipv4.tcp_syncookies \
      net.ipv4.tcp_rmem net.ipv4.tcp_wmem net.core.rmem_max net.core.wmem_max \
      net.ipv4.tcp_slow_start_after_idle net.ipv4.tcp_notsent_lowat net.ipv4.tcp_fastopen \
      fs.nr_open fs.file-max; do
      grep -Eq "^(# opt-in: )?$k " "$P" || missing+=" $k"
    done
    OUT="missing:$missing"
    check "profile ${P##*/} names every key of the issue" test -z "$missing"
  done
  grep -q '^# opt-in: net.ipv4.tcp_fastopen' "$PROFILES/edge.conf"
  check "tcp_fastopen is opt-in in edge" test $? -eq 0
  grep -q '^net.core.busy_poll' "$PROFILES/latency.conf"
  check "busy polling is in the latency profile" test $? -eq 0

  # apply -> verify -> revert on the edge profile, global keys included.
  fake_root "$R"
  before=$(dump "$R/proc/sys")
  run --root "$R" apply
  check "apply edge: exit 0" rc_is 0
  check "apply edge: wrote etc/sysctl.d/60-coregate.conf" test -f "$R/etc/sysctl.d/60-coregate.conf"
  check "apply edge: no temporary file left beside it" test "$(ls -A "$R/etc/sysctl.d")" = 60-coregate.conf
  check "apply edge: snapshot taken" test -f "$R/var/lib/coregate-tune/snapshot"
  OUT=$(val "$R/proc/sys" fs.nr_open)
  check "apply edge: fs.nr_open = 1048576 (already)" test "$OUT" = 1048576
  OUT=$(val "$R/proc/sys" net.core.netdev_max_backlog)
  check "apply edge: netdev_max_backlog raised to 16384" test "$OUT" = 16384
  OUT=$(val "$R/proc/sys" net.ipv4.tcp_tw_reuse)
  check "apply edge: tcp_tw_reuse = 1" test "$OUT" = 1
  OUT=$(cat "$R/etc/sysctl.d/60-coregate.conf")
  check "the file sets net.core.somaxconn = 65535" has $'\nnet.core.somaxconn = 65535\n'
  check "the file keeps file-max alone, and says why" has "# fs.file-max: the host has 9223372036854775807"
  check "the file does not set the opt-in tcp_fastopen" eval '! has "net.ipv4.tcp_fastopen ="'
  OUT=$(cat "$R/var/lib/coregate-tune/snapshot")
  check "the snapshot holds the old tcp_wmem" has "net.ipv4.tcp_wmem=4096 16384 4194304"
  run --root "$R" verify
  check "verify after apply: exit 0" rc_is 0
  printf '1\n' >"$R/proc/sys/net/ipv4/tcp_slow_start_after_idle"
  run --root "$R" verify
  check "verify after a key drifted: exit 1" rc_is 1
  check "verify names the drifted key" has "net.ipv4.tcp_slow_start_after_idle   1"
  printf '16384\n' >"$R/proc/sys/net/core/netdev_max_backlog"
  printf '0\n' >"$R/proc/sys/net/ipv4/tcp_slow_start_after_idle"
  run --root "$R" verify
  check "verify when back in line: exit 0" rc_is 0
  run --root "$R" revert
  check "revert: exit 0" rc_is 0
  after=$(dump "$R/proc/sys")
  OUT=$(diff <(printf '%s\n' "$before") <(printf '%s\n' "$after"))
  check "revert: every value is back" test -z "$OUT"
  check "revert: the file is gone" test ! -e "$R/etc/sysctl.d/60-coregate.conf"
  check "revert: the snapshot is gone" test ! -e "$R/var/lib/coregate-tune/snapshot"
  run --root "$R" verify
  check "verify after revert: exit 1 (drift)" rc_is 1
  run --root "$R" revert
  check "revert with nothing to revert: exit 0" rc_is 0

  # Raise only / lower only / widen only: a host value already beyond the target stays.
  fake_root "$R"
  printf '2000000\n' >"$R/proc/sys/net/ipv4/tcp_max_tw_buckets"
  printf '4096\t65536\t4194304\n' >"$R/proc/sys/net/ipv4/tcp_wmem"
  printf '4096\t262144\t67108864\n' >"$R/proc/sys/net/ipv4/tcp_rmem"
  printf '20000\t65535\n' >"$R/proc/sys/net/ipv4/ip_local_port_range"
  printf '10\n' >"$R/proc/sys/net/ipv4/tcp_fin_timeout"
  printf '4194304\n' >"$R/proc/sys/fs/nr_open"
  before=$(dump "$R/proc/sys")
  run --root "$R" apply edge
  check "raise-only apply: exit 0" rc_is 0
  OUT=$(val "$R/proc/sys" net.ipv4.tcp_max_tw_buckets)
  check "raise only: tcp_max_tw_buckets 2000000 is not lowered to 262144" test "$OUT" = 2000000
  OUT=$(val "$R/proc/sys" fs.nr_open)
  check "raise only: fs.nr_open 4194304 is not lowered (global key)" test "$OUT" = 4194304
  OUT=$(val "$R/proc/sys" fs.file-max)
  check "raise only: fs.file-max at LONG_MAX is not lowered" test "$OUT" = 9223372036854775807
  OUT=$(val "$R/proc/sys" net.ipv4.tcp_wmem)
  check "raise only, per field: tcp_wmem 4096 65536 4194304 -> 4096 65536 16777216" test "$OUT" = "4096 65536 16777216"
  OUT=$(val "$R/proc/sys" net.ipv4.tcp_rmem)
  check "raise only, per field: a larger tcp_rmem is kept whole" test "$OUT" = "4096 262144 67108864"
  OUT=$(val "$R/proc/sys" net.ipv4.ip_local_port_range)
  check "widen only: port range 20000 65535 -> 10000 65535" test "$OUT" = "10000 65535"
  OUT=$(val "$R/proc/sys" net.ipv4.tcp_fin_timeout)
  check "lower only: tcp_fin_timeout 10 is not raised to 30" test "$OUT" = 10
  run --root "$R" verify
  check "raise-only: verify exit 0 with the host's larger values" rc_is 0
  run --root "$R" revert
  after=$(dump "$R/proc/sys")
  OUT=$(diff <(printf '%s\n' "$before") <(printf '%s\n' "$after"))
  check "raise-only: revert restores every value" test -z "$OUT"
  fake_root "$R"
  printf '1024\t60999\n' >"$R/proc/sys/net/ipv4/ip_local_port_range"
  "$TUNE" --root "$R" apply >/dev/null 2>&1
  OUT=$(val "$R/proc/sys" net.ipv4.ip_local_port_range)
  check "widen only: port range 1024 60999 -> 1024 65535" test "$OUT" = "1024 65535"

  # Refusals: nothing is changed, whatever else the profile says.
  for bad in "net.ipv4.tcp_bogus = 1|not on the allowlist" \
    "kernel.panic = 0|not on the allowlist" \
    "net.ipv4.tcp_tw_recycle = 1|removed in Linux 4.12" \
    "net/ipv4/tcp_tw_recycle = 0|behind NAT" \
    "net.core.somaxconn >= lots|wants one integer" \
    "net.ipv4.tcp_rmem >= 4096 131072|three integers" \
    "net.ipv4.ip_local_port_range >= 70000 80000|1..65535" \
    "net.ipv4.tcp_congestion_control >= bbr|only = is supported" \
    "net.core.somaxconn == 5|wants one integer" \
    "somaxconn|not 'key = value'" \
    "net.core.somaxconn = 1|already set on line 1"; do
    fake_root "$R"
    {
      printf 'net.core.somaxconn = 1\n'
      [[ ${bad%%|*} == "net.core.somaxconn = 1" ]] || printf 'net.ipv4.tcp_tw_reuse = 1\n'
      printf '%s\n' "${bad%%|*}"
    } >"$WORK/bad.conf"
    before=$(tree_sum "$R")
    run --root "$R" apply "$WORK/bad.conf"
    check "refused: '${bad%%|*}' exits 2" rc_is 2
    check "refused: '${bad%%|*}' says '${bad#*|}'" has "${bad#*|}"
    after=$(tree_sum "$R")
    check "refused: '${bad%%|*}' changed nothing" test "$before" = "$after"
  done
  run --root "$R" apply nosuchprofile
  check "an unknown profile: exit 2" rc_is 2
  run --root "$R" frobnicate
  check "an unknown command: exit 2" rc_is 2
  run --root "$R" revert edge
  check "revert takes no profile: exit 2" rc_is 2
  run --root "$R" apply --opt-in net.ipv4.tcp_bogus
  check "--opt-in of a key the profile does not offer: exit 2" rc_is 2

  # Dry run: the whole tree is byte for byte the same.
  for P in edge latency throughput; do
    fake_root "$R"
    before=$(tree_sum "$R")
    run --root "$R" apply "$P" --dry-run
    check "apply $P --dry-run: exit 0" rc_is 0
    check "apply $P --dry-run: shows the file it would write" has "would write $R/etc/sysctl.d/60-coregate.conf"
    after=$(tree_sum "$R")
    check "apply $P --dry-run: nothing changed" test "$before" = "$after"
  done
  fake_root "$R"
  "$TUNE" --root "$R" apply >/dev/null 2>&1
  before=$(tree_sum "$R")
  run --root "$R" revert --dry-run
  after=$(tree_sum "$R")
  check "revert --dry-run: exit 0 and nothing changed" test "$RC.$before" = "0.$after"

  # Opt-in keys.
  fake_root "$R"
  run --root "$R" apply
  OUT=$(val "$R/proc/sys" net.ipv4.tcp_fastopen)
  check "opt-in: tcp_fastopen untouched without --opt-in" test "$OUT" = 1
  run --root "$R" apply --opt-in net.ipv4.tcp_fastopen
  OUT=$(val "$R/proc/sys" net.ipv4.tcp_fastopen)
  check "opt-in: --opt-in net.ipv4.tcp_fastopen sets 1027" test "$OUT" = 1027
  run --root "$R" verify
  check "opt-in: verify remembers the opt-in (exit 0)" rc_is 0
  run --root "$R" revert
  OUT=$(val "$R/proc/sys" net.ipv4.tcp_fastopen)
  check "opt-in: revert restores tcp_fastopen = 1 (snapshot taken before the first apply)" test "$OUT" = 1

  # Two applies, one revert: back to before the first.
  fake_root "$R"
  before=$(dump "$R/proc/sys")
  "$TUNE" --root "$R" apply edge >/dev/null 2>&1
  "$TUNE" --root "$R" apply throughput >/dev/null 2>&1
  run --root "$R" verify
  check "apply edge then throughput: verify follows the last applied profile" has "profile throughput"
  "$TUNE" --root "$R" apply latency >/dev/null 2>&1
  "$TUNE" --root "$R" revert >/dev/null 2>&1
  after=$(dump "$R/proc/sys")
  OUT=$(diff <(printf '%s\n' "$before") <(printf '%s\n' "$after"))
  check "apply x3, revert: values from before the first apply" test -z "$OUT"

  # A sysctl.d file of ours that was there before: revert puts it back.
  fake_root "$R"
  printf '# hand-written\nnet.core.somaxconn = 8192\n' >"$R/etc/sysctl.d/60-coregate.conf"
  "$TUNE" --root "$R" apply >/dev/null 2>&1
  "$TUNE" --root "$R" revert >/dev/null 2>&1
  OUT=$(cat "$R/etc/sysctl.d/60-coregate.conf" 2>&1)
  check "revert puts back a 60-coregate.conf that existed before" has "# hand-written"

  # Keys this kernel lacks are skipped with a warning.
  fake_root "$R"
  rm "$R/proc/sys/net/core/busy_poll" "$R/proc/sys/fs/nr_open"
  run --root "$R" apply latency
  check "missing keys: apply still exits 0" rc_is 0
  check "missing keys: warned" has "warning: net.core.busy_poll: skipped"
  check "missing keys: not created" test ! -e "$R/proc/sys/net/core/busy_poll"
  OUT=$(cat "$R/etc/sysctl.d/60-coregate.conf")
  check "missing keys: not written to the file" eval '! has "fs.nr_open ="'
  run --root "$R" verify
  check "missing keys: verify exit 0" rc_is 0

  # A key that does not take is reported (here the write "succeeds" and reads back empty, as
  # when a kernel ignores or clamps a value).
  fake_root "$R"
  ln -sf /dev/null "$R/proc/sys/net/core/somaxconn"
  run --root "$R" apply
  check "a value that does not take: apply exits 1" rc_is 1
  check "a value that does not take: reported" has "net.core.somaxconn: did not take: wrote '65535', the kernel has ''"
  rm "$R/proc/sys/net/core/somaxconn"
  printf '4096\n' >"$R/proc/sys/net/core/somaxconn"
  "$TUNE" --root "$R" revert >/dev/null 2>&1

  # Later-sorting sysctl.d files that override a key are reported, earlier ones are not.
  fake_root "$R"
  mkdir -p "$R/run/sysctl.d" "$R/usr/lib/sysctl.d"
  printf 'net.core.somaxconn = 1024\n' >"$R/etc/sysctl.d/10-early.conf"
  printf -- '-net.core.somaxconn = 1024\n' >"$R/usr/lib/sysctl.d/99-vendor.conf"
  printf 'net/ipv4/tcp_fin_timeout = 60\n' >"$R/run/sysctl.d/70-run.conf"
  printf '# a comment\nnet.ipv4.tcp_*_after_idle = 1\n' >"$R/etc/sysctl.d/80-glob.conf"
  printf 'net.ipv4.tcp_syncookies = 1\n' >"$R/etc/sysctl.d/90-same.conf"
  run --root "$R" apply
  check "overrides: apply exits 1" rc_is 1
  check "overrides: a later /usr/lib file" has "net.core.somaxconn: overridden at boot by $R/usr/lib/sysctl.d/99-vendor.conf:1"
  check "overrides: a later /run file, slash syntax" has "net.ipv4.tcp_fin_timeout: overridden at boot by $R/run/sysctl.d/70-run.conf:1"
  check "overrides: a glob pattern" has "net.ipv4.tcp_slow_start_after_idle: overridden at boot by $R/etc/sysctl.d/80-glob.conf:2"
  check "overrides: an earlier file is not reported" eval '! has "10-early"'
  check "overrides: a later file with the same value is not reported" eval '! has "90-same"'
  run --root "$R" verify
  check "overrides: verify exits 1" rc_is 1
  check "overrides: verify names the file" has "DRIFT: overridden at boot by $R/usr/lib/sysctl.d/99-vendor.conf:1"
  printf 'net.core.somaxconn = 1024\n' >"$R/usr/lib/sysctl.d/60-coregate.conf"
  rm "$R/usr/lib/sysctl.d/99-vendor.conf" "$R/run/sysctl.d/70-run.conf" "$R/etc/sysctl.d/80-glob.conf"
  printf 'net.core.somaxconn = 100\n' >"$R/etc/sysctl.conf"
  run --root "$R" verify
  check "overrides: /etc/sysctl.conf counts as last" has "overridden at boot by $R/etc/sysctl.conf:1"
  rm "$R/etc/sysctl.conf"
  run --root "$R" verify
  check "overrides: a same-named file in /usr/lib is shadowed by ours (verify exit 0)" rc_is 0
  rm "$R/etc/sysctl.d/60-coregate.conf"
  run --root "$R" verify
  check "verify: a missing sysctl.d file is drift" has "DRIFT: not persisted"
}

# ---------------------------------------------------------------------------------------------
# Runs inside `unshare --net`: /proc/sys/net is this namespace's own.
part_two() {
  printf '\n# part two: a private network namespace, real /proc/sys/net\n'
  local R=$WORK/ns P before after net
  local -a NS=(--root "$R" --proc-sys /proc/sys)
  mkdir -p "$R"
  # The net.* keys the kernel lets a network namespace set. The global ones (netdev_max_backlog,
  # busy_poll) are invisible here; on recent kernels rmem_max/wmem_max are visible but read-only
  # outside the initial namespace. fs.* would be the host's: they stay out.
  for P in edge latency throughput; do
    net=$WORK/$P-net.conf
    grep -E '^(# (why|risk):|net\.ipv4\.|net\.core\.somaxconn)' "$PROFILES/$P.conf" >"$net"
    before=$(dump /proc/sys)
    run "${NS[@]}" apply "$net"
    check "netns: apply $P (net.ipv4.*, somaxconn): exit 0" rc_is 0
    check "netns: apply $P: every key took" has "applied: every key took"
    OUT=$(val /proc/sys net.ipv4.tcp_tw_reuse)
    check "netns: apply $P: the kernel has tcp_tw_reuse = 1" test "$OUT" = 1
    OUT=$(val /proc/sys net.ipv4.tcp_slow_start_after_idle)
    check "netns: apply $P: the kernel has tcp_slow_start_after_idle = 0" test "$OUT" = 0
    run "${NS[@]}" verify "$net"
    check "netns: verify $P: exit 0" rc_is 0
    printf '1\n' >/proc/sys/net/ipv4/tcp_slow_start_after_idle
    run "${NS[@]}" verify "$net"
    check "netns: verify $P after the kernel value drifted: exit 1" rc_is 1
    run "${NS[@]}" revert
    check "netns: revert $P: exit 0" rc_is 0
    after=$(dump /proc/sys)
    OUT=$(diff <(printf '%s\n' "$before") <(printf '%s\n' "$after"))
    check "netns: revert $P: the kernel has every value from before" test -z "$OUT"
    check "netns: revert $P: the file is gone" test ! -e "$R/etc/sysctl.d/60-coregate.conf"
  done

  # Raise only against the real kernel.
  net=$WORK/edge-net.conf
  printf '3000000\n' >/proc/sys/net/ipv4/tcp_max_tw_buckets
  printf '4096 262144 67108864\n' >/proc/sys/net/ipv4/tcp_rmem
  printf '4096 16384 1048576\n' >/proc/sys/net/ipv4/tcp_wmem
  printf '1024 61000\n' >/proc/sys/net/ipv4/ip_local_port_range
  before=$(dump /proc/sys)
  run "${NS[@]}" apply "$net"
  check "netns raise-only: apply exit 0" rc_is 0
  OUT=$(val /proc/sys net.ipv4.tcp_max_tw_buckets)
  check "netns raise-only: tcp_max_tw_buckets 3000000 kept" test "$OUT" = 3000000
  OUT=$(val /proc/sys net.ipv4.tcp_rmem)
  check "netns raise-only: tcp_rmem 4096 262144 67108864 kept" test "$OUT" = "4096 262144 67108864"
  OUT=$(val /proc/sys net.ipv4.tcp_wmem)
  check "netns raise-only: tcp_wmem max raised to 16777216, the rest kept" test "$OUT" = "4096 16384 16777216"
  OUT=$(val /proc/sys net.ipv4.ip_local_port_range)
  check "netns widen-only: port range 1024 61000 -> 1024 65535" test "$OUT" = "1024 65535"
  run "${NS[@]}" verify "$net"
  check "netns raise-only: verify exit 0" rc_is 0
  run "${NS[@]}" revert
  after=$(dump /proc/sys)
  OUT=$(diff <(printf '%s\n' "$before") <(printf '%s\n' "$after"))
  check "netns raise-only: revert restores every value" test -z "$OUT"

  # Refusals and dry runs leave the kernel alone; global keys are only ever read here.
  printf 'net.ipv4.tcp_tw_reuse = 1\nnet.ipv4.tcp_foo = 1\n' >"$WORK/unknown.conf"
  before=$(dump /proc/sys)
  run "${NS[@]}" apply "$WORK/unknown.conf"
  after=$(dump /proc/sys)
  check "netns: an unknown key refuses the whole profile (exit 2)" rc_is 2
  check "netns: ... and no kernel value changed" test "$before" = "$after"
  printf 'net.ipv4.tcp_tw_recycle = 1\n' >"$WORK/recycle.conf"
  run "${NS[@]}" apply "$WORK/recycle.conf"
  check "netns: tcp_tw_recycle refused with the reason" has "removed in Linux 4.12"
  for P in edge latency throughput; do
    before=$(dump /proc/sys)
    run "${NS[@]}" apply "$P" --dry-run
    after=$(dump /proc/sys)
    check "netns: apply $P --dry-run (fs.* and every other key, real kernel): exit 0" rc_is 0
    check "netns: apply $P --dry-run: no kernel value changed" test "$before" = "$after"
    check "netns: apply $P --dry-run: no file written" test ! -e "$R/etc/sysctl.d/60-coregate.conf" -a ! -e "$R/var/lib/coregate-tune"
  done
  # Without --root and --proc-sys the dry run reads the real paths and still changes nothing.
  before=$(dump /proc/sys)
  run apply --dry-run
  after=$(dump /proc/sys)
  check "netns: apply --dry-run on the default paths changes nothing" test "$RC.$before" = "0.$after"
}

# ---------------------------------------------------------------------------------------------
if [[ ${1:-} == --in-netns ]]; then
  part_two
  printf '%s %s\n' "$pass" "$fail" >"$2"
  exit 0
fi

require=0
[[ ${1:-} == --require-netns ]] && require=1

part_one

why=""
if [[ $EUID -ne 0 ]]; then
  why="not root"
elif ! command -v unshare >/dev/null; then
  why="unshare not found"
elif ! unshare --net true 2>/dev/null; then
  why="unshare --net is not permitted here"
fi
if [[ -n $why ]]; then
  if ((require)); then
    not_ok "part two (private network namespace) cannot run: $why"
  else
    printf '\n# part two skipped: %s (it needs root and unshare --net)\n' "$why"
  fi
else
  host_before=$(dump /proc/sys)
  unshare --net bash "$0" --in-netns "$WORK/counts"
  read -r p f <"$WORK/counts" || {
    p=0
    f=1
  }
  pass=$((pass + p))
  fail=$((fail + f))
  host_after=$(dump /proc/sys)
  OUT=$(diff <(printf '%s\n' "$host_before") <(printf '%s\n' "$host_after"))
  check "the host's own values are unchanged after part two" test -z "$OUT"
fi

printf '\n%d passed, %d failed\n' "$pass" "$fail"
((fail == 0))
