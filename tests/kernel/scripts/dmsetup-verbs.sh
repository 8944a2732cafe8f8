#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# dmsetup's verbs and output formats, as a user would run them: version,
# targets, create, ls (--tree), table (--showkeys), status, info (long and
# -c columns, --rows), deps, message, wait, rename (--setuuid), mknodes,
# suspend, resume, splitname, remove, remove_all.  tests/kernel/scenarios/dmsetup-libdm.scn
# runs it with the VM's dmsetup on the kernel and records what it printed
# (dmsetup-libdm.kernel beside it, checked against the kernel on every run
# of the kernel suite); tests/libdm/dmsetup-verbs.sh runs it with Debian's
# dmsetup on udm's libdevmapper and compares.
#
#   dmsetup-verbs.sh DISK      (a block device of at least 1 MiB, only read)
#
# Device numbers are the only thing the two sides cannot share (the
# kernel's 253:N, udm's attached loop devices): every number, and every
# kernel name (dm-N, loopN), of a device whose node is in DM_DIR is shown
# as {NAME}, the disk's as DISK, so what is compared is that each number
# printed is the one of the right node.  Devices are created in name order:
# the kernel lists them by name, udm in creation order.
set -u
disk=$1
dir=${DM_DEV_DIR:-/dev}/mapper
key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f

# "NAME MAJOR MINOR KNAME" of the disk and of every node in DM_DIR, into
# $map: made again whenever nodes come or go (one process, as the VM runs
# under emulation).
map=/tmp/dmsetup-verbs.map.$$
devmap() {
  stat -L -c '%t %T %n' "$disk" "$dir"/* 2>/dev/null | while read -r t T p; do
    [ -b "$p" ] || continue
    maj=$((0x$t))
    min=$((0x$T))
    kname=
    while IFS== read -r k v; do [ "$k" = DEVNAME ] && kname=$v; done <"/sys/dev/block/$maj:$min/uevent"
    if [ "$p" = "$disk" ]; then echo "DISK $maj $min $kname"; else echo "{${p##*/}} $maj $min $kname"; fi
  done >"$map"
}

# Numbers as "M:m", "M, m" and "M m" columns (info -c), kernel names, and
# the disk's path, shown as the device they belong to.
show() {
  awk -v disk="$disk" -v mapfile="$map" '
    # FROM in S replaced by TO where not within a longer number or word;
    # two or more blanks after it (a column'"'"'s padding) keep its width.
    function rep(s, from, to, word,   out, i, before, after, rest, sp, pad, k2) {
      out = ""
      while ((i = index(s, from)) > 0) {
        before = i > 1 ? substr(s, i - 1, 1) : substr(out, length(out), 1)
        after = substr(s, i + length(from), 1)
        if (before ~ (word ? /[0-9A-Za-z_-]/ : /[0-9]/) || after ~ (word ? /[0-9A-Za-z_]/ : /[0-9]/)) {
          out = out substr(s, 1, i - 1 + length(from))
          s = substr(s, i + length(from))
          continue
        }
        rest = substr(s, i + length(from))
        match(rest, /^ +[^ ]/)
        sp = RSTART ? RLENGTH - 1 : 0
        pad = sp ? " " : ""
        for (k2 = length(from) + sp - length(to) - 1; sp > 1 && k2 > 0; k2--)
          pad = pad " "
        out = out substr(s, 1, i - 1) to pad
        s = substr(rest, sp + 1)
      }
      return out s
    }
    BEGIN {
      while ((getline line < mapfile) > 0) {
        split(line, f, " ")
        n++; tok[n] = f[1]; maj[n] = f[2]; mnr[n] = f[3]; kn[n] = f[4]
      }
    }
    # info -c: the Maj and Min columns, three wide and right-aligned.
    /^Name +Maj +Min / { col = index($0, "Maj") }
    {
      line = rep($0, disk, "DISK", 1)
      for (k = 1; k <= n; k++) {
        name = substr(tok[k], 2, length(tok[k]) - 2)
        if (col && $1 == name && substr(line, col, 7) == sprintf("%3s %3s", maj[k], mnr[k]))
          line = substr(line, 1, col - 1) tok[k] "/" tok[k] substr(line, col + 7)
        line = rep(line, maj[k] ":" mnr[k], tok[k], 0)
        line = rep(line, maj[k] ", " mnr[k], tok[k], 0)
        if (kn[k] != "")
          line = rep(line, kn[k], tok[k], 1)
      }
      print line
    }'
}

