# SPDX-License-Identifier: LGPL-2.1-or-later
"""An independent dm-crypt sector transform in Python (pyca/cryptography for
the block ciphers), written from the kernel's documented IV definitions, used
to check udm's crypt target byte for byte."""
import hashlib
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # cryptography >= 43 moved the old ciphers
    from cryptography.hazmat.decrepit.ciphers import algorithms as old_algorithms
except ImportError:  # pragma: no cover
    old_algorithms = algorithms


def block_cipher(name, key):
    if name == "aes":
        return algorithms.AES(key)
    if name == "camellia":
        return getattr(old_algorithms, "Camellia", algorithms.Camellia)(key)
    if name == "cast5":
        return old_algorithms.CAST5(key)
    if name == "blowfish":
        return old_algorithms.Blowfish(key)
    if name == "des3_ede":
        return old_algorithms.TripleDES(key)
    if name == "sm4":
        return algorithms.SM4(key)
    raise ValueError("no reference for cipher " + name)


# The published Whirlpool digest of the empty message (ISO/IEC 10118-3, NESSIE):
# libgcrypt's Whirlpool is checked against it before the reference uses it.
WHIRLPOOL_EMPTY = bytes.fromhex(
    "19fa61d75522a4669b44e39c1d2e1726c530232130d407f89afee0964997f7a7"
    "3e83be698b288febcf88e3e03c4f0757ea8964e59b63d93708b138cc42a66eb3")


def _whirlpool(data):
    """Whirlpool from libgcrypt (Python's hashlib has none)."""
    import ctypes
    import ctypes.util
    g = ctypes.CDLL(ctypes.util.find_library("gcrypt") or "libgcrypt.so.20")
    g.gcry_check_version(None)
    algo = g.gcry_md_map_name(b"WHIRLPOOL")
    out = ctypes.create_string_buffer(64)
    g.gcry_md_hash_buffer(algo, out, b"", 0)
    assert out.raw == WHIRLPOOL_EMPTY, "libgcrypt's Whirlpool fails its known answer"
    g.gcry_md_hash_buffer(algo, out, bytes(data), ctypes.c_size_t(len(data)))
    return out.raw


def essiv_digest(name, data):
    """The kernel's hash NAME: wp384 and wp256 are Whirlpool cut to 48 and 32
    bytes (crypto/wp512.c); the others are hashlib's."""
    if name in ("wp512", "wp384", "wp256", "whirlpool"):
        return _whirlpool(data)[:{"wp384": 48, "wp256": 32}.get(name, 64)]
    return hashlib.new(name, data).digest()


def ecb(name, key, data, encrypt=True):
    c = Cipher(block_cipher(name, key), modes.ECB())
    op = c.encryptor() if encrypt else c.decryptor()
    return op.update(data) + op.finalize()


def gf128_mul(a, b):
    """LRW's GF(2^128): integers, bit i = coefficient of x^i."""
    r = 0
    for i in range(127, -1, -1):
        r <<= 1
        if r >> 128:
            r = (r ^ 0x87) & ((1 << 128) - 1)
        if (b >> i) & 1:
            r ^= a
    return r


_MD5_K = [int(abs(__import__("math").sin(i + 1)) * 2**32) & 0xFFFFFFFF for i in range(64)]
_MD5_R = [7, 12, 17, 22] * 4 + [5, 9, 14, 20] * 4 + [4, 11, 16, 23] * 4 + [6, 10, 15, 21] * 4


def md5_raw_state(msg):
    """MD5 state after the whole 64-byte blocks of msg, no padding."""
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    rol = lambda x, n: ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF
    for off in range(0, len(msg) - len(msg) % 64, 64):
        m = struct.unpack("<16I", msg[off:off + 64])
        a, b, c, d = h
        for i in range(64):
            if i < 16:
                f, g = (b & c) | (~b & d), i
            elif i < 32:
                f, g = (d & b) | (~d & c), (5 * i + 1) % 16
            elif i < 48:
                f, g = b ^ c ^ d, (3 * i + 5) % 16
            else:
                f, g = c ^ (b | (~d & 0xFFFFFFFF)), (7 * i) % 16
            a, d, c, b = d, c, b, (b + rol((a + f + _MD5_K[i] + m[g]) & 0xFFFFFFFF, _MD5_R[i])) & 0xFFFFFFFF
        h = [(x + y) & 0xFFFFFFFF for x, y in zip(h, [a, b, c, d])]
    return struct.pack("<4I", *h)


def crc32_raw(data):
    """The kernel's "crc32" hash: reflected CRC32, seed 0, no final xor."""
    import zlib
    return zlib.crc32(data, 0xFFFFFFFF) ^ 0xFFFFFFFF


