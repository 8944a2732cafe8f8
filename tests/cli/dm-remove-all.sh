# SPDX-License-Identifier: LGPL-2.1-or-later
# udm remove_all as dmsetup remove_all: every device nothing holds goes,
# stacked ones first; what stays is named with the reason; --force replaces
# the tables of the rest with error and removes them too.
. "$(dirname "$0")/lib.sh"
need nbdinfo
need_python_nbd
start_udmd
sparse "$WORK/a.img" 1M

mkstack() {
  udm create low --table "0 2048 linear $WORK/a.img 0" || fail "create low"
  udm create mid --table "0 1024 linear udm:low 0" || fail "create mid"
  udm create top --table "0 512 linear /dev/mapper/mid 0" || fail "create top"
  udm create side --table "0 8 zero" || fail "create side"
}

# Nothing open: all go, the stack from the top down.
mkstack
out=$(udm remove_all 2>&1) || fail "remove_all: $out"
expect_eq "remove_all prints nothing" "" "$out"
expect_eq "no device left" "No devices found" "$(udm ls)"
out=$(udm remove_all 2>&1) || fail "remove_all with no devices: $out"
expect_eq "remove_all with no devices" "" "$out"

# An NBD client holds top open: top stays, and so do the devices below it.
mkstack
"$PY_NBD" -I - "$(udm uri top)" "$WORK/go" <<'PY' &
import nbd, os, sys, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
open(sys.argv[2] + ".ready", "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
PY
client=$!
for i in $(seq 100); do [ -e "$WORK/go.ready" ] && break; sleep 0.05; done
udm remove_all 2>"$WORK/err" || fail "remove_all with an open device: $(cat "$WORK/err")"
expect_eq "what stays, and why" "udm: remove_all: low is used by the table of another device that stays
udm: remove_all: mid is used by the table of another device that stays
udm: remove_all: top is open (open count 1); --force replaces its table with error and removes it" \
  "$(cat "$WORK/err")"
expect_eq "devices left" "low	(253:4)
mid	(253:5)
top	(253:6)" "$(udm ls)"

# --force: top gets an error table (its client sees EIO) and everything goes.
udm remove_all --force 2>"$WORK/err" || fail "remove_all --force: $(cat "$WORK/err")"
expect_eq "remove_all --force says nothing when all went" "" "$(cat "$WORK/err")"
expect_eq "no device left after --force" "No devices found" "$(udm ls)"
echo go >"$WORK/go"
wait $client

# -f is --force; an attached device is detached by --force.
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && [ -c /dev/loop-control ]; then
  mkstack
  dev=$(udm attach top) || fail "attach top"
  udm remove_all 2>"$WORK/err"
  grep -qF "remove_all: top is open" "$WORK/err" || fail "an attached device is open: $(cat "$WORK/err")"
  udm remove_all -f 2>"$WORK/err" || fail "remove_all -f: $(cat "$WORK/err")"
  expect_eq "no device left after -f" "No devices found" "$(udm ls)"
  loop_bound "$dev" && fail "$dev is still bound after remove_all -f"
  [ -e "$UDM_RUNTIME_DIR/block/top" ] && fail "the link block/top stays"
fi
"$UDM" remove_all extra 2>/dev/null; [ $? = 2 ] || fail "remove_all takes no names"
echo ok
