# SPDX-License-Identifier: LGPL-2.1-or-later
"""Rewrite the headers of LUKS volumes made by cryptsetup, for the hostile
header tests: LUKS2 JSON metadata (both copies, each binary header's
checksum recomputed as cryptsetup computes it: the hash of the 4096-byte
binary header with its checksum field zeroed, followed by the JSON area)
and LUKS1 binary header fields."""
import hashlib
import json
import struct

LUKS2_BIN = 4096
CSUM_OFF, CSUM_LEN = 448, 64


def luks2_hdr_size(img):
    with open(img, "rb") as f:
        return struct.unpack(">Q", f.read(16)[8:16])[0]


def luks2_json(img):
    """The JSON metadata of the primary header, as a dict."""
    size = luks2_hdr_size(img)
    with open(img, "rb") as f:
        area = f.read(size)[LUKS2_BIN:]
    return json.loads(area.split(b"\0", 1)[0])


def luks2_write(img, meta, offsets=None, bin_patch=None):
    """Write META (a dict, or the raw JSON area bytes) into the headers at
    OFFSETS (default: both copies), each with a correct checksum.
    BIN_PATCH(offset, bytearray) may change binary header fields first."""
    size = luks2_hdr_size(img)
    if isinstance(meta, (bytes, bytearray)):
        area = bytes(meta)
    else:
        area = json.dumps(meta, separators=(",", ":")).encode()
    area = area.ljust(size - LUKS2_BIN, b"\0")[:size - LUKS2_BIN]
    with open(img, "r+b") as f:
        for off in offsets if offsets is not None else (0, size):
            f.seek(off)
            hdr = bytearray(f.read(LUKS2_BIN))
            if bin_patch:
                bin_patch(off, hdr)
            hdr[CSUM_OFF:CSUM_OFF + CSUM_LEN] = bytes(CSUM_LEN)
            alg = hdr[72:104].split(b"\0", 1)[0].decode()
            digest = hashlib.new(alg, bytes(hdr) + area).digest()
            hdr[CSUM_OFF:CSUM_OFF + len(digest)] = digest
            f.seek(off)
            f.write(hdr + area)


def luks2_edit(img, change):
    """Apply CHANGE(meta) (in place, or returning a new value) to both copies."""
    meta = luks2_json(img)
    new = change(meta)
    luks2_write(img, meta if new is None else new)


# LUKS1 binary header fields: (offset, struct format)
LUKS1 = {"cipher_name": (8, "32s"), "cipher_mode": (40, "32s"), "hash": (72, "32s"),
         "payload_offset": (104, ">I"), "key_bytes": (108, ">I"), "mk_iterations": (164, ">I"),
         "uuid": (168, "40s")}


def luks1_slot_field(slot, name):
    base = 208 + 48 * slot
    return {"active": (base, ">I"), "iterations": (base + 4, ">I"),
            "offset": (base + 40, ">I"), "stripes": (base + 44, ">I")}[name]


def luks1_get(img, where):
    off, fmt = where
    with open(img, "rb") as f:
        f.seek(off)
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def luks1_set(img, where, value):
    off, fmt = where
    with open(img, "r+b") as f:
        f.seek(off)
        f.write(struct.pack(fmt, value))
