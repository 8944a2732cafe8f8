# SPDX-License-Identifier: LGPL-2.1-or-later
# Only the daemon's user reaches its devices: the runtime directory is made
# 0700 even when it existed with a looser mode, both sockets are 0600, and
# a TCP listener without a host binds to loopback, not to every interface.
. "$(dirname "$0")/lib.sh"
mkdir -m 0755 "$UDM_RUNTIME_DIR"
port=$(python3 -I -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_udmd --nbd-tcp ":$port"
expect_eq "runtime directory mode" "700" "$(stat -c %a "$UDM_RUNTIME_DIR")"
expect_eq "control.sock mode" "600" "$(stat -c %a "$UDM_RUNTIME_DIR/control.sock")"
expect_eq "nbd.sock mode" "600" "$(stat -c %a "$UDM_RUNTIME_DIR/nbd.sock")"
# The listening sockets on $port, from the kernel's tables: loopback only.
listening=$(python3 -I - "$port" <<'PY'
import sys
port = int(sys.argv[1])
for name in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        lines = open(name).read().splitlines()[1:]
    except OSError:
        continue
    for l in lines:
        f = l.split()
        addr, p = f[1].split(":")
        if int(p, 16) == port and f[3] == "0A":  # LISTEN
            print(name[-4:].strip("/"), addr)
PY
)
[ -n "$listening" ] || fail "nothing listens on port $port"
while read -r family addr; do
  case "$family:$addr" in
    tcp:0100007F | tcp6:00000000000000000000000001000000) ;;
    *) fail "port $port is bound to $family $addr, not to loopback: $listening" ;;
  esac
done <<<"$listening"
udm create d --table "0 8 zero" || fail "create"
if command -v nbdinfo >/dev/null; then
  size=$(nbdinfo --size "nbd://127.0.0.1:$port/d") || fail "nbdinfo over loopback TCP"
  expect_eq "size over TCP" 4096 "$size"
fi
stop_udmd
echo ok
