#!/usr/bin/env bash
# Builds the ward-agent and ward-collector Debian packages into target/debian/.
#
#   scripts/package.sh [cargo-deb options...]     e.g. --dbgsym, --deb-revision 2, --fast
#
# Needs cargo-deb (`cargo install cargo-deb --locked`). The binaries are built once, in release
# mode with the locked dependency versions, then packaged (stripped unless options say otherwise).
set -euo pipefail

cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "package.sh: cargo-deb is missing; install it with: cargo install cargo-deb --locked" >&2
    exit 1
fi

cargo build --release --locked -p ward-agent -p ward-collector

mkdir -p target/debian
for pkg in ward-agent ward-collector; do
    cargo deb --no-build --locked -p "$pkg" --strip --output target/debian/ "$@"
done

ls -l target/debian/*.deb
