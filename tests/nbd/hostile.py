# SPDX-License-Identifier: LGPL-2.1-or-later
# A hostile or broken NBD client on a raw socket.  Every case must end in a
# protocol error or a closed connection, never a crash or a hang; afterwards
# the server must still serve.  Usage: hostile.py SOCKET EXPORT SIZE
import os
import random
import socket
import struct
import sys
import time

# -I leaves the script's folder off sys.path: the shared module is beside it
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawsock import (IHAVEOPT, closed, greet, option, read_reply,  # noqa: E402
                     recv_exact)

SOCK, EXPORT, SIZE = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_GO, OPT_STRUCTURED = 1, 2, 3, 7, 8
OPT_SET_META = 10
REP_ACK, REP_INFO = 1, 3
ERR_UNSUP, ERR_INVALID, ERR_UNKNOWN, ERR_TOO_BIG = (2**31 + 1, 2**31 + 3,
                                                   2**31 + 6, 2**31 + 9)
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
EINVAL, ENOSPC = 22, 28
failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg, file=sys.stderr)


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(SOCK)
    return s


def send_opt(s, opt, data=b"", length=None):
    s.sendall(option(opt, data, length))


def go(s, name=EXPORT, structured=False):
    if structured:
        send_opt(s, OPT_STRUCTURED)
        assert read_reply(s)[1] == REP_ACK
    send_opt(s, OPT_GO, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))
    while True:
        _, rtype, data = read_reply(s)
        if rtype == REP_ACK:
            return
        if rtype != REP_INFO:
            raise RuntimeError("GO refused: %x %r" % (rtype, data))


def request(s, cmd, off, length, flags=0, cookie=7, payload=b""):
    s.sendall(struct.pack(">IHHQQI", 0x25609513, flags, cmd, cookie, off, length)
              + payload)


def simple_reply(s):
    magic, err, cookie = struct.unpack(">IIQ", recv_exact(s, 16))
    assert magic == 0x67446698, "bad simple reply magic %x" % magic
    return err, cookie


def case(name):
    def wrap(fn):
        try:
            fn()
            print("ok", name)
        except Exception as e:  # a case that blows up is a failed case
            fail("%s: %s: %s" % (name, type(e).__name__, e))
        return fn
    return wrap


@case("bad greeting magic from the client")
def _():
    s = connect()
    recv_exact(s, 18)
    s.sendall(b"\0\0\0\3" + b"GARBAGE!" * 4)
    if not closed(s):
        fail("server kept a connection with a bad option magic")


@case("unknown client flags")
def _():
    s = connect()
    greet(s, cflags=0xffffffff)
    if not closed(s):
        fail("server accepted unknown client flags")


@case("unknown option, then a normal GO")
def _():
    s = connect()
    greet(s)
    send_opt(s, 0x7777, b"whatever" * 10)
    if read_reply(s)[1] != ERR_UNSUP:
        fail("unknown option not refused with ERR_UNSUP")
    send_opt(s, OPT_GO, struct.pack(">I", 1000) + b"x")  # name overruns
    if read_reply(s)[1] != ERR_INVALID:
        fail("malformed GO not refused with ERR_INVALID")
    send_opt(s, OPT_GO, struct.pack(">I", 7) + b"missing" + struct.pack(">H", 0))
    if read_reply(s)[1] != ERR_UNKNOWN:
        fail("GO of a missing export not ERR_UNKNOWN")
    send_opt(s, OPT_LIST, b"junk")
    if read_reply(s)[1] != ERR_INVALID:
        fail("LIST with data not ERR_INVALID")
    send_opt(s, OPT_SET_META, b"\0\0\0\0")  # before structured replies
    if read_reply(s)[1] != ERR_INVALID:
        fail("SET_META_CONTEXT without structured replies accepted")
    go(s)
    request(s, CMD_READ, 0, 4096)
    err, _ = simple_reply(s)
    recv_exact(s, 4096)
    if err:
        fail("read after bad options: error %d" % err)


@case("huge option length")
def _():
    s = connect()
    greet(s)
    send_opt(s, OPT_GO, b"", length=0xfffffff0)
    if not closed(s):
        fail("server waits for a 4 GiB option")


@case("oversized option is skipped and refused")
def _():
    s = connect()
    greet(s)
    send_opt(s, 0x42, b"\0" * (100 * 1024))
    if read_reply(s)[1] != ERR_TOO_BIG:
        fail("100 KiB option not refused with ERR_TOO_BIG")
    send_opt(s, OPT_ABORT)
    read_reply(s)
    closed(s)


@case("old-style NBD_OPT_EXPORT_NAME")
def _():
    s = connect()
    greet(s, cflags=1)  # fixed newstyle, but wants the 124 zero bytes
    send_opt(s, OPT_EXPORT_NAME, EXPORT)
    size, flags = struct.unpack(">QH", recv_exact(s, 10))
    if recv_exact(s, 124) != bytes(124):
        fail("EXPORT_NAME: no zero padding")
    if size != SIZE or not flags & 1:
        fail("EXPORT_NAME: size %d flags %x" % (size, flags))
    request(s, CMD_FLUSH, 0, 0)
    if simple_reply(s)[0]:
        fail("flush after EXPORT_NAME")
    request(s, CMD_DISC, 0, 0)
    if not closed(s):
        fail("DISC did not close")


@case("EXPORT_NAME of a missing export closes")
def _():
    s = connect()
    greet(s)
    send_opt(s, OPT_EXPORT_NAME, b"no-such-device")
    if not closed(s):
        fail("EXPORT_NAME of a missing export kept open")


