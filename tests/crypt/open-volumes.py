#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""udm open / udm close through the CLI and a real udmd, on volumes made by
real tools: LUKS1/LUKS2 by cryptsetup luksFormat, TrueCrypt by tcplay (on a
loop device over a file), VeraCrypt by tcrypt_ref.py (an independent writer:
no Debian tool creates VeraCrypt volumes).  Data written through udm is
decrypted independently; bad input is refused with one clear message and
leaves nothing behind and the volume's bytes unchanged."""
import fcntl
import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import termios
import time

from cli_harness import Harness, sha  # noqa: E402

CI = os.environ.get("CI") == "true"
for tool in ("cryptsetup", "tcplay", "losetup", "nbdcopy"):
    if not shutil.which(tool):
        print("skip: %s not installed" % tool)
        sys.exit(1 if CI else 77)
from dmcrypt_ref import DmCrypt  # noqa: E402
import tcrypt_ref  # noqa: E402

T = Harness('udm-open-', timeout=300)
WORK = T.work
check, udm, devices = T.check, T.udm, T.devices


def uri(name):
    return udm("uri", name)[1].strip()


def dev_read(name):
    out = os.path.join(WORK, "read.bin")
    subprocess.run(["nbdcopy", uri(name), out], check=True, timeout=60)
    return open(out, "rb").read()


def dev_write(name, data):
    f = os.path.join(WORK, "write.bin")
    open(f, "wb").write(data)
    return subprocess.run(["nbdcopy", f, uri(name)], capture_output=True, timeout=60).returncode


def showkey(name):
    words = udm("table", "--showkeys", name)[1].split()
    return words[3], bytes.fromhex(words[4]), int(words[5]), int(words[7])


def sector_size(name):
    m = re.search(r"sector_size:(\d+)", udm("table", name)[1])
    return int(m.group(1)) if m else 512


def expect_refused(what, key, args, stdin=b"", vol=None):
    before = sha(vol) if vol else None
    rc, out, err = udm(*args, stdin=stdin)
    lines = err.strip().splitlines()
    check(what, rc == 1 and len(lines) == 1 and key in err, "rc=%d err=%r" % (rc, err))
    check(what + ": nothing created", devices() == "No devices found", devices())
    if vol:
        check(what + ": volume unchanged", sha(vol) == before)


def expect_message(what, message, args, stdin=b"", vol=None):
    """Refused with exactly MESSAGE, nothing created, VOL's bytes unchanged."""
    before = sha(vol) if vol else None
    rc, out, err = udm(*args, stdin=stdin)
    check(what, rc == 1 and err == "udm: " + message + "\n", "rc=%d err=%r" % (rc, err))
    check(what + ": nothing created", devices() == "No devices found", devices())
    if vol:
        check(what + ": volume unchanged", sha(vol) == before)


def table_words(name):
    return udm("table", "--showkeys", name)[1].split()


