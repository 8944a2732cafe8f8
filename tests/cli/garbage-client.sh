# SPDX-License-Identifier: LGPL-2.1-or-later
# Hostile bytes on control.sock get an error (or a closed connection), never
# a dead or stuck daemon; a silent client does not block others.
. "$(dirname "$0")/lib.sh"
start_udmd
udm create d --table "0 8 zero" || fail "create"
timeout 60 python3 -I - "$UDM_RUNTIME_DIR/control.sock" <<'PY' || fail "garbage client"
import socket, struct, sys, time
path = sys.argv[1]

def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s

def frame(*fields):
    body = b"".join(struct.pack(">I", len(f)) + f for f in fields)
    return struct.pack(">I", len(body)) + body

def answer(s):
    def exact(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                return None
            b += c
        return b
    h = exact(4)
    if h is None:
        return None
    body = exact(struct.unpack(">I", h)[0])
    out, i = [], 0
    while i < len(body):
        n = struct.unpack(">I", body[i:i + 4])[0]
        out.append(body[i + 4:i + 4 + n].decode())
        i += 4 + n
    return out

def expect_error(payload, errname, what):
    s = conn()
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)  # a frame cut short ends here
    try:
        a = answer(s)
    except ConnectionResetError:
        a = None
    s.close()
    assert a is None or (a[0] == "status=1" and a[1] == "errno=" + errname), (what, a)

# A client that connects and says nothing must not block the others.
idle = conn()
half = conn(); half.sendall(b"\x00\x00\x01")       # a header cut short
expect_error(b"GET / HTTP/1.0\r\n\r\n", "EBADMSG", "http")  # 1.1 GB length: refused
expect_error(struct.pack(">I", 0xFFFFFFFF), "EBADMSG", "4 GiB length")
expect_error(frame(b"op"), "EBADMSG", "field without =")
expect_error(frame(b"op=hello\x00"), "EBADMSG", "NUL in a field")
expect_error(frame(b"OP=hello"), "EBADMSG", "upper-case key")
expect_error(struct.pack(">I", 8) + struct.pack(">I", 100) + b"op=h", "EBADMSG", "field past end")
expect_error(frame(b"op=info"), "EPROTO", "request before hello")
expect_error(frame(b"op=hello"), "EPROTONOSUPPORT", "hello without version")
expect_error(frame(b"op=hello", b"version=0"), "EPROTONOSUPPORT", "version 0")
expect_error(bytes(range(256)) * 16, "EBADMSG", "binary junk")

# After a hello: unknown ops, arguments and bad values are errors, not crashes.
s = conn()
s.sendall(frame(b"op=hello", b"version=99"))
a = answer(s)
assert a[0] == "status=0" and "version=1" in a, a
for req, err in [((b"op=frobnicate",), "ENOTSUP"),
                 ((b"op=info", b"bogus=1"), "EINVAL"),
                 ((b"op=info", b"name=d", b"name=d"), "EINVAL"),
                 ((b"op=remove", b"name=d", b"force=yes"), "EINVAL"),
                 ((b"op=message", b"name=d", b"sector=-1", b"message=x"), "EINVAL"),
                 ((b"op=create", b"name=" + b"x" * 5000), "EINVAL"),
                 ((b"op=load", b"name=d"), "EINVAL"),
                 ((b"name=d", b"op=info"), "EPROTO")]:
    s.sendall(frame(*req))
    a = answer(s)
    assert a[0] == "status=1" and a[1] == "errno=" + err, (req, a)
    assert a[2].startswith("message=") and len(a[2]) > 8, a
# A table of 1000 lines of junk, then a fine request on the same connection.
s.sendall(frame(b"op=load", b"name=d", b"table=" + b"\xff\xfe junk\n" * 1000))
a = answer(s)
assert a[0] == "status=1" and a[1] == "errno=EINVAL", a
s.sendall(frame(b"op=info", b"name=d"))
a = answer(s)
assert a[0] == "status=0" and "name=d" in a, a
# 200 connections at once: the ones over the limit are turned away politely.
many = []
for i in range(200):
    try:
        many.append(conn())
    except OSError:
        break
time.sleep(0.5)
for c in many:
    c.close()
idle.close(); half.close()
PY
# The daemon still works, and the device kept its table.
expect_eq "table" "0 8 zero " "$(udm table d)"
udm create e --table "0 8 zero" || fail "create after the garbage"
kill -0 "$DAEMON_PID" || fail "udmd died"
echo ok