@case("bad requests get errors and the stream stays in sync")
def _():
    s = connect()
    greet(s)
    go(s)
    checks = [
        ((CMD_READ, SIZE, 4096), EINVAL, "read past the end"),
        ((CMD_READ, SIZE - 512, 4096), EINVAL, "read across the end"),
        ((CMD_READ, 0, 1 << 30), EINVAL, "1 GiB read"),
        ((CMD_READ, 0, 0), EINVAL, "zero-length read"),
        ((CMD_READ, 2**64 - 512, 1024), EINVAL, "offset wraps around"),
        ((99, 0, 4096), EINVAL, "unknown command"),
        ((CMD_READ, 0, 4096, 0x80), EINVAL, "unknown flag"),
        ((CMD_READ, 0, 4096, 4), EINVAL, "DF without structured replies"),
    ]
    for i, (args, want, what) in enumerate(checks):
        request(s, *args, cookie=1000 + i)
        err, cookie = simple_reply(s)
        if err != want or cookie != 1000 + i:
            fail("%s: error %d cookie %d" % (what, err, cookie))
    request(s, CMD_WRITE, SIZE, 4096, cookie=5, payload=b"z" * 4096)
    err, cookie = simple_reply(s)
    if err != ENOSPC or cookie != 5:
        fail("write past the end: error %d" % err)
    # NBD does not order requests in flight: wait for the write's reply
    # before reading what it wrote.
    request(s, CMD_WRITE, 8192, 4096, cookie=6, payload=b"w" * 4096)
    err, cookie = simple_reply(s)
    if err != 0 or cookie != 6:
        fail("write after errors: error %d cookie %d" % (err, cookie))
    request(s, CMD_READ, 8192, 4096, cookie=8)
    err, cookie = simple_reply(s)
    data = recv_exact(s, 4096) if err == 0 else None
    if err != 0 or cookie != 8 or data != b"w" * 4096:
        fail("read after errors: error %d cookie %d" % (err, cookie))


@case("write longer than 32 MiB closes")
def _():
    s = connect()
    greet(s)
    go(s)
    request(s, CMD_WRITE, 0, 64 << 20)
    err, _ = simple_reply(s)
    if err != EINVAL:
        fail("64 MiB write: error %d" % err)
    if not closed(s):
        fail("64 MiB write: connection kept")


@case("bad request magic closes")
def _():
    s = connect()
    greet(s)
    go(s, structured=True)
    s.sendall(b"\xde\xad\xbe\xef" + b"\0" * 24)
    if not closed(s):
        fail("bad request magic kept")


@case("structured error chunk for a bad read")
def _():
    s = connect()
    greet(s)
    go(s, structured=True)
    request(s, CMD_READ, SIZE, 4096, cookie=77)
    magic, flags, rtype, cookie, length = struct.unpack(">IHHQI", recv_exact(s, 20))
    payload = recv_exact(s, length)
    err, mlen = struct.unpack(">IH", payload[:6])
    if (magic, flags & 1, rtype, cookie, err) != (0x668e33ef, 1, 32769, 77, EINVAL):
        fail("structured error: %x %x %d %d %d" % (magic, flags, rtype, cookie, err))
    if mlen != len(payload) - 6:
        fail("structured error message length")


@case("disconnect in the middle of a write payload")
def _():
    for cut in (0, 1, 1000, 65536, 1 << 20):
        s = connect()
        greet(s)
        go(s)
        request(s, CMD_WRITE, 0, 2 << 20, payload=b"p" * cut)
        s.close()


@case("disconnects at every point of the handshake")
def _():
    for cut in range(0, 40):
        s = connect()
        recv_exact(s, 18)
        msg = struct.pack(">I", 3) + struct.pack(">QII", IHAVEOPT, OPT_GO, 10)
        s.sendall(msg[:cut])
        s.close()


@case("random garbage")
def _():
    rnd = random.Random(1)
    for i in range(300):
        s = connect()
        try:
            if i % 2:
                greet(s)
                if i % 4 == 1:
                    go(s, structured=bool(i % 8 == 1))
            s.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 200))))
            s.settimeout(0.05)
            try:
                s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                pass
        except (BrokenPipeError, ConnectionResetError, EOFError):
            pass
        s.close()


@case("many requests in flight, replies matched by cookie")
def _():
    s = connect()
    greet(s)
    go(s)
    n = 256
    blob = b"".join(struct.pack(">IHHQQI", 0x25609513, 0, CMD_READ, 5000 + i,
                                (i % 64) * 4096, 4096) for i in range(n))
    s.sendall(blob)
    seen = set()
    for _ in range(n):
        err, cookie = simple_reply(s)
        recv_exact(s, 4096)
        if err:
            fail("pipelined read error %d" % err)
        seen.add(cookie)
    if seen != set(range(5000, 5000 + n)):
        fail("pipelined cookies do not match")


# An idle client holds a connection (in transmission) while we exit: the
# server must still tear down promptly.  The child outlives this script.
if os.fork() == 0:
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # do not hold the test harness's pipes
            os.dup2(devnull, fd)
        with open(os.environ["IDLE_PID_FILE"], "w") as f:
            f.write(str(os.getpid()))
        s = connect()
        greet(s)
        go(s)
        h = connect()  # and one that never says anything
        time.sleep(30)
    finally:
        os._exit(0)

sys.exit(1 if failures else 0)
