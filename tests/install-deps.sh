#!/usr/bin/env bash
# Install everything the tests and the demo need on a fresh Debian 12 machine (run as root).
# Idempotent: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
# Quiet: what the installers say goes to build/install-deps.log, and is shown only if they fail.
mkdir -p build
LOG=build/install-deps.log
quiet() {
  if ! "$@" >>"$LOG" 2>&1; then
    echo "install-deps: '$*' failed; its output:" >&2
    tail -n 40 "$LOG" >&2
    return 1
  fi
}

APT_PACKAGES=(pebble bind9 bind9-utils bind9-dnsutils pdns-server pdns-backend-sqlite3 nginx apache2 nftables iptables openssh-server
              openssh-client ufw curl shellcheck openssl iproute2 rsync git make procps python3-venv firewalld dbus
              tinyproxy chromium systemd sudo
              libnginx-mod-stream)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}" >>"$LOG"
  quiet apt-get update -qq
  quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian starts nothing for us here (no systemd), but on a machine with systemd the packaged
# services would hold ports 53/80/443 that the rig and the tests need: stop them.
for svc in nginx apache2 named bind9 pdns; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

PY="${PORTAIL_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  quiet "$PY" -m venv .venv
fi
stamp=.venv/.requirements-stamp
if [ ! -f "$stamp" ] || ! cmp -s tests/requirements.txt "$stamp"; then
  echo "install-deps: pip install -r tests/requirements.txt" >>"$LOG"
  quiet .venv/bin/python -m pip install -q --upgrade pip
  quiet .venv/bin/python -m pip install -q -r tests/requirements.txt
  cp tests/requirements.txt "$stamp"
fi
