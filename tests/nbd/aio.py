# SPDX-License-Identifier: LGPL-2.1-or-later
# Many requests in flight on one NBD connection (libnbd's aio calls, or a raw
# socket for the abrupt client).  Usage:
#   aio.py order URI BACKING SEGMENT_BYTES  256 writes then 256 reads of distinct
#          patterns at once over segments of different speeds: each buffer
#          right, the backing file right, replies out of submission order
#   aio.py overlap URI COUNT BYTES   COUNT reads at once; prints the seconds
#   aio.py load URI QD SECONDS       keep QD reads in flight for SECONDS
#   aio.py abandon SOCKET EXPORT COUNT  COUNT reads and writes sent at once on
#          a raw socket, then the socket closed without reading a reply
#   aio.py abandoned FILE COUNT      the abandoned writes are in FILE
#   aio.py disc SOCKET EXPORT COUNT  COUNT writes then NBD_CMD_DISC at once:
#          every write is answered (and done) before the server hangs up
#   aio.py flood SOCKET EXPORT FILE COUNT BYTES  COUNT reads sent at once on a
#          raw socket, replies left unread for a while (the server's socket
#          fills up), then every reply read and checked against FILE
import os
import socket
import struct
import sys
import threading
import time

import nbd

# -I leaves the script's folder off sys.path: the shared module is beside it
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawsock import recv_exact  # noqa: E402

BLOCK = 4096


def pattern(i, n):
    """n bytes unique to request i (a counter in every 8 bytes)."""
    return b"".join(struct.pack(">II", i, k) for k in range(n // 8))


def run(h, pending):
    while h.aio_in_flight() > 0:
        h.poll(-1)
    if pending:
        sys.exit("FAIL: %d requests never completed" % len(pending))


def order(uri, backing, segment):
    h = nbd.NBD()
    h.connect_uri(uri)
    size = h.get_size()
    count = 256
    # Request i: 4 KiB to 64 KiB in segment i % nsegments, so neighbours in
    # submission order land on segments of different speeds.
    nseg = size // segment
    per_seg = (count + nseg - 1) // nseg
    slot = segment // per_seg
    reqs = []
    for i in range(count):
        seg, k = i % nseg, i // nseg
        length = BLOCK * (1 + i % 16)
        assert length <= slot
        reqs.append((seg * segment + k * slot, length))

    def check_order(done, what):
        if len(done) != count:
            sys.exit("FAIL: %s: %d of %d completions" % (what, len(done), count))
        if done == sorted(done):
            sys.exit("FAIL: %s: replies came in submission order; "
                     "the segments' delays should reorder them" % what)

    # 256 writes at once.
    done, pending = [], set(range(count))

    def wrote(i):
        def cb(err):
            if err.value:
                sys.exit("FAIL: write %d: %s" % (i, err.value))
            done.append(i)
            pending.discard(i)
            return 1
        return cb
    bufs = []
    for i, (off, length) in enumerate(reqs):
        b = nbd.Buffer.from_bytearray(bytearray(pattern(i, length)))
        bufs.append(b)
        h.aio_pwrite(b, off, completion=wrote(i))
    run(h, pending)
    check_order(done, "writes")

    # 256 reads at once: the right bytes in the right buffer.
    done, pending = [], set(range(count))
    bufs = [nbd.Buffer(length) for _, length in reqs]

    def read(i):
        def cb(err):
            if err.value:
                sys.exit("FAIL: read %d: %s" % (i, err.value))
            done.append(i)
            pending.discard(i)
            return 1
        return cb
    for i, (off, length) in enumerate(reqs):
        h.aio_pread(bufs[i], off, completion=read(i))
    run(h, pending)
    check_order(done, "reads")
    for i, (off, length) in enumerate(reqs):
        if bufs[i].to_bytearray() != pattern(i, length):
            sys.exit("FAIL: read %d (%d bytes at %d) got another request's bytes"
                     % (i, length, off))
    h.flush()
    h.shutdown()
    with open(backing, "rb") as f:
        for i, (off, length) in enumerate(reqs):
            f.seek(off)
            if f.read(length) != pattern(i, length):
                sys.exit("FAIL: backing file at %d: not write %d's bytes" % (off, i))
    print("order: 256 writes and 256 reads, completed out of order, bytes right")


def overlap(uri, count, length):
    h = nbd.NBD()
    h.connect_uri(uri)
    pending = set(range(count))

    def cb(i):
        def f(err):
            if err.value:
                sys.exit("FAIL: read %d: %s" % (i, err.value))
            pending.discard(i)
            return 1
        return f
    bufs = [nbd.Buffer(length) for _ in range(count)]
    start = time.monotonic()
    for i in range(count):
        h.aio_pread(bufs[i], i * length, completion=cb(i))
    run(h, pending)
    print("%.3f" % (time.monotonic() - start))
    h.shutdown()


def load(uri, qd, seconds):
    h = nbd.NBD()
    h.connect_uri(uri)
    size = h.get_size()
    buf = [nbd.Buffer(BLOCK) for _ in range(qd)]
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        while h.aio_in_flight() < qd:
            h.aio_pread(buf[n % qd], (n * BLOCK) % size, completion=lambda err: 1)
            n += 1
        h.poll(-1)
    while h.aio_in_flight() > 0:
        h.poll(-1)
    h.shutdown()


def raw_go(path, export):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    magic, opt, _ = struct.unpack(">QQH", recv_exact(s, 18))
    assert magic == 0x4e42444d41474943, "bad greeting"
    s.sendall(struct.pack(">I", 3))                  # fixed newstyle, no zeroes
    name = export.encode()
    data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    s.sendall(struct.pack(">QII", opt, 7, len(data)) + data)     # NBD_OPT_GO
    while True:
        _, _, rtype, length = struct.unpack(">QIII", recv_exact(s, 20))
        recv_exact(s, length)
        if rtype == 1:                                # ACK
            break
        assert rtype == 3, "GO refused: %#x" % rtype
    return s


def abandon(path, export, count):
    s = raw_go(path, export)
    # Half reads, half writes, all sent before the first reply can come.
    reqs = b""
    for i in range(count):
        cmd = i % 2
        hdr = struct.pack(">IHHQQI", 0x25609513, 0, cmd, i, i * BLOCK, BLOCK)
        reqs += hdr + (pattern(i, BLOCK) if cmd == 1 else b"")
    s.sendall(reqs)
    # Gone without a reply read: RST rather than FIN.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    print("abandon: %d requests sent, socket closed" % count)


def flood(path, export, backing, count, length):
    s = raw_go(path, export)
    with open(backing, "rb") as f:
        data = f.read()
    size = len(data)
    reqs = b"".join(struct.pack(">IHHQQI", 0x25609513, 0, 0, i,
                                (i * length) % size, length) for i in range(count))
    # Sent from a thread: the server stops reading at its cap until we read.
    sender = threading.Thread(target=s.sendall, args=(reqs,))
    sender.start()
    time.sleep(0.5)  # the server meanwhile fills its socket and must not stall
    seen = set()
    for _ in range(count):
        magic, err, cookie = struct.unpack(">IIQ", recv_exact(s, 16))
        if magic != 0x67446698 or err != 0:
            sys.exit("FAIL: reply %d: magic %#x error %d" % (len(seen), magic, err))
        if cookie in seen or cookie >= count:
            sys.exit("FAIL: reply with cookie %d (again, or never sent)" % cookie)
        seen.add(cookie)
        off = (cookie * length) % size
        if recv_exact(s, length) != data[off:off + length]:
            sys.exit("FAIL: read %d: other bytes than the file's at %d" % (cookie, off))
    sender.join()
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 0, 0, 0))  # DISC
    s.close()
    print("flood: %d replies of %d bytes, each right" % (count, length))


