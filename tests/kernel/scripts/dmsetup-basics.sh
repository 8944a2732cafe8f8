#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A script written for dmsetup, as a user would: it knows nothing of udm.
# tests/kernel/scenarios/dmsetup-script.scn runs it with the VM's dmsetup
# and with udm in dmsetup's place (a "dmsetup" on PATH that is udm), and
# compares what it prints; tests/cli/dm-script.sh runs it against udmd and
# compares with the VM's output recorded in tests/cli/dm-script.expected.
#
#   dmsetup-basics.sh DISK     (a disk of at least 1 MiB, which it reads only)
set -u
disk=$1
# The disk as the tools print it: its path, or its number when it is a block device.
nums=$(stat -L -c '%t %T' "$disk")
maj=$((0x${nums% *}))
min=$((0x${nums#* }))
show() { sed -e "s|$disk|DISK|g" -e "s|($maj, $min)|(DISK)|g" -e "s|$maj:$min|DISK|g"; }

dmsetup create base --table "0 2048 linear $disk 0" || echo "create base failed"
dmsetup create spare --table "0 1024 zero" || echo "create spare failed"
dmsetup create --notable empty || echo "create empty failed"
echo "== table"
dmsetup table spare
dmsetup table base | show
echo "== info"
dmsetup info -c -o name,attr --noheadings
echo "== suspend, load, resume"
dmsetup suspend base
dmsetup info -c -o name,attr --noheadings base
dmsetup load base --table "0 1024 linear $disk 1024"
dmsetup info -c -o name,attr --noheadings base
dmsetup resume base
dmsetup info -c -o name,attr,segments --noheadings base
dmsetup table base | show
echo "== rename"
dmsetup rename base renamed
dmsetup info -c -o name,attr --noheadings
dmsetup rename spare renamed 2>/dev/null && echo "renamed onto a name in use" ||
  echo "rename onto renamed refused"
echo "== deps"
dmsetup create upper --table "0 512 linear /dev/mapper/renamed 0" || echo "create upper failed"
dmsetup deps | show
dmsetup deps -o devname upper
dmsetup info -c -o name,open,device_count --noheadings
echo "== remove_all"
dmsetup remove_all
dmsetup info -c -o name --noheadings
dmsetup ls
echo "done"
