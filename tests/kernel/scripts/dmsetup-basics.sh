#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A script written for dmsetup, as a user would: it knows nothing of udm.
# tests/kernel/scenarios/dmsetup-script.scn runs it with the VM's dmsetup
# and with udm in dmsetup's place (a "dmsetup" on PATH that is udm), and
# compares what it prints; tests/cli/dm-script.sh runs it against udmd and
# compares with the VM's output recorded in
# tests/kernel/scenarios/dmsetup-script.kernel (tests/kernel/record-kernel).
#
#   dmsetup-basics.sh DISK     (a disk of at least 1 MiB, which it reads only)
#
# Device names sort in the order they are made: the kernel lists devices by
# name, udm in creation order (docs/cli.md).
set -u
disk=$1
# The disk as the tools print it: its path, or its number when it is a block device.
nums=$(stat -L -c '%t %T' "$disk")
maj=$((0x${nums% *}))
min=$((0x${nums#* }))
show() { sed -e "s|$disk|DISK|g" -e "s|($maj, $min)|(DISK)|g" -e "s|$maj:$min|DISK|g"; }

dmsetup create vol1 --table "0 2048 linear $disk 0" || echo "create vol1 failed"
dmsetup create vol2 --table "0 1024 zero" || echo "create vol2 failed"
dmsetup create --notable vol3 || echo "create vol3 failed"
echo "== table"
dmsetup table vol2
dmsetup table vol1 | show
echo "== info"
dmsetup info -c -o name,attr --noheadings
echo "== suspend, load, resume"
dmsetup suspend vol1
dmsetup info -c -o name,attr --noheadings vol1
dmsetup load vol1 --table "0 1024 linear $disk 1024"
dmsetup info -c -o name,attr --noheadings vol1
dmsetup resume vol1
dmsetup info -c -o name,attr,segments --noheadings vol1
dmsetup table vol1 | show
echo "== rename"
dmsetup rename vol1 vol0
dmsetup info -c -o name,attr --noheadings
dmsetup rename vol2 vol0 2>/dev/null && echo "renamed onto a name in use" ||
  echo "rename onto vol0 refused"
echo "== deps"
dmsetup create vol4 --table "0 512 linear /dev/mapper/vol0 0" || echo "create vol4 failed"
dmsetup deps | show
dmsetup deps -o devname vol4
dmsetup info -c -o name,open,device_count --noheadings
echo "== remove_all"
dmsetup remove_all
dmsetup info -c -o name --noheadings
dmsetup ls
echo "done"
