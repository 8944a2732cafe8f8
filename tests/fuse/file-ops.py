# SPDX-License-Identifier: LGPL-2.1-or-later
# The FUSE file of a device, used as a file: run by file-ops.sh inside
# udm-fuse-serve with $dir, $tmp, $ctl_w and $ctl_r set.  Device "disk" is
# linear over $tmp/d0 from sector 8 (byte 4096); "zero" is a zero target.
import ctypes
import errno
import os
import time
import stat
import sys

MiB = 1 << 20
SIZE = 64 * MiB
BASE = 4096  # where "disk" starts in the backing file
KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE = 0x01, 0x02, 0x10

d = os.environ["dir"]
disk = os.path.join(d, "disk")
backing = os.path.join(os.environ["tmp"], "d0")
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)


def fails_with(err, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        check(e.errno == err, "%s%r: %s, expected %s" % (fn.__name__, args, e, errno.errorcode[err]))
        return
    check(False, "%s%r succeeded, expected %s" % (fn.__name__, args, errno.errorcode[err]))


def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def control(request):
    os.write(int(os.environ["ctl_w"]), (request + "\n").encode())
    reply = b""
    while not reply.endswith(b"\n"):
        reply += os.read(int(os.environ["ctl_r"]), 1)
    return reply.decode().strip()


def remove_after_close(name):
    """Remove a device whose file was just closed.  The kernel sends FUSE's
    release after close() returns, so the device may still count as open for
    a moment: retry, bounded (5 s)."""
    for _ in range(100):
        answer = control("remove " + name)
        if answer == "ok":
            break
        time.sleep(0.05)
    return answer


def backing_bytes(off, n):
    with open(backing, "rb") as b:
        b.seek(BASE + off)
        return b.read(n)


def allocated(path):
    return os.stat(path).st_blocks * 512


# The directory and the file's attributes.
check(sorted(os.listdir(d)) == ["disk", "zero"], "listing %r" % os.listdir(d))
st = os.stat(disk)
check(stat.S_ISREG(st.st_mode), "disk is not a regular file")
check(stat.S_IMODE(st.st_mode) == 0o600, "mode %o" % stat.S_IMODE(st.st_mode))
check(st.st_size == SIZE, "size %d" % st.st_size)
check(st.st_uid == os.geteuid(), "owner %d" % st.st_uid)
fails_with(errno.ENOENT, os.stat, os.path.join(d, "nosuch"))

fd = os.open(disk, os.O_RDWR)

# Reads and writes, aligned or not, large or small, land in the backing file.
data = os.urandom(10000)
check(os.pwrite(fd, data, 12345) == len(data), "short unaligned write")
check(os.pread(fd, len(data), 12345) == data, "unaligned read back")
check(backing_bytes(12345, len(data)) == data, "unaligned write not in backing file")
big = os.urandom(3 * MiB + 512)
check(os.pwrite(fd, big, MiB) == len(big), "short large write")
check(os.pread(fd, len(big), MiB) == big, "large read back")
check(backing_bytes(MiB, len(big)) == big, "large write not in backing file")

# The end of the device: short reads, ENOSPC, short writes.
check(os.pread(fd, 4096, SIZE) == b"", "read at the end is not empty")
check(len(os.pread(fd, 8192, SIZE - 4096)) == 4096, "read across the end is not short")
fails_with(errno.ENOSPC, os.pwrite, fd, b"x" * 4096, SIZE)
check(os.pwrite(fd, b"y" * 8192, SIZE - 4096) == 4096, "write across the end is not short")
check(os.fstat(fd).st_size == SIZE, "size changed")

# PUNCH_HOLE: zeros, and a hole in the sparse backing file.
chunk = os.urandom(8 * MiB)
os.pwrite(fd, chunk, 16 * MiB)
os.fsync(fd)
before = allocated(backing)
fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 16 * MiB, 8 * MiB)
check(os.pread(fd, 8 * MiB, 16 * MiB) == bytes(8 * MiB), "punched range is not zeros")
freed = before - allocated(backing)
check(freed >= 7 * MiB, "punch freed only %d bytes of the backing file" % freed)
with open(backing, "rb") as b:
    hole = os.lseek(b.fileno(), BASE + 16 * MiB, os.SEEK_HOLE)
