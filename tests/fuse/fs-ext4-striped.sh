# SPDX-License-Identifier: LGPL-2.1-or-later
# ext4 on a striped udm device, attached as a loop device over its FUSE file.
. "$(dirname "$0")/fs.sh"
fs_test ext4 striped
