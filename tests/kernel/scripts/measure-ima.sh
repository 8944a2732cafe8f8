#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# dmsetup measure NAME, with each disk shown as DISKn and target_version
# shown as V: udm prints its own targets' versions ("udm targets"), which
# need not be the VM kernel's (docs/architecture.md, deliberate
# differences).  Everything else of the IMA text is compared.
#
#   measure-ima.sh NAME DISK...
set -u
name=$1
shift
script="s/target_version=[0-9][0-9.]*/target_version=V/g"
i=1
for disk in "$@"; do
  # A disk shows as its path (udm), or as its number when a block device.
  if [ -b "$disk" ]; then
    nums=$(stat -L -c '%t %T' "$disk")
    script="$script;s|=$((0x${nums% *})):$((0x${nums#* }))\([,;]\)|=DISK$i\1|g"
  fi
  script="$script;s|=$disk\([,;]\)|=DISK$i\1|g"
  i=$((i + 1))
done
dmsetup measure "$name" | sed -e "$script"
