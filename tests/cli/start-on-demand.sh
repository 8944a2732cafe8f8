# SPDX-License-Identifier: LGPL-2.1-or-later
# udm starts udmd when control.sock does not answer, and returns only once
# the daemon serves; concurrent starters end up with one daemon.
. "$(dirname "$0")/lib.sh"
[ -e "$UDM_RUNTIME_DIR" ] && fail "runtime dir exists before the test"
env -u UDMD "$UDM" ls >"$WORK/out" || fail "udm ls did not start udmd"
expect_eq "ls" "No devices found" "$(cat "$WORK/out")"
[ -S "$UDM_RUNTIME_DIR/control.sock" ] || fail "no control.sock after on-demand start"
pid=$(cat "$UDM_RUNTIME_DIR/udmd.lock")
kill -0 "$pid" || fail "udmd is not running"
[ "$(stat -c %a "$UDM_RUNTIME_DIR")" = 700 ] || fail "runtime dir mode $(stat -c %a "$UDM_RUNTIME_DIR")"
[ "$(stat -c %a "$UDM_RUNTIME_DIR/control.sock")" = 600 ] || fail "control.sock mode"
env -u UDMD "$UDM" create d --table "0 8 zero" || fail "create on the started daemon"
expect_eq "same daemon" "$pid" "$(cat "$UDM_RUNTIME_DIR/udmd.lock")"
kill "$pid"
for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done

# Five at once: all succeed, one daemon serves them.
export UDM_RUNTIME_DIR="$WORK/rt2"
pids=
for i in 1 2 3 4 5; do
  timeout $T env -u UDMD "$UDM" create "d$i" --table "0 8 zero" &
  pids="$pids $!"
done
for p in $pids; do wait "$p" || fail "a concurrent create failed"; done
[ "$(udm ls | wc -l)" = 5 ] || fail "not 5 devices: $(udm ls)"
echo ok
