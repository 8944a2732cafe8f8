# SPDX-License-Identifier: LGPL-2.1-or-later
# udm info -c/-C as dmsetup's column report: default fields, -o lists
# (and +FIELD), the attr string, --noheadings, --separator, --sort, --json,
# and dmsetup splitname's fields.
. "$(dirname "$0")/lib.sh"
need dmsetup
start_udmd
sparse "$WORK/a.img" 1M

udm create one --table "0 2048 linear $WORK/a.img 0" || fail "create one"
udm create two --uuid LVM-abcdef --readonly --table "0 8 zero
8 8 error" || fail "create two"
udm create vg-lv--x-snap --notable || fail "create vg-lv--x-snap"
udm create st --table "0 8 linear udm:one 0" || fail "create st"
udm load one --table "0 2048 linear $WORK/a.img 0" || fail "load one"
udm suspend st || fail "suspend st"

# Columns as wide as the longest of value, heading and dmsetup's minimum;
# numbers to the right; the last column padded too.
expect_eq "info -c" "Name             Maj Min Stat Open Targ Event  UUID                            
one              253   0 LI-w    1    1      0                                 
two              253   1 L--r    0    2      0 LVM-abcdef                      
vg-lv--x-snap    253   2 ---w    0    0      0                                 
st               253   3 L-sw    0    1      0                                 " "$(udm info -c)"
expect_eq "info -C two" "Name             Maj Min Stat Open Targ Event  UUID                            
two              253   1 L--r    0    2      0 LVM-abcdef                      " "$(udm info -C two)"
expect_eq "--columns -o name,attr --noheadings" "one:LI-w
two:L--r
vg-lv--x-snap:---w
st:L-sw" "$(udm info --columns -o name,attr --noheadings)"
expect_eq "--separator" "Name,Min,Open
one,0,1
two,1,0" "$(udm info -c -o name,minor,open --separator , one two)"
expect_eq "-o +FIELD adds to the defaults" "Name             Maj Min Stat Open Targ Event  UUID                             Tables
one              253   0 LI-w    1    1      0                                  Both  " \
  "$(udm info -c -o +tables_loaded one)"
expect_eq "the other state fields" "Tables Suspended Read-only DevNo RAhead
Both   Active    Writeable 253:0    256
Live   Active    Read-only 253:1    256
None   Active    Writeable 253:2    256
Live   Suspended Writeable 253:3    256" \
  "$(udm info -c -o tables_loaded,suspended,readonly,devno,read_ahead)"
expect_eq "deps fields" "one:1::$WORK/a.img:1:st:253:3
st:1:one:253:0:0::" \
  "$(udm info -c --noheadings -o name,device_count,devs_used,devnos_used,device_ref_count,names_using_dev,devnos_using_dev one st)"
# The subsystem is the uuid's prefix; LVM names split into VG, LV and layer.
expect_eq "subsystem and LVM names" "Name             Subsys VG   LV   LVLayer
two              LVM    two              
vg-lv--x-snap                            " \
  "$(udm info -c -o name,subsystem,vg_name,lv_name,lv_layer two vg-lv--x-snap)"
expect_eq "--sort -name" "vg-lv--x-snap
two
st
one" "$(udm info -c -o name --noheadings --sort -name)"
expect_eq "-O segments,name (numbers as numbers)" "vg-lv--x-snap:0
one:1
st:1
two:2" "$(udm info -c -o name,segments --noheadings -O segments,name)"
expect_eq "--json" '[
  {"name": "one", "minor": 0, "attr": "LI-w"},
  {"name": "two", "minor": 1, "attr": "L--r"}]' "$(udm info -c -o name,minor,attr --json one two)"
expect_eq "-u UUID" "two:L--r" "$(udm info -c -o name,attr --noheadings -u LVM-abcdef)"
expect_eq "-j -m" "st:L-sw" "$(udm info -c -o name,attr --noheadings -j 253 -m 3)"

"$UDM" info -c -o name,bogus 2>"$WORK/err"; [ $? = 2 ] || fail "an unknown field is a usage error"
expect_eq "unknown field" "udm: info: unrecognised field: bogus (see 'udm help -c')" "$(cat "$WORK/err")"
"$UDM" info -c -o read_count 2>"$WORK/err"; [ $? = 2 ] || fail "a stats field is a usage error"
expect_eq "stats field" "udm: info: field read_count is not available in udm: udm keeps no I/O statistics (dmsetup stats)" "$(cat "$WORK/err")"
"$UDM" info -o name 2>"$WORK/err"; [ $? = 2 ] || fail "-o without -c is a usage error"
expect_fail "device nosuch does not exist" udm info -c nosuch
expect_fail "no device has uuid NOPE" udm info -c -u NOPE
udm help -c | grep -q "^  attr  *Stat$" || fail "help -c lists no attr field"

# dmsetup splitname.
expect_eq "splitname" "VG   LV   LVLayer
vg-a lv_x y      " "$(udm splitname vg--a-lv_x-y)"
expect_eq "splitname --noheadings" "vg::" "$(udm splitname vg --noheadings)"
expect_eq "splitname of another subsystem" "Subsys VG   LV   LVLayer
CRYPT                   " "$(udm splitname -o subsystem,vg_name,lv_name,lv_layer a-b CRYPT)"
expect_eq "splitname --separator" "VG/LV
a/b" "$(udm splitname a-b -o vg_name,lv_name --separator /)"
expect_eq "splitname --json" '[
  {"vg_name": "a", "lv_name": "b-c", "lv_layer": ""}]' "$(udm splitname a-b--c --json)"
"$UDM" splitname a -o name 2>/dev/null; [ $? = 2 ] || fail "splitname -o name is a usage error"
# splitname needs no kernel: the host's dmsetup prints the same bytes.
while read -r args; do
  expect_eq "udm splitname $args = dmsetup splitname $args" \
    "$(dmsetup splitname $args 2>&1; echo "exit $?")" "$(udm splitname $args 2>&1; echo "exit $?")"
done <<'EOF2'
vg--a-lv_x-y
vg --noheadings
-o subsystem,vg_name,lv_name,lv_layer a-b CRYPT
a-b -o vg_name,lv_name --separator /
a-b-c-d-
x- LVM
-o vg_name,lv_layer -O -lv_layer a-b-c
a -o +subsystem
a-b-- --noheadings --separator ,
-C -o lv_name,vg_name --sort vg_name a--b-c-d
EOF2
udm resume st || fail "resume st"
echo ok
