# SPDX-License-Identifier: LGPL-2.1-or-later
"""An independent TrueCrypt/VeraCrypt volume writer, written from the
VeraCrypt volume-format documentation (not from udm's C code): header
layout, CRC32s, keyfile pool, PBKDF2 header key, XTS cascades.  Block
ciphers and the hashes Python lacks (Whirlpool, Streebog, Serpent, Twofish)
come from libgcrypt through ctypes; XTS, the cascade order, the key
material layout and the header are computed here."""
import ctypes
import ctypes.util
import hashlib
import os
import struct
import zlib

_g = ctypes.CDLL(ctypes.util.find_library("gcrypt") or "libgcrypt.so.20")
_g.gcry_check_version.restype = ctypes.c_char_p
_g.gcry_check_version(None)

CIPHERS = {"aes": 9, "twofish": 10, "serpent": 306, "camellia": 312}  # GCRY_CIPHER_*256
GCRY_MODE_ECB = 1
HASHES = {"sha512": "SHA512", "sha256": "SHA256", "whirlpool": "WHIRLPOOL",
          "ripemd160": "RIPEMD160", "streebog": "STRIBOG512"}
# VeraCrypt: (iterations with PIM 0, PIM constant, PIM multiplier) for volumes
VC_ITER = {"sha512": (500000, 15000, 1000), "sha256": (500000, 15000, 1000),
           "whirlpool": (500000, 15000, 1000), "streebog": (500000, 15000, 1000),
           "ripemd160": (655331, 15000, 1000)}
TC_ITER = {"ripemd160": 2000, "sha512": 1000, "whirlpool": 1000}


def pbkdf2(hashname, password, salt, iterations, length):
    if hashname in ("sha512", "sha256"):
        return hashlib.pbkdf2_hmac(hashname, password, salt, iterations, length)
    algo = _g.gcry_md_map_name(HASHES[hashname].encode())
    out = ctypes.create_string_buffer(length)
    err = _g.gcry_kdf_derive(password, ctypes.c_size_t(len(password)), 34, algo, salt,
                             ctypes.c_size_t(len(salt)), ctypes.c_ulong(iterations),
                             ctypes.c_size_t(length), out)  # 34: GCRY_KDF_PBKDF2
    assert err == 0, "gcry_kdf_derive failed"
    return out.raw


def ecb(cipher, key, data, encrypt):
    h = ctypes.c_void_p()
    assert _g.gcry_cipher_open(ctypes.byref(h), CIPHERS[cipher], GCRY_MODE_ECB, 0) == 0
    try:
        assert _g.gcry_cipher_setkey(h, key, ctypes.c_size_t(len(key))) == 0
        buf = ctypes.create_string_buffer(bytes(data), len(data))
        fn = _g.gcry_cipher_encrypt if encrypt else _g.gcry_cipher_decrypt
        assert fn(h, buf, ctypes.c_size_t(len(data)), None, ctypes.c_size_t(0)) == 0
        return buf.raw
    finally:
        _g.gcry_cipher_close(h)


def _mul_x(t):
    v = int.from_bytes(t, "little")
    v = (v << 1) ^ (0x87 if v >> 127 else 0)
    return (v & ((1 << 128) - 1)).to_bytes(16, "little")


