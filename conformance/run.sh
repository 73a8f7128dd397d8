#!/usr/bin/env bash
# Conformance report for one or more runtimes, e.g.
#   conformance/run.sh ocirun=/usr/local/bin/ocirun runc=/usr/sbin/runc
# A bare path is named after its file. Extra report flags may follow the
# runtimes after --, e.g. -- --json report.json --parity runc.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-"$here/../.venv/bin/python"}
[ -x "$python" ] || python=python3
[ $# -gt 0 ] || { echo "usage: $0 [NAME=]RUNTIME... [-- REPORT-FLAGS...]" >&2; exit 2; }
args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=(--runtime "$1"); shift; done
[ "${1:-}" = "--" ] && shift
"$here/../bundles/busybox/build-rootfs.sh" >&2
cd "$here/.."
exec "$python" -m conformance.report "${args[@]}" "$@"
