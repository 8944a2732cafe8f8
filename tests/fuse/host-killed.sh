# SPDX-License-Identifier: LGPL-2.1-or-later
# When the exporting process is killed, nothing hangs: I/O on its loop
# device and its mount point fails promptly, the leftover loop device can
# be detached and the dead mount cleared, and a new export can use the
# same directory.
. "$(dirname "$0")/functions.sh"
requires_blockdev
requires blockdev

sparse "$tmp/d0" 64M
table="disk=0 $((64 * 2048)) linear $tmp/d0 0"
"$SERVE" --dir "$tmp/dev" --table "$table" --attach disk \
  --run "echo \$\$ >$tmp/sh.pid; echo \$dev >$tmp/dev.path; exec sleep 600" &
host=$!
for _ in $(seq 100); do
  [ -s "$tmp/dev.path" ] && break
  sleep 0.2
done
[ -s "$tmp/dev.path" ] || fail "the host did not start"
dev=$(cat "$tmp/dev.path")
timeout 20 dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct status=none ||
  fail "$dev unreadable while the host runs"

kill -KILL "$host"
wait "$host" 2>/dev/null || true
kill "$(cat "$tmp/sh.pid")" 2>/dev/null || true

set +e
timeout -k 5 30 dd if="$dev" of=/dev/null bs=4k count=1 skip=100 iflag=direct status=none
status=$?
timeout -k 5 30 ls "$tmp/dev" >/dev/null 2>&1
ls_status=$?
set -e
[ $status -ne 124 ] && [ $status -ne 137 ] || fail "I/O on $dev hung after the host died"
[ $status -ne 0 ] || fail "I/O on $dev succeeded with no host"
[ $ls_status -ne 124 ] && [ $ls_status -ne 137 ] || fail "the dead mount point hung"
echo "after the kill: I/O on $dev failed with status $status, ls with $ls_status"

timeout -k 5 60 "$SERVE" --cleanup --dir "$tmp/dev"
name=$(basename "$dev")
[ ! -e "/sys/block/$name/loop/backing_file" ] || fail "$dev is still attached"
! grep -q " $tmp/dev " /proc/mounts || fail "the dead mount is still there"

serve --table "$table" --attach disk --run 'dd if="$dev" of=/dev/null bs=1M count=4 iflag=direct status=none'
echo PASS
