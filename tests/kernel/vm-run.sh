#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs inside the test VM (started by the base initramfs's /init from the
# input disk): load the dm modules, run every scenario with scenario-io, and
# write the results as a tar onto the disk with serial "udm-out".
export PATH=/bin:/sbin
for m in loop dm-mod dm-zero dm-crypt dm-flakey dm-delay dm-snapshot dm-mirror \
	dm-thin-pool dm-cache dm-cache-smq dm-era dm-multipath dm-unstripe dm-log-writes \
	dm-integrity dm-verity dm-writecache dm-switch dm-dust; do
	modprobe "$m" 2>/dev/null
done
OUT=
for s in /sys/block/vd*/serial; do
	[ "$(cat "$s")" = udm-out ] && OUT=/dev/$(basename "$(dirname "$s")")
done
mkdir -p /out
uname -r > /out/kernel-version
lsmod > /out/lsmod.txt
timeout_s=$(cat /in/timeout 2>/dev/null || echo 120)
for scn in /in/scn/*.scn; do
	name=$(basename "$scn" .scn)
	echo "udm-vm: scenario $name"
	timeout "$timeout_s" /in/scenario-io "$scn" "/tmp/work-$name" > "/out/$name.out" 2> "/out/$name.err"
	echo $? > "/out/$name.rc"
	dmsetup remove_all --force --noudevsync --noudevrules >/dev/null 2>&1
	rm -rf "/tmp/work-$name"
done
dmesg > /out/dmesg.txt
if [ -n "$OUT" ]; then
	(cd /out && tar -cf "$OUT" .)
	sync
	echo "udm-vm: results written to $OUT"
else
	echo "udm-vm: no results disk (serial udm-out)"
fi