check(hole == BASE + 16 * MiB, "no hole in the backing file at the punched range (%d)" % hole)
print("punch hole: %d bytes freed in the backing file" % freed)

# An unaligned punch zeroes exactly its bytes.
os.pwrite(fd, b"\xff" * 4096, 0)
fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 100, 1000)
got = os.pread(fd, 4096, 0)
check(got == b"\xff" * 100 + bytes(1000) + b"\xff" * 2996, "unaligned punch")

# ZERO_RANGE zeroes; without KEEP_SIZE past the end it cannot grow the device.
os.pwrite(fd, os.urandom(MiB), 30 * MiB)
fallocate(fd, ZERO_RANGE | KEEP_SIZE, 30 * MiB, MiB)
check(os.pread(fd, MiB, 30 * MiB) == bytes(MiB), "zero range is not zeros")
fallocate(fd, ZERO_RANGE, 31 * MiB, 4096)
fails_with(errno.EFBIG, fallocate, fd, ZERO_RANGE, SIZE - 4096, 8192)

# Plain allocation inside the device is a no-op that succeeds.
os.posix_fallocate(fd, 0, SIZE)
fails_with(errno.EFBIG, fallocate, fd, 0, SIZE, 4096)
fallocate(fd, KEEP_SIZE, SIZE, 4096)
fails_with(errno.EOPNOTSUPP, fallocate, fd, 0x08, 0, 4096)  # COLLAPSE_RANGE
check(os.fstat(fd).st_size == SIZE, "size changed by fallocate")

# Flushes, truncation.
os.fsync(fd)
os.fdatasync(fd)
os.ftruncate(fd, SIZE)
fails_with(errno.EINVAL, os.ftruncate, fd, 0)
fails_with(errno.EINVAL, os.ftruncate, fd, SIZE + 4096)
os.close(fd)

# O_TRUNC is ignored, as on a block device; O_SYNC writes are durable writes.
fd = os.open(disk, os.O_WRONLY | os.O_TRUNC | os.O_SYNC)
check(os.stat(disk).st_size == SIZE, "O_TRUNC changed the size")
check(os.pwrite(fd, b"sync", 40 * MiB) == 4, "O_SYNC write")
os.close(fd)
check(backing_bytes(12345, len(data)) == data, "O_TRUNC lost data")
check(backing_bytes(40 * MiB, 4) == b"sync", "O_SYNC write not in backing file")

# The zero target reads zeros.
with open(os.path.join(d, "zero"), "rb") as z:
    check(z.read() == bytes(MiB), "zero device")

# Devices come and go without a remount; a reload's size is seen at once.
check(control("create extra 0 2048 zero") == "ok", "create extra")
check(sorted(os.listdir(d)) == ["disk", "extra", "zero"], "listing after create")
check(os.stat(os.path.join(d, "extra")).st_size == MiB, "size of extra")
check(control("reload extra 0 4096 zero") == "ok", "reload extra")
check(os.stat(os.path.join(d, "extra")).st_size == 2 * MiB, "size after reload")
fx = os.open(os.path.join(d, "extra"), os.O_RDONLY)
check(control("remove extra").startswith("error"), "removing an open device succeeded")
os.close(fx)
check(remove_after_close("extra") == "ok", "remove extra after close")
fails_with(errno.ENOENT, os.stat, os.path.join(d, "extra"))
check(sorted(os.listdir(d)) == ["disk", "zero"], "listing after remove")

# A name that is removed and created again is a new file: old handles do not reach it.
check(control("create again 0 2048 zero") == "ok", "create again")
fa = os.open(os.path.join(d, "again"), os.O_RDONLY)
ino = os.fstat(fa).st_ino
os.close(fa)
check(remove_after_close("again") == "ok", "remove again")
check(control("create again 0 4096 zero") == "ok", "create again, again")
check(os.stat(os.path.join(d, "again")).st_ino != ino, "inode number reused")
check(control("remove again") == "ok", "remove again, again")
print("PASS")
