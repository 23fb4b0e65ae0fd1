#!/usr/bin/env bash
# Builds the ward-agent and ward-collector .debs and checks their whole life cycle on this host:
# install -> files, users, units, `systemd-analyze verify` (+ offline security score), a short
# run of each binary as its service user -> remove -> purge. Exits non-zero on any failure.
#
#   sudo scripts/check-packages.sh [--no-build]
#
# Needs root, dpkg and systemd-analyze (the `systemd` package, installed if missing). systemd
# need not be running (containers): nothing here starts a unit. The packages must not already be
# installed: this script purges what it installs, and will not purge an existing installation.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1

BUILD=1
for arg in "$@"; do
    case "$arg" in
    --no-build) BUILD=0 ;;
    -h | --help)
        sed -n '2,10p' "$0"
        exit 0
        ;;
    *)
        echo "check-packages.sh: unknown argument $arg" >&2
        exit 2
        ;;
    esac
done

PKGS=(ward-agent ward-collector)
FAILURES=0
INSTALLED=0

say() { printf '\n== %s\n' "$*"; }
ok() { printf '  ok    %s\n' "$*"; }
bad() {
    printf '  FAIL  %s\n' "$*"
    FAILURES=$((FAILURES + 1))
}
die() {
    printf 'check-packages.sh: %s\n' "$*" >&2
    exit 1
}
# check DESCRIPTION COMMAND...: records a failure when COMMAND fails.
check() {
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}
check_not() {
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then bad "$what"; else ok "$what"; fi
}
pkg_status() { dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | tr -d ' '; }
user_exists() { getent passwd "$1" >/dev/null; }
group_exists() { getent group "$1" >/dev/null; }
is_system_user() {
    local uid
    uid=$(id -u "$1") || return 1
    [ "$uid" -lt 1000 ] && [ "$(getent passwd "$1" | cut -d: -f7)" = /usr/sbin/nologin ]
}
stat_is() { [ "$(stat -c "$2" "$1" 2>/dev/null)" = "$3" ]; }
is_conffile() { dpkg-query -W -f='${Conffiles}\n' "$1" | grep -q "^ $2 "; }

cleanup() {
    if [ "$INSTALLED" = 1 ]; then
        echo "check-packages.sh: purging the packages after a failure" >&2
        dpkg -P "${PKGS[@]}" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || die "run as root (it installs and purges packages)"
command -v dpkg >/dev/null || die "dpkg is missing: this check needs a Debian-based system"
if ! command -v systemd-analyze >/dev/null; then
    say "installing systemd (for systemd-analyze)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd >/dev/null ||
        die "could not install systemd"
fi
for p in "${PKGS[@]}"; do
    case "$(pkg_status "$p")" in
    "" | un | pn) ;;
    *) die "$p is already installed (status $(pkg_status "$p")); purge it first: dpkg -P $p" ;;
    esac
done
for u in ward ward-collector; do
    user_exists "$u" && die "user $u already exists; this check verifies that the packages create and remove it"
done

if [ "$BUILD" = 1 ]; then
    say "building (scripts/package.sh)"
    scripts/package.sh || die "scripts/package.sh failed"
fi
# The newest build of each (target/debian/ may hold older versions too).
# shellcheck disable=SC2012
AGENT_DEB=$(ls -t target/debian/ward-agent_*.deb 2>/dev/null | head -n1)
# shellcheck disable=SC2012
COLLECTOR_DEB=$(ls -t target/debian/ward-collector_*.deb 2>/dev/null | head -n1)
if [ -z "$AGENT_DEB" ] || [ -z "$COLLECTOR_DEB" ]; then
    die "no .deb in target/debian/ (run scripts/package.sh)"
fi

say "dpkg -i $AGENT_DEB $COLLECTOR_DEB"
INSTALLED=1
dpkg -i "$AGENT_DEB" "$COLLECTOR_DEB" || die "dpkg -i failed"
for p in "${PKGS[@]}"; do
    check "$p is installed (ii)" test "$(pkg_status "$p")" = ii
done

say "installed files"
for f in /usr/bin/ward-agent /usr/bin/ward-collector; do
    check "$f is executable" test -x "$f"
done
for f in /lib/systemd/system/ward-agent.service /lib/systemd/system/ward-collector.service \
    /usr/share/doc/ward-agent/README.md /usr/share/doc/ward-agent/packaging.md \
    /usr/share/doc/ward-collector/README.md /usr/share/doc/ward-collector/packaging.md \
    /usr/share/doc/ward-collector/contracts.md /usr/share/doc/ward-collector/assets.md \
    /usr/share/doc/ward-collector/schema/observation-v1.md \
    /usr/share/doc/ward-collector/schema/status-v1.md \
    /usr/share/doc/ward-collector/schema/alert-v1.md; do
    check "$f exists" test -s "$f"
done
check "/etc/ward/agent.toml is a conffile of ward-agent" is_conffile ward-agent /etc/ward/agent.toml
check "/etc/ward/collector.toml is a conffile of ward-collector" is_conffile ward-collector /etc/ward/collector.toml
check "/etc/ward/agent.toml is root:ward 0640" stat_is /etc/ward/agent.toml '%U:%G %a' 'root:ward 640'
check "/etc/ward/collector.toml is root:ward-collector 0640" \
    stat_is /etc/ward/collector.toml '%U:%G %a' 'root:ward-collector 640'
check "ward-agent --version runs" /usr/bin/ward-agent --version
check "ward-collector --version runs" /usr/bin/ward-collector --version

