#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Write an image in the example "rle" format (examples/rle-driver.c) and the
# raw bytes it stands for:  make-rle.py OUT.rle OUT.raw
import random, struct, sys

r = random.Random(3)
runs, raw = [], bytearray()
for i in range(200):
    n = r.choice([512, 4096, 65536, 3 * 512])
    if r.random() < 0.5:
        fill = r.choice([0, 0, 0x5a])
        runs.append(struct.pack('<QBB', n, 0, fill))
        raw += bytes([fill]) * n
    else:
        data = bytes(r.randrange(256) for _ in range(n))
        runs.append(struct.pack('<QBB', n, 1, 0) + data)
        raw += data
size = len(raw)
bad = [(4096, 1024), (size // 2 // 512 * 512, 8192)]
with open(sys.argv[1], 'wb') as f:
    f.write(b'UDMRLE01' + struct.pack('<QII', size, len(bad), len(runs)))
    for off, n in bad:
        f.write(struct.pack('<QQ', off, n))
    for run in runs:
        f.write(run)
open(sys.argv[2], 'wb').write(raw)
for off, n in bad:
    print(off, n)
