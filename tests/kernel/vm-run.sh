#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs inside the test VM (started by the base initramfs's /init from the
# input disk): load the dm modules, run every scenario with scenario-io, and
# write the results as a tar onto the disk with serial "udm-out".
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
# Host programs for "exec" (tests/kernel/vm-programs), with their libraries,
# at their host paths.
[ -d /in/root ] && cp -a /in/root/. /
mkdir -p /run/cryptsetup /run/lock
for m in loop dm-mod dm-zero dm-crypt dm-flakey dm-delay dm-snapshot dm-mirror \
	dm-thin-pool dm-cache dm-cache-smq dm-era dm-multipath dm-unstripe dm-log-writes \
	dm-integrity dm-verity dm-writecache dm-switch dm-dust dm-round-robin \
	dm-queue-length dm-service-time dm-historical-service-time; do
	modprobe "$m" 2>/dev/null
done
OUT=
for s in /sys/block/vd*/serial; do
	[ "$(cat "$s")" = udm-out ] && OUT=/dev/$(basename "$(dirname "$s")")
done
mkdir -p /out
uname -r > /out/kernel-version
lsmod > /out/lsmod.txt
# The target types this kernel has, once every module above had its chance:
# run-diff calls a scenario using a dm target missing here "not comparable".
dmsetup targets > /out/targets.txt 2>&1
timeout_s=$(cat /in/timeout 2>/dev/null || echo 120)
for scn in /in/scn/*.scn; do
	name=$(basename "$scn" .scn)
	echo "udm-vm: scenario $name"
	/in/scenario-io "$scn" "/tmp/work-$name" > "/out/$name.out" 2> "/out/$name.err" &
	pid=$!
	ticks=$((timeout_s * 20))
	while kill -0 "$pid" 2>/dev/null && [ "$ticks" -gt 0 ]; do
		usleep 50000
		ticks=$((ticks - 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		# Most likely I/O held by a suspended device (uninterruptible):
		# resume everything so it can finish, then kill it.
		echo "scenario-io: timed out after ${timeout_s}s" >> "/out/$name.err"
		for dev in $(dmsetup info -c --noheadings -o name 2>/dev/null); do
			dmsetup resume --noudevsync --noudevrules "$dev" >/dev/null 2>&1
		done
		kill -9 "$pid" 2>/dev/null
		wait "$pid"
		echo 124 > "/out/$name.rc"
	else
		wait "$pid"
		echo $? > "/out/$name.rc"
	fi
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
