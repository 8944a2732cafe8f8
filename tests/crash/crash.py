# SPDX-License-Identifier: LGPL-2.1-or-later
"""Crash consistency: writes, SIGKILL of udmd at a random moment, restart, check.

Each cycle makes a udm device from a table (TARGETS below), writes to it
through one door (NBD with libnbd, or the attached block device with
O_DIRECT from several threads), kills udmd with SIGKILL at a random moment
while writes and flushes are in flight, starts a new udmd, makes the same
device again and reads every sector back through NBD.  Two rules:

  durable   every write acknowledged before a flush that then completed,
            and every FUA write acknowledged, reads back (or a later write
            to the same sector does);
  no ghost  every sector holds bytes that were written to it: the format's
            initial pattern or one of the writes issued to that sector,
            whole (each sector carries its write's id, its own number and a
            body derived from both).

Writes in flight never overlap, so the writes to one sector are ordered and
"later" is well defined.  A stateful target adds its own check (class
Check): mirror's legs are identical once the disk log's dirty regions are
resynced; era's metadata passes era_check and records every block written.  The device's backing files persist from cycle to
cycle, and what a cycle reads back becomes the next cycle's baseline.

The backing store either survives the crash whole ("--storage file": plain
files, whose page cache outlives udmd as it outlives any process), or loses
what udm did not flush ("--storage volatile", the default; udmd is stopped
with SIGSTOP first, so it sees nothing below fail): each backing
file is reached through nbdkit's cache filter in writeback mode and
nbdfuse, both killed with udmd, so a write that udm acknowledged but did
not pass down as FUA or flush is gone, as in a disk's volatile cache at a
power cut.  The machine itself keeps running: the image files under nbdkit
are not power-cut.

Usage: crash.py --udm PATH --udmd PATH --work DIR [--cycles N] [--seed S]
                [--targets linear,striped,crypt,mirror,era,cache] [--doors nbd,blockdev]
                [--storage volatile|file]
Prints one line per cycle and a summary per target; exits 1 on a violation.
"""
import argparse
import hashlib
import mmap
import os
import random
import re
import signal
import struct
import subprocess
import sys
import threading
import time

import nbd

SECTOR = 512
SECTORS = 8192             # 4 MiB devices: a full check reads 4 MiB
MAGIC = b"UDMCRASH"
HEADER = struct.Struct("<8sQQ")  # magic, write id, sector
KEY = "a5" * 64            # a test key for crypt (aes-xts-plain64, 512 bits)

ERA_BLOCK = 64             # sectors per era block: 128 blocks


class Check:
    """A target's own consistency check, beside the two rules; by default none.
    cycle_started: the device was just made, before the writes;
    crashed:       udmd and the storage are dead: the images as the crash left them;
    read_back:     the device was made again and read back;
    removed:       the device was made again, read back (`after`: the write id
                   each sector holds, `first`: this cycle's first write id) and
                   removed; the storage is still up.
    Each returns a list of violations."""

    def cycle_started(self, daemon, name):
        pass

    def crashed(self, storage):
        return []

    def read_back(self, daemon, name):
        pass

    def removed(self, daemon, name, storage, after, first):
        return []


class MirrorCheck(Check):
    """After the restart the disk log's dirty regions are resynced from the
    default leg; once every region is in sync the legs must be identical (a
    dirty region the log missed keeps a leg stale)."""

    def read_back(self, daemon, name):
        daemon.udm("wait", "--progress", name, timeout=120)

    def removed(self, daemon, name, storage, after, first):
        with open(storage.paths[1], "rb") as a, open(storage.paths[2], "rb") as b:
            x, y = a.read(SECTORS * SECTOR), b.read(SECTORS * SECTOR)
        if x == y:
            return []
        s = next(i for i in range(SECTORS)
                 if x[i * SECTOR:(i + 1) * SECTOR] != y[i * SECTOR:(i + 1) * SECTOR])
        return ["mirror: the legs differ after the resync (first at sector %d)" % s]