def fed(argv, lines):
    """Run argv feeding one line per read() (tcplay reads each answer with one read)."""
    r, w = os.pipe()
    p = subprocess.Popen(argv, stdin=r, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in lines:
        os.write(w, line.encode() + b"\n")
        t0 = time.time()
        while p.poll() is None and time.time() - t0 < 60:
            n = struct.unpack("i", fcntl.ioctl(r, termios.FIONREAD, b"\0\0\0\0"))[0]
            if n == 0:
                break
            time.sleep(0.005)
    os.close(w)
    os.close(r)
    out = p.communicate(timeout=120)[0].decode(errors="replace")
    return p.returncode, out


def tcplay_create(img, size, lines, *opts):
    with open(img, "wb") as f:
        f.truncate(size)
    loop = subprocess.run(["losetup", "-f", "--show", img], capture_output=True, text=True)
    if loop.returncode:
        return loop.returncode, loop.stderr
    dev = loop.stdout.strip()
    try:
        return fed(["tcplay", "-c", "-d", dev, "-z", "-w", *opts], lines)
    finally:
        subprocess.run(["losetup", "-d", dev])


def luks_tests():
    kf = os.path.join(WORK, "pass")
    open(kf, "w").write("correct horse")
    for name, opts in [
        ("luks1", ["--type", "luks1", "--cipher", "aes-xts-plain64", "--key-size", "512",
                   "--pbkdf-force-iterations", "1000"]),
        ("luks2", ["--type", "luks2", "--pbkdf", "argon2id", "--pbkdf-memory", "32",
                   "--pbkdf-force-iterations", "4", "--cipher", "aes-cbc-essiv:sha256",
                   "--key-size", "256"]),
    ]:
        img = os.path.join(WORK, name + ".img")
        with open(img, "wb") as f:
            f.truncate(20 << 20)
        r = subprocess.run(["cryptsetup", "luksFormat", "--batch-mode", "--key-file", kf,
                            *opts, img], capture_output=True, text=True)
        check(name + " luksFormat", r.returncode == 0, r.stderr)
        # passphrase on stdin, up to the newline
        rc, _, err = udm("open", "--type", name, img, "v", stdin=b"correct horse\nignored")
        check(name + " open (stdin)", rc == 0, err)
        rc, info, _ = udm("info", "v")
        check(name + " uuid", re.search(r"UUID: CRYPT-%s-[0-9a-f]{32}-v" % name.upper(), info),
              info)
        data = os.urandom(256 * 1024)
        check(name + " write through udm", dev_write("v", data) == 0)
        spec, key, iv_off, off = showkey("v")
        ss = sector_size("v")
        check(name + " close", udm("close", "v")[0] == 0 and devices() == "No devices found",
              devices())
        dump = subprocess.run(["cryptsetup", "luksDump", "--dump-volume-key", "--batch-mode",
                               "--key-file", kf, img], capture_output=True, text=True).stdout
        vk = bytes.fromhex("".join(re.findall(r"\b[0-9a-f]{2}\b", dump.split("MK dump:")[1])))
        check(name + " volume key equals cryptsetup's", vk == key)
        raw = open(img, "rb").read()[off * 512:off * 512 + len(data)]
        check(name + " ciphertext decrypts independently",
              DmCrypt(spec, vk, ss).transform(iv_off, raw, False) == data)
        # --key-file and --readonly: the data reads back, writes fail, bytes unchanged
        before = sha(img)
        rc, _, err = udm("open", "--type", "luks", "--key-file", kf, "--readonly", img, "ro")
        check(name + " open --key-file --readonly", rc == 0, err)
        check(name + " reads back", dev_read("ro")[:len(data)] == data)
        check(name + " readonly refuses writes", dev_write("ro", b"x" * 4096) != 0)
        check(name + " closes right after a failed client write", udm("close", "ro")[0] == 0)
        check(name + " readonly left the volume alone", sha(img) == before)
        expect_refused(name + " wrong passphrase", "No key available with this passphrase.",
                       ["open", img, "w"], stdin=b"battery staple\n", vol=img)
    # type mismatch
    img2 = os.path.join(WORK, "luks2.img")
    expect_refused("luks1 requested on LUKS2", "is not a LUKS1 device",
                   ["open", "--type", "luks1", "--key-file", kf, img2, "m"], vol=img2)
    # damaged primary LUKS2 header: the backup is used and the user told
    dmg = os.path.join(WORK, "damaged.img")
    shutil.copy(img2, dmg)
    with open(dmg, "r+b") as f:
        f.seek(0x200)
        f.write(b"\xff" * 64)
    rc, _, err = udm("open", "--key-file", kf, dmg, "d")
    check("damaged primary header: opened from the backup", rc == 0 and "backup" in err, err)
    check("damaged primary header: same data", rc == 0 and dev_read("d")[:4096] ==
          data[:4096] if rc == 0 else False)
    udm("close", "d")
    # corrupted keyslot area (LUKS1: the only keyslot's key material)
    bad = os.path.join(WORK, "badslot.img")
    shutil.copy(os.path.join(WORK, "luks1.img"), bad)
    with open(bad, "r+b") as f:
        f.seek(8 * 512 + 1000)
        f.write(os.urandom(512))
    expect_refused("corrupted keyslot", "No key available with this passphrase.",
                   ["open", "--key-file", kf, bad, "k"], vol=bad)
    # truncated header
    trunc = os.path.join(WORK, "trunc.img")
    open(trunc, "wb").write(open(img2, "rb").read(300))
    expect_refused("truncated LUKS header", "LUKS", ["open", "--key-file", kf, trunc, "t"],
                   vol=trunc)


def tcplay_tests():
    cases = [("SHA512", "AES-256-XTS"),
             ("RIPEMD160", "AES-256-XTS,TWOFISH-256-XTS,SERPENT-256-XTS"),
             ("whirlpool", "SERPENT-256-XTS,TWOFISH-256-XTS"),
             ("SHA512", "TWOFISH-256-XTS,AES-256-XTS"),
             ("RIPEMD160", "SERPENT-256-XTS,TWOFISH-256-XTS,AES-256-XTS")]
    for i, (prf, chain) in enumerate(cases):
        img = os.path.join(WORK, "tc%d.img" % i)
        pw = "tc-pass-%d" % i
        rc, out = tcplay_create(img, 4 << 20, [pw, pw, "y"], "-a", prf, "-b", chain)
        what = "tcplay %s %s" % (prf, chain)
        check(what + " created", rc == 0, out)
        rc, _, err = udm("open", "--type", "tcrypt", img, "tc", stdin=pw.encode() + b"\n")
        check(what + " opened", rc == 0, err)
        if rc:
            continue
        ciphers = [c.split("-")[0].lower() for c in chain.split(",")]
        names = ["tc"] + ["tc_%d" % k for k in range(1, len(ciphers))]
        keys = b""
        for k, n in enumerate(names):
            spec, key, iv_off, off = showkey(n)
            check(what + " level %d is %s" % (k, ciphers[k]),
                  spec == ciphers[k] + "-xts-plain64" and iv_off == 256, spec)
            keys += key
        data = os.urandom(128 * 1024)
        check(what + " write", dev_write("tc", data) == 0)
        udm("close", "tc")
        check(what + " close removed the stack", devices() == "No devices found", devices())
        # independent decryption: the cascade over the data area (unit = sector)
        n = len(ciphers)
        mk = bytearray(256)
        for k in range(n):
            mk[32 * k:32 * k + 32] = keys[64 * k:64 * k + 32]
            mk[32 * (n + k):32 * (n + k) + 32] = keys[64 * k + 32:64 * k + 64]
        raw = open(img, "rb").read()
        ok = all(tcrypt_ref.cascade(ciphers, bytes(mk), 256 + s,
                                    raw[131072 + 512 * s:131072 + 512 * s + 512], False) ==
                 data[512 * s:512 * s + 512] for s in range(0, 256, 37))
        check(what + " data decrypts independently", ok)
        rc, _, _ = udm("open", "--type", "tcrypt", "--readonly", img, "again",
                       stdin=pw.encode() + b"\n")
        check(what + " reads back", rc == 0 and dev_read("again")[:len(data)] == data)
        udm("close", "again")
        if i == 0:
            expect_refused("tcplay wrong passphrase", "No key available with this passphrase.",
                           ["open", "--type", "tcrypt", img, "w"], stdin=b"nope\n", vol=img)
            # primary header destroyed: the backup header at the end opens it
            with open(img, "r+b") as f:
                f.write(b"\0" * 512)
            rc, _, err = udm("open", "--type", "tcrypt", img, "b", stdin=pw.encode() + b"\n")
            check("tcplay backup header used and told", rc == 0 and "backup" in err, err)
            check("tcplay backup header: same data", rc == 0 and
                  dev_read("b")[:4096] == data[:4096])
            udm("close", "b")

    # a hidden volume: outer and hidden passphrases
    img = os.path.join(WORK, "hidden.img")
    rc, out = tcplay_create(img, 8 << 20, ["outer", "outer", "inner", "inner", "2M", "y"],
                            "-g", "-a", "SHA512", "-b", "AES-256-XTS")
    check("tcplay hidden volume created", rc == 0, out)
    rc, _, err = udm("open", "--type", "tcrypt", img, "outer", stdin=b"outer\n")
    check("outer volume opens", rc == 0, err)
    rc, _, err = udm("open", "--type", "tcrypt", "--hidden", img, "inner", stdin=b"inner\n")
    check("hidden volume opens", rc == 0, err)
    rc, size, _ = udm("table", "inner")
    check("hidden volume is 2 MiB", size.split()[1:2] == ["4096"], size)
    data = os.urandom(64 * 1024)
    check("hidden volume write", dev_write("inner", data) == 0)
    udm("close", "inner")
    udm("close", "outer")
    rc, _, _ = udm("open", "--type", "tcrypt", "--hidden", img, "inner", stdin=b"inner\n")
    check("hidden volume reads back", rc == 0 and dev_read("inner")[:len(data)] == data)
    udm("close", "inner")
    expect_refused("outer passphrase on the hidden header", "No key available",
                   ["open", "--type", "tcrypt", "--hidden", img, "x"], stdin=b"outer\n", vol=img)

    # TrueCrypt keyfiles (the keyfile pool), with a passphrase
    kf = os.path.join(WORK, "keyfile")
    open(kf, "wb").write(os.urandom(3000))
    img = os.path.join(WORK, "kf.img")
    rc, out = tcplay_create(img, 4 << 20, ["kfpass", "kfpass", "y"], "-k", kf)
    check("tcplay keyfile volume created", rc == 0, out)
    rc, _, err = udm("open", "--type", "tcrypt", "--key-file", kf, img, "k", stdin=b"kfpass\n")
    check("keyfile + passphrase opens", rc == 0, err)
    udm("close", "k")
    expect_refused("passphrase without the keyfile", "No key available",
                   ["open", "--type", "tcrypt", img, "k"], stdin=b"kfpass\n", vol=img)


def veracrypt_tests():
    plaintext = os.urandom(64 * 1024)
    cases = [("sha512", ["aes"], 0), ("sha512", ["twofish", "aes"], 3),
             ("sha256", ["serpent"], 1), ("whirlpool", ["aes", "twofish", "serpent"], 2),
             ("ripemd160", ["camellia"], 1), ("streebog", ["serpent", "camellia"], 1)]
    for i, (h, chain, pim) in enumerate(cases):
        img = os.path.join(WORK, "vc%d.img" % i)
        pw = b"vera-%d" % i
        tcrypt_ref.make_volume(img, 2 << 20, chain, h, pw, plaintext, pim=pim)
        what = "VeraCrypt %s %s PIM %d" % (h, "-".join(chain), pim)
        args = ["open", "--type", "veracrypt"] + (["--veracrypt-pim", str(pim)] if pim else [])
        t0 = time.time()
        rc, _, err = udm(*args, img, "vc", stdin=pw + b"\n")
        check(what + " opens (%.1fs)" % (time.time() - t0), rc == 0, err)
        if rc:
            continue
        check(what + " plaintext reads back", dev_read("vc")[:len(plaintext)] == plaintext)
        check(what + " uuid", "CRYPT-VERACRYPT-vc" in udm("info", "vc")[1])
        udm("close", "vc")
        check(what + " closed", devices() == "No devices found", devices())
        if i == 1:
            expect_refused("VeraCrypt wrong PIM", "No key available",
                           ["open", "--type", "veracrypt", "--veracrypt-pim", "4", img, "w"],
                           stdin=pw + b"\n", vol=img)
    # VeraCrypt keyfile, 100-byte passphrase (the 128-byte pool)
    kf = os.path.join(WORK, "vckey")
    open(kf, "wb").write(os.urandom(777))
    img = os.path.join(WORK, "vckf.img")
    pw = b"p" * 100
    tcrypt_ref.make_volume(img, 2 << 20, ["aes"], "sha512", pw, plaintext, pim=1,
                           keyfiles=[kf])
    rc, _, err = udm("open", "--type", "veracrypt", "--veracrypt-pim", "1", "--key-file", kf,
                     img, "vk", stdin=pw + b"\n")
    check("VeraCrypt keyfile + long passphrase opens", rc == 0, err)
    check("VeraCrypt keyfile volume reads back",
          rc == 0 and dev_read("vk")[:len(plaintext)] == plaintext)
    udm("close", "vk")


def tc5_tests():
    """TrueCrypt 5.x (header version 3): the data start right after the one
    header, whatever the (zero) area start field says; IV = sector number."""
    plaintext = os.urandom(64 * 1024)
    size = 1 << 20
    for scope, chain, h in ((True, ["aes"], "sha512"), (False, ["twofish", "aes"], "ripemd160")):
        img = os.path.join(WORK, "tc5-%d.img" % scope)
        keys = tcrypt_ref.make_tc5_volume(img, size, chain, h, b"tc5 pass", plaintext,
                                          scope_size=scope)
        what = "TrueCrypt 5 %s %s (area start 0, length %s)" % (h, "-".join(chain),
                                                                "set" if scope else "0")
        header = open(img, "rb").read(512)
        rc, _, err = udm("open", "--type", "tcrypt", img, "t5", stdin=b"tc5 pass\n")
        check(what + " opens", rc == 0, err)
        if rc:
            continue
        bottom = table_words("t5" if len(chain) == 1 else "t5_1")
        check(what + " maps sector 1 on, IV 1", bottom[1] == str(size // 512 - 1) and
              bottom[5] == "1" and bottom[7] == "1", bottom[:3] + bottom[5:])
        check(what + " plaintext reads back", dev_read("t5")[:len(plaintext)] == plaintext)
        data = os.urandom(16 * 1024)
        check(what + " write", dev_write("t5", data) == 0)
        udm("close", "t5")
        raw = open(img, "rb").read()
        check(what + " the write left the header alone", raw[:512] == header)
        check(what + " written data decrypts independently",
              all(tcrypt_ref.cascade(chain, keys, 1 + s, raw[512 + 512 * s:1024 + 512 * s],
                                     False) == data[512 * s:512 * s + 512] for s in range(32)))
    # a TrueCrypt 5 hidden volume: header at the end - 1536, data before it
    img = os.path.join(WORK, "tc5-hidden.img")
    tcrypt_ref.make_tc5_volume(img, size, ["aes"], "sha512", b"tc5 outer", plaintext)
    hsize = 256 * 1024
    keys, start = tcrypt_ref.add_tc5_hidden(img, ["serpent"], "whirlpool", b"tc5 hidden", hsize,
                                            plaintext)
    headers = lambda raw: raw[:512] + raw[-1536:]  # noqa: E731
    before = headers(open(img, "rb").read())
    rc, _, err = udm("open", "--type", "tcrypt", "--hidden", img, "t5h", stdin=b"tc5 hidden\n")
    check("TrueCrypt 5 hidden volume opens", rc == 0 and err == "", err)
    if rc == 0:
        t = table_words("t5h")
        check("TrueCrypt 5 hidden volume maps the end - 1536 - size",
              t[1] == str(hsize // 512) and t[5] == str(start // 512) and
              t[7] == str(start // 512), t[:3] + t[5:])
        check("TrueCrypt 5 hidden volume reads back",
              dev_read("t5h")[:len(plaintext)] == plaintext)
        data = os.urandom(hsize)
        check("TrueCrypt 5 hidden volume write (all of it)", dev_write("t5h", data) == 0)
        udm("close", "t5h")
        raw = open(img, "rb").read()
        check("TrueCrypt 5 hidden volume: both headers left alone", headers(raw) == before)
        check("TrueCrypt 5 hidden volume: written data decrypts independently",
              all(tcrypt_ref.cascade(["serpent"], keys, start // 512 + s,
                                     raw[start + 512 * s:start + 512 * s + 512], False) ==
                  data[512 * s:512 * s + 512] for s in range(0, hsize // 512, 17)))
    img = os.path.join(WORK, "tc5-off.img")
    keys = os.urandom(256)
    with open(img, "wb") as f:
        f.truncate(size)
        f.write(tcrypt_ref.make_header(["aes"], "sha512", b"tc5 pass", keys, size - 1024, 1024,
                                       size - 1024, veracrypt=False, version=3))
    expect_message("TrueCrypt 5 header with another data offset",
                   "%s: a TrueCrypt 5 header whose data offset is 1024 bytes (TrueCrypt 5 "
                   "volumes start at 512)" % img, ["open", "--type", "tcrypt", img, "t5"],
                   stdin=b"tc5 pass\n", vol=img)


def header_field_tests():
    """Every header field udm does not understand is refused by name."""
    plaintext = os.urandom(32 * 1024)
    size, vol = 1 << 20, (1 << 20) - 262144
    pw = b"fields"
    vc = ["open", "--type", "veracrypt", "--veracrypt-pim", "1"]
    refused = [
        ("unknown header version", dict(version=6),
         "VeraCrypt header version 6 is not supported (udm knows version 5)"),
        ("required program version too new", dict(min_version=0x0127),
         "the volume requires VeraCrypt 0x0127 or newer; udm knows the format up to VeraCrypt "
         "0x0126 (VeraCrypt 1.26)"),
        ("VeraCrypt layout before 1.11", dict(min_version=0x0100),
         "VeraCrypt header version 5 with required program version 0x0100 is a layout udm does "
         "not know"),
        ("sector size 8192", dict(sector_size=8192),
         "unsupported sector size 8192 (VeraCrypt uses 512 to 4096 bytes)"),
        ("sector size 520", dict(sector_size=520),
         "unsupported sector size 520 (VeraCrypt uses 512 to 4096 bytes)"),
        ("reserved flag", dict(flags=4), "unknown header flags 0x4"),
        ("unfinished in-place encryption", dict(flags=2, data_size=vol // 2),
         "the in-place encryption is not finished (%d of %d bytes encrypted); udm maps only a "
         "fully encrypted volume" % (vol // 2, vol)),
        ("encrypted length differs from the volume size", dict(data_size=vol // 2),
         "inconsistent header: the encrypted length (%d bytes) differs from the volume size "
         "(%d bytes)" % (vol // 2, vol)),
        ("encrypted length beyond the volume size", dict(data_size=2 * vol),
         "inconsistent header: the encrypted length (%d bytes) exceeds the volume size "
         "(%d bytes)" % (2 * vol, vol)),
        ("data area into the backup header", dict(volume_size=vol + 4096, data_size=vol + 4096),
         "the data area (bytes 131072 to %d) runs into the backup header area (the last 131072 "
         "of %d bytes)" % (131072 + vol + 4096, size)),
        ("data area over the headers", dict(data_offset=512),
         "the data area starts at byte 512, inside the header area (the first 131072 bytes)"),
        ("data area not in sectors", dict(data_offset=131072 + 100),
         "the header's data area (offset 131172, size %d bytes) is not a whole number of "
         "512-byte sectors" % vol),
        ("hidden volume size in an outer header", dict(hidden_size=65536),
         "the header at the outer volume's position is a hidden volume's (hidden volume size "
         "65536 bytes)"),
        ("system header without --tcrypt-system", dict(flags=1),
         "a system-encryption header; open the whole drive with --tcrypt-system"),
    ]
    for i, (what, fields, message) in enumerate(refused):
        img = os.path.join(WORK, "field%d.img" % i)
        tcrypt_ref.make_volume(img, size, ["aes"], "sha512", pw, plaintext, pim=1, **fields)
        expect_message(what, "%s: %s" % (img, message), vc + [img, "f"], stdin=pw + b"\n",
                       vol=img)
    # a hidden volume header whose two sizes disagree
    img = os.path.join(WORK, "hidden-sizes.img")
    tcrypt_ref.make_volume(img, size, ["aes"], "sha512", b"outer", plaintext, pim=1)
    with open(img, "r+b") as f:
        f.seek(65536)
        f.write(tcrypt_ref.make_header(["aes"], "sha512", pw, os.urandom(256), 262144,
                                       size - 131072 - 262144, 262144, pim=1,
                                       hidden_size=131072))
    expect_message("hidden volume size differs from its volume size",
                   "%s: the hidden volume's header gives a hidden volume size of 131072 bytes "
                   "but a volume size of 262144 bytes" % img, vc + ["--hidden", img, "f"],
                   stdin=pw + b"\n", vol=img)
    # TrueCrypt: program versions
    for what, fields, message in [
            ("TrueCrypt version too new", dict(min_version=0x0720),
             "the volume requires TrueCrypt 7.2 or newer; udm knows the format up to "
             "TrueCrypt 7.1a"),
            ("TrueCrypt 6+ header with a TrueCrypt 5 program version",
             dict(version=4, min_version=0x0500),
             "TrueCrypt header version 4 with required program version 5.0 is a layout udm "
             "does not know")]:
        img = os.path.join(WORK, "tcfield.img")
        tcrypt_ref.make_volume(img, size, ["aes"], "sha512", pw, plaintext, veracrypt=False,
                               **fields)
        expect_message(what, "%s: %s" % (img, message), ["open", "--type", "tcrypt", img, "f"],
                       stdin=pw + b"\n", vol=img)
    # what udm does understand still opens: 4096-byte sectors (the XTS data unit
    # stays 512 bytes), a finished in-place encryption, TrueCrypt 6 (version 4)
    for what, fields, args in [
            ("VeraCrypt 4096-byte sectors", dict(sector_size=4096), vc),
            ("finished in-place encryption", dict(flags=2), vc),
            ("TrueCrypt 6 header (version 4)", dict(version=4, min_version=0x0600, veracrypt=False),
             ["open", "--type", "tcrypt"])]:
        img = os.path.join(WORK, "fieldok.img")
        tcrypt_ref.make_volume(img, size, ["aes"], "sha512", pw, plaintext,
                               pim=1 if fields.get("veracrypt", True) else 0, **fields)
        rc, _, err = udm(*args, img, "ok", stdin=pw + b"\n")
        check(what + " opens", rc == 0, err)
        check(what + " reads back", rc == 0 and dev_read("ok")[:len(plaintext)] == plaintext)
        udm("close", "ok")


def kdf_tests():
    """Argon2id headers open; a header under a KDF udm lacks gets a message
    that says what was tried instead of suggesting a typo."""
    plaintext = os.urandom(32 * 1024)
    img = os.path.join(WORK, "argon2.img")
    tcrypt_ref.make_volume(img, 1 << 20, ["aes", "serpent"], "argon2id", b"argon", plaintext,
                           pim=1)
    rc, _, err = udm("open", "--type", "veracrypt", "--veracrypt-pim", "1", img, "a2",
                     stdin=b"argon\n")
    check("VeraCrypt Argon2id (PIM 1) opens", rc == 0, err)
    check("VeraCrypt Argon2id reads back", rc == 0 and
          dev_read("a2")[:len(plaintext)] == plaintext)
    udm("close", "a2")
    # PBKDF2-HMAC-SHA3-512: no VeraCrypt KDF, so nothing udm tries can open it
    img = os.path.join(WORK, "sha3.img")
    tcrypt_ref.make_volume(
        img, 1 << 20, ["aes"], "sha512", b"sha3", plaintext, pim=1,
        hkey=lambda pw, salt: hashlib.pbkdf2_hmac("sha3_512", pw, salt, 16000, 192))
    kuz = tcrypt_ref._g.gcry_cipher_map_name(b"kuznyechik") == 0
    expect_message(
        "header under an unknown KDF",
        "No key available with this passphrase. udm tried the header KDFs PBKDF2-HMAC-SHA-512, "
        "PBKDF2-HMAC-SHA-256, PBKDF2-HMAC-Whirlpool, PBKDF2-HMAC-BLAKE2s-256, "
        "PBKDF2-HMAC-Streebog, PBKDF2-HMAC-RIPEMD-160, Argon2id (PIM 1) with the ciphers AES, "
        "Serpent, Twofish, Camellia and their cascades; a volume whose header uses another KDF%s "
        "cannot be opened by udm." % (" or the cipher Kuznyechik (missing from this libgcrypt)"
                                      if kuz else ""),
        ["open", "--type", "veracrypt", "--veracrypt-pim", "1", img, "k"], stdin=b"sha3\n",
        vol=img)


def system_tests():
    """System encryption: the header in sector 62 of a drive image; the area
    is [start, + volume size) of the drive, IV = the drive's sector number."""
    plaintext = os.urandom(64 * 1024)
    size = 4 << 20
    vc = ["open", "--type", "veracrypt", "--veracrypt-pim", "1", "--tcrypt-system"]
    cases = [("VeraCrypt whole drive", "drive", True, "sha256", vc),
             ("VeraCrypt MBR system partition", "mbr", True, "sha256", vc),
             ("VeraCrypt GPT system partition", "gpt", True, "sha512", vc),
             ("TrueCrypt whole drive", "drive", False, "ripemd160",
              ["open", "--type", "tcrypt", "--tcrypt-system"])]
    for what, layout, vera, h, args in cases:
        img = os.path.join(WORK, "sys-%s.img" % layout)
        keys, start, vol = tcrypt_ref.make_system_disk(img, size, layout, ["aes"], h, b"boot",
                                                       plaintext, veracrypt=vera,
                                                       pim=1 if vera else 0)
        rc, _, err = udm(*args, img, "sys", stdin=b"boot\n")
        check(what + " opens", rc == 0, err)
        if rc:
            continue
        t = table_words("sys")
        check(what + " maps the area with the drive's sector numbers",
              t[1] == str(vol // 512) and t[5] == str(start // 512) and
              t[7] == str(start // 512), t[:3] + t[5:])
        check(what + " plaintext reads back", dev_read("sys")[:len(plaintext)] == plaintext)
        head = open(img, "rb").read(start)
        data = os.urandom(8192)
        check(what + " write", dev_write("sys", data) == 0)
        udm("close", "sys")
        raw = open(img, "rb").read()
        check(what + " the write left the boot track and header alone", raw[:start] == head)
        check(what + " written data decrypts independently",
              all(tcrypt_ref.cascade(["aes"], keys, start // 512 + s,
                                     raw[start + 512 * s:start + 512 * s + 512], False) ==
                  data[512 * s:512 * s + 512] for s in range(16)))
        if layout == "mbr":
            # the partition alone: no header in its sector 62
            part = os.path.join(WORK, "sys-part.img")
            open(part, "wb").write(raw[start:start + vol])
            before = sha(part)
            rc, _, err = udm(*args, part, "p", stdin=b"boot\n")
            check("system partition image without its drive refused",
                  rc == 1 and err.startswith("udm: No key available with this passphrase.") and
                  err.endswith(" --tcrypt-system reads the header in sector 62 of a whole drive "
                               "image; a partition image without its drive has none.\n") and
                  err.count("\n") == 1, err)
            check("partition image: nothing created", devices() == "No devices found")
            check("partition image: unchanged", sha(part) == before)
    img = os.path.join(WORK, "sys-bad.img")
    vol = size - 32256
    for what, kw, message in [
            ("unfinished system encryption", dict(encrypted=512 * 1000),
             "the system encryption is not finished (%d of %d bytes encrypted); udm maps only "
             "a fully encrypted volume" % (512 * 1000, vol)),
            ("system header with an encrypted length beyond its volume size",
             dict(encrypted=64424477184, volume_size=18842112),
             "inconsistent header: the encrypted length (64424477184 bytes) exceeds the volume "
             "size (18842112 bytes)"),
            ("system area past the end of the image",
             dict(volume_size=vol + 512 * 8, encrypted=vol + 512 * 8),
             "the data area (bytes 32256 to %d) runs past the end of the device (%d bytes)"
             % (size + 4096, size)),
            ("system area over the boot track", dict(data_offset=0),
             "the data area starts at byte 0, inside the header area (the first 32256 bytes)"),
            ("hidden operating system header", dict(hidden_size=vol),
             "the header at the system position is a hidden volume's (hidden volume size %d "
             "bytes)" % vol)]:
        tcrypt_ref.make_system_disk(img, size, "drive", ["aes"], "sha256", b"boot", plaintext,
                                    pim=1, **kw)
        expect_message(what, "%s: %s" % (img, message), vc + [img, "s"], stdin=b"boot\n",
                       vol=img)


def bad_input_tests():
    img = os.path.join(WORK, "plain.img")
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    expect_refused("unknown cipher", "unknown cipher",
                   ["open", "--type", "plain", "--cipher", "nosuch-xts-plain64", img, "p"],
                   stdin=b"x\n", vol=img)
    expect_refused("wrong key length", "key", ["open", "--type", "plain", "--cipher",
                                               "aes-cbc-plain64", "--key-size", "136", img,
                                               "p"], stdin=b"x\n", vol=img)
    small = os.path.join(WORK, "small.img")
    open(small, "wb").write(b"\0" * 100)
    expect_refused("truncated TrueCrypt header", "too small",
                   ["open", "--type", "tcrypt", small, "s"], stdin=b"x\n", vol=small)
    expect_refused("not a volume", "No key available",
                   ["open", "--type", "veracrypt", "--veracrypt-pim", "1", img, "s"],
                   stdin=b"x\n", vol=img)
    rc, _, err = udm("open", "--type", "bitlocker", img, "s", stdin=b"x\n")
    check("unknown type is a usage error", rc == 2 and "unknown --type" in err, err)
    rc, _, err = udm("open", "--type", "luks", "--hidden", img, "s", stdin=b"x\n")
    check("--hidden with LUKS is a usage error", rc == 2, err)
    rc, _, err = udm("open", "--type", "plain", "--cipher", "aes-xts-plain64", "--key-size",
                     "512", img, "p", stdin=b"x\n")
    check("plain opens", rc == 0, err)
    expect_name = udm("open", "--type", "plain", img, "p", stdin=b"x\n")
    check("a name in use is refused", expect_name[0] == 1 and "already exists" in expect_name[2],
          expect_name)
    udm("create", "lin", "--table", "0 8 zero")
    rc, _, err = udm("close", "lin")
    check("close refuses a device open did not make", rc == 1 and "udm remove" in err, err)
    udm("remove", "lin")
    udm("close", "p")
    rc, _, err = udm("close", "p")
    check("close of a missing device", rc == 1 and "does not exist" in err, err)
    # plain with --hash plain: the passphrase is the key (as cryptsetup)
    rc, _, err = udm("open", "--type", "plain", "--hash", "plain", "--cipher", "aes-xts-plain64",
                     "--key-size", "256", "--offset", "8", img, "hp",
                     stdin=b"0123456789abcdef0123456789abcdef\n")
    spec, key, _, off = showkey("hp")
    check("plain --hash plain key and offset", rc == 0 and key == b"0123456789abcdef" * 2 and
          off == 8, err)
    udm("close", "hp")


def main():
    try:
        luks_tests()
        tcplay_tests()
        veracrypt_tests()
        tc5_tests()
        header_field_tests()
        kdf_tests()
        system_tests()
        bad_input_tests()
    finally:
        status = T.finish()
    return status


if __name__ == "__main__":
    sys.exit(main())
