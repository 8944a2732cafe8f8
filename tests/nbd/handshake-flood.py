# SPDX-License-Identifier: LGPL-2.1-or-later
# Idle, half-finished handshakes cannot lock real clients out: a flood of
# more idle connections than the server has slots leaves at most a quarter
# of the slots to them, a real client (nbdinfo) still connects in the
# middle of the flood, an idle connection is closed at the handshake
# deadline (not before), and an established connection outlives it.
# Usage: handshake-flood.py SOCKET URI EXPORT SIZE DEADLINE_SECONDS
import os
import resource
import socket
import struct
import subprocess
import sys
import time

# -I leaves the script's folder off sys.path: the shared module is beside it
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawsock import IHAVEOPT, REPLY_MAGIC, recv_exact  # noqa: E402

SOCK, URI, EXPORT, SIZE = sys.argv[1], sys.argv[2], sys.argv[3].encode(), int(sys.argv[4])
DEADLINE = float(sys.argv[5])
FLOOD = 1100           # more than the server's 1024 connection slots
HANDSHAKE_SLOTS = 256  # a quarter of them
OPT_GO, REP_ACK = 7, 1
failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg, file=sys.stderr)


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)  # blocking: waits for room in the listen backlog
    s.settimeout(10)
    return s


def hung_up(s):
    """True when the server has closed s already (EOF or reset, no waiting)."""
    s.setblocking(False)
    try:
        while True:
            if not s.recv(65536):
                return True
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        s.setblocking(True)


def established():
    """A connection through NBD_OPT_GO, in transmission."""
    s = connect()
    recv_exact(s, 18)
    s.sendall(struct.pack(">L", 3))
    data = struct.pack(">L", len(EXPORT)) + EXPORT + struct.pack(">H", 0)
    s.sendall(struct.pack(">QLL", IHAVEOPT, OPT_GO, len(data)) + data)
    while True:
        magic, opt, rtype, rlen = struct.unpack(">QLLL", recv_exact(s, 20))
        if magic != REPLY_MAGIC:
            raise EOFError("bad option reply magic")
        recv_exact(s, rlen)
        if rtype == REP_ACK:
            return s
        if rtype & 0x80000000:
            raise EOFError("NBD_OPT_GO refused: 0x%x" % rtype)


def read_works(s):
    s.sendall(struct.pack(">LHHQQL", 0x25609513, 0, 0, 9, 0, 512))
    magic, err, cookie = struct.unpack(">LLQ", recv_exact(s, 16))
    recv_exact(s, 512)
    return magic == 0x67446698 and err == 0 and cookie == 9


soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = FLOOD + 64
if hard != resource.RLIM_INFINITY and hard < want:
    try:  # root may raise it
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, want))
        hard = want
    except (ValueError, OSError):
        print("SKIP: the open file limit (%d) is below %d" % (hard, want))
        sys.exit(77)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))

est = established()
start = time.monotonic()
flood = []
for i in range(FLOOD):
    try:
        flood.append(connect())
    except OSError as e:
        fail("connection %d of the flood: %s" % (i, e))
        break
flooded = time.monotonic() - start
if flooded > DEADLINE / 2:
    print("note: the flood took %.1f s of the %.0f s deadline" % (flooded, DEADLINE))

# A real client in the middle of the flood.
r = subprocess.run(["nbdinfo", "--size", URI], capture_output=True, text=True, timeout=20)
if r.returncode != 0 or r.stdout.strip() != str(SIZE):
    fail("nbdinfo during the flood: exit %d, out %r, err %r"
         % (r.returncode, r.stdout, r.stderr))
if time.monotonic() - start >= DEADLINE:
    print("note: nbdinfo ran after the flood's deadline: the cap was not what let it in")

# The server holds at most its handshake slots for the flood.
time.sleep(0.2)
kept = sum(1 for s in flood if not hung_up(s))
if kept > HANDSHAKE_SLOTS:
    fail("%d idle handshakes kept open (at most %d allowed)" % (kept, HANDSHAKE_SLOTS))
for s in flood:
    s.close()

# One idle connection alone: closed at the deadline, not before.
probe = connect()
recv_exact(probe, 18)  # the greeting: it was accepted
t0 = time.monotonic()
probe.settimeout(DEADLINE + 5)
try:
    closed = probe.recv(1) == b""
except (ConnectionResetError, socket.timeout):
    closed = True
waited = time.monotonic() - t0
if not closed:
    fail("an idle handshake got data instead of a hang-up")
elif waited < DEADLINE * 0.8:
    fail("an idle handshake was closed after %.1f s, before the %.0f s deadline"
         % (waited, DEADLINE))
elif waited > DEADLINE + 3:
    fail("an idle handshake stayed open %.1f s (deadline %.0f s)" % (waited, DEADLINE))
probe.close()

# The established connection outlived every deadline.
try:
    if not read_works(est):
        fail("the established connection's read failed after the deadline")
except (OSError, EOFError) as e:
    fail("the established connection was closed: %s" % e)
est.close()

sys.exit(1 if failures else 0)
