#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""LUKS volumes made by real tools (cryptsetup, qemu-img/qemu-io), opened by
udm's volumes/luks.c: volume keys cross-checked with cryptsetup's own dump,
data written by the tools read back through udm's crypt target and the other
way round, and bad input refused with clear messages."""
import hashlib
import os
import time
import re
import shutil
import struct
import subprocess
import sys
import tempfile

CRYPT_IO, LUKS_OPEN = sys.argv[1], sys.argv[2]
CI = os.environ.get("CI") == "true"
for tool in ("cryptsetup", "qemu-img", "qemu-io"):
    if not shutil.which(tool):
        print("skip: %s not installed" % tool)
        sys.exit(1 if CI else 77)
from dmcrypt_ref import DmCrypt  # noqa: E402

failed = 0


def check(name, cond, detail=""):
    global failed
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + detail))
    failed += 0 if cond else 1


def sh(*args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def dump_key(img, kf):
    out = sh("cryptsetup", "luksDump", "--dump-volume-key", "--batch-mode", "--key-file", kf,
             img).stdout
    return "".join(re.findall(r"\b[0-9a-f]{2}\b", out.split("MK dump:")[1]))


def luks_table(img, kf, show=True):
    r = sh(LUKS_OPEN, img, kf, "table", *(["showkeys"] if show else []))
    return r.returncode, r.stdout.strip(), r.stderr.strip()


def through_udm_read(table, nbytes, tmp):
    out = os.path.join(tmp, "read.bin")
    subprocess.run([CRYPT_IO, table, "read", "0", str(nbytes), out], check=True)
    return open(out, "rb").read()


def through_udm_write(table, data, tmp):
    f = os.path.join(tmp, "write.bin")
    open(f, "wb").write(data)
    subprocess.run([CRYPT_IO, table, "write", "0", f], check=True)


def main(tmp):
    kf = os.path.join(tmp, "pass")
    open(kf, "w").write("correct horse")
    wrong = os.path.join(tmp, "wrong")
    open(wrong, "w").write("battery staple")

    # 1. luksFormat: LUKS1 and LUKS2, KDFs, ciphers, sector sizes: volume keys.
    formats = [
        ("luks1-aes-xts-pbkdf2", ["--type", "luks1", "--cipher", "aes-xts-plain64",
                                  "--key-size", "512", "--pbkdf-force-iterations", "1000"]),
        ("luks1-aes-cbc-essiv", ["--type", "luks1", "--cipher", "aes-cbc-essiv:sha256",
                                 "--key-size", "256", "--pbkdf-force-iterations", "1000"]),
        ("luks1-aes-cbc-plain64-sha512", ["--type", "luks1", "--cipher", "aes-cbc-plain64",
                                          "--key-size", "256", "--pbkdf-force-iterations",
                                          "1000", "--hash", "sha512"]),
        ("luks2-argon2id-aes-4096", ["--type", "luks2", "--pbkdf", "argon2id",
                                     "--pbkdf-memory", "32", "--pbkdf-force-iterations", "4",
                                     "--sector-size", "4096"]),
        # cryptsetup checks a cipher with the host kernel's crypto API, which
        # here has AES only: other ciphers are proven against dm-crypt itself
        # in tests/kernel/scenarios/crypt-ciphers.scn.
        ("luks2-argon2i-aes-xts-512", ["--type", "luks2", "--pbkdf", "argon2i",
                                       "--pbkdf-memory", "32", "--pbkdf-force-iterations", "4",
                                       "--cipher", "aes-xts-plain64", "--sector-size", "512"]),
        ("luks2-pbkdf2-aes-cbc", ["--type", "luks2", "--pbkdf", "pbkdf2",
                                  "--pbkdf-force-iterations", "1000",
                                  "--cipher", "aes-cbc-essiv:sha256", "--key-size", "256"]),
    ]
    # not the default layout: a 64 KiB header and a 2 MiB keyslots area
    formats.append(("luks2-metadata-64k", ["--type", "luks2", "--pbkdf", "pbkdf2",
                                           "--pbkdf-force-iterations", "1000",
                                           "--luks2-metadata-size", "64k",
                                           "--luks2-keyslots-size", "2m"]))
    for name, opts in formats:
        img = os.path.join(tmp, name + ".img")
        with open(img, "wb") as f:
            f.truncate(24 << 20)
        r = sh("cryptsetup", "luksFormat", "--batch-mode", "--key-file", kf, *opts, img)
        if r.returncode and "device-mapper" in r.stderr and not CI:
            # cryptsetup checks ciphers with the host kernel's crypto API; some
            # container kernels lack serpent/twofish.
            print("skip %s: this kernel's crypto API lacks the cipher" % name)
            continue
        if r.returncode:
            check(name + " luksFormat", False, r.stderr)
            continue
        k = sh(LUKS_OPEN, img, kf, "key")
        check(name + " volume key equals cryptsetup's", k.returncode == 0 and
              k.stdout.strip() == dump_key(img, kf), k.stderr)
        rc, table, err = luks_table(img, kf)
        cipher = [o for o in opts if "-" in o and not o.startswith("--")]
        want_cipher = cipher[0] if cipher else "aes-xts-plain64"
        words = table.split()
        check(name + " table", rc == 0 and words[3] == want_cipher and
              words[6] == img and ("4096" not in name or words[-1] == "sector_size:4096"),
              table or err)
        rc, hidden, _ = luks_table(img, kf, show=False)
        check(name + " hidden key", set(hidden.split()[4]) == {"0"}, hidden)
        # data through udm, checked by an independent decryption (AES ciphers)
        data = os.urandom(64 * 1024)
        through_udm_write(table, data, tmp)
        if words[3].startswith("aes"):
            ss = 4096 if "sector_size:4096" in table else 512
            off = int(words[7]) * 512
            raw = open(img, "rb").read()[off:off + len(data)]
            ref = DmCrypt(words[3], bytes.fromhex(words[4]), ss)
            check(name + " udm's ciphertext decrypts independently",
                  ref.transform(0, raw, False) == data)
        check(name + " read back", through_udm_read(table, len(data), tmp) == data)
        r = sh(LUKS_OPEN, img, wrong, "table")
        check(name + " wrong passphrase", r.returncode == 1 and
              r.stderr.strip() == "No key available with this passphrase.", r.stderr)

    # what cryptsetup writes passes udm's header rules: a second keyslot and a
    # token (the metadata-64k volume, whose secondary header is at 64 KiB)
    img = os.path.join(tmp, "luks2-metadata-64k.img")
    kf3 = os.path.join(tmp, "pass3")
    open(kf3, "w").write("third")
    r1 = sh("cryptsetup", "luksAddKey", "--batch-mode", "--key-file", kf, "--pbkdf", "pbkdf2",
            "--pbkdf-force-iterations", "1000", img, kf3)
    r2 = sh("cryptsetup", "token", "add", "--key-description", "udm-test", "--key-slot", "1",
            img)
    k = sh(LUKS_OPEN, img, kf3, "key")
    check("luks2 second keyslot and a token: the second passphrase opens",
          r1.returncode == 0 and r2.returncode == 0 and k.returncode == 0 and
          k.stdout.strip() == dump_key(img, kf), r1.stderr + r2.stderr + k.stderr)
    vk = k.stdout.strip()
    with open(img, "r+b") as f:
        f.write(bytes(4096))
    k = sh(LUKS_OPEN, img, kf, "key")
    check("luks2 64 KiB header, primary zeroed: the secondary at 64 KiB is found",
          k.returncode == 0 and "backup header at offset 65536" in k.stderr and
          k.stdout.strip() == vk, k.stderr)

    # LUKS1 with aes-cbc-essiv:wp256 (the kernel's Whirlpool cut to 256 bits).
    # cryptsetup makes it only where the kernel has wp512, so: a copy of the
    # essiv:sha256 volume, its keyslot decrypted and re-encrypted under
    # essiv:wp256 by dmcrypt_ref.py and the mode field changed. The volume
    # key stays cryptsetup's.
    src = os.path.join(tmp, "luks1-aes-cbc-essiv.img")
    wp = os.path.join(tmp, "luks1-essiv-wp256.img")
    shutil.copy(src, wp)
    hdr = open(wp, "rb").read(592)
    hname = hdr[72:104].split(b"\0")[0].decode()
    kb = struct.unpack(">I", hdr[108:112])[0]
    iters, salt, ks_off = struct.unpack(">I", hdr[212:216])[0], hdr[216:248], \
        struct.unpack(">I", hdr[248:252])[0]
    slot_key = hashlib.pbkdf2_hmac(hname, b"correct horse", salt, iters, kb)
    n = (kb * 4000 + 511) // 512 * 512
    raw = open(wp, "rb").read()[ks_off * 512:ks_off * 512 + n]
    plain = DmCrypt("aes-cbc-essiv:sha256", slot_key).transform(0, raw, False)
    with open(wp, "r+b") as f:
        f.seek(ks_off * 512)
        f.write(DmCrypt("aes-cbc-essiv:wp256", slot_key).transform(0, plain, True))
        f.seek(40)
        f.write(b"cbc-essiv:wp256".ljust(32, b"\0"))
    k = sh(LUKS_OPEN, wp, kf, "key")
    check("luks1 aes-cbc-essiv:wp256 opens with cryptsetup's volume key",
          k.returncode == 0 and k.stdout.strip() == dump_key(src, kf), k.stderr)
    rc, table, err = luks_table(wp, kf)
    if rc == 0:
        data = os.urandom(64 * 1024)
        through_udm_write(table, data, tmp)
        words = table.split()
        off = int(words[7]) * 512
        check("luks1 aes-cbc-essiv:wp256 ciphertext decrypts independently",
              words[3] == "aes-cbc-essiv:wp256" and
              DmCrypt(words[3], bytes.fromhex(words[4])).transform(
                  0, open(wp, "rb").read()[off:off + len(data)], False) == data, table)

    # 2. Data encrypted by cryptsetup itself (offline LUKS2 encryption).
    for name, opts in [("reencrypt-aes-xts-4096", ["--sector-size", "4096"]),
                       ("reencrypt-aes-xts-512", ["--sector-size", "512"]),
                       ("reencrypt-aes-cbc-essiv", ["--cipher", "aes-cbc-essiv:sha256",
                                                    "--key-size", "256"])]:
        img = os.path.join(tmp, name + ".img")
        plain = os.urandom(16 << 20)
        open(img, "wb").write(plain)
        r = sh("cryptsetup", "reencrypt", "--encrypt", "--type", "luks2", "--batch-mode",
               "--key-file", kf, "--reduce-device-size", "8M", "--pbkdf", "pbkdf2",
               "--pbkdf-force-iterations", "1000", "--force-offline-reencrypt", *opts, img)
        if r.returncode:
            check(name + " cryptsetup reencrypt", False, r.stderr)
            continue
        rc, table, err = luks_table(img, kf)
        n = len(plain) - (8 << 20)  # the device shrank by --reduce-device-size
        check(name + " data encrypted by cryptsetup reads back through udm",
              rc == 0 and through_udm_read(table, n, tmp) == plain[:n], err)

    # 3. qemu's LUKS driver (LUKS1), both directions.
    img = os.path.join(tmp, "qemu.luks")
    secret = ["--object", "secret,id=s0,file=" + kf]
    # qemu-img times PBKDF2 with the thread's CPU clock, which this kind of VM
    # sometimes reports too coarsely ("Unable to get accurate CPU usage"):
    # making the volume is the precondition, so try it a few times.
    for _ in range(40):
        made = sh("qemu-img", "create", "-f", "luks", *secret, "-o",
                  "key-secret=s0,iter-time=10", img, "8M")
        if made.returncode == 0:
            break
        time.sleep(0.1)
    check("qemu-img makes a LUKS volume", made.returncode == 0, made.stderr)
    opts = "driver=luks,key-secret=s0,file.filename=" + img
    r = sh("qemu-io", *secret, "--image-opts", opts, "-c", "write -P 0xa5 4096 1M")
    rc, table, err = luks_table(img, kf)
    got = through_udm_read(table, 2 << 20, tmp) if rc == 0 else b""
    check("qemu writes, udm reads", r.returncode == 0 and
          got[4096:4096 + (1 << 20)] == b"\xa5" * (1 << 20),
          err + r.stderr)
    data = os.urandom(1 << 20)
    through_udm_write(table, data, tmp)
    out = os.path.join(tmp, "qemu-read.raw")
    r = sh("qemu-img", "convert", *secret, "--image-opts", opts, "-O", "raw", out)
    check("udm writes, qemu reads", r.returncode == 0 and
          open(out, "rb").read()[:len(data)] == data, r.stderr)

    # 4. Bad input.
    good = os.path.join(tmp, "luks2-argon2id-aes-4096.img")
    trunc = os.path.join(tmp, "trunc.img")
    open(trunc, "wb").write(open(good, "rb").read()[:3000])
    r = sh(LUKS_OPEN, trunc, kf, "table")
    check("truncated header refused", r.returncode == 1 and r.stderr, r.stderr)
    notluks = os.path.join(tmp, "zero.img")
    open(notluks, "wb").write(bytes(1 << 20))
    r = sh(LUKS_OPEN, notluks, kf, "table")
    check("not LUKS refused", r.returncode == 1 and "not a valid LUKS device" in r.stderr,
          r.stderr)
    # damaged primary LUKS2 header: the backup is used and the user told
    dmg = os.path.join(tmp, "damaged.img")
    shutil.copy(good, dmg)
    with open(dmg, "r+b") as f:
        f.seek(4096 + 100)
        f.write(b"XXXXXXXX")
    r = sh(LUKS_OPEN, dmg, kf, "key")
    check("damaged primary header: backup used", r.returncode == 0 and
          "backup header" in r.stderr and r.stdout.strip() == dump_key(good, kf), r.stderr)
    # corrupted keyslot 0 with a second keyslot: falls back; alone: fails
    ks = os.path.join(tmp, "luks1-aes-xts-pbkdf2.img")
    kf2 = os.path.join(tmp, "pass2")
    open(kf2, "w").write("second")
    r = sh("cryptsetup", "luksAddKey", "--batch-mode", "--key-file", kf,
           "--pbkdf-force-iterations", "1000", ks, kf2)
    with open(ks, "r+b") as f:
        f.seek(4096 + 512)
        f.write(os.urandom(4096))  # inside keyslot 0's key material
    r1 = sh(LUKS_OPEN, ks, kf, "key")
    r2 = sh(LUKS_OPEN, ks, kf2, "key")
    check("corrupted keyslot refuses its passphrase", r1.returncode == 1 and
          "No key available" in r1.stderr, r1.stderr)
    check("other keyslot still opens", r2.returncode == 0, r2.stderr)
    return failed


with tempfile.TemporaryDirectory() as d:
    sys.exit(1 if main(d) else 0)
