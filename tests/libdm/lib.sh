# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by tests/libdm: tests/cli/lib.sh (runtime directory, udmd, cleanup)
# and Debian's unmodified device-mapper programs run with udm's
# libdevmapper through LD_LIBRARY_PATH (LIBDM names its directory), with
# their nodes in $WORK/dev/mapper (DM_DEV_DIR).
. "$(dirname "$0")/../cli/lib.sh"
: "${LIBDM:?LIBDM must name the directory of the built libdevmapper.so.1.02.1}"
# meson puts the library's directory on LD_LIBRARY_PATH of the tests: only
# the programs run through with_libdm may use it (the rest, such as
# cryptsetup luksFormat, must use the system's).
LD_LIBRARY_PATH=$(tr ':' '\n' <<<"${LD_LIBRARY_PATH:-}" | grep -vxF "$LIBDM" | paste -sd: -)
[ -n "$LD_LIBRARY_PATH" ] && export LD_LIBRARY_PATH || unset LD_LIBRARY_PATH
export DM_DEV_DIR="$WORK/dev"
mkdir -p "$DM_DEV_DIR/mapper"

# PROGRAM ARGS...: a device-mapper program on udm's library.
with_libdm() { LD_LIBRARY_PATH="$LIBDM" timeout 60 "$@"; }
dm() { with_libdm dmsetup "$@"; }

# The number of the block device behind NODE, as dmsetup prints it (MAJ:MIN).
devno() {
  local maj min
  read -r maj min < <(stat -L -c '%t %T' "$1") || fail "stat $1"
  echo "$((16#$maj)):$((16#$min))"
}

# Programs that use the library must find it, not the system's.
check_uses_libdm() {
  grep -q "libdevmapper.so.1.02.1 => $LIBDM/" <<<"$(LD_LIBRARY_PATH="$LIBDM" ldd "$1")" ||
    fail "$1 does not load $LIBDM/libdevmapper.so.1.02.1: $(LD_LIBRARY_PATH="$LIBDM" ldd "$1")"
}

# An ASan build of the library needs the sanitizer runtime loaded first in
# programs that were not built with it; their own leaks are not ours to report.
libdm_asan=$(ldd "$LIBDM/libdevmapper.so.1.02.1" | awk '/libasan|libubsan/ {print $3}' | tr '\n' ':')
if [ -n "$libdm_asan" ]; then
  with_libdm() { LD_PRELOAD="${libdm_asan%:}" ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" \
    LD_LIBRARY_PATH="$LIBDM" timeout 60 "$@"; }
fi