def xts(cipher, key1, key2, unit, data, encrypt):
    """IEEE P1619 XTS of one data unit (length a multiple of 16)."""
    t = ecb(cipher, key2, unit.to_bytes(16, "little"), True)
    tweaks = bytearray()
    for _ in range(len(data) // 16):
        tweaks += t
        t = _mul_x(t)
    x = bytes(a ^ b for a, b in zip(data, tweaks))
    y = ecb(cipher, key1, x, encrypt)
    return bytes(a ^ b for a, b in zip(y, tweaks))


def cascade(chain, keys, unit, data, encrypt):
    """chain[0] encrypts first; keys: primary keys at 32*i, tweak keys at 32*(n+i)."""
    n = len(chain)
    order = range(n) if encrypt else reversed(range(n))
    for i in order:
        data = xts(chain[i], keys[32 * i:32 * i + 32], keys[32 * (n + i):32 * (n + i) + 32],
                   unit, data, encrypt)
    return data


def crc32(b):
    return zlib.crc32(b) & 0xFFFFFFFF


def keyfile_pool(passphrase, keyfiles, pool_len=64):
    pool = bytearray(pool_len)
    for kf in keyfiles:
        data = open(kf, "rb").read()[:1 << 20]
        crc, j = 0xFFFFFFFF, 0
        for byte in data:
            crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
            for shift in (24, 16, 8, 0):
                pool[j] = (pool[j] + (crc >> shift)) & 0xFF
                j += 1
            j %= pool_len
    for i, c in enumerate(passphrase):
        pool[i] = (pool[i] + c) & 0xFF
    return bytes(pool)


_CRC_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ (0xEDB88320 if _c & 1 else 0)
    _CRC_TABLE.append(_c)


def argon2id(password, salt, pim, length):
    """VeraCrypt's Argon2id: PIM 0 is PIM 12; memory 64 MiB + 32 MiB a PIM up to
    1 GiB, passes 3 + (PIM-1)//3 up to PIM 31, then one a PIM; one lane."""
    pim = pim or 12
    mem = min(64 + (pim - 1) * 32, 1024) * 1024
    passes = 3 + (pim - 1) // 3 if pim <= 31 else 13 + pim - 31
    try:
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
        return Argon2id(salt=salt, length=length, iterations=passes, lanes=1,
                        memory_cost=mem).derive(password)
    except ImportError:  # pyca/cryptography before 44: libgcrypt's Argon2
        hd = ctypes.c_void_p()
        params = (ctypes.c_ulong * 4)(length, passes, mem, 1)
        assert _g.gcry_kdf_open(ctypes.byref(hd), 64, 2, params, 4, password,
                                ctypes.c_size_t(len(password)), salt, ctypes.c_size_t(len(salt)),
                                None, ctypes.c_size_t(0), None, ctypes.c_size_t(0)) == 0
        try:
            assert _g.gcry_kdf_compute(hd, None) == 0
            out = ctypes.create_string_buffer(length)
            assert _g.gcry_kdf_final(hd, ctypes.c_size_t(length), out) == 0
            return out.raw
        finally:
            _g.gcry_kdf_close(hd)


# System encryption (the header in sector 62): PBKDF2 iterations with PIM 0, and per PIM.
VC_SYSTEM_ITER = {"sha256": (200000, 2048), "ripemd160": (327661, 2048),
                  "sha512": (500000, None), "whirlpool": (500000, None)}


def header_key(hashname, password, salt, veracrypt, pim, system):
    if hashname == "argon2id":
        return argon2id(password, salt, pim, 192)
    if not veracrypt:
        iterations = 1000 if system else TC_ITER[hashname]
    elif system and VC_SYSTEM_ITER[hashname][1]:
        base, mult = VC_SYSTEM_ITER[hashname]
        iterations = pim * mult if pim else base
    else:
        base, const, mult = VC_ITER[hashname]
        iterations = const + pim * mult if pim else base
    return pbkdf2(hashname, password, salt, iterations, 192)


def make_header(chain, hashname, password, master_keys, volume_size, data_offset, data_size,
                veracrypt=True, pim=0, hidden_size=0, salt=None, version=5, min_version=None,
                flags=0, sector_size=512, system=False, magic=None, hkey=None):
    """A 512-byte header.  data_offset/data_size are the master key scope
    (encrypted area start and length); version 3 (TrueCrypt 5) has no header
    CRC and no sector size field.  hashname "argon2id" is VeraCrypt's Argon2id;
    HKEY(password, salt) replaces the header key derivation."""
    salt = salt or os.urandom(64)
    hk = hkey(password, salt) if hkey else header_key(hashname, password, salt, veracrypt, pim,
                                                      system)
    if min_version is None:
        min_version = 0x010b if veracrypt else 0x0500 if version == 3 else 0x0700
    d = bytearray(448)
    d[0:4] = magic or (b"VERA" if veracrypt else b"TRUE")
    struct.pack_into(">HH", d, 4, version, min_version)
    struct.pack_into(">QQQQQQ", d, 12, 0, 0, hidden_size, volume_size, data_offset, data_size)
    struct.pack_into(">II", d, 60, flags, sector_size if version >= 5 else 0)
    d[192:448] = master_keys
    struct.pack_into(">I", d, 8, crc32(bytes(d[192:448])))
    if version >= 4:
        struct.pack_into(">I", d, 188, crc32(bytes(d[0:188])))
    return salt + cascade(chain, hk, 0, bytes(d), True)


def write_data(f, chain, keys, offset, plaintext):
    """PLAINTEXT encrypted at byte OFFSET; the XTS data unit is the 512-byte
    sector number counted from the start of the device (whatever the header's
    sector size: VeraCrypt's data unit is always 512 bytes)."""
    f.seek(offset)
    for s in range(len(plaintext) // 512):
        f.write(cascade(chain, keys, offset // 512 + s, plaintext[512 * s:512 * s + 512], True))


def make_tc5_volume(path, size, chain, hashname, password, plaintext, scope_size=True):
    """A TrueCrypt 5.x volume (header version 3): one header at 0, data from
    byte 512, the encrypted area start 0 (and its size 0 unless SCOPE_SIZE)."""
    keys = os.urandom(256)
    vol = size - 512
    hdr = make_header(chain, hashname, password, keys, vol, 0, vol if scope_size else 0,
                      veracrypt=False, version=3)
    with open(path, "wb") as f:
        f.truncate(size)
        f.write(hdr)
        write_data(f, chain, keys, 512, plaintext)
    return keys


def add_tc5_hidden(path, chain, hashname, password, hidden_size, plaintext):
    """A TrueCrypt 5 hidden volume inside the TrueCrypt 5 volume PATH: its
    header at the end - 1536 bytes, its data right before that header."""
    size = os.path.getsize(path)
    keys = os.urandom(256)
    with open(path, "r+b") as f:
        f.seek(size - 1536)
        f.write(make_header(chain, hashname, password, keys, hidden_size, 0, 0,
                            veracrypt=False, version=3, hidden_size=hidden_size))
        write_data(f, chain, keys, size - 1536 - hidden_size, plaintext)
    return keys, size - 1536 - hidden_size


def _mbr(partitions):
    """A DOS partition table: [(type, first sector, sectors)]."""
    m = bytearray(512)
    for i, (ptype, first, count) in enumerate(partitions):
        struct.pack_into("<B3sB3sII", m, 446 + 16 * i, 0x80 if i == 0 else 0, b"\xfe\xff\xff",
                         ptype, b"\xfe\xff\xff", first, count)
    m[510:512] = b"\x55\xaa"
    return bytes(m)


def _gpt(disk_sectors, first, count):
    """A protective MBR and a primary GPT (header in LBA 1, 128 entries from LBA 2)
    with one Microsoft basic data partition; no backup GPT (not needed here)."""
    entry = bytearray(128)
    entry[0:16] = bytes.fromhex("a2a0d0ebe5b9334487c068b6b72699c7")  # basic data
    entry[16:32] = os.urandom(16)
    struct.pack_into("<QQ", entry, 32, first, first + count - 1)
    entries = bytes(entry) + bytes(127 * 128)
    hdr = bytearray(92)
    struct.pack_into("<8sIIIIQQQQ16sQIII", hdr, 0, b"EFI PART", 0x10000, 92, 0, 0, 1,
                     disk_sectors - 1, 34, disk_sectors - 34, os.urandom(16), 2, 128, 128,
                     crc32(entries))
    struct.pack_into("<I", hdr, 16, crc32(bytes(hdr)))
    return _mbr([(0xEE, 1, min(disk_sectors - 1, 0xFFFFFFFF))]) + bytes(hdr) + \
        bytes(512 - 92) + entries


def make_system_disk(path, size, layout, chain, hashname, password, plaintext, veracrypt=True,
                     pim=0, encrypted=None, part_first=2048, part_sectors=None, **hdr):
    """A drive image with system encryption, as VeraCrypt/TrueCrypt lay it out:
    the header in sector 62; LAYOUT "drive" encrypts the whole drive after the
    63-sector boot track (area start 32256, length drive - 32256), "mbr" and
    "gpt" only the system partition (area start = partition start, length =
    partition size).  ENCRYPTED is the encrypted length (the volume size once
    encryption is done).  Returns (keys, area start, volume size)."""
    sectors = size // 512
    if layout == "drive":
        start, vol = 63 * 512, size - 63 * 512
        table = _mbr([(0x07, 63, sectors - 63)])
    else:
        part_sectors = part_sectors or sectors - part_first - (34 if layout == "gpt" else 0)
        start, vol = part_first * 512, part_sectors * 512
        table = _mbr([(0x07, part_first, part_sectors)]) if layout == "mbr" else \
            _gpt(sectors, part_first, part_sectors)
    keys = os.urandom(256)
    h = dict(flags=1, system=True)
    h.update(hdr)
    header = make_header(chain, hashname, password, keys, h.pop("volume_size", vol),
                         h.pop("data_offset", start),
                         vol if encrypted is None else encrypted, veracrypt=veracrypt, pim=pim,
                         **h)
    with open(path, "wb") as f:
        f.truncate(size)
        f.write(table)
        f.seek(62 * 512)
        f.write(header)
        write_data(f, chain, keys, start, plaintext)
    return keys, start, vol


def make_volume(path, size, chain, hashname, password, plaintext, veracrypt=True, pim=0,
                keyfiles=(), **hdr):
    """A normal volume of SIZE bytes whose data area starts with PLAINTEXT;
    HDR overrides header fields (version, min_version, flags, sector_size,
    hidden_size, volume_size, data_offset, data_size, magic)."""
    pw = keyfile_pool(password, keyfiles, 128 if veracrypt and len(password) > 64 else 64) \
        if keyfiles else password
    keys = os.urandom(256)
    off, data_size = 131072, size - 262144
    fields = dict(volume_size=data_size, data_offset=off, data_size=data_size)
    fields.update(hdr)
    with open(path, "wb") as f:
        f.truncate(size)
        for where in (0, size - 131072):
            f.seek(where)
            f.write(make_header(chain, hashname, pw, keys, fields["volume_size"],
                                fields["data_offset"], fields["data_size"], veracrypt, pim,
                                **{k: v for k, v in fields.items()
                                   if k not in ("volume_size", "data_offset", "data_size")}))
        write_data(f, chain, keys, off, plaintext)
    return keys
