#!/usr/bin/env bash
# Boots a Debian 12 container under systemd-nspawn (systemd as its PID 1, a private network),
# installs the .deb there and runs the hardened unit for real: io_uring under the seccomp
# filter, capabilities, the access log and its rotation, reload, a refused reload, graceful
# stop, purge. What
# `systemd-analyze security` scores, this checks still works.
#
#   packaging/test-systemd.sh [--install] [DEB]
#
# DEB defaults to the amd64 package in ${CARGO_TARGET_DIR:-target}/packages (build.sh makes it).
# The root file system is made once by debootstrap (Debian's mirror, a few minutes) and kept in
# ${COREGATE_NSPAWN_ROOT:-/var/tmp/coregate-nspawn-bookworm}. --install first installs
# systemd-container and debootstrap. Where the container cannot be had or booted (no
# debootstrap, no nspawn, no cgroups), the script skips with a message and exits 0, unless
# COREGATE_REQUIRE_NSPAWN=1. Needs root. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

root=${COREGATE_NSPAWN_ROOT:-/var/tmp/coregate-nspawn-bookworm}
mirror=${COREGATE_DEBIAN_MIRROR:-http://deb.debian.org/debian}

skip() {
  if [[ ${COREGATE_REQUIRE_NSPAWN:-0} == 1 ]]; then
    echo "test-systemd.sh: cannot run: $*" >&2
    exit 1
  fi
  echo "test-systemd.sh: SKIPPED: $*"
  exit 0
}

install=0
deb=""
for a in "$@"; do
  case $a in
    --install) install=1 ;;
    *) deb=$a ;;
  esac
done
[[ $EUID -eq 0 ]] || skip "needs root"
if [[ -z $deb ]]; then
  target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  for f in "$target_dir"/packages/coregate_*_amd64.deb; do [[ -f $f ]] && deb=$f; done
fi
[[ -f $deb ]] || skip "no .deb (run packaging/build.sh first)"

