#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Known-answer tests of the crypt target: what udm writes must equal an
independent dm-crypt computation (dmcrypt_ref.py over pyca/cryptography),
and data encrypted independently must read back through udm."""
import os
import subprocess
import sys
import tempfile

try:
    from dmcrypt_ref import DmCrypt
except ImportError as e:  # python3-cryptography missing
    print("skip: %s" % e)
    sys.exit(1 if os.environ.get("CI") == "true" else 77)

CRYPT_IO = sys.argv[1]


def rnd(n, seed):
    import random
    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(n))


# (name, spec, key bytes, sector_size, iv_large, iv_offset, dev offset, sectors, extra opts)
CASES = [
    ("aes-xts-plain64", "aes-xts-plain64", 64, 512, False, 0, 0, 64, []),
    ("aes128-xts-plain64", "aes-xts-plain64", 32, 512, False, 0, 0, 16, []),
    ("aes-xts-plain", "aes-xts-plain", 64, 512, False, (1 << 32) - 8, 0, 16, []),
    # The XTS fast path sets the IV once per run of sectors: the runs must
    # restart where the IV wraps, and span more than one bounce buffer.
    ("plain64-wrap", "aes-xts-plain64", 64, 512, False, (1 << 64) - 8, 0, 16, []),
    ("plain-wrap-large", "aes-xts-plain", 64, 4096, True, (1 << 35) - 32, 0, 64, []),
    ("plain64-wrap-large", "aes-xts-plain64", 64, 4096, True, (1 << 64) - 32, 0, 64, []),
    ("xts-long-write", "aes-xts-plain64", 64, 512, False, 99, 1, 2300, []),
    ("xts-long-4k", "aes-xts-plain64", 64, 4096, True, 800, 8, 2400, []),
    ("xts-keycount2", "aes:2-xts-plain64", 128, 512, False, 3, 0, 40, []),
    ("aes-xts-plain64be", "aes-xts-plain64be", 64, 512, False, 0, 0, 16, []),
    ("aes-cbc-essiv-sha256", "aes-cbc-essiv:sha256", 32, 512, False, 0, 0, 32, []),
    ("aes-cbc-essiv-sha256-aes128", "aes-cbc-essiv:sha256", 16, 512, False, 0, 0, 16, []),
    ("aes-cbc-plain", "aes-cbc-plain", 32, 512, False, 0, 0, 16, []),
    ("aes-cbc-plain64", "aes-cbc-plain64", 24, 512, False, 0, 0, 16, []),
    ("aes-ecb", "aes-ecb", 32, 512, False, 0, 0, 16, []),
    ("aes-cbc-null", "aes-cbc-null", 32, 512, False, 0, 0, 8, []),
    ("aes-cbc-benbi", "aes-cbc-benbi", 32, 512, False, 0, 0, 8, []),
    ("aes-cbc-eboiv", "aes-cbc-eboiv", 32, 512, False, 0, 0, 8, []),
    ("aes-lrw-benbi", "aes-lrw-benbi", 48, 512, False, 0, 0, 8, []),
    ("aes-lrw-plain64", "aes-lrw-plain64", 32, 512, False, 0, 0, 8, []),
    # the kernel's wp256: Whirlpool cut to 256 bits, an AES-256 ESSIV key
    ("aes-cbc-essiv-wp256", "aes-cbc-essiv:wp256", 32, 512, False, 0, 0, 16, []),
    ("aes-cbc-essiv-wp256-aes128", "aes-cbc-essiv:wp256", 16, 512, False, 9, 0, 16, []),
    ("camellia-cbc-essiv-sha256", "camellia-cbc-essiv:sha256", 32, 512, False, 0, 0, 8, []),
    ("cast5-cbc-plain", "cast5-cbc-plain", 16, 512, False, 0, 0, 8, []),
    ("blowfish-cbc-plain64", "blowfish-cbc-plain64", 16, 512, False, 0, 0, 8, []),
    ("des3_ede-cbc-plain64be", "des3_ede-cbc-plain64be", 24, 512, False, 0, 0, 8, []),
    ("aes-xts-4096", "aes-xts-plain64", 64, 4096, False, 0, 0, 64, []),
    ("aes-xts-4096-iv_large", "aes-xts-plain64", 64, 4096, True, 0, 0, 64, []),
    ("aes-cbc-essiv-4096-iv_large", "aes-cbc-essiv:sha256", 32, 4096, True, 16, 0, 32, []),
    ("iv_offset", "aes-xts-plain64", 64, 512, False, 123456789, 0, 16, []),
    ("offset", "aes-xts-plain64", 64, 512, False, 7, 4096, 32, []),
    ("keycount-4", "aes:4-cbc-essiv:sha256", 128, 512, False, 3, 0, 16, []),
    ("lmk-v2", "aes:64-cbc-lmk", 64 * 16, 512, False, 0, 0, 8, []),
    ("lmk-v3", "aes:64-cbc-lmk", 65 * 16, 512, False, 5, 0, 8, []),
    ("tcw", "aes-cbc-tcw", 32 + 16 + 16, 512, False, 0, 0, 8, []),
    ("options", "aes-xts-plain64", 64, 512, False, 0, 0, 8,
     ["allow_discards", "same_cpu_crypt", "no_read_workqueue"]),
]


def run(*args, **kw):
    return subprocess.run([CRYPT_IO, *args], check=True, **kw)


def table_line(begin, n, spec, key, ivoff, dev, off, ss, iv_large, extra):
    opts = list(extra)
    if ss != 512:
        opts.append("sector_size:%d" % ss)
    if iv_large:
        opts.append("iv_large_sectors")
    line = "%d %d crypt %s %s %d %s %d" % (begin, n, spec, key.hex(), ivoff, dev, off)
    if opts:
        line += " %d %s" % (len(opts), " ".join(opts))
    return line


def check_case(tmp, name, spec, klen, ss, iv_large, ivoff, off, n, extra):
    key = rnd(klen, name + "key")
    dev = os.path.join(tmp, name + ".img")
    with open(dev, "wb") as f:
        f.truncate((off + n + 64) * 512)
    table = table_line(0, n, spec, key, ivoff, dev, off, ss, iv_large, extra)
    ref = DmCrypt(spec, key, ss, iv_large, ivoff)
    plain = rnd(n * 512, name)
    pfile = os.path.join(tmp, name + ".plain")
    open(pfile, "wb").write(plain)
    run(table, "write", "0", pfile)
    got = open(dev, "rb").read()[off * 512:(off + n) * 512]
    want = ref.transform(0, plain, True)
    if got != want:
        first = next(i for i in range(len(got)) if got[i] != want[i])
        raise AssertionError("%s: udm's ciphertext differs from the reference at byte %d"
                             % (name, first))
    # the other way: independently encrypted sectors read back through udm
    plain2 = rnd(n * 512, name + "2")
    with open(dev, "r+b") as f:
        f.seek(off * 512)
        f.write(ref.transform(0, plain2, True))
    out = os.path.join(tmp, name + ".out")
    run(table, "read", "0", str(n * 512), out)
    if open(out, "rb").read() != plain2:
        raise AssertionError("%s: udm decrypted independent ciphertext wrongly" % name)
    # the table reloads to the same device and hides the key
    shown = run(table, "table", "showkeys", capture_output=True, text=True).stdout.strip()
    if shown.split(" ", 2)[2] != table.split(" ", 2)[2]:
        raise AssertionError("%s: table --showkeys '%s' != '%s'" % (name, shown, table))
    hidden = run(table, "table", capture_output=True, text=True).stdout.split()
    if hidden[4] != "0" * (2 * klen):
        raise AssertionError("%s: hidden key printed as %s" % (name, hidden[4]))


def check_multisegment(tmp):
    """Two crypt segments and a stacked cascade (crypt over crypt)."""
    k1, k2 = rnd(64, "m1"), rnd(32, "m2")
    dev = os.path.join(tmp, "multi.img")
    with open(dev, "wb") as f:
        f.truncate(256 * 512)
    t = (table_line(0, 16, "aes-xts-plain64", k1, 0, dev, 100, 512, False, []) + "\n" +
         table_line(16, 16, "aes-cbc-essiv:sha256", k2, 40, dev, 8, 512, False, []))
    plain = rnd(32 * 512, "multi")
    pf = os.path.join(tmp, "multi.plain")
    open(pf, "wb").write(plain)
    run(t, "write", "0", pf)
    img = open(dev, "rb").read()
    assert img[100 * 512:116 * 512] == DmCrypt("aes-xts-plain64", k1).transform(0, plain[:8192], True), \
        "multi-segment: segment 1"
    assert img[8 * 512:24 * 512] == DmCrypt("aes-cbc-essiv:sha256", k2, iv_offset=40).transform(
        0, plain[8192:], True), "multi-segment: segment 2"
    # cascade: outer aes-cbc-essiv over inner aes-xts, as TrueCrypt cascades stack
    dev2 = os.path.join(tmp, "cascade.img")
    with open(dev2, "wb") as f:
        f.truncate(64 * 512)
    lower = table_line(0, 32, "aes-xts-plain64", k1, 0, dev2, 0, 512, False, [])
    upper = table_line(0, 32, "aes-cbc-essiv:sha256", k2, 0, "udm:lower", 0, 512, False, [])
    run("LOWER=" + lower + "|" + upper, "write", "0", pf)
    inner = DmCrypt("aes-cbc-essiv:sha256", k2).transform(0, plain, True)
    want = DmCrypt("aes-xts-plain64", k1).transform(0, inner, True)
    assert open(dev2, "rb").read()[:32 * 512] == want, "cascade ciphertext"


def main():
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            try:
                check_case(tmp, *case)
                print("ok   %s" % case[0])
            except (AssertionError, subprocess.CalledProcessError) as e:
                failed += 1
                print("FAIL %s: %s" % (case[0], e))
        try:
            check_multisegment(tmp)
            print("ok   multi-segment and cascade")
        except (AssertionError, subprocess.CalledProcessError) as e:
            failed += 1
            print("FAIL multi-segment: %s" % e)
    sys.exit(1 if failed else 0)


main()
