# SPDX-License-Identifier: LGPL-2.1-or-later
# For the TLS tests: a free TCP port, and certificates made by certtool.
# free_port: a TCP port on 127.0.0.1 that nobody listens on right now.
free_port() {
  /usr/bin/python3 -I -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# make_certs DIR: a CA, a server certificate for localhost/127.0.0.1 and a
# client certificate, made by certtool in the layout nbdkit, qemu and libnbd
# read (ca-cert.pem, server-{cert,key}.pem, client-{cert,key}.pem).
make_certs() {
  local d=$1
  mkdir -p "$d"
  cat > "$d/ca.info" <<INFO
cn = udm test CA
ca
cert_signing_key
expiration_days = 2
INFO
  cat > "$d/server.info" <<INFO
organization = udm test
cn = localhost
dns_name = localhost
ip_address = 127.0.0.1
tls_www_server
encryption_key
signing_key
expiration_days = 2
INFO
  cat > "$d/client.info" <<INFO
organization = udm test
cn = udm test client
tls_www_client
encryption_key
signing_key
expiration_days = 2
INFO
  local who
  certtool --generate-privkey --key-type=ecdsa --outfile "$d/ca-key.pem" 2>/dev/null
  certtool --generate-self-signed --load-privkey "$d/ca-key.pem" \
    --template "$d/ca.info" --outfile "$d/ca-cert.pem" 2>/dev/null
  for who in server client; do
    certtool --generate-privkey --key-type=ecdsa --outfile "$d/$who-key.pem" 2>/dev/null
    certtool --generate-certificate --load-ca-certificate "$d/ca-cert.pem" \
      --load-ca-privkey "$d/ca-key.pem" --load-privkey "$d/$who-key.pem" \
      --template "$d/$who.info" --outfile "$d/$who-cert.pem" 2>/dev/null
  done
  chmod 0600 "$d"/*-key.pem
}
