# SPDX-License-Identifier: LGPL-2.1-or-later
# udm measure as dmsetup measure: each target's IMA text (the kernel's
# STATUSTYPE_IMA keys and values), printed as status is; targets the kernel
# does not measure print nothing after their type; crypt's key never shows.
. "$(dirname "$0")/lib.sh"
start_udmd
for f in a b c d; do truncate -s 1M "$WORK/$f.img"; done
k=0123456789abcdef0123456789abcdef

udm create lin --table "0 1024 linear $WORK/a.img 0
1024 1024 linear $WORK/b.img 8" || fail "create lin"
expect_eq "linear" "0 1024 linear target_name=linear,target_version=1.5.0,device_name=$WORK/a.img,start=0;
1024 1024 linear target_name=linear,target_version=1.5.0,device_name=$WORK/b.img,start=8;" \
  "$(udm measure lin)"

udm create str --table "0 2048 striped 2 128 $WORK/a.img 0 udm:lin 64" || fail "create str"
expect_eq "striped" "0 2048 striped target_name=striped,target_version=1.7.0,stripes=2,chunk_size=128,stripe_0_device_name=$WORK/a.img,stripe_0_physical_start=0,stripe_0_status=A,stripe_1_device_name=udm:lin,stripe_1_physical_start=64,stripe_1_status=A;" \
  "$(udm measure str)"

udm create cr --table "0 1024 crypt aes-xts-plain64 $k$k 0 $WORK/c.img 0 2 allow_discards sector_size:4096" ||
  fail "create cr"
out=$(udm measure cr)
expect_eq "crypt" "0 1024 crypt target_name=crypt,target_version=1.24.0,allow_discards=y,same_cpu_crypt=n,high_priority=n,submit_from_crypt_cpus=n,no_read_workqueue=n,no_write_workqueue=n,iv_large_sectors=n,sector_size=4096,cipher_string=aes-xts-plain64,key_size=32,key_parts=1,key_extra_size=0,key_mac_size=0;" \
  "$out"
grep -q "$k" <<<"$out" && fail "crypt's measurement shows the key"

udm create mir --table "0 1024 mirror core 2 64 nosync 2 $WORK/d.img 0 $WORK/b.img 1024 1 handle_errors" ||
  fail "create mir"
expect_eq "mirror" "0 1024 mirror target_name=mirror,target_version=1.14.0,nr_mirrors=2,mirror_device_0=$WORK/d.img,mirror_device_0_status=A,mirror_device_1=$WORK/b.img,mirror_device_1_status=A,handle_errors=y,keep_log=n,log_type_status=;" \
  "$(udm measure mir)"

udm create mp --table "0 1024 multipath 0 0 2 1 round-robin 0 1 1 $WORK/a.img 1 queue-length 0 1 1 $WORK/b.img 1" ||
  fail "create mp"
expect_eq "multipath" "0 1024 multipath target_name=multipath,target_version=1.15.0,nr_priority_groups=2,pg_state_0=E,nr_pgpaths_0=1,path_selector_name_0=round-robin,path_name_0_0=$WORK/a.img,is_active_0_0=A,fail_count_0_0=0,path_selector_status_0_0=,pg_state_1=E,nr_pgpaths_1=1,path_selector_name_1=queue-length,path_name_1_0=$WORK/b.img,is_active_1_0=A,fail_count_1_0=0,path_selector_status_1_0=;" \
  "$(udm measure mp)"

truncate -s 1M "$WORK/meta.img" "$WORK/cdev.img"
udm create ca --table "0 2048 cache $WORK/meta.img $WORK/cdev.img $WORK/d.img 64 2 writethrough no_discard_passdown smq 0" ||
  fail "create ca"
expect_eq "cache" "0 2048 cache target_name=cache,target_version=2.2.0,metadata_mode=rw,cache_metadata_device=$WORK/meta.img,cache_device=$WORK/cdev.img,cache_origin_device=$WORK/d.img,writethrough=y,writeback=n,passthrough=n,metadata2=n,no_discard_passdown=y;" \
  "$(udm measure ca)"
udm remove ca || fail "remove ca"

# Targets the kernel does not measure: "START LEN TYPE " and nothing more.
udm create none --table "0 8 zero
8 8 error
16 8 delay $WORK/a.img 0 0
24 8 flakey $WORK/a.img 0 1 0
32 8 dust $WORK/a.img 0 512" || fail "create none"
expect_eq "targets without IMA" "0 8 zero 
8 8 error 
16 8 delay 
24 8 flakey 
32 8 dust " "$(udm measure none)"
truncate -s 4M "$WORK/emeta.img" "$WORK/origin.img"
udm create er --table "0 2048 era $WORK/emeta.img $WORK/origin.img 128" || fail "create er"
expect_eq "era measures nothing" "0 2048 era " "$(udm measure er)"
expect_eq "era's status is there" "0 2048 era 8 9/1024 1 -" "$(udm status er)"
udm remove er || fail "remove er"

# Several devices: each line prefixed with the name, as status; --target.
expect_eq "--target linear" "lin: 0 1024 linear target_name=linear,target_version=1.5.0,device_name=$WORK/a.img,start=0;
lin: 1024 1024 linear target_name=linear,target_version=1.5.0,device_name=$WORK/b.img,start=8;" \
  "$(udm measure --target linear)"
expect_eq "two names" "lin: 0 1024 linear target_name=linear,target_version=1.5.0,device_name=$WORK/a.img,start=0;
lin: 1024 1024 linear target_name=linear,target_version=1.5.0,device_name=$WORK/b.img,start=8;
none: 0 8 zero 
none: 8 8 error 
none: 16 8 delay 
none: 24 8 flakey 
none: 32 8 dust " "$(udm measure lin none)"

# An inactive table is measured with --inactive; none prints an empty line.
udm load lin --table "0 2032 linear $WORK/c.img 16" 2>"$WORK/load.err" || fail "load lin: $(cat "$WORK/load.err")"
expect_eq "--inactive" "0 2032 linear target_name=linear,target_version=1.5.0,device_name=$WORK/c.img,start=16;" \
  "$(udm measure --inactive lin)"
udm create empty --notable || fail "create empty"
expect_eq "no table" "" "$(udm measure empty)"

expect_eq "--json" "[
  {\"name\": \"none\", \"segments\": [{\"start\": 0, \"length\": 8, \"target\": \"zero\", \"args\": \"\"}, {\"start\": 8, \"length\": 8, \"target\": \"error\", \"args\": \"\"}, {\"start\": 16, \"length\": 8, \"target\": \"delay\", \"args\": \"\"}, {\"start\": 24, \"length\": 8, \"target\": \"flakey\", \"args\": \"\"}, {\"start\": 32, \"length\": 8, \"target\": \"dust\", \"args\": \"\"}]}]" "$(udm measure --json none)"
expect_eq "--json with text" "[
  {\"name\": \"str\", \"segments\": [{\"start\": 0, \"length\": 2048, \"target\": \"striped\", \"args\": \"target_name=striped,target_version=1.7.0,stripes=2,chunk_size=128,stripe_0_device_name=$WORK/a.img,stripe_0_physical_start=0,stripe_0_status=A,stripe_1_device_name=udm:lin,stripe_1_physical_start=64,stripe_1_status=A;\"}]}]" \
  "$(udm measure --json str)"
expect_fail "device nosuch does not exist" udm measure nosuch
echo ok
