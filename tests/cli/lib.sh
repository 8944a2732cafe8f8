# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the tests of tests/cli: a private runtime directory, a daemon
# that is always killed, bounded waits, and assertions on real output.
# Needs $UDM and $UDMD (set by meson.build).
set -u

: "${UDM:?UDM must name the udm executable}" "${UDMD:?UDMD must name udmd}"
# A test that mounts a filesystem sets PRIVATE_MOUNTS=1 before sourcing
# this file and runs in a mount namespace of its own: a namespace another
# program makes meanwhile (ip netns exec, unshare -m) copies every mount of
# the first one, and with private propagation such a copy keeps the
# filesystem alive after the test's umount; a remount then takes that same
# live superblock, with what it held in memory (tests/libdm/dmflakey.sh).
if [ "${PRIVATE_MOUNTS:-}" = 1 ] && [ -z "${UDM_OWN_MOUNT_NS:-}" ] && [ "$(id -u)" = 0 ] &&
  command -v unshare >/dev/null; then
  UDM_OWN_MOUNT_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
TEST=$(basename "$0" .sh)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/udm-cli-$TEST.XXXXXX")
export UDM_RUNTIME_DIR="$WORK/rt"
T=10 # seconds any single step may take
cd "$WORK" || exit 1
# libfuse stops its workers with pthread_cancel, after which ASan's
# sigaltstack interceptor reports stale stack poison (tests/fuse/meson.build).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}use_sigaltstack=0"

# Mount points under $WORK, innermost first; FUSE exports (fstype fuse.udm) or the rest.
mounts_under_work() {
  awk -v w="$WORK/" -v want="$1" 'index($2, w) == 1 &&
    (($3 == "fuse.udm") == (want == "fuse")) { print $2 }' /proc/mounts | sort -r
}

# Loop devices whose backing file lies under $WORK (dead exports included).
loops_under_work() {
  local b
  for b in /sys/block/loop*/loop/backing_file; do
    [ -r "$b" ] || continue
    case "$(cat "$b" 2>/dev/null)" in "$WORK"/*) b=${b#/sys/block/}; echo "/dev/${b%%/*}";; esac
  done
}

cleanup() {
  local status=$? lock pid m dev i
  # Filesystems a failed test left mounted on its block devices go first.
  for m in $(mounts_under_work fs); do timeout -k 5 30 umount -l "$m" 2>/dev/null; done
  for lock in "$WORK"/*/udmd.lock "$WORK"/rt/udmd.lock; do
    [ -f "$lock" ] || continue
    pid=$(cat "$lock" 2>/dev/null)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
  done
  [ -n "${DAEMON_PID:-}" ] && kill "$DAEMON_PID" 2>/dev/null
  # A daemon detaches its block devices and unmounts its export on SIGTERM.
  for i in $(seq 50); do
    pid=
    for lock in "$WORK"/*/udmd.lock "$WORK"/rt/udmd.lock; do
      [ -f "$lock" ] || continue
      pid=$(cat "$lock" 2>/dev/null)
      [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && break
      pid=
    done
    [ -z "$pid" ] && break
    sleep 0.1
  done
  for lock in "$WORK"/*/udmd.lock "$WORK"/rt/udmd.lock; do
    [ -f "$lock" ] || continue
    pid=$(cat "$lock" 2>/dev/null)
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  done
  for dev in $(loops_under_work); do timeout -k 5 30 losetup -d "$dev" 2>/dev/null; done
  for m in $(mounts_under_work fuse); do timeout -k 5 30 umount -l "$m" 2>/dev/null; done
  rm -rf "$WORK"
  exit $status
}
trap cleanup EXIT

fail() {
  echo "FAIL ($TEST): $*" >&2
  if [ -s "$WORK/udmd.log" ]; then
    echo "--- the end of udmd's log:" >&2
    tail -n 60 "$WORK/udmd.log" >&2
  fi
  exit 1
}

need() {
  command -v "$1" >/dev/null && return
  # In CI every tool is installed by .ci/run: a missing one is a failure.
  if [ "${CI:-}" = true ]; then echo "FAIL: $1 is not installed"; exit 1; fi
  echo "SKIP: $1 is not installed"
  exit 77
}

udm() { timeout "$T" "$UDM" "$@"; }

# Block devices need root, /dev/fuse and loop devices: skip without them
# (fail in CI, which has them).
need_blockdev() {
  local why=
  [ "$(id -u)" = 0 ] || why="needs root (loop devices)"
  [ -c /dev/fuse ] || why="no /dev/fuse"
  [ -c /dev/loop-control ] || why="no /dev/loop-control"
  [ -z "$why" ] && return
  if [ "${CI:-}" = true ]; then echo "FAIL: $why"; exit 1; fi
  echo "SKIP: $why"
  exit 77
}

