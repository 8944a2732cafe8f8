#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Damage a qcow2 image in one named way (for qcow2-corrupt.sh):
#   corrupt.py KIND IN OUT
import shutil, struct, sys

kind, src, dst = sys.argv[1:4]
shutil.copyfile(src, dst)
f = open(dst, 'r+b')
h = bytearray(f.read(4096))
be64 = lambda b, o: struct.unpack('>Q', b[o:o + 8])[0]
be32 = lambda b, o: struct.unpack('>I', b[o:o + 4])[0]
cluster_bits = be32(h, 20)
l1_off = be64(h, 40)

def l1(i):
    f.seek(l1_off + 8 * i)
    return struct.unpack('>Q', f.read(8))[0]

def first_l2_entry(pred):
    """(file offset of the first L2 entry satisfying pred, entry)."""
    for i in range(be32(h, 36)):
        l2 = l1(i) & 0x00fffffffffffe00
        if not l2:
            continue
        f.seek(l2)
        t = f.read(1 << cluster_bits)
        for j in range(0, len(t), 8):
            e = struct.unpack('>Q', t[j:j + 8])[0]
            if pred(e):
                return l2 + j, e
    sys.exit('no such L2 entry')

def put(off, data):
    f.seek(off)
    f.write(data)

if kind == 'truncated-header':
    f.truncate(50)
elif kind == 'bad-magic':
    put(0, b'QFI\xfa')
elif kind == 'version-4':
    put(4, struct.pack('>I', 4))
elif kind == 'cluster-bits':
    put(20, struct.pack('>I', 30))
elif kind == 'l1-past-eof':
    put(40, struct.pack('>Q', 1 << 40))
elif kind == 'l1-entry-past-eof':
    put(l1_off, struct.pack('>Q', (1 << 63) | (1 << 40)))
elif kind == 'l1-entry-misaligned':
    put(l1_off, struct.pack('>Q', (1 << 63) | (l1(0) & 0x00fffffffffffe00) + 512))
elif kind == 'l2-entry-past-eof':
    off, e = first_l2_entry(lambda e: e & 0x00fffffffffffe00 and not e >> 62 & 1)
    put(off, struct.pack('>Q', (1 << 63) | (1 << 44)))
elif kind == 'l2-entry-misaligned':
    off, e = first_l2_entry(lambda e: e & 0x00fffffffffffe00 and not e >> 62 & 1)
    put(off, struct.pack('>Q', e + 512))
elif kind == 'compressed-garbage':
    off, e = first_l2_entry(lambda e: e >> 62 & 1)
    x = 62 - (cluster_bits - 8)
    put(e & ((1 << x) - 1), b'\xff' * 64)
elif kind == 'unknown-incompat':
    put(72, struct.pack('>Q', be64(h, 72) | (1 << 20)))
elif kind == 'external-data-file':
    put(72, struct.pack('>Q', be64(h, 72) | (1 << 2)))
elif kind == 'huge-extension':
    pos = be32(h, 100)
    put(pos, struct.pack('>II', 0x12345678, 0x7fffffff))
elif kind == 'truncated-data':
    f.seek(0, 2)
    f.truncate(f.tell() * 2 // 3)
else:
    sys.exit('unknown kind ' + kind)