if ((install)); then
  missing=()
  command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if ((${#missing[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } ||
      echo "test-systemd.sh: apt-get install ${missing[*]} failed" >&2
  fi
fi
command -v systemd-nspawn >/dev/null || skip "no systemd-nspawn (apt-get install systemd-container)"

if [[ ! -x $root/lib/systemd/systemd || ! -x $root/usr/bin/curl || ! -x $root/usr/sbin/logrotate ]]; then
  command -v debootstrap >/dev/null || skip "no debootstrap (apt-get install debootstrap)"
  echo "==> debootstrap bookworm into $root (once)"
  rm -rf "$root.new"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,procps,curl,logrotate \
    bookworm "$root.new" "$mirror" >/tmp/coregate-debootstrap.log 2>&1 ||
    skip "debootstrap failed (see /tmp/coregate-debootstrap.log)"
  rm -rf "$root"
  mv "$root.new" "$root"
fi

# The test, run inside the container by a oneshot unit at boot; the container powers off after.
cp "$deb" "$root/root/coregate.deb"
rm -f "$root/root/result.txt"
cat >"$root/root/coregate-test.sh" <<'EOF'
#!/bin/bash
exec >/root/result.txt 2>&1
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; shift; for l in "$@"; do echo "     | $l"; done; }
t() { local n=$1; shift; if "$@"; then pass "$n"; else fail "$n"; fi; }
state() { systemctl show coregate -p ActiveState --value; }
pid() { systemctl show coregate -p MainPID --value; }
log() { journalctl -u coregate --no-pager -o cat; }

dpkg -i /root/coregate.deb >/root/dpkg.log 2>&1
t "dpkg -i under a booted systemd" test $? -eq 0
t "installed, not enabled" test "$(systemctl is-enabled coregate 2>&1)" = disabled
systemctl start coregate
t "systemctl start: active (Type=notify: READY=1 arrived)" test "$(state)" = active
p=$(pid)
t "runs as the coregate user" test "$(stat -c %U /proc/$p)" = coregate
caps=$(grep CapEff /proc/$p/status | awk '{print $2}')
t "effective capabilities: CAP_NET_BIND_SERVICE only (0x400)" test "$caps" = 0000000000000400
t "NoNewPrivs, seccomp filter" test "$(grep -c -E '^(NoNewPrivs:\s+1|Seccomp:\s+2)$' /proc/$p/status)" = 2
t "io_uring works under SystemCallFilter=@system-service" eval 'log | grep -q "coregate ready.*driver=io_uring"'
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/)
t "serves 127.0.0.1:8080 (502: no application on :8081)" test "$code" = 502
sleep 0.3
t "the access log has the request" grep -q '"GET / HTTP/1.1" 502' /var/log/coregate/access.log
logrotate -f /etc/logrotate.d/coregate
sleep 0.5
curl -s -o /dev/null http://127.0.0.1:8080/rotated
sleep 0.3
t "logrotate: rotated as coregate, SIGUSR1 reopened, the next request in the new file" \
  eval '[[ -f /var/log/coregate/access.log.1 ]] && grep -q "GET /rotated" /var/log/coregate/access.log && ! grep -q "GET /rotated" /var/log/coregate/access.log.1'
systemctl reload coregate
t "systemctl reload: ok, same pid, config version 2" eval '[[ $(state) == active && $(pid) == "$p" ]] && log | grep -q "config reloaded version=2"'
cp /etc/coregate/coregate.toml /root/good.toml
echo 'bogus = 1' >>/etc/coregate/coregate.toml
systemctl reload coregate 2>/dev/null
rc=$?
t "reload of an invalid file: refused by ExecReload's check, still serving" eval '[[ $rc -ne 0 && $(state) == active && $(pid) == "$p" ]]'
cp /root/good.toml /etc/coregate/coregate.toml
systemctl stop coregate
t "systemctl stop: graceful (exit 0, result success)" eval '[[ $(systemctl show coregate -p Result --value) == success && $(systemctl show coregate -p ExecMainStatus --value) == 0 ]]'
# Binary upgrade under systemd: reported, not counted (packaging/README.md, "Upgrades").
systemctl start coregate
old=$(pid)
systemctl kill -s USR2 --kill-whom=main coregate
sleep 2
echo "info SIGUSR2 handover: main pid $old -> $(pid), unit $(state)/$(systemctl show coregate -p SubState --value) (active/running once the old process stops sending STOPPING=1 on a handover)"
systemctl kill -s KILL coregate
systemctl stop coregate
systemctl enable coregate >/dev/null 2>&1
dpkg -r coregate >/dev/null 2>&1
dpkg -P coregate >/dev/null 2>&1
left=$(find /etc /usr /lib /var/log /var/lib -name '*coregate*' 2>/dev/null | grep -v -e '^/var/lib/dpkg' -e coregate-test)
t "dpkg -P (after enable): nothing left" test -z "$left"
echo END
EOF
chmod +x "$root/root/coregate-test.sh"
cat >"$root/etc/systemd/system/coregate-test.service" <<'EOF'
[Unit]
Description=coregate package test
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/root/coregate-test.sh
ExecStartPost=/bin/systemctl poweroff --no-block
[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/coregate-test.service "$root/etc/systemd/system/multi-user.target.wants/"

echo "==> boot $root under systemd-nspawn"
timeout 300 systemd-nspawn -D "$root" -b --register=no --keep-unit --private-network \
  --console=pipe >/tmp/coregate-nspawn.log 2>&1
if ! grep -qs '^END$' "$root/root/result.txt"; then
  skip "the container did not boot and finish (see /tmp/coregate-nspawn.log)"
fi
cat "$root/root/result.txt"
pass=$(grep -c '^ok ' "$root/root/result.txt")
fail=$(grep -c '^FAIL ' "$root/root/result.txt")
printf '\n%d passed, %d failed\n' "$pass" "$fail"
((fail == 0))
