# SPDX-License-Identifier: LGPL-2.1-or-later
# udmd under systemd: the built udmd.socket and udmd.service pass
# systemd-analyze verify, and udmd started the way udmd.socket starts it
# (systemd's own launcher, systemd-socket-activate, with the socket's
# ListenStream and the service's ExecStart arguments) serves the first udm
# command on the inherited socket; udm itself starts nothing.  The CI machine
# has no systemd as PID 1, so this runs systemd's activation code without the
# service manager around it.
. "$(dirname "$0")/lib.sh"
: "${BUILD_ROOT:?}"
need systemd-socket-activate
need systemd-analyze
service="$BUILD_ROOT/daemon/udmd.service"
socket="$BUILD_ROOT/daemon/udmd.socket"
apply_unit="$BUILD_ROOT/daemon/udm-apply.service"
[ -f "$service" ] && [ -f "$socket" ] || fail "no udmd.service/udmd.socket in $BUILD_ROOT/daemon"
[ -f "$apply_unit" ] || fail "no udm-apply.service in $BUILD_ROOT/daemon"

# The units as installed, with ExecStart pointing at the built udmd.
mkdir "$WORK/units"
sed "s#^ExecStart=[^ ]*/udmd#ExecStart=$UDMD#" "$service" >"$WORK/units/udmd.service"
cp "$socket" "$WORK/units/udmd.socket"
sed "s#^ExecStart=[^ ]*/udm #ExecStart=$UDM #" "$apply_unit" >"$WORK/units/udm-apply.service"
grep -q "^ExecStart=$UDMD " "$WORK/units/udmd.service" || fail "no ExecStart=.../udmd in $service"
grep -q "^ExecStart=$UDM apply " "$WORK/units/udm-apply.service" ||
  fail "no ExecStart=.../udm apply in $apply_unit"
(cd "$WORK/units" && timeout 60 systemd-analyze verify --man=no ./udmd.socket ./udmd.service \
  ./udm-apply.service) \
  >"$WORK/verify.log" 2>&1 || fail "systemd-analyze verify: $(cat "$WORK/verify.log")"
[ -s "$WORK/verify.log" ] && fail "systemd-analyze verify complains: $(cat "$WORK/verify.log")"

listen=$(sed -n 's/^ListenStream=//p' "$socket")
expect_eq "the socket unit listens where udm looks for root" "/run/udm/control.sock" "$listen"
args=$(sed -n 's#^ExecStart=[^ ]*/udmd *##p' "$service")
expect_eq "ExecStart arguments" "--foreground" "$args"

# systemd makes the directory (DirectoryMode=0700) and the socket; the test
# uses a private runtime directory instead of /run/udm.
mkdir -m 0700 "$UDM_RUNTIME_DIR"
sock="$UDM_RUNTIME_DIR/control.sock"
# shellcheck disable=SC2086 # $args is the unit's argument list
systemd-socket-activate -l "$sock" -E UDM_RUNTIME_DIR="$UDM_RUNTIME_DIR" \
  "$UDMD" $args -v 2>>"$WORK/udmd.log" &
DAEMON_PID=$!
for i in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || fail "systemd-socket-activate made no socket"
[ -e "$UDM_RUNTIME_DIR/udmd.lock" ] && fail "udmd runs before the first connection"

# UDMD=/nonexistent: had udm not found the socket, it could not start a daemon.
UDMD=/nonexistent udm create d --table "0 8 zero" || fail "udm create on the activated socket"
expect_eq "ls" "d	(253:0)" "$(UDMD=/nonexistent udm ls)"
# udm-apply.service's command on the same socket: the udmtab's devices come
# up, and a second run (a restart of the unit) changes nothing.
apply_args=$(sed -n 's#^ExecStart=[^ ]*/udm apply *##p' "$apply_unit")
expect_eq "udm-apply.service reads" "/etc/udm/udmtab" "$apply_args"
printf 'e "0 8 zero"\n' >"$WORK/udmtab"
expect_eq "udm-apply.service's command" "create e" "$(UDMD=/nonexistent udm apply "$WORK/udmtab")"
UDMD=/nonexistent udm apply "$WORK/udmtab" | grep -q "^nothing to do" || fail "second apply changed something"
pid=$(cat "$UDM_RUNTIME_DIR/udmd.lock")
grep -q "serving $UDM_RUNTIME_DIR (control socket from socket activation)" "$WORK/udmd.log" ||
  fail "udmd did not serve the inherited socket"

# Stopped, udmd leaves the socket to its owner (RemoveOnStop= is systemd's job).
kill -TERM "$pid"
for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$pid" 2>/dev/null && fail "udmd did not stop on SIGTERM"
[ -S "$sock" ] || fail "udmd removed the socket it inherited"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=

# A socket bound elsewhere is refused with a message naming both paths.
mkdir -m 0700 "$WORK/other"
other="$WORK/other/control.sock"
systemd-socket-activate -l "$other" -E UDM_RUNTIME_DIR="$UDM_RUNTIME_DIR" \
  "$UDMD" --foreground 2>"$WORK/wrong.log" &
DAEMON_PID=$!
for i in $(seq 100); do [ -S "$other" ] && break; sleep 0.05; done
UDM_RUNTIME_DIR="$WORK/other" UDMD=/nonexistent timeout "$T" "$UDM" ls >/dev/null 2>&1 &&
  fail "udm ls answered through a wrongly bound socket"
wait "$DAEMON_PID"
st=$?
DAEMON_PID=
[ "$st" -ne 0 ] || fail "udmd accepted a socket bound to $other"
grep -q "inherited socket is $other, but udm looks for $sock" "$WORK/wrong.log" ||
  fail "no message naming both paths: $(cat "$WORK/wrong.log")"

# The launchd plist of macOS (docs/service.md) parses and runs the same udmd.
plist="$(dirname "$0")/../../daemon/org.udm.udmd.plist.in"
expect_eq "launchd ProgramArguments" "@bindir@/udmd $args" \
  "$(/usr/bin/python3 -I -c 'import plistlib, sys
print(" ".join(plistlib.load(open(sys.argv[1], "rb"))["ProgramArguments"]))' "$plist")"
echo ok
