# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the driver tests: a scratch directory, skips, failures.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
# Exit 77 (skip) when a tool is absent, except in CI where it must be present.
need() {
  for t in "$@"; do
    if ! command -v "$t" >/dev/null 2>&1; then
      if [ "${CI:-}" = "true" ]; then fail "$t is required in CI"; fi
      echo "SKIP: $t not installed"; exit 77
    fi
  done
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/udm-drivers-XXXXXX")
cleanup_hooks=()
cleanup() {
  local h
  for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# sectors IMAGE-SPEC: the length in sectors of a table over the whole image.
sectors() { "$UDM_IMAGE" table "$1" | awk '{print $2}'; }
# dump SPEC OUT [image-dump args...]: every byte of a linear device over SPEC.
dump() {
  local spec=$1 out=$2; shift 2
  local n; n=$(sectors "$spec") || fail "udm-image table $spec"
  "$IMAGE_DUMP" "$@" --table "0 $n linear $spec 0" "$out"
}
# Pattern data that compresses a little but not to nothing.
pattern() { # pattern FILE MiB
  python3 - "$1" "$2" <<'PY'
import sys, random
r = random.Random(7)
with open(sys.argv[1], 'wb') as f:
    for i in range(int(sys.argv[2]) * 16):
        word = bytes(r.randrange(256) for _ in range(16))
        f.write(word * 4096)
PY
}
