#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hostile LUKS headers through `udm open` and a real udmd: volumes made by
cryptsetup, then one header field changed per case (tests/crypt/luks_hdr.py
rewrites LUKS2 JSON with correct checksums).  Each case is named after the
rule it breaks and must be refused with its exact message, before any key
derivation where the rule allows, with no device created and the volume's
bytes unchanged.  Where the rule is one of cryptsetup's own LUKS2/LUKS1
checks, cryptsetup must refuse the same header too (luksDump on a copy),
which proves that the case breaks that rule and nothing else."""
import copy
import json
import os
import shutil
import subprocess
import sys
import time

from cli_harness import Harness, sha  # noqa: E402

CI = os.environ.get("CI") == "true"
if not shutil.which("cryptsetup"):
    print("skip: cryptsetup not installed")
    sys.exit(1 if CI else 77)
import luks_hdr as H  # noqa: E402

T = Harness('udm-hostile-', timeout=60)
WORK = T.work
check, udm, devices = T.check, T.udm, T.devices
KF = os.path.join(WORK, "pass")
KF2 = os.path.join(WORK, "pass2")


def cryptsetup_accepts(img):
    tmp = img + ".cs"
    shutil.copy(img, tmp)
    try:
        return subprocess.run(["cryptsetup", "luksDump", "--batch-mode", tmp],
                              capture_output=True).returncode == 0
    finally:
        os.unlink(tmp)


def make(name, opts, size=20 << 20):
    img = os.path.join(WORK, name + ".base")
    with open(img, "wb") as f:
        f.truncate(size)
    r = subprocess.run(["cryptsetup", "luksFormat", "--batch-mode", "--key-file", KF, *opts,
                        img], capture_output=True, text=True)
    if r.returncode:
        print("cryptsetup luksFormat failed: " + r.stderr)
        sys.exit(1)
    return img


def refused(name, base, patch, want, cryptsetup_rule=False, kf=None, t0_max=None):
    """Copy BASE, apply PATCH(img), and expect `udm open` to print exactly
    'udm: ' + WANT (formatted with img=)."""
    img = os.path.join(WORK, name + ".img")
    shutil.copy(base, img)
    patch(img)
    before = sha(img)
    t0 = time.time()
    rc, _, err = udm("open", "--key-file", kf or KF, img, "h")
    took = time.time() - t0
    want = "udm: " + want.format(img=img)
    check(name, rc == 1 and err.strip() == want, "rc=%d\n  got:  %r\n  want: %r" %
          (rc, err.strip(), want))
    if rc == 0:
        udm("close", "h")
    check(name + ": nothing created", devices() == "No devices found", devices())
    check(name + ": volume unchanged", sha(img) == before)
    if t0_max is not None:
        check(name + ": refused before the KDF (%.1fs)" % took, took < t0_max)
    if cryptsetup_rule:
        check(name + ": cryptsetup refuses it too", not cryptsetup_accepts(img))
    os.unlink(img)


def opens(name, base, patch, warning, kf=None):
    img = os.path.join(WORK, name + ".img")
    shutil.copy(base, img)
    patch(img)
    before = sha(img)
    rc, _, err = udm("open", "--key-file", kf or KF, img, "h")
    want = "udm: warning: " + warning.format(img=img)
    check(name, rc == 0 and err.strip() == want, "rc=%d\n  got:  %r\n  want: %r" %
          (rc, err.strip(), want))
    if rc == 0:
        tbl = udm("table", "--showkeys", "h")[1].split()
        udm("close", "h")
        good = os.path.join(WORK, name + ".good")
        shutil.copy(base, good)
        rc2, _, _ = udm("open", "--key-file", kf or KF, good, "g")
        tbl2 = udm("table", "--showkeys", "g")[1].split()
        udm("close", "g")
        check(name + ": same key and layout as the intact volume",
              rc2 == 0 and tbl[:6] == tbl2[:6] and tbl[7:] == tbl2[7:], (tbl, tbl2))
        os.unlink(good)
    check(name + ": volume unchanged", sha(img) == before)
    check(name + ": nothing left", devices() == "No devices found", devices())
    os.unlink(img)


# ---- LUKS2 edits ----

def edit(change):
    return lambda img: H.luks2_edit(img, change)


def setv(path, value):
    """Set META[path...] = value (None deletes)."""
    def change(meta):
        o = meta
        for k in path[:-1]:
            o = o[k]
        if value is None:
            del o[path[-1]]
        else:
            o[path[-1]] = value
    return edit(change)


def raw_area(transform):
    def patch(img):
        text = json.dumps(H.luks2_json(img), separators=(",", ":")).encode()
        H.luks2_write(img, transform(text))
    return patch


def second_keyslot(meta, area_offset=None):
    ks = copy.deepcopy(meta["keyslots"]["0"])
    if area_offset is not None:
        ks["area"]["offset"] = str(area_offset)
    meta["keyslots"]["1"] = ks
    meta["digests"]["0"]["keyslots"].append("1")


def luks2_cases(base):
    S, K, D, C = "segments", "keyslots", "digests", "config"
    mda = 16384
    # -- 2: header strings never reach a table unchecked
    # The data area is 8192 sectors: this string once made a two-segment table
    # whose first half mapped OTHER read-write, unencrypted.
    other = os.path.join(WORK, "other-file")
    with open(other, "wb") as f:
        f.truncate(4 << 20)
    refused("segment-encryption-injects-table-lines", base,
            setv([S, "0", "encryption"],
                 "cipher_null-ecb - 0 %s 0\n8192 8192 crypt aes-xts-plain64" % other),
            "{img}: segment 0: invalid cipher specification 'cipher_null-ecb - 0 %s "
            "0?8192 8192 crypt aes-xts-plain64'" % other)
    refused("segment-encryption-with-blank", base,
            setv([S, "0", "encryption"], "aes-xts-plain64 1 allow_discards"),
            "{img}: segment 0: invalid cipher specification 'aes-xts-plain64 1 allow_discards'")
    refused("keyslot-area-encryption-injects", base,
            setv([K, "0", "area", "encryption"], "aes-xts-plain64\n0 8 linear /etc/passwd"),
            "{img}: keyslot 0: invalid cipher specification 'aes-xts-plain64?0 8 linear "
            "/etc/passwd'", t0_max=5)
    uuid = open(base, "rb").read(208)[168:208].split(b"\0", 1)[0].decode()
    refused("uuid-with-newline", base,
            lambda img: H.luks2_write(img, H.luks2_json(img), bin_patch=lambda off, h:
                                      h.__setitem__(slice(168, 176), b"ab\ncd ef")),
            "{img}: invalid LUKS2 UUID 'ab?cd ef" + uuid[8:] + "'")
    # a path or name with a newline could not stay on one table line
    nl = os.path.join(WORK, "new\nline.img")
    shutil.copy(base, nl)
    rc, _, err = udm("open", "--key-file", KF, nl, "h")
    check("volume-path-with-newline", rc == 1 and err.strip() ==
          "udm: the volume path holds control characters", err)
    rc, _, err = udm("open", "--key-file", KF, base, "h\nx")
    check("device-name-with-newline", rc == 1 and err.strip() == "udm: invalid device name "
          "(empty, too long or holding control characters)" and
          devices() == "No devices found", err)
    os.unlink(nl)
    # -- 3: keyslots must be bound to the data segment
    refused("keyslot-digest-without-segment", base,
            edit(lambda m: m[D].update({"1": dict(m[D]["0"], keyslots=[], segments=["0"])}) or
                 m[D]["0"].update(segments=[])),
            "{img}: no LUKS2 keyslot is assigned to the data segment", t0_max=5)

    def unbound_slot(img):
        subprocess.run(["cryptsetup", "luksAddKey", "--batch-mode", "--key-file", KF,
                        "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", img, KF2],
                       check=True, capture_output=True)

        def change(m):
            m[D]["0"]["keyslots"] = ["0"]
            m[D]["1"] = dict(m[D]["0"], keyslots=["1"], segments=[])
        H.luks2_edit(img, change)
    refused("keyslot-not-assigned-to-segment", base, unbound_slot,
            "{img}: keyslot 1 is not assigned to the data segment (its digest does not cover "
            "segment 0); its key is not the volume key", kf=KF2)
    refused("segment-without-digest", base, setv([D, "0", "segments"], []),
            "{img}: invalid LUKS2 metadata: segment 0 is not assigned to a digest",
            cryptsetup_rule=True)
    # -- 5: cryptsetup's LUKS2 metadata rules, one case each
    refused("json-area-not-starting-with-brace", base, raw_area(lambda t: b" " + t),
            "{img}: invalid LUKS2 metadata: the JSON area does not start with '{{'",
            cryptsetup_rule=True)
    text_len = len(json.dumps(H.luks2_json(base), separators=(",", ":")))
    refused("bytes-after-json", base, raw_area(lambda t: t + b"\0\0x"),
            "{img}: invalid LUKS2 metadata: byte 0x78 follows the JSON metadata at offset %d" %
            (text_len + 2), cryptsetup_rule=True)
    def json_size_32k(m):
        # a consistent 32 KiB layout in the JSON, but the binary header says 16 KiB
        m[C].update(json_size="28672", keyslots_size=str(16744448 - 32768))
        m[K]["0"]["area"]["offset"] = "65536"
    dup = b'"encryption":"aes-xts-plain64","sector_size"'
    refused("duplicate-json-member", base,
            raw_area(lambda t: t.replace(dup, dup.replace(b',"sector_size"',
                     b',"encryption":"cipher_null-ecb","sector_size"'))),
            "{img}: invalid LUKS2 metadata: the JSON metadata name a member twice in one "
            "object (byte %d)" % (json.dumps(H.luks2_json(base), separators=(",", ":"))
                                  .encode().index(dup) + len(dup) - len(',"sector_size"') +
                                  len(',"encryption"')))
    refused("json-size-differs-from-binary-header", base, edit(json_size_32k),
            "{img}: invalid LUKS2 metadata: config.json_size 28672 differs from the binary "
            "header's JSON area size 12288", cryptsetup_rule=True)
    refused("header-size-not-allowed", base, setv([C, "json_size"], "12800"),
            "{img}: invalid LUKS2 metadata: header size 16896 (json_size + 4096) is not 16 "
            "KiB, 32 KiB, ... or 4 MiB", cryptsetup_rule=True)
    refused("keyslots-size-not-4k-aligned", base, setv([C, "keyslots_size"], "16744000"),
            "{img}: invalid LUKS2 metadata: keyslots_size 16744000 is not a multiple of 4096 "
            "up to 128 MiB", cryptsetup_rule=True)
    refused("keyslots-size-overlaps-data", base, setv([C, "keyslots_size"], "16777216"),
            "{img}: invalid LUKS2 metadata: keyslots_size 16777216 does not fit between the "
            "two headers (32768 bytes) and the data offset 16777216", cryptsetup_rule=True)
    refused("config-flags-not-strings", base, setv([C, "flags"], [1]),
            "{img}: invalid LUKS2 metadata: config.flags must be an array of strings",
            cryptsetup_rule=True)
    refused("requirements-not-strings", base, setv([C, "requirements"], {"mandatory": [7]}),
            "{img}: invalid LUKS2 metadata: config.requirements.mandatory must be an array of "
            "strings", cryptsetup_rule=True)
    refused("unknown-mandatory-requirement", base,
            setv([C, "requirements"], {"mandatory": ["frobnicate"]}),
            "{img}: the LUKS2 volume has mandatory requirements udm does not support (e.g. "
            "'frobnicate')")
    refused("area-inside-binary-headers", base, setv([K, "0", "area", "offset"], "16384"),
            "{img}: invalid LUKS2 metadata: keyslot 0: area offset 16384 is inside the binary "
            "headers (32768 bytes)", cryptsetup_rule=True)
    refused("area-size-zero", base, setv([K, "0", "area", "size"], "0"),
            "{img}: invalid LUKS2 metadata: keyslot 0: area size is 0", cryptsetup_rule=True)
    end = 2 * mda + 16744448
    refused("area-past-keyslots-area", base, setv([K, "0", "area", "offset"], str(end - 4096)),
            "{img}: invalid LUKS2 metadata: keyslot 0: area runs past the keyslots area (which "
            "ends at %d)" % end, cryptsetup_rule=True)
    refused("areas-overlap", base, edit(lambda m: second_keyslot(m, 32768 + 4096)),
            "{img}: invalid LUKS2 metadata: the areas of keyslots 0 and 1 overlap",
            cryptsetup_rule=True)
    refused("token-names-missing-keyslot", base,
            setv(["tokens", "0"], {"type": "luks2-keyring", "keyslots": ["5"],
                                   "key_description": "x"}),
            "{img}: invalid LUKS2 metadata: token 0 names keyslot '5', which does not exist",
            cryptsetup_rule=True)
    refused("token-name-not-a-number", base,
            setv(["tokens", "t"], {"type": "luks2-keyring", "keyslots": [],
                                   "key_description": "x"}),
            "{img}: invalid LUKS2 metadata: token name 't' is not a number",
            cryptsetup_rule=True)
    refused("token-without-type", base, setv(["tokens", "0"], {"keyslots": []}),
            "{img}: invalid LUKS2 metadata: token 0 has no type", cryptsetup_rule=True)
    refused("digest-names-missing-segment", base, setv([D, "0", "segments"], ["0", "3"]),
            "{img}: invalid LUKS2 metadata: digest 0 names segment '3', which does not exist",
            cryptsetup_rule=True)
    refused("digest-names-missing-keyslot", base, setv([D, "0", "keyslots"], ["0", "9"]),
            "{img}: invalid LUKS2 metadata: digest 0 names keyslot '9', which does not exist",
            cryptsetup_rule=True)
    refused("keyslot-in-two-digests", base,
            edit(lambda m: m[D].update({"1": dict(m[D]["0"], segments=[])})),
            "{img}: invalid LUKS2 metadata: keyslot 0 is not assigned to exactly one digest",
            cryptsetup_rule=True)
    refused("segment-offset-not-512-aligned", base, setv([S, "0", "offset"], "16777217"),
            "{img}: invalid LUKS2 metadata: segment 0: offset and size must be multiples of "
            "512", cryptsetup_rule=True)
    refused("segment-size-not-sector-multiple", base, setv([S, "0", "size"], "1049088"),
            "{img}: invalid LUKS2 metadata: segment 0: size 1049088 is not a multiple of the "
            "sector size 4096", cryptsetup_rule=True)
    refused("segment-sector-size-illegal", base, setv([S, "0", "sector_size"], 1000),
            "{img}: invalid LUKS2 metadata: segment 0: illegal sector_size",
            cryptsetup_rule=True)
    refused("segment-sector-size-as-string", base, setv([S, "0", "sector_size"], "4096"),
            "{img}: invalid LUKS2 metadata: segment 0 lacks an iv_tweak, encryption or "
            "sector_size", cryptsetup_rule=True)
    refused("segment-iv-tweak-not-a-number", base, setv([S, "0", "iv_tweak"], "-1"),
            "{img}: invalid LUKS2 metadata: segment 0: iv_tweak is not a number",
            cryptsetup_rule=True)
    refused("segments-with-gap", base,
            edit(lambda m: m[S].update({"1": m[S].pop("0")}) or
                 m[D]["0"].update(segments=["1"])),
            "{img}: invalid LUKS2 metadata: segment 0 is missing (segments must be numbered "
            "from 0)", cryptsetup_rule=True)

    def two_segments(m, second_offset, first_size="1048576"):
        m[S]["0"]["size"] = first_size
        m[S]["1"] = dict(m[S]["0"], offset=str(second_offset), size="1048576")
        m[D]["0"]["segments"] = ["0", "1"]
    refused("segments-overlap", base, edit(lambda m: two_segments(m, 16777216 + 4096)),
            "{img}: invalid LUKS2 metadata: segments 0 and 1 overlap", cryptsetup_rule=True)
    refused("dynamic-segment-not-last", base,
            edit(lambda m: two_segments(m, 18874368, "dynamic")),
            "{img}: invalid LUKS2 metadata: segment 0 has a dynamic size but is not the last",
            cryptsetup_rule=True)
    refused("segment-flags-not-strings", base, setv([S, "0", "flags"], ["backup-x", 3]),
            "{img}: invalid LUKS2 metadata: segment 0: flags must be an array of strings",
            cryptsetup_rule=True)
    refused("segment-integrity-malformed", base,
            setv([S, "0", "integrity"], {"type": "hmac(sha256)"}),
            "{img}: invalid LUKS2 metadata: segment 0: integrity must be an object with type, "
            "journal_encryption and journal_integrity", cryptsetup_rule=True)
    refused("segment-integrity-unsupported", base,
            setv([S, "0", "integrity"], {"type": "hmac(sha256)", "journal_encryption": "none",
                                         "journal_integrity": "none"}),
            "{img}: LUKS2 with integrity protection is not supported")
    refused("segment-without-type", base, setv([S, "0", "type"], None),
            "{img}: invalid LUKS2 metadata: segment 0 lacks a type, offset or size string",
            cryptsetup_rule=True)
    refused("digest-without-type", base, setv([D, "0", "type"], None),
            "{img}: invalid LUKS2 metadata: digest 0 has no type", cryptsetup_rule=True)
    refused("keyslot-without-type", base, setv([K, "0", "type"], 2),
            "{img}: invalid LUKS2 metadata: keyslot 0: type must be a string and key_size an "
            "integer below 2^32", cryptsetup_rule=True)
    refused("keyslots-size-over-128m", base, setv([C, "keyslots_size"], str(129 << 20)),
            "{img}: invalid LUKS2 metadata: keyslots_size 135266304 is not a multiple of 4096 "
            "up to 128 MiB", cryptsetup_rule=True)
    refused("area-offset-not-a-number", base, setv([K, "0", "area", "offset"], "32k"),
            "{img}: invalid LUKS2 metadata: keyslot 0: area needs a type and numeric offset "
            "and size strings", cryptsetup_rule=True)
    refused("keyslot-key-size-as-string", base, setv([K, "0", "key_size"], "64"),
            "{img}: invalid LUKS2 metadata: keyslot 0: type must be a string and key_size an "
            "integer below 2^32", cryptsetup_rule=True)
    refused("keyslot-name-not-a-number", base,
            edit(lambda m: m[K].update({"x": m[K].pop("0")}) or
                 m[D]["0"].update(keyslots=["x"])),
            "{img}: invalid LUKS2 metadata: keyslot name 'x' is not a number",
            cryptsetup_rule=True)
    refused("pbkdf2-iterations-as-string", base, setv([K, "0", "kdf", "iterations"], "1000"),
            "{img}: invalid LUKS2 metadata: keyslot 0: pbkdf2 needs a salt and hash string and "
            "an integer iteration count", cryptsetup_rule=True)
    refused("argon2-memory-missing", base,
            setv([K, "0", "kdf"], {"type": "argon2id", "time": 4, "cpus": 1, "salt": "AAAA"}),
            "{img}: invalid LUKS2 metadata: keyslot 0: argon2id needs a salt string and "
            "integer time, memory and cpus", cryptsetup_rule=True)
    refused("af-not-luks1", base, setv([K, "0", "af", "type"], "luks9"),
            "{img}: invalid LUKS2 metadata: keyslot 0: af must be of type luks1 with a hash "
            "and stripes", cryptsetup_rule=True)
    refused("area-not-raw", base, setv([K, "0", "area", "type"], "cooked"),
            "{img}: invalid LUKS2 metadata: keyslot 0: area must be of type raw with "
            "encryption, key_size, offset and size", cryptsetup_rule=True)
    refused("missing-tokens-section", base, setv(["tokens"], None),
            "{img}: invalid LUKS2 metadata: a config, keyslots, tokens, digests or segments "
            "object is missing", cryptsetup_rule=True)
    refused("device-smaller-than-metadata", base,
            lambda img: os.truncate(img, 1 << 20),
            "{img} is too small: the LUKS2 headers and keyslots need 16777216 bytes, the file "
            "has 1048576", cryptsetup_rule=True)
    # -- udm's own rules for what it maps
    refused("data-offset-zero", base,
            edit(lambda m: m[S]["0"].update(offset="0")),
            "{img}: the LUKS2 data offset is 0 (a detached header): udm does not support "
            "detached headers")
    refused("segment-size-past-device", base, setv([S, "0", "size"], "1073741824"),
            "{img}: the data area (1073741824 bytes at byte 16777216) runs past the end of the "
            "file (20971520 bytes): the volume is truncated")
    refused("truncated-after-header", base, lambda img: os.truncate(img, 16 << 20),
            "{img}: the data area starts at byte 16777216, at or beyond the end of the file "
            "(16777216 bytes): the volume is truncated")
    # -- 8: KDF costs bounded before the KDF runs
    argon = {"type": "argon2id", "time": 4, "memory": 32, "cpus": 1,
             "salt": "nOvj9AQzIFrhUQfuHyJs+g6Hy6KAdywU9+QK0yk/eyU="}
    for name, change, want in [
            ("argon2-memory-2^32-1", {"memory": 4294967295},
             "invalid argon2 memory cost 4294967295 KiB (32 to 4194304)"),
            ("argon2-memory-below-minimum", {"memory": 8},
             "invalid argon2 memory cost 8 KiB (32 to 4194304)"),
            ("argon2-time-zero", {"time": 0}, "invalid argon2 time cost 0 (1 to 4294967295)"),
            ("argon2-threads-too-many", {"cpus": 64}, "invalid argon2 parallel cost 64 (1 to 4)"),
            ("argon2-threads-zero", {"cpus": 0}, "invalid argon2 parallel cost 0 (1 to 4)")]:
        refused(name, base, setv([K, "0", "kdf"], dict(argon, **change)),
                "{img}: keyslot 0: " + want, t0_max=5)

    def second_slot_hostile(img):
        subprocess.run(["cryptsetup", "luksAddKey", "--batch-mode", "--key-file", KF,
                        "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", img, KF2],
                       check=True, capture_output=True)
        H.luks2_edit(img, lambda m: m[K]["1"].update(kdf=dict(argon, memory=4294967295)))
    # one keyslot out of bounds does not lock out the others...
    img = os.path.join(WORK, "second-slot.img")
    shutil.copy(base, img)
    second_slot_hostile(img)
    rc, _, err = udm("open", "--key-file", KF, img, "h")
    check("a keyslot out of bounds leaves the others usable", rc == 0 and not err, err)
    udm("close", "h")
    os.unlink(img)
    # ...and its passphrase is told why it was not tried
    refused("keyslot-out-of-bounds-not-tried", base, second_slot_hostile,
            "No key available with this passphrase. (Not tried: {img}: keyslot 1: invalid "
            "argon2 memory cost 4294967295 KiB (32 to 4194304))", kf=KF2, t0_max=5)
    refused("pbkdf2-iterations-zero", base, setv([K, "0", "kdf", "iterations"], 0),
            "{img}: keyslot 0: invalid pbkdf2 iteration count 0 (1 to 4294967295)")
    refused("pbkdf2-iterations-2^32", base, setv([K, "0", "kdf", "iterations"], 4294967296),
            "{img}: keyslot 0: invalid pbkdf2 iteration count 4294967296 (1 to 4294967295)")
    refused("digest-iterations-zero", base, setv([D, "0", "iterations"], 0),
            "{img}: digest 0: invalid pbkdf2 iteration count 0 (1 to 4294967295)")
    # -- 9: say what is wrong instead of "No key available"
    refused("key-size-2^31", base, setv([K, "0", "key_size"], 2147483648),
            "{img}: keyslot 0: invalid key_size 2147483648 (1 to 512 bytes)", t0_max=5)
    refused("stripes-2^32-1", base, setv([K, "0", "af", "stripes"], 4294967295),
            "{img}: keyslot 0: AF stripes 4294967295 is unsupported (LUKS2 uses 4000)", t0_max=5)
    refused("area-smaller-than-key-material", base, setv([K, "0", "area", "size"], "4096"),
            "{img}: keyslot 0: its area (4096 bytes) is smaller than its key material (256000 "
            "bytes)")
    refused("segment-cipher-unsupported", base, setv([S, "0", "encryption"], "aes-xts-nosuchiv"),
            "{img}: segment 0: cipher 'aes-xts-nosuchiv' with a 512-bit key is not supported: "
            "invalid IV mode 'nosuchiv'", t0_max=5)
    # -- a stale primary (older seqid than the secondary) is not used: a keyslot
    # added since exists only in the newer header, as cryptsetup sees it
    img = os.path.join(WORK, "stale-primary.img")
    shutil.copy(base, img)
    old_primary = open(img, "rb").read(mda)
    subprocess.run(["cryptsetup", "luksAddKey", "--batch-mode", "--key-file", KF,
                    "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", img, KF2],
                   check=True, capture_output=True)
    with open(img, "r+b") as f:
        f.write(old_primary)
    rc, _, err = udm("open", "--key-file", KF2, img, "h")
    seq_old = int.from_bytes(old_primary[16:24], "big")
    check("stale-primary-header: the newer secondary is used",
          rc == 0 and err.strip() == "udm: warning: %s: the primary LUKS2 header is older than "
          "the backup (seqid %d < %d); using the backup header at offset 16384" %
          (img, seq_old, seq_old + 1), err)
    udm("close", "h")
    os.unlink(img)
    # -- 6: the secondary header found when the primary's magic or first 4 KiB are gone
    opens("primary-magic-wiped", base, lambda img: open(img, "r+b").write(bytes(6)),
          "{img}: the primary LUKS2 header is damaged (bad magic or version); using the backup "
          "header at offset 16384")

    def zero4k(img):
        with open(img, "r+b") as f:
            f.write(bytes(4096))
    opens("primary-first-4k-zeroed", base, zero4k,
          "{img}: the primary LUKS2 header is damaged (bad magic or version); using the backup "
          "header at offset 16384")


# ---- LUKS1 ----

def l1(field, value):
    return lambda img: H.luks1_set(img, H.LUKS1[field], value)


def l1slot(slot, field, value):
    return lambda img: H.luks1_set(img, H.luks1_slot_field(slot, field), value)


def luks1_cases(base):
    payload = H.luks1_get(base, H.LUKS1["payload_offset"])
    off0 = H.luks1_get(base, H.luks1_slot_field(0, "offset"))
    off1 = H.luks1_get(base, H.luks1_slot_field(1, "offset"))
    secs = (64 * 4000 + 511) // 512
    size = os.path.getsize(base)
    # -- 2
    refused("luks1-cipher-mode-injects", base, l1("cipher_mode", b"xts-plain64 0 /etc/passwd"),
            "{img}: invalid LUKS1 cipher mode 'xts-plain64 0 /etc/passwd'")
    refused("luks1-cipher-name-with-newline", base, l1("cipher_name", b"aes\n0 8 zero"),
            "{img}: invalid LUKS1 cipher name 'aes?0 8 zero'")
    refused("luks1-uuid-with-blank", base, l1("uuid", b"1234 5678"),
            "{img}: invalid LUKS1 UUID '1234 5678'")
    # -- 4: cryptsetup's LUKS1 keyslot layout rules
    refused("luks1-payload-offset-zero", base, l1("payload_offset", 0),
            "{img}: the LUKS1 payload offset is 0 (a detached header): udm does not support "
            "detached headers")
    refused("luks1-payload-inside-keyslot-area", base, l1("payload_offset", 8),
            "{img}: LUKS keyslot 0 is invalid: its key material (sectors %d to %d) runs into "
            "the data area (sector 8)" % (off0, off0 + secs - 1), cryptsetup_rule=True)
    refused("luks1-keyslot-inside-header", base, l1slot(0, "offset", 0),
            "{img}: LUKS keyslot 0 is invalid: its key material (sector 0) overlaps the header",
            cryptsetup_rule=True)
    refused("luks1-keyslots-overlap", base, l1slot(1, "offset", off0 + 8),
            "{img}: LUKS keyslot 0 is invalid: its key material overlaps keyslot 1's",
            cryptsetup_rule=True)
    refused("luks1-stripes-not-4000", base, l1slot(3, "stripes", 3999),
            "{img}: LUKS keyslot 3 is invalid: 3999 stripes (LUKS1 uses 4000)",
            cryptsetup_rule=True)
    refused("luks1-keyslot-past-payload", base, l1slot(7, "offset", payload - 1),
            "{img}: LUKS keyslot 7 is invalid: its key material (sectors %d to %d) runs into "
            "the data area (sector %d)" % (payload - 1, payload - 2 + secs, payload),
            cryptsetup_rule=True)

    def beyond_file(img):
        H.luks1_set(img, H.LUKS1["payload_offset"], 200000)
        H.luks1_set(img, H.luks1_slot_field(7, "offset"), 100000)
    refused("luks1-key-material-beyond-file", base, beyond_file,
            "{img} is too small: the LUKS1 header and keyslots need %d bytes, the file has %d" %
            ((100000 + secs) * 512, size), cryptsetup_rule=True)
    refused("luks1-digest-iterations-zero", base, l1("mk_iterations", 0),
            "{img}: invalid LUKS1 digest iteration count 0")
    refused("luks1-zero-iterations", base, l1slot(0, "iterations", 0),
            "{img}: LUKS keyslot 0 is invalid: 0 iterations")
    # -- 9
    refused("luks1-truncated-after-header", base, lambda img: os.truncate(img, payload * 512),
            "{img}: the data area starts at sector %d, at or beyond the end of the file (%d "
            "sectors): the volume is truncated" % (payload, payload))
    refused("luks1-bogus-cipher", base, l1("cipher_name", b"nosuch"),
            "{img}: LUKS1: cipher 'nosuch-xts-plain64' with a 512-bit key is not supported: "
            "unknown cipher 'nosuch' (udm supports aes, twofish, serpent, "
            "camellia, cast5, blowfish, des3_ede, des, sm4, cipher_null)", t0_max=5)
    refused("luks1-bogus-mode", base, l1("cipher_mode", b"gcm-plain64"),
            "{img}: LUKS1: cipher 'aes-gcm-plain64' with a 512-bit key is not supported: "
            "unsupported chaining mode 'gcm' (udm supports ecb, cbc, xts, lrw)",
            t0_max=5)
    refused("luks1-unsupported-hash", base, l1("hash", b"md4x"),
            "{img}: unsupported LUKS1 hash 'md4x'", cryptsetup_rule=True)
    del off1


def main():
    open(KF, "w").write("correct horse")
    open(KF2, "w").write("second key")
    try:
        luks2 = make("luks2", ["--type", "luks2", "--pbkdf", "pbkdf2",
                               "--pbkdf-force-iterations", "1000"])
        check("the LUKS2 fixture opens", udm("open", "--key-file", KF, luks2, "h")[0] == 0)
        udm("close", "h")
        luks2_cases(luks2)
        luks1 = make("luks1", ["--type", "luks1", "--cipher", "aes-xts-plain64", "--key-size",
                               "512", "--pbkdf-force-iterations", "1000"], size=8 << 20)
        check("the LUKS1 fixture opens", udm("open", "--key-file", KF, luks1, "h")[0] == 0)
        udm("close", "h")
        luks1_cases(luks1)
    finally:
        status = T.finish()
    return status


if __name__ == "__main__":
    sys.exit(main())