say "users and state directories"
for u in ward ward-collector; do
    check "user $u exists" user_exists "$u"
    check "group $u exists" group_exists "$u"
    check "$u is a system user with no login shell" is_system_user "$u"
done
check "/var/lib/ward-agent is ward:ward 0750" stat_is /var/lib/ward-agent '%U:%G %a' 'ward:ward 750'
check "/var/lib/ward-collector is ward-collector:ward-collector 0750" \
    stat_is /var/lib/ward-collector '%U:%G %a' 'ward-collector:ward-collector 750'

say "units"
WANTS=/etc/systemd/system/multi-user.target.wants
check_not "ward-agent.service is not enabled (needs an interface configured first)" test -e "$WANTS/ward-agent.service"
check "ward-collector.service is enabled" test -L "$WANTS/ward-collector.service"
if [ -d /run/systemd/system ]; then
    check_not "ward-agent.service was not started" systemctl is-active --quiet ward-agent.service
    check_not "ward-collector.service was not started" systemctl is-active --quiet ward-collector.service
else
    ok "systemd is not running here: no unit can have been started"
fi
out=$(systemd-analyze verify /lib/systemd/system/ward-agent.service \
    /lib/systemd/system/ward-collector.service 2>&1)
rc=$?
# verify also reports on unrelated units it loads (targets, other packages); ours must be clean.
ours=$(printf '%s\n' "$out" | grep -E 'ward-(agent|collector)\.service' || true)
if [ "$rc" = 0 ] && [ -z "$ours" ]; then
    ok "systemd-analyze verify: both units clean"
else
    bad "systemd-analyze verify (exit $rc):"
    printf '%s\n' "$out" | sed 's/^/        /'
fi
for u in ward-agent ward-collector; do
    # Offline exposure score (0 = locked down, 10 = unprotected); 2.5 is well into "OK".
    score=$(systemd-analyze security --offline=true "/lib/systemd/system/$u.service" 2>/dev/null |
        sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
    if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.5) }'; then
        ok "$u.service offline exposure level $score (<= 2.5)"
    else
        bad "$u.service offline exposure level '${score:-?}' (want <= 2.5)"
    fi
done

say "running as the service users (identity and capabilities of the units, not their sandbox)"
# The collector as ward-collector: reads its config, creates the database in its state directory.
if setpriv --reuid=ward-collector --regid=ward-collector --init-groups --inh-caps=-all \
    --bounding-set=-all --no-new-privs env WARD_COLLECTOR_DB=/var/lib/ward-collector/ward.db \
    /usr/bin/ward-collector --config /etc/ward/collector.toml token list >/dev/null 2>&1; then
    ok "ward-collector reads /etc/ward/collector.toml and opens its database as ward-collector"
else
    bad "ward-collector token list as ward-collector"
fi
check "the database was created in /var/lib/ward-collector, owned by ward-collector" \
    stat_is /var/lib/ward-collector/ward.db '%U' ward-collector
# The agent as ward with only CAP_NET_RAW (ambient), as the unit runs it: it must capture without
# trying to drop privileges itself. Loopback stands in for the span port.
log=$(mktemp)
setpriv --reuid=ward --regid=ward --init-groups --inh-caps=-all,+net_raw --ambient-caps=+net_raw \
    --bounding-set=-all,+net_raw --no-new-privs \
    /usr/bin/ward-agent capture --config /etc/ward/agent.toml --spool-dir /var/lib/ward-agent/spool \
    --interface lo --output jsonl:/dev/null >"$log" 2>&1 &
pid=$!
sleep 2
if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
else
    wait "$pid"
    rc=$?
fi
if [ "$rc" = 0 ] && grep -q 'privilege drop skipped' "$log" && grep -q 'capturing' "$log"; then
    ok "ward-agent captures as ward with CAP_NET_RAW only and skips its own privilege drop"
else
    bad "ward-agent capture as ward (exit $rc):"
    sed 's/^/        /' "$log"
fi
rm -f "$log"

say "dpkg -r ${PKGS[*]}"
dpkg -r "${PKGS[@]}" || die "dpkg -r failed"
for p in "${PKGS[@]}"; do
    check "$p is removed, config kept (rc)" test "$(pkg_status "$p")" = rc
    check_not "/usr/bin/$p is gone" test -e "/usr/bin/$p"
    check_not "/lib/systemd/system/$p.service is gone" test -e "/lib/systemd/system/$p.service"
    check_not "$p.service is no longer enabled" test -e "$WANTS/$p.service"
done
check "/etc/ward/agent.toml is kept until purge" test -f /etc/ward/agent.toml
check "user ward is kept until purge" user_exists ward

say "dpkg -P ${PKGS[*]}"
dpkg -P "${PKGS[@]}" || die "dpkg -P failed"
INSTALLED=0
for p in "${PKGS[@]}"; do
    check "$p is purged" test -z "$(pkg_status "$p" | grep -v '^un$\|^pn$')"
done
for u in ward ward-collector; do
    check_not "user $u is gone" user_exists "$u"
    check_not "group $u is gone" group_exists "$u"
done
for d in /var/lib/ward-agent /var/lib/ward-collector /etc/ward/agent.toml /etc/ward/collector.toml; do
    check_not "$d is gone" test -e "$d"
done

echo
if [ "$FAILURES" -gt 0 ]; then
    echo "check-packages.sh: $FAILURES check(s) FAILED"
    exit 1
fi
echo "check-packages.sh: all checks passed"
