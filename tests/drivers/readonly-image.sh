#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A read-write table over an image its driver can only read (qcow2) is a
# read-only device: the NBD export says READ_ONLY in the handshake and
# offers neither trim nor zero, while the same table over the raw file is
# writable.  The bytes read through it are qemu-img's.
source "$(dirname "$0")/lib.sh"
need qemu-img nbdinfo nbdcopy python3 cmp
if [ -z "${UDM_NBD_SERVE:-}" ]; then
  [ "${CI:-}" = "true" ] && fail "udm-nbd-serve is not built"
  echo "SKIP: udm-nbd-serve (nbd/) is not built"; exit 77
fi

pattern "$tmp/src.raw" 2
qemu-img convert -f raw -O qcow2 "$tmp/src.raw" "$tmp/img.qcow2"
n=$(sectors "qcow2:$tmp/img.qcow2")

"$UDM_NBD_SERVE" --socket "$tmp/nbd.sock" \
  --table img="0 $n linear qcow2:$tmp/img.qcow2 0" \
  --table raw="0 $n linear $tmp/src.raw 0" \
  --run '
  set -e
  nbdinfo --json "$uri" > "'"$tmp"'/img.json"
  nbdinfo --json "nbd+unix:///raw?socket=$sock" > "'"$tmp"'/raw.json"
  nbdcopy "$uri" "'"$tmp"'/copy.raw"
' || fail "a client failed"

python3 - "$tmp/img.json" "$tmp/raw.json" <<'PY' || fail "export flags"
import json, sys
img = json.load(open(sys.argv[1]))["exports"][0]
raw = json.load(open(sys.argv[2]))["exports"][0]
assert img["is_read_only"] is True, "the qcow2 export is not read-only"
assert not img["can_trim"] and not img["can_zero"], "trim or zero offered on it"
assert raw["is_read_only"] is False, "the raw export is read-only"
PY
cmp "$tmp/src.raw" "$tmp/copy.raw" || fail "bytes read through the qcow2 export"
echo "ok: a rw table over qcow2 exports read-only; over the raw file, writable"
