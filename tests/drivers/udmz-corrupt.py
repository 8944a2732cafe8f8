#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Damage a udmz image in one named way (for udmz-corrupt.sh):
#   udmz-corrupt.py KIND IN OUT
# "Consistent" damage recomputes the checksums, so that the reader's range
# checks (not only its CRCs) are what must catch it.
import shutil, struct, sys

def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xffffffff

kind, src, dst = sys.argv[1:4]
shutil.copyfile(src, dst)
f = open(dst, 'r+b')
img = bytearray(f.read())
T = len(img) - 128
index_off, count = struct.unpack_from('<QQ', img, T + 32)
bad_off, bad_count = struct.unpack_from('<QQ', img, T + 52)

def fix_trailer():
    struct.pack_into('<I', img, T + 124, 0)
    struct.pack_into('<I', img, T + 124, crc32c(img[T:T + 128]) ^ 0x54524c52)

def fix_index():
    struct.pack_into('<I', img, T + 48, crc32c(img[index_off:index_off + 24 * count]) ^ 0x494e4458)
    fix_trailer()

def first_stored_chunk():
    for i in range(count):
        e = index_off + 24 * i
        if struct.unpack_from('<H', img, e + 12)[0] != 0:
            return e
    sys.exit('no stored chunk')

if kind == 'truncated':
    img = img[:len(img) - 100]
elif kind == 'truncated-header':
    img = img[:64]
elif kind == 'bad-magic':
    img[0:4] = b'UDMX'
elif kind == 'header-crc':
    img[100] ^= 1
elif kind == 'trailer-crc':
    img[T + 100] ^= 1
elif kind == 'index-crc':
    img[index_off + 3] ^= 1
elif kind == 'chunk-data':
    e = first_stored_chunk()
    off = struct.unpack_from('<Q', img, e)[0]
    img[off + 20] ^= 0x40
elif kind == 'chunk-past-eof':
    e = first_stored_chunk()
    struct.pack_into('<Q', img, e, 1 << 40)
    fix_index()
elif kind == 'chunk-kind':
    e = first_stored_chunk()
    struct.pack_into('<H', img, e + 12, 9)
    fix_index()
elif kind == 'undecodable-chunk':
    # Valid CRCs over bytes that are not a zstd frame.
    e = first_stored_chunk()
    off, n = struct.unpack_from('<QI', img, e)
    img[off:off + n] = b'\x5a' * n
    struct.pack_into('<I', img, e + 16, crc32c(img[off:off + n]))
    fix_index()
elif kind == 'index-past-eof':
    struct.pack_into('<Q', img, T + 32, len(img) * 2)
    fix_trailer()
elif kind == 'badmap-unsorted':
    assert bad_count >= 2
    a = img[bad_off:bad_off + 16]
    img[bad_off:bad_off + 16] = img[bad_off + 16:bad_off + 32]
    img[bad_off + 16:bad_off + 32] = a
    struct.pack_into('<I', img, T + 68, crc32c(img[bad_off:bad_off + 16 * bad_count]) ^ 0x4241444d)
    fix_trailer()
else:
    sys.exit('unknown kind ' + kind)
f.seek(0); f.truncate(); f.write(img)
