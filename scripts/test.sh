#!/usr/bin/env bash
# The whole ward test suite, as CI runs it: installs what the tests need (when root), then
# fmt check, clippy with -D warnings, every test (fuzz-corpus replay, demo, real brokers), and
# the .deb packages' install/verify/remove cycle.
#
#   scripts/test.sh            # everything
#   WARD_SKIP_INSTALL=1 ...    # do not touch the system's packages (they must already be there)
#
# A tool the tests need that is missing is an error here, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(tshark wireshark-common dcmtk tcpdump libpcap-dev tcpreplay dnsmasq-base isc-dhcp-client iproute2 ethtool mosquitto mosquitto-clients openssl python3-pip curl openssh-server openssh-client snmpd snmp samba-common-bin minidlna bind9-dnsutils lldpd nats-server chromium postgresql)
PIP_PACKAGES=(pynetdicom==3.0.4 pydicom==3.0.2 hl7apy==1.3.5 hl7==0.4.5 cryptography==48.0.0 zeroconf==0.147.0 async-upnp-client==0.49.0 aiohttp==3.14.5 sdc11073==3.0.0 lxml==6.2.0 astm-2025==1.0.0)

log() { printf '\n==> %s\n' "$*"; }

install_deps() {
  if [[ "${WARD_SKIP_INSTALL:-0}" == 1 ]]; then
    return
  fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "not root: skipping package installation; the checks below will fail if tools are missing" >&2
    return
  fi
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if ! command -v cargo-deb >/dev/null; then
    log "cargo install cargo-deb"
    cargo install -q --locked cargo-deb --version 3.8.0
  fi
  if ! python3 -c 'import pynetdicom, hl7apy, hl7' 2>/dev/null || ! command -v mllp_send >/dev/null; then
    log "pip install ${PIP_PACKAGES[*]}"
    python3 -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
  fi
}

require() {
  local bad=0
  for t in "$@"; do
    if ! command -v "$t" >/dev/null 2>&1; then
      echo "missing required tool: $t" >&2
      bad=1
    fi
  done
  python3 -c 'import pynetdicom, hl7apy, hl7' || { echo "missing python modules pynetdicom/hl7apy/hl7" >&2; bad=1; }
  ((bad == 0)) || { echo "install the tools above (run this script as root to have it do so)" >&2; exit 1; }
}

install_deps
# The web console's browser tests (collector/tests/console.rs): Debian's Chromium driven by
# playwright-core from tests/console/package-lock.json, with the machine's Node.js and npm.
log "npm ci (tests/console)"
(cd tests/console && npm ci --no-audit --no-fund)
require node npm /usr/bin/chromium cargo cargo-deb dpkg mosquitto mosquitto_sub pg_dump openssl tc tshark tcpdump /usr/bin/storescu /usr/bin/storescp /usr/bin/echoscu /usr/bin/findscu wlmscpfs dump2dcm dnsmasq dhclient mllp_send ip ethtool editcap capinfos

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (workspace, all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Regenerate every fixture from real peers in throw-away network namespaces, so each run proves
# the generator and the extractors against fresh traffic as well as the committed captures.
FRESH=$(mktemp -d /tmp/ward-fresh.XXXXXX)
trap 'rm -rf "$FRESH"' EXIT
log "generating fresh captures into $FRESH"
OUT_DIR="$FRESH" tests/captures/generate.sh
# The generator derives the manifest from the captures through tshark; a fresh run must agree
# with the committed one, or the fixtures no longer reflect what the peers send.
diff -u tests/fixtures/manifest.json "$FRESH/manifest.json"
export WARD_FRESH_CAPTURES="$FRESH"

log "cargo test (workspace)"
cargo test --workspace --locked --no-fail-fast

# The collector's integration tests again, on PostgreSQL (issue 22): a throw-away server from
# Debian's package (initdb + pg_ctl as the unprivileged `postgres` user, on a free port, in a
# temp dir, durability off: it is deleted afterwards), each test in a schema of its own
# (collector/tests/common: WARD_TEST_POSTGRES). A missing server is an error, never a skip.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]] || { echo "missing PostgreSQL server (initdb, pg_ctl): apt-get install postgresql" >&2; exit 1; }
PG_DIR=$(mktemp -d /tmp/ward-pg.XXXXXX)
PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg() { if [[ $(id -u) -eq 0 ]]; then chown -R postgres "$PG_DIR"; runuser -u postgres -- "$@"; else "$@"; fi; }
pg_stop() { as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$PG_DIR"; }
trap 'pg_stop; rm -rf "$FRESH"' EXIT
log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT ($PG_DIR)"
as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U ward --auth=trust -E UTF8 >"$PG_DIR/initdb.log"
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -o \
  "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c wal_level=minimal -c max_wal_senders=0" start
log "cargo test -p ward-collector (integration tests) on PostgreSQL"
WARD_TEST_POSTGRES="postgres://ward@127.0.0.1:$PG_PORT/postgres" \
  cargo test -p ward-collector --locked --no-fail-fast --test '*'
pg_stop

# The .deb packages: build, install, systemd-analyze verify, run as their service users, remove,
# purge. Needs root (dpkg); like every other part, never skipped.
log "packages (scripts/check-packages.sh)"
if [[ $(id -u) -ne 0 ]]; then
  echo "the package checks need root (dpkg -i); run this script as root" >&2
  exit 1
fi
scripts/check-packages.sh

log "all checks passed"
