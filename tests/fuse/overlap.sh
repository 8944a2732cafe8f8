#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A request in flight holds no libfuse worker: 64 reads at once of a device
# behind a 1 s delay, served by 4 workers, finish in about one delay (the
# old export, a worker blocked per request, took 16).  The bound is
# generous; the time is printed.
. "$(dirname "$0")/functions.sh"
requires_blockdev
requires python3

sparse "$tmp/d0" 1M
inner <<EOS
python3 - "\$dir/slow" <<'PY'
import os, sys, threading, time
fd = os.open(sys.argv[1], os.O_RDONLY)
errors = []
def read(i):
    try:
        if len(os.pread(fd, 4096, i * 4096)) != 4096:
            errors.append("short read %d" % i)
    except OSError as e:
        errors.append("read %d: %s" % (i, e))
threads = [threading.Thread(target=read, args=(i,)) for i in range(64)]
start = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
secs = time.monotonic() - start
print("64 reads of 4 KiB, delay 1 s, 4 FUSE workers: %.3f s" % secs)
if errors:
    sys.exit("FAIL: " + "; ".join(errors[:5]))
if secs >= 4:
    sys.exit("FAIL: the reads did not overlap (%.3f s)" % secs)
PY
EOS
serve --threads 4 --table "slow=0 2048 delay $tmp/d0 0 1000" --run "bash $tmp/inner.sh"
echo PASS