def disc(path, export, count):
    s = raw_go(path, export)
    reqs = b"".join(struct.pack(">IHHQQI", 0x25609513, 0, 1, i, i * BLOCK, BLOCK) +
                    pattern(i, BLOCK) for i in range(count))
    s.sendall(reqs + struct.pack(">IHHQQI", 0x25609513, 0, 2, count, 0, 0))
    seen = set()
    for _ in range(count):
        magic, err, cookie = struct.unpack(">IIQ", recv_exact(s, 16))
        if magic != 0x67446698 or err != 0 or cookie >= count or cookie in seen:
            sys.exit("FAIL: reply %#x error %d cookie %d" % (magic, err, cookie))
        seen.add(cookie)
    if s.recv(1) != b"":
        sys.exit("FAIL: more than the %d replies before the hang-up" % count)
    print("disc: %d writes in flight answered, then the connection closed" % count)


def abandoned(path, count):
    with open(path, "rb") as f:
        for i in range(1, count, 2):
            f.seek(i * BLOCK)
            if f.read(BLOCK) != pattern(i, BLOCK):
                sys.exit("FAIL: abandoned write %d is not in %s" % (i, path))


mode = sys.argv[1]
if mode == "order":
    order(sys.argv[2], sys.argv[3], int(sys.argv[4]))
elif mode == "overlap":
    overlap(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
elif mode == "load":
    load(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
elif mode == "abandon":
    abandon(sys.argv[2], sys.argv[3], int(sys.argv[4]))
elif mode == "flood":
    flood(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
elif mode == "disc":
    disc(sys.argv[2], sys.argv[3], int(sys.argv[4]))
elif mode == "abandoned":
    abandoned(sys.argv[2], int(sys.argv[3]))
else:
    sys.exit("usage: aio.py order|overlap|load|abandon|abandoned|disc|flood ...")
