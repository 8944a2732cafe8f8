# SPDX-License-Identifier: LGPL-2.1-or-later
# An installed udm finds the udmd installed beside it, with no setup.
. "$(dirname "$0")/lib.sh"
: "${BUILD_ROOT:?}"
dest="$WORK/dest"
timeout 120 meson install -C "$BUILD_ROOT" --no-rebuild --destdir "$dest" >"$WORK/install.log" 2>&1 ||
  fail "meson install: $(tail -5 "$WORK/install.log")"
udm_bin=$(find "$dest" -path '*/bin/udm' -type f | head -1)
[ -x "$udm_bin" ] || fail "no installed udm under $dest"
[ -x "$(dirname "$udm_bin")/udmd" ] || fail "udmd not installed beside udm"
find "$dest" -name udm.8 | grep -q . || fail "udm.8 not installed"
find "$dest" -name udmd.8 | grep -q . || fail "udmd.8 not installed"
find "$dest" -name udm-targets.7 | grep -q . || fail "udm-targets.7 not installed"
find "$dest" -name udm-image.1 | grep -q . || fail "udm-image.1 not installed"
find "$dest" -name udmtab.5 | grep -q . || fail "udmtab.5 not installed"
if [ "$(uname -s)" = Linux ]; then
  for unit in udmd.service udmd.socket udm-apply.service; do
    find "$dest" -path "*/systemd/system/$unit" | grep -q . || fail "$unit not installed"
  done
  grep -q "^ExecStart=$(dirname "${udm_bin#"$dest"}")/udmd " "$(find "$dest" -name udmd.service)" ||
    fail "udmd.service does not start the installed udmd"
fi
libdir=$(dirname "$(find "$dest" -name 'libudm.so*' | head -1)")
# With DESTDIR the library is not where the loader looks; a real prefix is.
export LD_LIBRARY_PATH="$libdir"
env -u UDMD "$udm_bin" create d --table "0 8 zero" || fail "installed udm create"
pid=$(cat "$UDM_RUNTIME_DIR/udmd.lock")
if [ -e "/proc/$pid/exe" ]; then # Linux: check which executable runs
  expect_eq "started the installed udmd" "$(dirname "$udm_bin")/udmd" "$(readlink "/proc/$pid/exe")"
fi
expect_eq "ls" "d	(253:0)" "$(env -u UDMD "$udm_bin" ls)"
echo ok