# Whether DEV is still a loop device bound to a file.
# Only a binding to this test's files counts: tests run in parallel, and
# another test may take the same /dev/loopN the moment it is freed.
loop_bound() {
  local f="/sys/block/$(basename "$1")/loop/backing_file" b
  b=$(cat "$f" 2>/dev/null) || return 1
  case "$b" in "$WORK"/*) return 0 ;; *) return 1 ;; esac
}

# A sparse file of SIZE (truncate's syntax).
sparse() {
  rm -f "$1"
  truncate -s "$2" "$1"
}

# Allocated bytes of files, summed.
allocated() {
  local f sum=0
  for f in "$@"; do sum=$((sum + $(stat -c %b "$f") * 512)); done
  echo $sum
}

# A tree of files of known contents under DIR (SEED varies it); sums into FILE.
make_tree() {
  local dir=$1 sums=$2 seed=$3 i
  mkdir -p "$dir/a/b" "$dir/c"
  for i in $(seq 1 20); do make_file "$dir/a/f$i" $((i * 37 % 300 + 1)) "$seed.$i"; done
  for i in 1 2 3; do make_file "$dir/a/b/g$i" $((i * 1024)) "$seed.g$i"; done
  : >"$dir/c/empty"
  (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$sums"
}

check_tree() {
  (cd "$1" && sha256sum --quiet -c "$2") || fail "checksums differ under $1"
}

# A python3 with the libnbd bindings (Debian's, even under pyenv), or skip.
need_python_nbd() {
  local p
  for p in /usr/bin/python3 python3; do
    if "$p" -I -c 'import nbd' 2>/dev/null; then
      PY_NBD=$p
      return 0
    fi
  done
  if [ "${CI:-}" = true ]; then echo "FAIL: python3-libnbd is not installed"; exit 1; fi
  echo "SKIP: python3-libnbd is not installed"
  exit 77
}

# Start a foreground udmd on $UDM_RUNTIME_DIR and wait until it answers.
start_udmd() {
  "$UDMD" -f -v "$@" 2>>"$WORK/udmd.log" &
  DAEMON_PID=$!
  local i
  for i in $(seq 100); do
    [ -S "$UDM_RUNTIME_DIR/control.sock" ] && [ -S "$UDM_RUNTIME_DIR/nbd.sock" ] && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "udmd died: $(cat "$WORK/udmd.log")"
    sleep 0.1
  done
  fail "udmd did not create its sockets within 10 s"
}

# wait_until CMD...: poll until CMD succeeds, at most $T seconds; 1 if it never
# does.  Tests wait on the state they need rather than sleeping a fixed time.
wait_until() {
  local i
  for i in $(seq $((T * 20))); do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}

# stop_udmd: SIGTERM, bounded wait, exit status in $DAEMON_STATUS.
stop_udmd() {
  kill -TERM "$DAEMON_PID"
  local i
  for i in $(seq 100); do
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$DAEMON_PID" 2>/dev/null && fail "udmd did not stop within 10 s of SIGTERM"
  wait "$DAEMON_PID"
  DAEMON_STATUS=$?
  DAEMON_PID=
}

# expect_fail KEY CMD...: CMD exits 1 and its stderr contains KEY.
expect_fail() {
  local key=$1 rc
  shift
  "$@" >"$WORK/out" 2>"$WORK/err"
  rc=$?
  [ "$rc" = 1 ] || fail "'$*' exited $rc, expected 1 (stderr: $(cat "$WORK/err"))"
  grep -qF -- "$key" "$WORK/err" ||
    fail "'$*': stderr lacks '$key': $(cat "$WORK/err")"
  [ "$(wc -l <"$WORK/err")" = 1 ] || fail "'$*': expected one line on stderr: $(cat "$WORK/err")"
}

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
  [ "$2" = "$3" ] || fail "$1: expected
---
$2
---
got
---
$3
---"
}

# Bytes of device NAME through NBD, as a sha256.
dev_sum() {
  timeout "$T" nbdcopy "$("$UDM" uri "$1")" - | sha256sum | cut -d' ' -f1
}

# Bytes SECTOR..SECTOR+COUNT of device NAME through NBD, as a sha256.
dev_sum_range() {
  [ -n "${PY_NBD:-}" ] || need_python_nbd
  timeout "$T" "$PY_NBD" -I - "$("$UDM" uri "$1")" "$2" "$3" <<'PY'
import hashlib, nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
print(hashlib.sha256(h.pread(int(sys.argv[3]) * 512, int(sys.argv[2]) * 512)).hexdigest())
PY
}

# A file of N KiB of reproducible bytes (different for each SEED).
make_file() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys, hashlib
path, kib, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = bytearray()
i = 0
while len(out) < kib * 1024:
    out += hashlib.sha256(f"{seed}:{i}".encode()).digest()
    i += 1
open(path, "wb").write(out[:kib * 1024])
PY
}

file_sum() {
  if [ $# -gt 1 ]; then
    dd if="$1" bs=512 skip="$2" count="$3" status=none | sha256sum | cut -d' ' -f1
  else
    sha256sum <"$1" | cut -d' ' -f1
  fi
}
