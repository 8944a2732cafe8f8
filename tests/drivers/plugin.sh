#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The example driver (examples/rle-driver.c) built as rle.so: loaded with
# udm_image_driver_load and from the plugin directory ($UDM_DRIVER_PATH),
# read through a table byte for byte, its bad ranges failing with EIO and
# counted, writes refused with EROFS; broken plugins refused clearly.
source "$(dirname "$0")/lib.sh"
need python3 cmp cc

python3 "$DRIVERS_TEST_DIR/make-rle.py" "$tmp/disk.rle" "$tmp/disk.raw" > "$tmp/expected-bad"
n=$(( $(wc -c < "$tmp/disk.raw") / 512 ))
"$IMAGE_DUMP" --load "$RLE_DRIVER" --expect-erofs --bad "$tmp/bad" --extents "$tmp/ext" \
  --table "0 $n linear rle:$tmp/disk.rle 0" "$tmp/out.raw" > "$tmp/hits" ||
  fail "reading through the rle plugin"
cmp "$tmp/bad" "$tmp/expected-bad" || fail "EIO ranges $(cat "$tmp/bad")"
python3 - "$tmp/disk.raw" "$tmp/out.raw" "$tmp/expected-bad" "$tmp/ext" <<'PY' || fail "plugin bytes"
import sys
want, got = bytearray(open(sys.argv[1], 'rb').read()), open(sys.argv[2], 'rb').read()
bad = [tuple(map(int, l.split())) for l in open(sys.argv[3])]
for off, n in bad:
    want[off:off + n] = bytes(n)
assert got == want
badext = [(o, n) for o, n, fl in (map(int, l.split()) for l in open(sys.argv[4])) if fl & 4]
assert badext == bad, badext
PY
grep -q "^bad_block_hits [1-9]" "$tmp/hits" || fail "hits: $(cat "$tmp/hits")"
echo "ok: rle.so through udm_image_driver_load ($(cat "$tmp/hits"))"

# From the plugin directory: an unknown format in a table looks for FORMAT.so.
mkdir "$tmp/plugins"
cp "$RLE_DRIVER" "$tmp/plugins/rle.so"
UDM_DRIVER_PATH=$tmp/nowhere:$tmp/plugins "$IMAGE_DUMP" --table "0 $n linear rle:$tmp/disk.rle?bad=zero 0" \
  "$tmp/out2.raw" >/dev/null || fail "rle from \$UDM_DRIVER_PATH"
cmp "$tmp/out.raw" "$tmp/out2.raw" || fail "bad=zero through the plugin"
UDM_DRIVER_PATH=$tmp/plugins "$UDM_IMAGE" formats | grep -q "^rle " || fail "formats lacks rle"
UDM_DRIVER_PATH=$tmp/plugins "$UDM_IMAGE" info "$tmp/disk.rle" | head -1 | grep -qx "Format: rle" ||
  fail "info does not probe rle"
echo "ok: rle from the plugin directory"

# Broken plugins: not a driver, the wrong API version, a struct too small.
cat > "$tmp/bad.c" <<'C'
#include <udm/driver.h>
static int op(const char *p, const struct udm_image_options *o, bool w, void **h, char **e)
{ (void)p; (void)o; (void)w; (void)h; (void)e; return -1; }
static void cl(void *h) { (void)h; }
static uint64_t sz(void *h) { (void)h; return 0; }
static int rd(void *h, void *b, size_t l, uint64_t o) { (void)h; (void)b; (void)l; (void)o; return 0; }
static struct udm_image_driver d = { UDM_IMAGE_DRIVER_INIT, .name = "broken",
  .open = op, .close = cl, .size = sz, .pread = rd };
const struct udm_image_driver *udm_image_driver_entry(void) {
#if defined(WRONG_VERSION)
  d.api_version = 99;
#elif defined(TOO_SMALL)
  d.struct_size = 16;
#elif defined(BAD_NAME)
  d.name = "Bad Name";
#endif
  return &d;
}
C
cc -shared -fPIC -I"$DRIVERS_TEST_DIR/../../include" -o "$tmp/ok.so" "$tmp/bad.c"
printf 'int x;\n' | cc -shared -fPIC -x c -o "$tmp/notadriver.so" -
for v in WRONG_VERSION TOO_SMALL BAD_NAME; do
  cc -shared -fPIC -D$v -I"$DRIVERS_TEST_DIR/../../include" -o "$tmp/$v.so" "$tmp/bad.c"
done
expect_load_fail() { # SO WORDS
  local msg
  msg=$("$UDM_IMAGE" --load "$1" formats 2>&1) && fail "$1 loaded"
  grep -q -- "$2" <<<"$msg" || fail "$1: '$msg' does not say '$2'"
  echo "ok: refused $(basename "$1"): $msg"
}
"$UDM_IMAGE" --load "$tmp/ok.so" formats | grep -q "^broken" || fail "a minimal plugin"
expect_load_fail "$tmp/notadriver.so" "does not export udm_image_driver_entry"
expect_load_fail "$tmp/WRONG_VERSION.so" "driver API version 99"
expect_load_fail "$tmp/TOO_SMALL.so" "struct is too small"
expect_load_fail "$tmp/BAD_NAME.so" "invalid image driver name 'Bad Name'"
expect_load_fail "$tmp/missing.so" "cannot load"
msg=$("$UDM_IMAGE" --load "$RLE_DRIVER" --load "$RLE_DRIVER" formats 2>&1) && fail "loaded twice"
grep -q "already registered" <<<"$msg" || fail "twice: $msg"
echo PASS
