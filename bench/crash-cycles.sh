#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Crash consistency at length: tests/crash/crash.py for N cycles (default
# 1000) over linear, striped, crypt, mirror and era (or --targets), through
# NBD and the attached block device; prints the per-target table that
# docs/testing.md records, and the time taken.  Needs root, /dev/fuse, loop devices, python3-libnbd, nbdkit
# and nbdfuse.  The harness grows by some MB per NBD cycle (libnbd 1.14's
# Python binding keeps aio_pwrite's buffers): about 6 GB at 1,000 cycles.
#
#   bench/crash-cycles.sh [--cycles N] [--seed S] [--targets a,b,...]
#                         [--storage volatile|file] [--build DIR]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cycles=1000
seed=
targets=
storage=
build=
while [ $# -gt 0 ]; do
  case $1 in
    --cycles) cycles=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --targets) targets=$2; shift 2 ;;
    --storage) storage=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: $0 [--cycles N] [--seed S] [--targets a,b,...]" \
            "[--storage volatile|file] [--build DIR]" >&2
       exit 2 ;;
  esac
done
if [ -z "$build" ]; then
  for b in build-rel build; do
    [ -x "$here/../$b/daemon/udmd" ] && { build=$here/../$b; break; }
  done
fi
[ -x "$build/daemon/udmd" ] && [ -x "$build/cli/udm" ] ||
  { echo "$0: no built udmd/udm; build udm or pass --build DIR" >&2; exit 2; }
/usr/bin/python3 -I -c 'import nbd' 2>/dev/null ||
  { echo "$0: python3-libnbd is missing" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/udm-crash.XXXXXX")
cleanup() {
  set +e
  local lock=$work/rt/udmd.lock pid
  # crash.py stops its daemon; this is for an interrupted run.
  # (only if that pid is still our udmd: a pid can be reused).
  pid=$(cat "$lock" 2>/dev/null)
  [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe")" = "$(readlink -f "$build/daemon/udmd")" ] &&
    kill -9 "$pid"
  local m
  for m in $(awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts); do
    umount -l "$m"
  done
  rm -rf "$work"
}
trap cleanup EXIT
start=$(date +%s)
status=0
/usr/bin/python3 -I "$here/../tests/crash/crash.py" --udm "$build/cli/udm" \
  --udmd "$build/daemon/udmd" --work "$work" --cycles "$cycles" \
  ${seed:+--seed "$seed"} ${targets:+--targets "$targets"} ${storage:+--storage "$storage"} \
  > "$work/log" 2>&1 || status=$?
grep -v '^cycle .*: ok$' "$work/log" || true
echo "$cycles cycles in $(( $(date +%s) - start )) s, exit status $status"
exit $status
