#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The crypt target over NBD: "crypt aes-xts-plain64" against "linear" on the
# same tmpfs file (both served by udm-nbd-serve), and against nbdkit's luks
# filter on a LUKS1 volume of the same size.  The same fio jobs
# (ioengine=nbd), run alternately, median of the rounds, ratios printed.
# Targets (docs/benchmarks.md): crypt >= 90% of linear, >= 2x nbdkit luks.
#
#   bench/crypt.sh [--serve PATH] [--rounds N] [--runtime SECONDS] [--size-mb N]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
serve=${UDM_NBD_SERVE:-}
rounds=3
runtime=4
size_mb=512
while [ $# -gt 0 ]; do
  case $1 in
    --serve) serve=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --runtime) runtime=$2; shift 2 ;;
    --size-mb) size_mb=$2; shift 2 ;;
    *) echo "usage: $0 [--serve PATH] [--rounds N] [--runtime S] [--size-mb N]" >&2
       exit 2 ;;
  esac
done
if [ -z "$serve" ]; then
  for b in build-open build-nbd build; do
    if [ -x "$here/../$b/tests/nbd/udm-nbd-serve" ]; then
      serve=$here/../$b/tests/nbd/udm-nbd-serve
      break
    fi
  done
fi
[ -x "$serve" ] || { echo "$0: no udm-nbd-serve; build it or pass --serve" >&2; exit 2; }
for t in fio nbdkit python3 cryptsetup; do
  command -v $t >/dev/null || { echo "$0: $t is not installed" >&2; exit 2; }
done

work=$(mktemp -d /dev/shm/udm-bench-crypt.XXXXXX)
trap 'rm -rf "$work"' EXIT
img=$work/disk.img
luks=$work/luks.img
dd if=/dev/zero of="$img" bs=1M count="$size_mb" status=none
dd if=/dev/zero of="$luks" bs=1M count=$((size_mb + 16)) status=none
printf 'bench-pass' > "$work/pass"
cryptsetup luksFormat --batch-mode --type luks1 --cipher aes-xts-plain64 --key-size 512 \
  --pbkdf-force-iterations 1000 --key-file "$work/pass" "$luks"
sectors=$(( size_mb * 2048 ))
key=$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n')

jobs=(
  "randread-4k-qd32 --rw=randread --bs=4k --iodepth=32"
  "seqread-1m-qd4 --rw=read --bs=1M --iodepth=4"
  "seqwrite-1m-qd4 --rw=write --bs=1M --iodepth=4"
)
fio_common="--ioengine=nbd --numjobs=1 --time_based --runtime=$runtime --ramp_time=1"
fio_common="$fio_common --size=${size_mb}M --output-format=json --group_reporting"

run_linear() {
  local name=$1; shift
  "$serve" --socket "$work/udm.sock" --table disk="0 $sectors linear $img 0" \
    --run "fio --name=$name $fio_common $* --uri=\"\$uri\""
}
run_crypt() {
  local name=$1; shift
  "$serve" --socket "$work/udm.sock" \
    --table disk="0 $sectors crypt aes-xts-plain64 $key 0 $img 0" \
    --run "fio --name=$name $fio_common $* --uri=\"\$uri\""
}
run_nbdkit_luks() {
  local name=$1; shift
  nbdkit --exit-with-parent -U "$work/nbdkit-$name-$round.sock" --filter=luks file "$luks" \
    passphrase=bench-pass \
    --run "fio --name=$name $fio_common $* --uri=\"\$uri\""
}

results=$work/results
: > "$results"
for round in $(seq 1 "$rounds"); do
  for job in "${jobs[@]}"; do
    set -- $job
    name=$1; shift
    for server in crypt linear nbdkit_luks; do
      json=$("run_$server" "$name" "$@")
      printf '%s' "$json" | python3 -c '
import json, sys
text = sys.stdin.read()
d = json.loads(text[text.find("{"):])
j = d["jobs"][0]
io = j["write"] if j["write"]["io_bytes"] > j["read"]["io_bytes"] else j["read"]
print(sys.argv[1], sys.argv[2], io["iops"], io["bw"] / 1024.0)
' "$name" "$server" >> "$results"
      tail -1 "$results" | awk -v r="$round" \
        '{printf "round %s  %-18s %-12s %10.0f IOPS %9.1f MiB/s\n", r, $1, $2, $3, $4}'
    done
  done
done

python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
jobs = []
for r in rows:
    if r[0] not in jobs:
        jobs.append(r[0])
med = lambda j, s: statistics.median(float(r[3]) for r in rows if r[0] == j and r[1] == s)
print("\n%-18s %12s %12s %12s %10s %10s" % ("job (MiB/s)", "crypt", "linear", "nbdkit-luks",
                                           "crypt/lin", "crypt/luks"))
for j in jobs:
    c, l, n = med(j, "crypt"), med(j, "linear"), med(j, "nbdkit_luks")
    print("%-18s %12.1f %12.1f %12.1f %9.0f%% %9.1fx" % (j, c, l, n, 100 * c / l, c / n))
PY