class DmCrypt:
    """cipher[:keycount]-chain-ivmode[:ivopts] with a raw key."""

    def __init__(self, spec, key, sector_size=512, iv_large=False, iv_offset=0):
        head, _, rest = spec.partition("-")
        cipher, _, keycount = head.partition(":")
        chain, _, iv = rest.partition("-")
        ivmode, _, ivopts = iv.partition(":")
        self.cipher, self.chain, self.ivmode, self.ivopts = cipher, chain, ivmode, ivopts
        self.tfms = int(keycount) if keycount else 1
        self.key = key
        self.sector_size, self.iv_large, self.iv_offset = sector_size, iv_large, iv_offset
        self.bs = 8 if cipher in ("cast5", "blowfish", "des3_ede") else 16
        self.iv_size = 0 if chain == "ecb" else max(self.bs, 8)
        extra = 0
        if ivmode == "lmk" and len(key) % self.tfms:
            extra = len(key) // (self.tfms + 1)
        if ivmode == "tcw":
            extra = self.iv_size + 16
        self.extra = extra
        self.sub = (len(key) - extra) // self.tfms

    def subkey(self, t):
        return self.key[t * self.sub:(t + 1) * self.sub]

    def _iv(self, t, iv_sector, plain=None):
        iv_sector &= (1 << 64) - 1  # the kernel's sector + iv_offset is a u64
        n = self.iv_size
        m = self.ivmode
        if m in ("", "null") or n == 0:
            return bytes(n)
        if m == "plain":
            return struct.pack("<Q", iv_sector & 0xFFFFFFFF).ljust(n, b"\0")
        if m == "plain64":
            return struct.pack("<Q", iv_sector).ljust(n, b"\0")
        if m == "plain64be":
            return bytes(n - 8) + struct.pack(">Q", iv_sector)
        if m == "essiv":
            salt = essiv_digest(self.ivopts, self.subkey(t))
            return ecb(self.cipher, salt, struct.pack("<Q", iv_sector).ljust(n, b"\0"))
        if m == "benbi":
            shift = 9 - (self.bs.bit_length() - 1)
            return bytes(n - 8) + struct.pack(">Q", (iv_sector << shift) + 1)
        if m == "eboiv":
            return ecb(self.cipher, self.subkey(0),
                       struct.pack("<Q", iv_sector * self.sector_size).ljust(n, b"\0"))
        if m == "tcw":
            seed = self.key[len(self.key) - self.extra:][:n]
            s = struct.pack("<Q", iv_sector)
            return bytes(a ^ b for a, b in zip(seed, (s + s)[:n]))
        if m == "lmk":
            return self._lmk(iv_sector, plain)
        raise ValueError(m)

    def _lmk(self, iv_sector, plain):
        msg = b""
        if self.extra:
            msg += self.key[self.tfms * self.sub:][:16].ljust(64, b"\0")
        msg += plain[16:512]
        msg += struct.pack("<4I", iv_sector & 0xFFFFFFFF,
                           ((iv_sector >> 32) & 0x00FFFFFF) | 0x80000000, 4024, 0)
        return md5_raw_state(msg)

    def _tcw_whiten(self, data, iv_sector):
        w = self.key[len(self.key) - 16:]
        s = struct.pack("<Q", iv_sector)
        buf = bytearray(a ^ b for a, b in zip(w, s + s))
        for i in range(4):
            buf[4 * i:4 * i + 4] = struct.pack("<I", crc32_raw(bytes(buf[4 * i:4 * i + 4])))
        x = bytes([buf[i] ^ buf[12 + i] for i in range(4)] + [buf[4 + i] ^ buf[8 + i] for i in range(4)])
        return bytes(d ^ x[i % 8] for i, d in enumerate(data))

    def _lrw(self, key, iv, data, encrypt):
        k2 = int.from_bytes(key[-16:], "big")
        idx = int.from_bytes(iv, "big")
        tw = b"".join(gf128_mul(k2, (idx + j) % (1 << 128)).to_bytes(16, "big")
                      for j in range(len(data) // 16))
        x = bytes(a ^ b for a, b in zip(data, tw))
        y = ecb(self.cipher, key[:-16], x, encrypt)
        return bytes(a ^ b for a, b in zip(y, tw))

    def _one(self, cc_sector, data, encrypt):
        t = cc_sector & (self.tfms - 1)
        iv_sector = cc_sector >> (self.sector_size.bit_length() - 10) if self.iv_large else cc_sector
        key = self.subkey(t)
        if self.ivmode == "tcw" and not encrypt:
            data = self._tcw_whiten(data, iv_sector)
        iv = self._iv(t, iv_sector, data if encrypt else None) if not (
            self.ivmode == "lmk" and not encrypt) else bytes(16)
        if self.chain == "xts":
            if self.cipher != "aes":
                raise ValueError("pyca has XTS for AES only")
            c = Cipher(algorithms.AES(key), modes.XTS(iv))
        elif self.chain == "cbc":
            c = Cipher(block_cipher(self.cipher, key), modes.CBC(iv))
        elif self.chain == "ecb":
            c = Cipher(block_cipher(self.cipher, key), modes.ECB())
        elif self.chain == "lrw":
            out = self._lrw(key, iv, data, encrypt)
            c = None
        else:
            raise ValueError(self.chain)
        if c is not None:
            op = c.encryptor() if encrypt else c.decryptor()
            out = op.update(data) + op.finalize()
        if self.ivmode == "lmk" and not encrypt:
            fix = self._lmk(iv_sector, out)
            out = bytes(a ^ b for a, b in zip(out[:16], fix)) + out[16:]
        if self.ivmode == "tcw" and encrypt:
            out = self._tcw_whiten(out, iv_sector)
        return out

    def transform(self, target_sector, data, encrypt):
        """data starts at target_sector (512-byte units, inside the segment)."""
        out = []
        ss = self.sector_size
        for i in range(0, len(data), ss):
            cc_sector = target_sector + i // 512 + self.iv_offset
            out.append(self._one(cc_sector, data[i:i + ss], encrypt))
        return b"".join(out)
