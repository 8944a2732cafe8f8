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


def make_header(chain, hashname, password, master_keys, volume_size, data_offset, data_size,
                veracrypt=True, pim=0, hidden_size=0, salt=None):
    salt = salt or os.urandom(64)
    if veracrypt:
        base, const, mult = VC_ITER[hashname]
        iterations = const + pim * mult if pim else base
    else:
        iterations = TC_ITER[hashname]
    hk = pbkdf2(hashname, password, salt, iterations, 192)
    d = bytearray(448)
    d[0:4] = b"VERA" if veracrypt else b"TRUE"
    struct.pack_into(">HH", d, 4, 5, 0x010b if veracrypt else 0x0700)
    struct.pack_into(">QQQQQQ", d, 12, 0, 0, hidden_size, volume_size, data_offset, data_size)
    struct.pack_into(">II", d, 60, 0, 512)
    d[192:448] = master_keys
    struct.pack_into(">I", d, 8, crc32(bytes(d[192:448])))
    struct.pack_into(">I", d, 188, crc32(bytes(d[0:188])))
    return salt + cascade(chain, hk, 0, bytes(d), True)


def make_volume(path, size, chain, hashname, password, plaintext, veracrypt=True, pim=0,
                keyfiles=()):
    """A normal volume of SIZE bytes whose data area starts with PLAINTEXT."""
    pw = keyfile_pool(password, keyfiles, 128 if veracrypt and len(password) > 64 else 64) \
        if keyfiles else password
    keys = os.urandom(256)
    off, data_size = 131072, size - 262144
    hdr = make_header(chain, hashname, pw, keys, data_size, off, data_size, veracrypt, pim)
    backup = make_header(chain, hashname, pw, keys, data_size, off, data_size, veracrypt, pim)
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(0)
        f.write(hdr)
        f.seek(size - 131072)
        f.write(backup)
        f.seek(off)
        for s in range(len(plaintext) // 512):
            unit = off // 512 + s
            f.write(cascade(chain, keys, unit, plaintext[512 * s:512 * s + 512], True))
    return keys
