#!/usr/bin/env bash
# Tests the packages the way an operator meets them (CI runs this after the release build):
#   .deb: control files, contents, conffiles, maintainer scripts; `dpkg -i` on this machine;
#         `coregate check` (and a short `coregate run`, as the coregate user) on the installed
#         default config; `systemd-analyze verify` of the installed unit, failing on any warning;
#         its security exposure; coregate-tune from its installed path; `dpkg -r`, then
#         `dpkg -P` leaving no file behind.
#   .rpm: metadata, contents, config files and scripts, read with `rpm -qp` where rpm exists.
#
#   packaging/test-packages.sh [--no-build]     (needs root: it installs the .deb)
#
# Prints one line per check and ends with "N passed, N failed"; exit 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

build_flag=()
[[ ${1:-} == --no-build ]] && build_flag=(--no-build)
if [[ $EUID -ne 0 ]]; then
  echo "test-packages.sh: needs root (dpkg -i)" >&2
  exit 2
fi

pass=0
fail=0
OUT=""
check() {
  local name=$1
  shift
  if "$@"; then
    pass=$((pass + 1))
    printf 'ok   %s\n' "$name"
  else
    fail=$((fail + 1))
    printf 'FAIL %s\n' "$name"
    if [[ -n $OUT ]]; then printf '%s\n' "$OUT" | sed 's/^/     | /'; fi
  fi
}
has() { [[ $OUT == *"$1"* ]]; }
step() { printf '\n==> %s\n' "$*"; }

target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
out=$target_dir/packages
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
deb=$out/coregate_${version}-1_amd64.deb
rpmfile=$out/coregate-${version}-1.x86_64.rpm

step "build the x86_64 packages"
rm -f "$deb" "$rpmfile"
bash packaging/build.sh --arch x86_64 "${build_flag[@]}" || exit 1

# ---------------------------------------------------------------------------------------------
step ".deb: control files and contents"
check ".deb built" test -f "$deb"
OUT=$(dpkg-deb -f "$deb")
check "control: Package: coregate" has "Package: coregate"
check "control: Architecture: amd64" has "Architecture: amd64"
check "control: Version: $version-1" has "Version: $version-1"
check "control: Depends on libc6 and procps (/bin/kill for ExecReload)" eval 'has "libc6" && has "procps"'
OUT=$(dpkg-deb -I "$deb" conffiles)
check "conffiles: exactly coregate.toml and the logrotate file" \
  test "$OUT" = $'/etc/coregate/coregate.toml\n/etc/logrotate.d/coregate'
contents=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./||')
for f in usr/bin/coregate usr/bin/coregate-bench lib/systemd/system/coregate.service \
  etc/coregate/coregate.toml etc/logrotate.d/coregate usr/lib/sysusers.d/coregate.conf \
  usr/sbin/coregate-tune usr/share/coregate/tuning/coregate-tune \
  usr/share/coregate/tuning/profiles/edge.conf usr/share/coregate/tuning/profiles/latency.conf \
  usr/share/coregate/tuning/profiles/throughput.conf usr/share/man/man8/coregate.8.gz \
  usr/share/man/man8/coregate-tune.8.gz usr/share/doc/coregate/copyright; do
  OUT=$contents
  check "contains /$f" grep -qx "$f" <<<"$contents"
done
OUT=$(grep -E '^etc/sysctl|sysctl\.d/.*coregate' <<<"$contents")
check "no sysctl file is installed (only coregate-tune apply writes one)" test -z "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/root"
dpkg-deb -e "$deb" "$work/control"
OUT=$(readelf -h "$work/root/usr/bin/coregate" 2>&1)
check "usr/bin/coregate is an x86-64 ELF" has "X86-64"
OUT=$(readelf -S "$work/root/usr/bin/coregate" 2>&1 | grep -cE '\.debug_(info|line)')
check "usr/bin/coregate is stripped (no .debug_info/.debug_line)" test "$OUT" = 0
for s in postinst prerm postrm; do
  OUT=$(sh -n "$work/control/$s" 2>&1)
  check "$s: valid sh" test -z "$OUT"
  if command -v shellcheck >/dev/null; then
    OUT=$(shellcheck -s sh "$work/control/$s" 2>&1)
    check "$s: shellcheck clean" test -z "$OUT"
  fi
done
OUT=$(cat "$work/control/postinst")
check "postinst creates the user and restarts a running service on upgrade" eval 'has "systemd-sysusers" && has "try-restart"'

# ---------------------------------------------------------------------------------------------
step ".deb: install"
if dpkg -s coregate >/dev/null 2>&1; then
  echo "coregate was installed already: purging it first"
  dpkg -P coregate >/dev/null
fi
leftovers() {
  find /etc /usr /lib /var/lib /var/log /run -xdev \( -name '*coregate*' -o -path '*/coregate/*' \) 2>/dev/null | sort
}
before=$(leftovers)
OUT=$(dpkg -i "$deb" 2>&1)
check "dpkg -i: exit 0" test $? -eq 0
printf '%s\n' "$OUT"
OUT=$(id coregate 2>&1)
check "the coregate system user exists" test $? -eq 0
OUT=$(/usr/bin/coregate --version 2>&1)
check "coregate --version" has "$version"
OUT=$(/usr/bin/coregate check --config /etc/coregate/coregate.toml 2>&1)
check "coregate check on the installed default config" test $? -eq 0
OUT=$(runuser -u coregate -- /usr/bin/coregate check --config /etc/coregate/coregate.toml 2>&1)
check "... also as the coregate user" test $? -eq 0
# The default config must be one `run` accepts (it refuses keys it does not enforce yet): start
# it as the coregate user, wait for "ready", stop it with one SIGTERM, expect exit 0.
log=$work/run.log
setpriv --reuid=coregate --regid=coregate --init-groups -- \
  /usr/bin/coregate run --config /etc/coregate/coregate.toml >"$log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  grep -q "coregate ready" "$log" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -TERM "$pid" 2>/dev/null
