#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# udmd --nbd-tcp with --tls=require: a TLS client (nbdinfo, nbdcopy with
# X.509 certificates made by certtool) is served on TCP, a plain one is
# refused, and nbd.sock still serves local clients without TLS; bad TLS
# options are refused before udmd starts, each with a message naming it.
. "$(dirname "$0")/../cli/lib.sh"
TESTDIR=$(cd "$(dirname "$0")" && pwd)
. "$TESTDIR/tls-lib.sh"
for t in certtool nbdinfo nbdcopy; do
  command -v "$t" >/dev/null || { [ "${CI:-}" = true ] && fail "$t is missing"; echo "SKIP: no $t"; exit 77; }
done

make_certs "$WORK/certs"
port=$(free_port)
start_udmd --nbd-tcp "127.0.0.1:$port" --tls=require --tls-certificates "$WORK/certs"
sparse "$WORK/backing" 8M
udm create disk --table "0 16384 linear $WORK/backing 0" || fail "create disk"
head -c 4M /dev/urandom > "$WORK/src"

x="nbds://localhost:$port/disk?tls-certificates=$WORK/certs"
timeout "$T" nbdcopy "$WORK/src" "$x" || fail "nbdcopy to udmd over TLS"
timeout "$T" nbdcopy "$x" "$WORK/out" || fail "nbdcopy from udmd over TLS"
cmp -n 4194304 "$WORK/src" "$WORK/out" || fail "bytes read over TLS differ"
cmp -n 4194304 "$WORK/src" "$WORK/backing" || fail "the backing file lacks the bytes"
if timeout "$T" nbdinfo --size "nbd://localhost:$port/disk" 2>"$WORK/plain.err"; then
  fail "a plain TCP client was served although TLS is required"
fi
grep -q "requires TLS" "$WORK/plain.err" || fail "plain client: $(cat "$WORK/plain.err")"
expect_eq "size on nbd.sock, in clear" 8388608 "$(timeout "$T" nbdinfo --size "$(udm uri disk)")"
udm remove disk || fail "remove disk"
stop_udmd
[ "$DAEMON_STATUS" = 0 ] || fail "udmd exited $DAEMON_STATUS"

# Option checks (no daemon starts).
bad() {
  local key=$1
  shift
  "$UDMD" -f "$@" >"$WORK/out" 2>"$WORK/err" && fail "udmd $* started"
  grep -qF -- "$key" "$WORK/err" || fail "udmd $*: stderr lacks '$key': $(cat "$WORK/err")"
}
bad "needs --tls-certificates DIR or --tls-psk FILE" --nbd-tcp "127.0.0.1:$port" --tls=on
bad "not off, on or require" --nbd-tcp "127.0.0.1:$port" --tls=maybe
bad "choose one" --nbd-tcp "127.0.0.1:$port" --tls=on --tls-certificates "$WORK/certs" \
  --tls-psk "$WORK/x"
bad "give --nbd-tcp too" --tls=require --tls-certificates "$WORK/certs"
bad "but not --tls=on|require" --nbd-tcp "127.0.0.1:$port" --tls-certificates "$WORK/certs"
bad "--tls-verify-peer needs --tls-certificates" --nbd-tcp "127.0.0.1:$port" --tls-verify-peer
bad "server-cert.pem" --nbd-tcp "127.0.0.1:$port" --tls=on --tls-certificates "$WORK"
echo PASS
