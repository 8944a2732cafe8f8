# SPDX-License-Identifier: LGPL-2.1-or-later
# fio writes random blocks with crc32c checksums on the block device
# (libaio, O_DIRECT), verifies them in a second pass, and the same bytes
# read back through the FUSE file and from the backing file.
. "$(dirname "$0")/functions.sh"
requires_blockdev
requires fio cmp

sparse "$tmp/d0" 256M
inner <<EOS
echo "device \$dev, direct I/O \$dio"
common="--filename=\$dev --ioengine=libaio --direct=1 --bsrange=4k-256k --size=192M
        --offset=32M --iodepth=16 --numjobs=1 --verify=crc32c --verify_fatal=1
        --randrepeat=1 --randseed=4242 --group_reporting"
fio --name=write --rw=randwrite --do_verify=0 \$common
fio --name=verify --rw=randwrite --verify_only \$common
cmp "\$dev" "\$file" || fail "block device and FUSE file differ"
cmp -n \$((224 << 20)) "\$dev" "$tmp/d0" || fail "block device and backing file differ"
EOS
serve --table "disk=0 $((256 * 2048)) linear $tmp/d0 0" --attach disk --run "bash $tmp/inner.sh"
echo PASS
