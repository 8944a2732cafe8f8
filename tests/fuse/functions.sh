# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the tests of the FUSE export: sourced, never run.
#
# Every wait is bounded (timeout), so a stuck export or kernel request
# fails the test instead of hanging it.  Each test gets a scratch directory
# whose exports, mounts and loop devices are all undone on exit.
set -euo pipefail

: "${SERVE:?SERVE must name the udm-fuse-serve program}"

# Skip (77) when the machine cannot run the test, but never in CI, where a
# missing tool or device is a broken runner and must fail.
skip() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL: $* (CI must provide it)" >&2
    exit 1
  fi
  echo "SKIP: $*" >&2
  exit 77
}

requires() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || skip "$t is not installed"
  done
}

requires_blockdev() {
  [ "$(id -u)" = 0 ] || skip "needs root (loop devices)"
  [ -c /dev/fuse ] || skip "no /dev/fuse"
  [ -c /dev/loop-control ] || skip "no /dev/loop-control"
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/udm-fuse-test.XXXXXX")
export tmp

cleanup() {
  local status=$?
  # Filesystems a failed test left mounted on loop devices, innermost first;
  # not the export itself: unmounted first, it would hide the loop devices
  # over its files from --cleanup, which finds them by path.
  local m
  for m in $(awk -v t="$tmp/" -v d="$tmp/dev" 'index($2, t) == 1 && $2 != d { print $2 }' \
    /proc/mounts | sort -r); do
    timeout -k 5 30 umount -l "$m" 2>/dev/null || true
  done
  timeout -k 5 60 "$SERVE" --cleanup --dir "$tmp/dev" 2>/dev/null || true
  if grep -q " $tmp/dev " /proc/mounts; then
    timeout -k 5 30 umount -l "$tmp/dev" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit $status
}
trap cleanup EXIT

# serve ARGS...: the captive host on $tmp/dev, bounded.
serve() {
  timeout -k 10 "${SERVE_TIMEOUT:-240}" "$SERVE" --dir "$tmp/dev" "$@"
}

# sparse FILE SIZE
sparse() {
  rm -f "$1"
  truncate -s "$2" "$1"
}

# A small tree of files with known contents under DIR; sums into FILE.
make_tree() {
  local dir=$1 sums=$2 i
  mkdir -p "$dir/a/b/c" "$dir/d"
  for i in $(seq 1 40); do
    head -c $((i * 7919 % 300000 + 1)) /dev/urandom >"$dir/a/f$i"
  done
  for i in $(seq 1 10); do
    head -c $((i * 4096)) /dev/urandom >"$dir/a/b/c/g$i"
  done
  head -c 24M /dev/urandom >"$dir/d/big"
  : >"$dir/d/empty"
  (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$sums"
}

check_tree() {
  local dir=$1 sums=$2
  (cd "$dir" && sha256sum --quiet -c "$sums") || fail "checksums differ under $dir"
}

# Allocated bytes of (sparse) files, summed.
allocated() {
  local f sum=0
  for f in "$@"; do
    sum=$((sum + $(stat -c %b "$f") * 512))
  done
  echo $sum
}

# inner < SCRIPT: write the script that the host runs as COMMAND (with the
# helpers above), to $tmp/inner.sh; run it with --run "bash $tmp/inner.sh".
inner() {
  {
    echo 'set -euo pipefail'
    declare -f fail make_tree check_tree allocated
    cat
  } >"$tmp/inner.sh"
}