echo "== version"
dmsetup version
echo "== targets"
dmsetup targets
echo "== create"
dmsetup create base --table "0 2048 linear $disk 0" || echo "create base failed"
dmsetup create cr --table "0 1024 crypt aes-xts-plain64 $key 0 $disk 1024" || echo "create cr failed"
dmsetup create mp --table "0 1024 multipath 0 0 1 1 round-robin 0 1 1 $disk 1" || echo "create mp failed"
dmsetup create over --table "0 1024 linear $dir/base 1024" || echo "create over failed"
dmsetup create top --table "0 512 linear $dir/over 0
512 512 zero" || echo "create top failed"
# A reader, as a user's first look would be (the multipath device then
# has chosen its path group on both sides).
for n in base cr mp over top; do dd if="$dir/$n" of=/dev/null bs=512 count=1 2>/dev/null; done
devmap
echo "== ls"
dmsetup ls | show
dmsetup ls --tree | show
dmsetup ls --tree -o inverted | show
echo "== table"
dmsetup table | show
dmsetup table cr | show
dmsetup table --showkeys cr | show
echo "== status"
dmsetup status | show
dmsetup status top | show
echo "== info"
dmsetup info base | show
dmsetup info | show
dmsetup info -c | show
dmsetup info -c -o name,attr,tables_loaded,open,segments,events,device_count,devs_used,names_using_dev,devnos_used,blkdevs_used | show
dmsetup info -c -o name,devno,blkdevname,suspended,readonly --noheadings --separator : | show
dmsetup info -c --rows -o name,attr,open,events,segments | show
dmsetup info -c --rows --noheadings --separator : -o name,devno top | show
echo "== deps"
dmsetup deps | show
dmsetup deps -o devname | show
dmsetup deps -o blkdevname top | show
echo "== message, wait"
dmsetup info -c -o name,events --noheadings mp
dmsetup message mp 0 fail_path "$disk" || echo "fail_path failed"
dmsetup wait mp 0 && echo "wait mp 0 returned"
dmsetup info -c -o name,events --noheadings mp
dmsetup status mp | show
dmsetup message mp 0 reinstate_path "$disk" || echo "reinstate_path failed"
dmsetup wait mp 1 && echo "wait mp 1 returned"
dmsetup status mp | show
dmsetup message base 0 nonsense 2>/dev/null || echo "message to linear refused"
echo "== rename"
dmsetup rename over overt || echo "rename failed"
[ -b "$dir/overt" ] && [ ! -e "$dir/over" ] && echo "node renamed"
devmap
dmsetup rename overt --setuuid UUID-overt || echo "rename --setuuid failed"
dmsetup info overt | show
dmsetup ls --tree | show
echo "== mknodes"
rm -f "$dir/base"
dmsetup mknodes base || echo "mknodes base failed"
[ -b "$dir/base" ] && echo "node of base back"
rm -f "$dir/cr" "$dir/mp"
dmsetup mknodes || echo "mknodes failed"
ls "$dir" | grep -v '^control$'
dmsetup ls | show
echo "== suspend, resume"
dmsetup suspend top
dmsetup info top | show
dmsetup resume top
dmsetup info -c -o name,attr --noheadings top
echo "== splitname"
dmsetup splitname vg--a-lv_x-y
dmsetup splitname vg-lv-layer-more
dmsetup splitname -o subsystem,vg_name,lv_name,lv_layer --noheadings --separator : a-b CRYPT
dmsetup splitname --nameprefixes --noheadings -o vg_name,lv_name tail- LVM
echo "== remove"
dmsetup remove base 2>/dev/null || echo "remove base refused"
dmsetup remove top overt || echo "remove top overt failed"
dmsetup remove_all
dmsetup ls
ls "$dir" | grep -v '^control$'
rm -f "$map"
echo "done"
