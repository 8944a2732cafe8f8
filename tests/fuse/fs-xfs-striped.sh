# SPDX-License-Identifier: LGPL-2.1-or-later
# xfs on a striped udm device, attached as a loop device over its FUSE file.
. "$(dirname "$0")/fs.sh"
fs_test xfs striped