class EraCheck(Check):
    """era_check (thin-provisioning-tools) passes on the metadata as the crash
    left it and after the restart; every block holding a write of this cycle
    is recorded (era_dump --logical) in this cycle's era or later: era commits
    a block's mark before the write reaches the origin."""

    def cycle_started(self, daemon, name):
        # INFO: <metadata block size> <used>/<total> <current era> <snapshot>
        self.era = int(daemon.udm("status", name).split()[5])

    @staticmethod
    def era_check(meta, when):
        r = subprocess.run(["era_check", meta], capture_output=True, text=True)
        if r.returncode != 0:
            return ["era: era_check fails on the metadata %s: %s"
                    % (when, (r.stdout + r.stderr).strip()[:300])]
        return []

    def crashed(self, storage):
        return self.era_check(storage.images[0], "as the crash left it")

    def removed(self, daemon, name, storage, after, first):
        bad = self.era_check(storage.paths[0], "after the restart")
        if bad:
            return bad
        dump = subprocess.run(["era_dump", "--logical", storage.paths[0]],
                              capture_output=True, text=True, check=True).stdout
        eras = {}
        for m in re.finditer(r'<era block="(\d+)" era="(\d+)"', dump):
            eras[int(m.group(1))] = int(m.group(2))
        for b in range(SECTORS // ERA_BLOCK):
            wid = max(after[b * ERA_BLOCK:(b + 1) * ERA_BLOCK])
            if wid >= first and eras.get(b, -1) < self.era:
                bad.append("era: block %d holds write %d of era %d but is recorded in era %s"
                           % (b, wid, self.era, eras.get(b, "none")))
        return bad


# One line per target: how many backing files it needs, its table for a
# device of SECTORS sectors over them (paths), and its own check.
TARGETS = {
    "linear": (1, lambda f: "0 %d linear %s 0" % (SECTORS, f[0]), Check),
    "striped": (2, lambda f: "0 %d striped 2 8 %s 0 %s 0" % (SECTORS, f[0], f[1]), Check),
    "crypt": (1, lambda f: "0 %d crypt aes-xts-plain64 %s 0 %s 0" % (SECTORS, KEY, f[0]),
              Check),
    # A disk log (file 0) with 64-sector regions over two legs.
    "mirror": (3, lambda f: "0 %d mirror disk 2 %s 64 2 %s 0 %s 0" % (SECTORS, f[0], f[1], f[2]),
               MirrorCheck),
    # Metadata (file 0) and origin (file 1).
    "era": (2, lambda f: "0 %d era %s %s %d" % (SECTORS, f[0], f[1], ERA_BLOCK), EraCheck),
    # metadata, cache device, origin; writeback: dirty blocks live on the cache only
    "cache": (3, lambda f: "0 %d cache %s %s %s 64 1 writeback smq 0"
              % (SECTORS, f[0], f[1], f[2]), Check),
}

# Targets that break the rules on purpose, to prove the checks can fail:
# formatted through linear, then written through flakey while it drops
# writes (acknowledged, never written: durable writes are lost) or corrupts
# byte 32 of every write (sectors hold bytes nobody wrote).
FAULTY = {
    "drop-writes": (1, lambda f: "0 %d flakey %s 0 0 3600 1 drop_writes" % (SECTORS, f[0]),
                    Check),
    "corrupt-writes": (1, lambda f: "0 %d flakey %s 0 0 3600 5 corrupt_bio_byte 32 w 255 0"
                       % (SECTORS, f[0]), Check),
}

WRITE_MIN, WRITE_MAX = 8, 128   # sectors per write (4 KiB .. 64 KiB), 4 KiB aligned
QUEUE_DEPTH = 8
FLUSH_EVERY = 0.015             # seconds between flushes
FUA_SHARE = 0.15                # of writes


def sector_bytes(wid, sector):
    body = hashlib.blake2b(struct.pack("<QQ", wid, sector), digest_size=64).digest()
    body = (body * ((SECTOR - HEADER.size) // 64 + 1))[:SECTOR - HEADER.size]
    return HEADER.pack(MAGIC, wid, sector) + body


def payload(wid, first, count):
    return b"".join(sector_bytes(wid, first + i) for i in range(count))


def decode(data, sector):
    """The write id a sector's bytes carry, or None for bytes never written."""
    magic, wid, sec = HEADER.unpack_from(data)
    if magic != MAGIC or sec != sector or data != sector_bytes(wid, sector):
        return None
    return wid


class Write:
    __slots__ = ("wid", "first", "count", "fua", "ack", "durable")

    def __init__(self, wid, first, count, fua):
        self.wid, self.first, self.count, self.fua = wid, first, count, fua
        self.ack = None       # the ack sequence number, once acknowledged
        self.durable = False


class Model:
    """What each sector may hold: its baseline, then the writes issued to it."""

    def __init__(self, baseline):
        self.baseline = baseline          # write id per sector, known on disk
        self.history = [[] for _ in range(SECTORS)]
        self.writes = []
        self.busy = bytearray(SECTORS)    # sectors of writes in flight
        self.lock = threading.Lock()
        self.acks = 0
        self.next_wid = max(baseline) + 1
        self.stats = {"writes": 0, "acked": 0, "fua": 0, "flushes": 0, "durable": 0,
                      "unflushed_lost": 0}

    def issue(self, rng):
        """A new write over sectors no write in flight touches, or None."""
        with self.lock:
            for _ in range(8):
                count = rng.randrange(WRITE_MIN, WRITE_MAX + 1, 8)
                first = rng.randrange(0, SECTORS - count + 1, 8)
                if not any(self.busy[first:first + count]):
                    break
            else:
                return None
            w = Write(self.next_wid, first, count, rng.random() < FUA_SHARE)
            self.next_wid += 1
            self.busy[first:first + count] = b"\1" * count
            for s in range(first, first + count):
                self.history[s].append(w)
            self.writes.append(w)
            self.stats["writes"] += 1
            return w

    def done(self, w, ok):
        with self.lock:
            self.busy[w.first:w.first + w.count] = bytes(w.count)
            if ok:
                self.acks += 1
                w.ack = self.acks
                self.stats["acked"] += 1
                if w.fua:
                    w.durable = True
                    self.stats["fua"] += 1

    def flush_started(self):
        with self.lock:
            return self.acks

    def flushed(self, mark):
        """A flush that started when `mark` acks had come completed."""
        with self.lock:
            self.stats["flushes"] += 1
            for w in self.writes:
                if w.ack is not None and w.ack <= mark:
                    w.durable = True

    def check(self, data):
        """Violations, and the next baseline, from the device's bytes."""
        bad = []
        nxt = list(self.baseline)
        durable = lost = 0
        for s in range(SECTORS):
            got = decode(data[s * SECTOR:(s + 1) * SECTOR], s)
            hist = self.history[s]
            last_durable = max((k for k, w in enumerate(hist) if w.durable), default=-1)
            durable += last_durable >= 0
            allowed = [w.wid for w in hist[max(last_durable, 0):]]
            if last_durable < 0:
                allowed.append(self.baseline[s])
            if got is None:
                bad.append("sector %d holds bytes never written to it" % s)
            elif got not in allowed:
                older = [w.wid for w in hist[:max(last_durable, 0)]] + [self.baseline[s]]
                if got in older:
                    bad.append("sector %d: durable write %d lost (holds %d)"
                               % (s, hist[last_durable].wid, got))
                else:
                    bad.append("sector %d holds write %d, never issued to it" % (s, got))
            if got is not None:
                nxt[s] = got
                # Allowed, and the proof that the storage below can lose what
                # udm did not flush: older than the last acknowledged write.
                last_acked = max((k for k, w in enumerate(hist) if w.ack is not None),
                                 default=-1)
                held = next((k for k, w in enumerate(hist) if w.wid == got), -1)
                if held < last_acked:
                    lost += 1
        self.stats["durable"] = durable
        self.stats["unflushed_lost"] = lost
        return bad, nxt


class Storage:
    """A target's backing files as udm sees them (see the file comment)."""

    def __init__(self, work, name, images, volatile):
        self.images, self.volatile, self.procs = images, volatile, []
        self.dir = os.path.join(work, "storage-" + name)
        self.mounts = [os.path.join(self.dir, "m%d" % i) for i in range(len(images))]
        self.paths = ([os.path.join(m, "disk") for m in self.mounts] if volatile
                      else list(images))
        self.log = open(os.path.join(work, "storage.log"), "ab")

    def start(self):
        if not self.volatile:
            return
        for i, img in enumerate(self.images):
            sock = os.path.join(self.dir, "kit%d.sock" % i)
            pidfile = os.path.join(self.dir, "kit%d.pid" % i)
            os.makedirs(self.mounts[i], exist_ok=True)
            for f in (sock, pidfile):
                if os.path.exists(f):
                    os.unlink(f)
            # nbdkit writes its pid file once it accepts connections (the
            # socket file appears at bind, a moment before it listens).
            self.procs.append(subprocess.Popen(
                ["nbdkit", "-f", "-U", sock, "-P", pidfile, "--filter=cache", "file", img,
                 "cache=writeback"], stdout=self.log, stderr=self.log))
            wait_for(lambda: os.path.exists(pidfile) and os.path.getsize(pidfile) > 0,
                     "nbdkit's pid file")
            fuse = subprocess.Popen(
                ["nbdfuse", self.paths[i], "nbd+unix:///?socket=" + sock],
                stdout=self.log, stderr=self.log)
            self.procs.append(fuse)
            wait_for(lambda: is_mounted(self.mounts[i]) or fuse.poll() is not None,
                     "the nbdfuse mount")
            if fuse.poll() is not None:
                self.log.flush()
                with open(self.log.name, "rb") as f:
                    tail = f.read()[-2000:].decode(errors="replace")
                raise SystemExit("nbdfuse exited %d: %s" % (fuse.returncode, tail))

    def kill(self):
        """SIGKILL: what nbdkit's cache held and nobody flushed is lost.
        Before udmd dies: when udmd's descriptors close, FUSE sends a flush,
        which must not reach nbdkit (nbdkits first, then nbdfuses)."""
        for p in self.procs[0::2] + self.procs[1::2]:
            p.send_signal(signal.SIGKILL)
        for p in self.procs:
            p.wait()
        self.procs = []
        for m in self.mounts:
            if self.volatile and is_mounted(m):
                subprocess.run(["umount", "-l", m], check=True)


def is_mounted(path):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == path for line in f)


def wait_for(cond, what):
    deadline = time.monotonic() + 60   # generous: CI machines can be slow
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit("%s did not appear in 60 s" % what)
        time.sleep(0.005)


class Daemon:
    def __init__(self, args, rt):
        self.args, self.rt, self.proc = args, rt, None
        self.env = dict(os.environ, UDM_RUNTIME_DIR=rt)
        self.log = open(os.path.join(args.work, "udmd.log"), "ab")

    def start(self):
        for leaf in ("control.sock", "nbd.sock"):
            try:
                os.unlink(os.path.join(self.rt, leaf))
            except FileNotFoundError:
                pass
        self.proc = subprocess.Popen([self.args.udmd, "-f"], env=self.env,
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(os.path.exists(os.path.join(self.rt, x))
                   for x in ("control.sock", "nbd.sock")):
                return
            if self.proc.poll() is not None:
                raise SystemExit("udmd exited %d at start" % self.proc.returncode)
            time.sleep(0.01)
        raise SystemExit("udmd did not create its sockets in 20 s")

    def freeze(self):
        """SIGSTOP: udmd sends nothing more and sees no I/O fail."""
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        """SIGTERM; udmd's exit status (a sanitizer's report makes it nonzero)."""
        if not self.proc or self.proc.poll() is not None:
            return 0
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -1

    def udm(self, *argv, timeout=30):
        r = subprocess.run([self.args.udm] + list(argv), env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise SystemExit("udm %s: %s" % (" ".join(argv[:2]), r.stderr.strip()))
        return r.stdout.strip()

    def uri(self, name):
        return "nbd+unix:///%s?socket=%s" % (name, os.path.join(self.rt, "nbd.sock"))


def write_nbd(daemon, name, model, rng, stop, started):
    """Writes and flushes through NBD until the connection breaks."""
    h = nbd.NBD()
    try:
        h.connect_uri(daemon.uri(name))
    except nbd.Error as e:
        print("  the writer could not connect: %s" % e, flush=True)
        return
    finally:
        started.set()
    # Completions come through callbacks (which retire the command).  Note:
    # libnbd 1.14's Python binding never frees an nbd.Buffer passed to
    # aio_pwrite (64 KiB writes: ~13 MB per 200), so long runs grow.
    inflight = {}   # key -> (Write or None for a flush, flush mark, buffer)
    finished = []   # (key, ok), appended by the callbacks during poll
    keys = iter(range(1 << 62))
    last_flush = time.monotonic()

    def completion(key):
        def cb(err):
            finished.append((key, err.value == 0))
            return 1
        return cb

    try:
        while True:
            if not stop.is_set():
                now = time.monotonic()
                if now - last_flush > FLUSH_EVERY and len(inflight) < QUEUE_DEPTH:
                    key = next(keys)
                    inflight[key] = (None, model.flush_started(), None)
                    h.aio_flush(completion=completion(key))
                    last_flush = now
                while len(inflight) < QUEUE_DEPTH:
                    w = model.issue(rng)
                    if not w:
                        break
                    buf = nbd.Buffer.from_bytearray(
                        bytearray(payload(w.wid, w.first, w.count)))
                    flags = nbd.CMD_FLAG_FUA if w.fua else 0
                    key = next(keys)
                    inflight[key] = (w, 0, buf)
                    h.aio_pwrite(buf, w.first * SECTOR, completion=completion(key),
                                 flags=flags)
            elif not inflight:
                return
            h.poll(50)
            settle(finished, inflight, model)
    except nbd.Error:
        pass
    finally:
        settle(finished, inflight, model)
        # Commands that never completed (the connection died) failed.
        for w, _, _ in inflight.values():
            if w is not None:
                model.done(w, False)
        del h


def settle(finished, inflight, model):
    """Record the completions the callbacks reported."""
    while finished:
        key, ok = finished.pop(0)
        w, mark, _ = inflight.pop(key)
        if w is None:
            if ok:
                model.flushed(mark)
        else:
            model.done(w, ok)


def write_blockdev(path, model, rng, stop, started):
    """QUEUE_DEPTH threads of O_DIRECT writes (FUA ones with O_DSYNC) and a
    flusher (fsync) on the block device, until I/O fails."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
        fd_fua = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_DSYNC)
    finally:
        started.set()
    failed = threading.Event()
    seeds = [rng.random() for _ in range(QUEUE_DEPTH)]

    def writer(seed):
        r = random.Random(seed)
        buf = mmap.mmap(-1, WRITE_MAX * SECTOR)
        while not failed.is_set() and not stop.is_set():
            w = model.issue(r)
            if not w:
                time.sleep(0.001)
                continue
            n = w.count * SECTOR
            buf[:n] = payload(w.wid, w.first, w.count)
            try:
                ok = os.pwrite(fd_fua if w.fua else fd, memoryview(buf)[:n],
                               w.first * SECTOR) == n
            except OSError:
                ok = False
            model.done(w, ok)
            if not ok:
                failed.set()
        buf.close()

    def flusher():
        while not failed.is_set() and not stop.is_set():
            time.sleep(FLUSH_EVERY)
            mark = model.flush_started()
            try:
                os.fsync(fd)
            except OSError:
                failed.set()
                return
            model.flushed(mark)

    threads = [threading.Thread(target=writer, args=(s,)) for s in seeds]
    threads.append(threading.Thread(target=flusher))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.close(fd)
    os.close(fd_fua)


def read_all(daemon, name):
    h = nbd.NBD()
    h.connect_uri(daemon.uri(name))
    data = bytearray()
    step = 4 << 20
    for off in range(0, SECTORS * SECTOR, step):
        data += h.pread(min(step, SECTORS * SECTOR - off), off)
    h.shutdown()
    return bytes(data)


def format_device(daemon, name, table):
    """Write the initial pattern (write id 0) everywhere, and flush."""
    daemon.udm("create", name, "--table", table)
    h = nbd.NBD()
    h.connect_uri(daemon.uri(name))
    step = 1024
    for first in range(0, SECTORS, step):
        h.pwrite(payload(0, first, step), first * SECTOR)
    h.flush()
    h.shutdown()
    daemon.udm("remove", name)
    return [0] * SECTORS


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--udm", required=True)
    ap.add_argument("--udmd", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cycles", type=int, default=25)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--doors", default="nbd,blockdev")
    ap.add_argument("--storage", default="volatile", choices=("volatile", "file"))
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    targets = args.targets.split(",")
    doors = args.doors.split(",")
    for t in targets:
        if t not in TARGETS and t not in FAULTY:
            raise SystemExit("unknown target %s (known: %s)"
                             % (t, ", ".join(list(TARGETS) + list(FAULTY))))
    for d in doors:
        if d not in ("nbd", "blockdev"):
            raise SystemExit("unknown door %s (nbd, blockdev)" % d)
    print("seed %d, storage %s" % (seed, args.storage), flush=True)

    rt = os.path.join(args.work, "rt")
    daemon = Daemon(args, rt)
    failures = 1
    try:
        failures = run(args, rng, targets, doors, daemon)
    finally:
        status = daemon.stop()
        if status != 0:
            print("udmd exited %d at SIGTERM (see %s/udmd.log)" % (status, args.work))
            failures += 1
    sys.exit(1 if failures else 0)


def run(args, rng, targets, doors, daemon):
    storages = {}
    try:
        return run_cycles(args, rng, targets, doors, daemon, storages)
    finally:
        for st in storages.values():
            st.kill()


def run_cycles(args, rng, targets, doors, daemon, storages):
    daemon.start()
    baselines, tables, checks = {}, {}, {}
    for t in targets:
        nfiles, make, check = TARGETS[t] if t in TARGETS else FAULTY[t]
        checks[t] = check()
        files = []
        for i in range(nfiles):
            f = os.path.join(args.work, "%s.%d.img" % (t, i))
            with open(f, "wb") as fh:
                fh.truncate(SECTORS * SECTOR)
            files.append(f)
        storage = storages[t] = Storage(args.work, t, files, args.storage == "volatile")
        tables[t] = make(storage.paths)
        fmt = tables[t] if t in TARGETS else TARGETS["linear"][1](storage.paths)
        storage.start()
        baselines[t] = format_device(daemon, "c-" + t, fmt)
        storage.kill()   # flushed: nothing is lost

    summary = {t: {"cycles": 0, "writes": 0, "acked": 0, "fua": 0, "flushes": 0,
                   "durable": 0, "unflushed_lost": 0, "violations": 0} for t in targets}
    failures = 0
    try:
        for cycle in range(args.cycles):
            t = targets[cycle % len(targets)]
            door = doors[(cycle // len(targets)) % len(doors)]
            name = "c-" + t
            storage = storages[t]
            storage.start()
            model = Model(baselines[t])
            first = model.next_wid
            stop, started = threading.Event(), threading.Event()
            wrng = random.Random(rng.random())
            if door == "blockdev":
                dev = daemon.udm("create", name, "--attach", "--table", tables[t])
                worker = threading.Thread(target=write_blockdev,
                                          args=(dev, model, wrng, stop, started))
            else:
                daemon.udm("create", name, "--table", tables[t])
                worker = threading.Thread(target=write_nbd,
                                          args=(daemon, name, model, wrng, stop, started))
            checks[t].cycle_started(daemon, name)
            worker.start()
            started.wait(30)   # the kill comes while writes are in flight, not before
            time.sleep(rng.uniform(0.03, 0.4))
            # The power cut stops udmd first, then the storage below loses
            # whatever udm left unflushed, then udmd dies.  Killing the
            # storage under a running udmd would let udmd see a leg fail
            # while another lives (mirror: nbdkits killed one after the
            # other), which is a leg failure, not a crash: mirror then
            # acknowledges a flush the default leg did not take, as the
            # kernel does without handle_errors.
            daemon.freeze()
            storage.kill()
            daemon.kill()
            worker.join(60)
            if worker.is_alive():
                raise SystemExit("cycle %d: the writer hung after udmd was killed" % cycle)
            own = checks[t].crashed(storage)
            storage.start()
            daemon.start()   # it detaches what the dead one left attached
            daemon.udm("create", name, "--table", tables[t])
            bad, baselines[t] = model.check(read_all(daemon, name))
            checks[t].read_back(daemon, name)
            daemon.udm("remove", name)
            own += checks[t].removed(daemon, name, storage, baselines[t], first)
            bad += own
            storage.kill()   # read only since the start: nothing to lose
            st = model.stats
            s = summary[t]
            s["cycles"] += 1
            for k in ("writes", "acked", "fua", "flushes", "durable", "unflushed_lost"):
                s[k] += st[k]
            s["violations"] += len(bad)
            print("cycle %d %s via %s: %d writes, %d acked (%d FUA), %d flushes, "
                  "%d sectors with a durable write, %d lost an unflushed one: %s"
                  % (cycle, t, door, st["writes"], st["acked"], st["fua"], st["flushes"],
                     st["durable"], st["unflushed_lost"],
                     "ok" if not bad else "%d VIOLATIONS" % len(bad)),
                  flush=True)
            for b in bad[:10]:
                print("  " + b, flush=True)
            failures += len(bad)
    finally:
        report(targets, summary)
    # Volatile storage that never lost an unflushed write would prove nothing
    # about flushes; over ten cycles it always loses some.
    lost = sum(summary[t]["unflushed_lost"] for t in targets)
    if args.storage == "volatile" and args.cycles >= 10 and lost == 0:
        print("the volatile storage lost no unflushed write in %d cycles: "
              "the durability check was not exercised" % args.cycles)
        failures += 1
    return failures


def report(targets, summary):
    print("target          cycles  writes   acked    FUA  flushes  durable-sectors"
          "  unflushed-lost  violations")
    for t in targets:
        s = summary[t]
        print("%-14s %7d %7d %7d %6d %8d %16d %15d %11d" % (
            t, s["cycles"], s["writes"], s["acked"], s["fua"], s["flushes"], s["durable"],
            s["unflushed_lost"], s["violations"]))


if __name__ == "__main__":
    main()