wait "$pid"
rc=$?
OUT=$(cat "$log")
ran=no
[[ $rc -eq 0 && $OUT == *"coregate ready"* && $OUT == *"coregate stopped"* ]] && ran=yes
check "coregate run on the default config, as the coregate user: ready, then a graceful stop (exit 0)" test $ran = yes
OUT=$(/usr/bin/coregate-bench --help 2>&1)
check "coregate-bench --help" test $? -eq 0

step ".deb: the installed unit"
OUT=$(systemd-analyze verify /lib/systemd/system/coregate.service 2>&1)
clean=no
[[ $? -eq 0 && -z $OUT ]] && clean=yes
check "systemd-analyze verify: exit 0 and no warning" test $clean = yes
OUT=$(systemd-analyze security --offline=yes --threshold=30 /lib/systemd/system/coregate.service 2>&1)
rc=$?
printf '%s\n' "$OUT" | tail -1
check "systemd-analyze security: exposure <= 3.0" test $rc -eq 0
OUT=""
for k in Type=notify NotifyAccess=all "ExecStartPre=/usr/bin/coregate check" \
  "ExecReload=/bin/kill -HUP \$MAINPID" LimitNOFILE=1048576 User=coregate \
  AmbientCapabilities=CAP_NET_BIND_SERVICE CapabilityBoundingSet=CAP_NET_BIND_SERVICE \
  SystemCallFilter=@system-service ProtectSystem=strict; do
  grep -q "^$k" /lib/systemd/system/coregate.service || OUT+=" $k"
done
check "the unit has the settings the issue asks for" test -z "$OUT"

step ".deb: coregate-tune from its installed path"
OUT=$(/usr/sbin/coregate-tune profiles 2>&1)
check "coregate-tune profiles: edge latency throughput" test "$OUT" = $'edge\nlatency\nthroughput'
OUT=$(/usr/sbin/coregate-tune show 2>&1)
check "coregate-tune show (edge)" has "profile edge (/usr/share/coregate/tuning/profiles/edge.conf)"
OUT=$(/usr/sbin/coregate-tune apply --dry-run 2>&1)
check "coregate-tune apply --dry-run" has "dry run: nothing was changed"
check "... wrote no sysctl file" test ! -e /etc/sysctl.d/60-coregate.conf
if command -v logrotate >/dev/null; then
  OUT=$(logrotate -d /etc/logrotate.d/coregate 2>&1)
  clean=no
  [[ $? -eq 0 && $OUT != *error* ]] && clean=yes
  check "logrotate -d accepts /etc/logrotate.d/coregate" test $clean = yes
fi
if command -v man >/dev/null; then
  OUT=$(MANWIDTH=80 man -P cat coregate-tune 2>&1)
  check "man coregate-tune" has "COREGATE-TUNE(8)"
fi

step ".deb: remove and purge"
OUT=$(dpkg -r coregate 2>&1)
check "dpkg -r: exit 0" test $? -eq 0
check "dpkg -r: the binaries are gone" test ! -e /usr/bin/coregate -a ! -e /usr/share/coregate
check "dpkg -r: the conffiles stay until purge" test -e /etc/coregate/coregate.toml
OUT=$(dpkg -P coregate 2>&1)
check "dpkg -P: exit 0" test $? -eq 0
after=$(leftovers)
OUT=$(diff <(printf '%s\n' "$before") <(printf '%s\n' "$after"))
check "dpkg -P: no file left behind" test -z "$OUT"
OUT=$(dpkg -s coregate 2>&1)
check "dpkg -P: dpkg forgot the package" test $? -ne 0

# ---------------------------------------------------------------------------------------------
step ".rpm"
check ".rpm built" test -f "$rpmfile"
if command -v rpm >/dev/null; then
  OUT=$(rpm -qp --qf '%{NAME} %{VERSION} %{RELEASE} %{ARCH}\n' "$rpmfile" 2>&1)
  check "rpm: name, version, release, arch" test "$OUT" = "coregate $version 1 x86_64"
  rl=$(rpm -qlp "$rpmfile" 2>&1)
  for f in /usr/bin/coregate /usr/bin/coregate-bench /usr/lib/systemd/system/coregate.service \
    /etc/coregate/coregate.toml /etc/logrotate.d/coregate /usr/lib/sysusers.d/coregate.conf \
    /usr/sbin/coregate-tune /usr/share/coregate/tuning/coregate-tune \
    /usr/share/coregate/tuning/profiles/edge.conf /usr/share/man/man8/coregate.8; do
    OUT=$rl
    check "rpm contains $f" grep -qx "$f" <<<"$rl"
  done
  OUT=$(rpm -qcp "$rpmfile" 2>&1)
  check "rpm config files: coregate.toml and the logrotate file" \
    test "$OUT" = $'/etc/coregate/coregate.toml\n/etc/logrotate.d/coregate'
  OUT=$(rpm -qp --scripts "$rpmfile" 2>&1)
  check "rpm scripts: user creation, restart on upgrade, stop on erase" \
    eval 'has "useradd --system" && has "try-restart" && has "systemctl stop coregate.service"'
  OUT=$(rpm -qp --requires "$rpmfile" 2>&1)
  if [[ -x /usr/lib/rpm/find-requires ]]; then
    check "rpm requires libc" has "libc.so.6("
  fi
else
  echo "rpm is not installed: the .rpm's metadata is not inspected (apt-get install rpm)"
fi

printf '\n%d passed, %d failed\n' "$pass" "$fail"
((fail == 0))
