# SPDX-License-Identifier: LGPL-2.1-or-later
# NBD over TLS (NBD_OPT_STARTTLS) with X.509 certificates and a PSK, both
# made here by certtool and psktool, on a TCP listener that requires TLS:
# nbdinfo, nbdcopy and qemu-img get the bytes through TLS; plain clients,
# clients with a wrong key and clients without a certificate the CA signed
# (with --tls-verify-peer) are refused; the protocol's rules hold on a raw
# socket (tls-raw.py); with TLS merely on, plain and TLS clients both work.
source "$(dirname "$0")/lib.sh"
require nbdinfo nbdcopy qemu-img certtool psktool cmp truncate
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
scratch

make_certs "$WORK/certs"
# A client directory with the CA only: it can check the server, not prove itself.
mkdir "$WORK/anon" && cp "$WORK/certs/ca-cert.pem" "$WORK/anon/"
psktool -u alice -p "$WORK/keys.psk" >/dev/null
psktool -u alice -p "$WORK/wrong.psk" >/dev/null  # same name, another key
mkdir "$WORK/qpsk" && cp "$WORK/keys.psk" "$WORK/qpsk/keys.psk"  # qemu's layout

head -c 8M /dev/urandom > "$WORK/src"
truncate -s 16M "$WORK/backing"
table="0 32768 linear $WORK/backing 0"
export WORK PY TESTDIR

# run_tls MODE CREDS... -- COMMAND: a captive server on a fresh TCP port ($port).
run_tls() {
  local args=() port
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  port=$(free_port)
  serve --tcp "127.0.0.1:$port" "${args[@]}" --table disk="$table" \
        --run "port=$port; $1"
}

# X.509, required.
run_tls --tls require --tls-certificates "$WORK/certs" -- '
  set -e
  x="nbds://localhost:$port/disk?tls-certificates=$WORK/certs"
  nbdcopy "$WORK/src" "$x"
  nbdcopy "$x" "$WORK/out.x509"
  nbdinfo --size "$x" > "$WORK/size.x509"
  nbdinfo --list "nbds://localhost:$port/?tls-certificates=$WORK/certs" > "$WORK/list.x509"
  qemu-img convert -O raw --object tls-creds-x509,id=tls0,dir=$WORK/certs,endpoint=client \
    --image-opts driver=nbd,host=localhost,port=$port,export=disk,tls-creds=tls0 \
    "$WORK/out.qemu"
  if nbdinfo --size "nbd://localhost:$port/disk" 2> "$WORK/plain.err"; then
    echo "FAIL: a plain nbdinfo was served" >&2; exit 1; fi
  if qemu-img info "nbd://localhost:$port/disk" 2> "$WORK/plainq.err"; then
    echo "FAIL: a plain qemu-img was served" >&2; exit 1; fi
  "$PY" -I "$TESTDIR/tls-raw.py" require "$port"
  "$PY" -I "$TESTDIR/tls-raw.py" garbage "$port"
  nbdinfo --size "$x" > /dev/null
' || fail "X.509 with --tls require"
cmp -n 8388608 "$WORK/src" "$WORK/out.x509" || fail "nbdcopy over X.509 TLS: bytes differ"
cmp -n 8388608 "$WORK/src" "$WORK/out.qemu" || fail "qemu-img over X.509 TLS: bytes differ"
cmp -n 8388608 "$WORK/src" "$WORK/backing" || fail "the backing file lacks the bytes"
[ "$(cat "$WORK/size.x509")" = 16777216 ] || fail "size over TLS: $(cat "$WORK/size.x509")"
grep -q '^export="disk":' "$WORK/list.x509" || fail "the export list over TLS"
grep -q "requires TLS" "$WORK/plain.err" || fail "plain nbdinfo: $(cat "$WORK/plain.err")"
grep -q "requires TLS" "$WORK/plainq.err" || fail "plain qemu-img: $(cat "$WORK/plainq.err")"

# A client silent after STARTTLS is closed at the handshake deadline (1 s here).
run_tls --tls require --tls-certificates "$WORK/certs" --handshake-timeout 1000 -- '
  "$PY" -I "$TESTDIR/tls-raw.py" stalled "$port"
' || fail "a client stalled in the TLS handshake"

# X.509 with client certificates required.
run_tls --tls require --tls-certificates "$WORK/certs" --tls-verify-peer -- '
  set -e
  nbdinfo --size "nbds://localhost:$port/disk?tls-certificates=$WORK/certs" > "$WORK/size.peer"
  if nbdinfo --size "nbds://localhost:$port/disk?tls-certificates=$WORK/anon" \
       2> "$WORK/anon.err"; then
    echo "FAIL: a client without a certificate was served" >&2; exit 1; fi
