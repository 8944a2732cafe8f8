# SPDX-License-Identifier: LGPL-2.1-or-later
# The FUSE file as a file (python3): reads and writes at any offset, the end
# of the device, fallocate (punch hole: zeros and a hole in the backing
# file; zero range; allocation), fsync, truncation, O_SYNC, devices that
# appear, resize and disappear while mounted.  No loop device involved.
. "$(dirname "$0")/functions.sh"
[ -c /dev/fuse ] || skip "no /dev/fuse"
requires python3

sparse "$tmp/d0" $(((64 << 20) + 4096))
serve --table "disk=0 $((64 * 2048)) linear $tmp/d0 8" --table "zero=0 2048 zero" \
  --run "python3 $(dirname "$0")/file-ops.py"
