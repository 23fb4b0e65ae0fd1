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

APT_PACKAGES=(tshark wireshark-common dcmtk tcpdump libpcap-dev tcpreplay dnsmasq-base isc-dhcp-client iproute2 ethtool mosquitto mosquitto-clients openssl python3-pip curl openssh-server openssh-client snmpd snmp samba-common-bin minidlna bind9-dnsutils lldpd nats-server chromium)
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
require node npm /usr/bin/chromium cargo cargo-deb dpkg mosquitto mosquitto_sub openssl tc tshark tcpdump /usr/bin/storescu /usr/bin/storescp /usr/bin/echoscu /usr/bin/findscu wlmscpfs dump2dcm dnsmasq dhclient mllp_send ip ethtool editcap capinfos

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

# The .deb packages: build, install, systemd-analyze verify, run as their service users, remove,
# purge. Needs root (dpkg); like every other part, never skipped.
log "packages (scripts/check-packages.sh)"
if [[ $(id -u) -ne 0 ]]; then
  echo "the package checks need root (dpkg -i); run this script as root" >&2
  exit 1
fi
scripts/check-packages.sh

log "all checks passed"
