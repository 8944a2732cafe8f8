# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the NBD tests: tool checks, a scratch directory, the captive host.
# Exit codes: 0 pass, 1 fail, 77 skip (only when a client tool is missing and
# we are not in CI, where a missing tool is a failure).
set -euo pipefail

SERVE=${UDM_NBD_SERVE:?UDM_NBD_SERVE must name the built udm-nbd-serve}
TESTDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# require TOOL...: skip (77) when a tool is missing, fail in CI.
require() {
  local t
  for t in "$@"; do
    if ! command -v "$t" >/dev/null 2>&1; then
      if [ "${CI:-}" = true ]; then
        fail "required tool '$t' is missing (CI=true: not skipping)"
      fi
      echo "SKIP: '$t' is not installed" >&2
      exit 77
    fi
  done
}

# A python3 that has libnbd's bindings (Debian's python3-libnbd lives in the
# system interpreter, which a pyenv shim may hide).
libnbd_python() {
  local p
  for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null 2>&1 && (cd / && "$p" -c 'import nbd' 2>/dev/null); then
      echo "$p"
      return 0
    fi
  done
  if [ "${CI:-}" = true ]; then
    fail "python3 bindings of libnbd (python3-libnbd) are missing"
  fi
  echo "SKIP: python3-libnbd is not installed" >&2
  exit 77
}

# Scratch space, on tmpfs when there is one, removed at exit.
scratch() {
  local base=/tmp
  [ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
  WORK=$(mktemp -d "$base/udm-nbd-test.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
  SOCK=$WORK/nbd.sock
  export WORK SOCK
}

# serve ARGS... -- runs the captive host with --socket $SOCK and a timeout.
serve() {
  timeout --kill-after=5 100 "$SERVE" --socket "$SOCK" "$@"
}

# sectors FILE: size of FILE in 512-byte sectors.
sectors() {
  echo $(( $(wc -c < "$1") / 512 ))
}


# free_port and make_certs, shared with the tests that drive udmd.
source "$TESTDIR/tls-lib.sh"
