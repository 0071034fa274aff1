#!/usr/bin/env bash
# Put promtool (Prometheus' rule and config checker) into DIR (default: .venv/bin).
#
# It comes from Debian's `prometheus` package, which ships it, but only that one binary is
# extracted: installing the package would add the Prometheus server, its web assets and a
# service that starts. Needs apt (Debian/Ubuntu); prints the version it installed.
set -euo pipefail

mkdir -p "${1:-.venv/bin}"
dest="$(cd "${1:-.venv/bin}" && pwd)"
if [ -x "$dest/promtool" ]; then
    "$dest/promtool" --version 2>&1 | head -n 1
    exit 0
fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
    echo "install-promtool: apt-get and dpkg-deb are needed (a Debian-based machine)" >&2
    exit 1
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
# The package lists may be missing or stale on a fresh machine: update once, then retry.
if ! apt-get download prometheus >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get download prometheus >/dev/null || {
        echo "install-promtool: apt-get download prometheus failed" >&2
        exit 1
    }
fi
dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool
install -m 0755 usr/bin/promtool "$dest/promtool"
"$dest/promtool" --version 2>&1 | head -n 1
