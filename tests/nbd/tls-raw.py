# SPDX-License-Identifier: LGPL-2.1-or-later
# STARTTLS rules on a raw socket, against a server that requires TLS
# ("require PORT") or one without TLS ("off SOCKET"):
#  - before TLS, options other than STARTTLS and ABORT get NBD_REP_ERR_TLS_REQD,
#    and EXPORT_NAME (which cannot be refused) closes the connection;
#  - STARTTLS with data is invalid; plaintext sent after STARTTLS in the same
#    flight (the injection attack) closes the connection before any ACK;
#  - a server without TLS refuses STARTTLS with NBD_REP_ERR_POLICY.
#  - garbage instead of a TLS handshake closes the connection ("garbage PORT"),
#    and so does silence after STARTTLS, at the handshake deadline ("stalled PORT").
# Usage: tls-raw.py require|garbage|stalled PORT | tls-raw.py off SOCKET
import os
import socket
import struct
import sys

# -I leaves the script's folder off sys.path: the shared module is beside it
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawsock import closed, greet, option, read_reply as reply  # noqa: E402

MODE, WHERE = sys.argv[1], sys.argv[2]
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_GO = 1, 2, 3, 5, 7
OPT_STRUCTURED = 8
REP_ACK = 1
ERR_POLICY, ERR_INVALID, ERR_TLS_REQD = 2**31 + 2, 2**31 + 3, 2**31 + 5
failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg, file=sys.stderr)


def connect_tcp():
    s = socket.create_connection(("127.0.0.1", int(WHERE)), timeout=10)
    greet(s)
    return s


def connect_unix():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(WHERE)
    greet(s)
    return s




def required():
    # Every option but STARTTLS and ABORT is refused before TLS.
    s = connect_tcp()
    for opt, data in ((OPT_LIST, b""), (OPT_STRUCTURED, b""),
                      (OPT_GO, struct.pack(">I", 4) + b"disk" + struct.pack(">H", 0)),
                      (42, b"")):
        s.sendall(option(opt, data))
        o, t, _ = reply(s)
        if (o, t) != (opt, ERR_TLS_REQD):
            fail("option %d before TLS: reply %#x, want TLS_REQD" % (opt, t))
    s.sendall(option(OPT_STARTTLS, b"x"))
    o, t, _ = reply(s)
    if t != ERR_INVALID:
        fail("STARTTLS with data: reply %#x, want INVALID" % t)
    s.sendall(option(OPT_ABORT))
    o, t, _ = reply(s)
    if t != REP_ACK:
        fail("ABORT before TLS: reply %#x, want ACK" % t)
    s.close()

    # EXPORT_NAME cannot be refused: the server hangs up.
    s = connect_tcp()
    s.sendall(option(OPT_EXPORT_NAME, b"disk"))
    if not closed(s):
        fail("EXPORT_NAME before TLS did not close the connection")
    s.close()

    # Plaintext queued behind STARTTLS must never be taken as protected.
    s = connect_tcp()
    s.sendall(option(OPT_STARTTLS) + option(OPT_LIST))
    try:
        data = s.recv(65536)
    except (ConnectionResetError, socket.timeout):
        data = b""
    if data:
        fail("STARTTLS followed by plaintext got %d bytes of reply, want a hang-up"
             % len(data))
    s.close()



def garbage():
    """Garbage where the TLS handshake should be: the connection closes
    (after an alert, maybe), and the server goes on serving."""
    s = connect_tcp()
    s.sendall(option(OPT_STARTTLS))
    o, t, _ = reply(s)
    if t != REP_ACK:
        fail("STARTTLS: reply %#x, want ACK" % t)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")  # no TLS record starts with 'G'

    if not closed(s):
        fail("garbage instead of a TLS handshake did not close the connection")
    s.close()


def stalled():
    """A client that stops after STARTTLS is closed by the handshake deadline."""
    s = connect_tcp()
    s.sendall(option(OPT_STARTTLS))
    o, t, _ = reply(s)
    if t != REP_ACK:
        fail("STARTTLS: reply %#x, want ACK" % t)
    if not closed(s):
        fail("a client silent after STARTTLS was not closed by the deadline")
    s.close()


def off():
    # A listener without TLS refuses STARTTLS by policy, and goes on in clear.
    s = connect_unix()
    s.sendall(option(OPT_STARTTLS))
    o, t, _ = reply(s)
    if t != ERR_POLICY:
        fail("STARTTLS where TLS is off: reply %#x, want POLICY" % t)
    s.sendall(option(OPT_LIST))
    o, t, _ = reply(s)
    while t != REP_ACK and t < 2**31:
        o, t, _ = reply(s)
    if t != REP_ACK:
        fail("LIST after a refused STARTTLS: reply %#x" % t)
    s.close()



{"require": required, "off": off, "garbage": garbage, "stalled": stalled}[MODE]()
sys.exit(1 if failures else 0)
