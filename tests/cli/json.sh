# SPDX-License-Identifier: LGPL-2.1-or-later
# --json gives the same facts as the text output, as JSON python can read.
. "$(dirname "$0")/lib.sh"
start_udmd
make_file "$WORK/a.img" 512 a
udm create one --uuid U-1 --table "0 1024 linear $WORK/a.img 0" || fail "create"
udm create 'we"ird' --readonly --table "0 8 zero
8 8 error" || fail "create we\"ird"
udm load one --table "0 8 zero" || fail "load"

for v in table status info ls targets version; do
  udm $v --json >"$WORK/$v.json" || fail "$v --json"
done
udm table --inactive --json one >"$WORK/inactive.json" || fail "table --inactive --json"
python3 - "$WORK" "$WORK/a.img" <<'PY' || fail "JSON facts"
import json, sys
w, img = sys.argv[1], sys.argv[2]
load = lambda n: json.load(open(f"{w}/{n}.json"))
t = load("table")
assert [d["name"] for d in t] == ["one", 'we"ird'], t
assert t[0]["segments"] == [{"start": 0, "length": 1024, "target": "linear",
                             "args": f"{img} 0"}], t[0]
assert [s["target"] for s in t[1]["segments"]] == ["zero", "error"], t[1]
assert load("inactive")[0]["segments"][0]["target"] == "zero"
s = load("status")
assert s[0]["segments"][0]["target"] == "linear" and s[0]["segments"][0]["args"] == ""
i = {d["name"]: d for d in load("info")}
assert i["one"]["uuid"] == "U-1" and i["one"]["tables_present"] == "LIVE & INACTIVE"
assert i["one"]["size"] == 1024 * 512 and i["one"]["target_count"] == 1
assert i['we"ird']["read_only"] is True and i['we"ird']["state"] == "ACTIVE"
assert i["one"]["major"] == 253 and i["one"]["minor"] == 0
assert i["one"]["logical_block_size"] == 512, i["one"]
l = load("ls")
assert l == [{"name": "one", "major": 253, "minor": 0},
             {"name": 'we"ird', "major": 253, "minor": 1}], l
tg = {x["name"]: x["version"] for x in load("targets")}
assert "linear" in tg and len(tg["linear"]) == 3, tg
v = load("version")
assert v["library"] == v["driver"] and v["protocol"] == 1, v
PY
# A crypt device with 4096-byte sectors, and a udmz image of a 4096-byte
# device: "Logical block size:" in the text (only then), and in the JSON.
k=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
udm create c4k --table "0 1024 crypt aes-xts-plain64 $k$k 0 $WORK/a.img 0 1 sector_size:4096" ||
  fail "create c4k"
udm info c4k | grep -qx "Logical block size: 4096" || fail "info c4k: $(udm info c4k)"
udm info one | grep -q "^Logical block size" && fail "info one has a block size line"
udm info --json c4k | python3 -c 'import json, sys
assert json.load(sys.stdin)[0]["logical_block_size"] == 4096' || fail "info --json c4k"
udm image convert --logical-block-size 4096 "$WORK/a.img" "$WORK/a.udmz" >/dev/null ||
  fail "udm image convert"
udm create z --image "udmz:$WORK/a.udmz" || fail "create --image udmz"
udm info z | grep -qx "Logical block size: 4096" || fail "info z: $(udm info z)"
expect_fail "which has a logical block size of 4096 bytes" \
  udm create z2 --table "0 8 linear udmz:$WORK/a.udmz 4"

# The text and JSON agree on the targets list.
expect_eq "targets" "$(udm targets | awk '{print $1}')" \
  "$(python3 -c 'import json,sys; [print(t["name"]) for t in json.load(sys.stdin)]' <"$WORK/targets.json")"
echo ok
