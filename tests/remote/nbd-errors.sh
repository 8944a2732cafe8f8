# SPDX-License-Identifier: LGPL-2.1-or-later
# nbd: tables refused with a message naming the problem: a bad URI, an
# unknown or out-of-range parameter, an unreachable server, a missing
# export, connections=N on a server without multi-conn.  A read-only export
# gives a read-only device.
source "$(dirname "$0")/lib.sh"
require nbdkit nbdinfo qemu-io
remote_scratch

start_nbdkit "$WORK/m.pid" -U "$WORK/m.sock" --filter=multi-conn memory 16M \
  multi-conn-mode=disable
start_nbdkit "$WORK/r.pid" -r -U "$WORK/r.sock" memory 16M
start_nbdkit "$WORK/e.pid" -U "$WORK/e.sock" --filter=exportname memory 16M \
  exportname-strict=true exportname=good
port=$(free_port) # nothing listens there

# refused DEVICE EXPECTED-MESSAGE (an extended regex)
refused() {
  local out
  out=$(serve --table d="0 2048 linear $1 0" --run true 2>&1) && fail "accepted: $1"
  echo "$out" | grep -Eq "line 1: linear: $2" || fail "unclear error for $1: $out"
}
refused "nbd:http://example.com/x" "bad NBD URI 'http://example.com/x': it must start with nbd://"
refused "nbd:" "bad NBD URI ''"
refused "nbd:nbd+unix:///?socket=$WORK/m.sock&sockett=/x" "unknown parameter 'sockett' in the NBD URI"
refused "nbd:nbd+unix:///?socket=$WORK/m.sock&retries=-1" "invalid retries=-1 in the NBD URI \(a number from 0 to 1000\)"
refused "nbd:nbd+unix:///?socket=$WORK/m.sock&connections=17" "invalid connections=17"
refused "nbd:nbd+unix:///?socket=$WORK/m.sock&retry-delay=5ms" "invalid retry-delay=5ms"
refused "nbd:nbd://127.0.0.1:$port/" "cannot connect to NBD server nbd://127.0.0.1:$port/: .*Connection refused"
refused "nbd:nbd+unix:///?socket=$WORK/none.sock" "cannot connect to NBD server .*No such file or directory"
refused "nbd:nbd+unix:///bad?socket=$WORK/e.sock" "cannot connect to NBD server nbd\+unix:///bad.*"
refused "nbd:nbd+unix:///?socket=$WORK/m.sock&connections=2" \
  ".*connections=2, but the server does not allow multi-conn"

# The right export name connects.
serve --table d="0 2048 linear nbd:nbd+unix:///good?socket=$WORK/e.sock 0" --run true ||
  fail "export 'good' refused"
# A read-only export: the device is read-only, and says so.
serve --table d="0 2048 linear nbd:nbd+unix:///?socket=$WORK/r.sock 0" --run '
  set -e
  nbdinfo "$uri" | grep -q "is_read_only: true"
  ! qemu-io -f raw -c "write 0 4k" "$uri" 2>/dev/null
  qemu-io -f raw -r -c "read -P 0 0 4k" "$uri" >/dev/null
' || fail "a read-only export did not give a read-only device"
echo PASS
