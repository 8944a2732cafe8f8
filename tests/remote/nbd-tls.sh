# SPDX-License-Identifier: LGPL-2.1-or-later
# nbds:// (TLS) backing: certificates made here by certtool, nbdkit with
# --tls=require --tls-verify-peer on TCP loopback and on a Unix socket.
# Data goes through; no TLS, or a certificate from another CA, is refused
# with libnbd's reason.
source "$(dirname "$0")/lib.sh"
require nbdkit certtool qemu-io
remote_scratch

pki=$WORK/pki
mkdir -p "$pki/server" "$pki/client" "$pki/other"
# cert DIR NAME KIND CA-DIR: a key and a certificate signed by CA-DIR's CA.
ca() {
  certtool --generate-privkey --outfile "$1/ca-key.pem" 2>/dev/null
  printf 'cn = %s\nca\ncert_signing_key\nexpiration_days = 2\n' "$2" > "$1/ca.info"
  certtool --generate-self-signed --load-privkey "$1/ca-key.pem" --template "$1/ca.info" \
    --outfile "$1/ca-cert.pem" >/dev/null 2>&1 || fail "certtool: CA"
}
cert() {
  certtool --generate-privkey --outfile "$1/$2-key.pem" 2>/dev/null
  printf 'cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\n%s\nencryption_key\nsigning_key\nexpiration_days = 2\n' \
    "$3" > "$1/$2.info"
  certtool --generate-certificate --load-ca-certificate "$4/ca-cert.pem" \
    --load-ca-privkey "$4/ca-key.pem" --load-privkey "$1/$2-key.pem" \
    --template "$1/$2.info" --outfile "$1/$2-cert.pem" >/dev/null 2>&1 || fail "certtool: $2"
}
ca "$pki/server" "udm test CA"
cert "$pki/server" server tls_www_server "$pki/server"
cp "$pki/server/ca-cert.pem" "$pki/client/"
cert "$pki/client" client tls_www_client "$pki/server"
ca "$pki/other" "another CA"
cert "$pki/other" client tls_www_client "$pki/other"

port=$(free_port)
start_nbdkit "$WORK/t.pid" --tls=require --tls-certificates="$pki/server" --tls-verify-peer \
  -i 127.0.0.1 -p "$port" memory 16M
start_nbdkit "$WORK/u.pid" --tls=require --tls-certificates="$pki/server" \
  -U "$WORK/t.sock" memory 16M

for dev in "nbd:nbds://localhost:$port/?tls-certificates=$pki/client" \
           "nbd:nbds+unix:///?socket=$WORK/t.sock&tls-certificates=$pki/client"; do
  serve --table d="0 32768 linear $dev 0" --run '
    set -e
    qemu-io -f raw -c "write -P 0x7e 1M 1M" -c "read -P 0x7e 1M 1M" "$uri" >/dev/null
    qemu-io -f raw -c "read -P 0x7e 1M 1M" "$uri" >/dev/null
  ' || fail "I/O over TLS failed ($dev)"
done
# The data is on the server: read it back directly with TLS.
nbdsh_ok=$(libnbd_python)
"$nbdsh_ok" -c "
import nbd, sys
h = nbd.NBD()
h.set_uri_allow_local_file(True)
h.connect_uri('nbds://localhost:$port/?tls-certificates=$pki/client')
sys.exit(0 if h.pread(4096, 1 << 20) == b'\x7e' * 4096 else 1)
" || fail "the server does not hold what was written through udm over TLS"

out=$(serve --table d="0 32768 linear nbd:nbd://localhost:$port/ 0" --run true 2>&1) &&
  fail "plain nbd:// to a server that requires TLS was accepted"
echo "$out" | grep -q "cannot connect to NBD server nbd://localhost:$port/" ||
  fail "no TLS: unclear error: $out"
out=$(serve --table d="0 32768 linear nbd:nbds://localhost:$port/?tls-certificates=$pki/other 0" \
  --run true 2>&1) && fail "a client certificate from another CA was accepted"
echo "$out" | grep -qi "cannot connect to NBD server nbds://.*\(certificate\|tls\|handshake\)" ||
  fail "wrong CA: unclear error: $out"
echo PASS