' || fail "X.509 with --tls-verify-peer"
[ "$(cat "$WORK/size.peer")" = 16777216 ] || fail "client with a certificate"

# PSK, required.
rm -f "$WORK/out.psk" "$WORK/out.qpsk"
truncate -s 0 "$WORK/backing" && truncate -s 16M "$WORK/backing"
run_tls --tls require --tls-psk "$WORK/keys.psk" -- '
  set -e
  p="nbds://alice@localhost:$port/disk?tls-psk-file=$WORK/keys.psk"
  nbdcopy "$WORK/src" "$p"
  nbdcopy "$p" "$WORK/out.psk"
  qemu-img convert -O raw \
    --object tls-creds-psk,id=tls0,dir=$WORK/qpsk,username=alice,endpoint=client \
    --image-opts driver=nbd,host=localhost,port=$port,export=disk,tls-creds=tls0 \
    "$WORK/out.qpsk"
  if nbdinfo --size "nbds://alice@localhost:$port/disk?tls-psk-file=$WORK/wrong.psk" \
       2> "$WORK/wrong.err"; then
    echo "FAIL: a client with the wrong key was served" >&2; exit 1; fi
  if nbdinfo --size "nbd://localhost:$port/disk" 2>/dev/null; then
    echo "FAIL: a plain client was served" >&2; exit 1; fi
' || fail "PSK with --tls require"
cmp -n 8388608 "$WORK/src" "$WORK/out.psk" || fail "nbdcopy over PSK TLS: bytes differ"
cmp -n 8388608 "$WORK/src" "$WORK/out.qpsk" || fail "qemu-img over PSK TLS: bytes differ"

# TLS on (not required): both kinds of client are served.
run_tls --tls on --tls-psk "$WORK/keys.psk" -- '
  set -e
  nbdinfo --size "nbds://alice@localhost:$port/disk?tls-psk-file=$WORK/keys.psk" > "$WORK/on.tls"
  nbdinfo --size "nbd://localhost:$port/disk" > "$WORK/on.plain"
' || fail "--tls on"
[ "$(cat "$WORK/on.tls")" = 16777216 ] && [ "$(cat "$WORK/on.plain")" = 16777216 ] ||
  fail "--tls on: a client was not served"

# TLS off: STARTTLS is refused by policy and the session goes on in clear.
serve --table disk="$table" --run '"$PY" -I "$TESTDIR/tls-raw.py" off "$sock"' ||
  fail "STARTTLS on a server without TLS"

# Bad credentials are refused at start, naming the problem.
if "$SERVE" --socket "$SOCK" --tls require --table disk="$table" --run true 2> "$WORK/e1"; then
  fail "--tls require without credentials started"; fi
grep -q "needs certificates or a PSK file" "$WORK/e1" || fail "no-credentials message: $(cat "$WORK/e1")"
echo "alice:xyz" > "$WORK/bad.psk"
if "$SERVE" --socket "$SOCK" --tls on --tls-psk "$WORK/bad.psk" --table disk="$table" \
     --run true 2> "$WORK/e2"; then
  fail "a malformed PSK file was accepted"; fi
grep -q "line 1: expected IDENTITY:HEXKEY" "$WORK/e2" || fail "bad PSK message: $(cat "$WORK/e2")"
printf '\n\n' > "$WORK/empty.psk"
if "$SERVE" --socket "$SOCK" --tls on --tls-psk "$WORK/empty.psk" --table disk="$table" \
     --run true 2> "$WORK/e4"; then
  fail "a PSK file without a key was accepted"; fi
grep -q "holds no key" "$WORK/e4" || fail "empty PSK file message: $(cat "$WORK/e4")"
# A last line ending in CR without a newline is still a key (and no endless loop).
printf 'alice:00ff\r' > "$WORK/cr.psk"
timeout 20 "$SERVE" --socket "$SOCK" --tls on --tls-psk "$WORK/cr.psk" --table disk="$table" \
  --run true || fail "a PSK file whose last line ends in CR"
if "$SERVE" --socket "$SOCK" --tls on --tls-certificates "$WORK/anon" --table disk="$table" \
     --run true 2> "$WORK/e3"; then
  fail "a certificate directory without a server certificate was accepted"; fi
grep -q "server-cert.pem" "$WORK/e3" || fail "missing-certificate message: $(cat "$WORK/e3")"
echo PASS
