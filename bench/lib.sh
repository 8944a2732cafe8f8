# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the NBD benchmarks (sourced, not run): option parsing, finding the
# built programs, checking the peers are installed, reading fio's JSON and
# printing medians with ratios.  The caller sets its defaults (rounds,
# runtime, size_mb) before bench_options, and names its results file.

here=${here:-$(cd "$(dirname "$0")" && pwd)}
serve=${UDM_NBD_SERVE:-}
udm_image=${UDM_IMAGE:-}

# bench_options "$@": --serve, --udm-image, --rounds, --runtime, --size-mb.
bench_options() {
  while [ $# -gt 0 ]; do
    case $1 in
      --serve) serve=$2; shift 2 ;;
      --udm-image) udm_image=$2; shift 2 ;;
      --rounds) rounds=$2; shift 2 ;;
      --runtime) runtime=$2; shift 2 ;;
      --size-mb) size_mb=$2; shift 2 ;;
      *) echo "usage: $0 [--serve PATH] [--udm-image PATH] [--rounds N]" \
              "[--runtime SECONDS] [--size-mb N]" >&2
         exit 2 ;;
    esac
  done
}

# bench_find VAR RELATIVE-PATH: set VAR (unless set) to the first build
# directory's copy of the program, build-rel first (a release build).
bench_find() {
  local var=$1 rel=$2 b
  if [ -z "${!var}" ]; then
    for b in build-rel build; do
      if [ -x "$here/../$b/$rel" ]; then
        printf -v "$var" '%s' "$here/../$b/$rel"
        break
      fi
    done
  fi
  [ -x "${!var}" ] || { echo "$0: no ${rel##*/}; build it or pass its option" >&2; exit 2; }
}

# bench_need TOOL...: every peer and helper must be installed.
bench_need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "$0: $t is not installed" >&2; exit 2; }
  done
}

# fio JSON on stdin -> "JOB SERVER IOPS MIB/S" appended to $results, and the
# round's line printed.
bench_record() {
  local job=$1 server=$2
  python3 -c '
import json, sys
text = sys.stdin.read()
d = json.loads(text[text.find("{"):])
j = d["jobs"][0]
io = j["write"] if j["write"]["io_bytes"] > j["read"]["io_bytes"] else j["read"]
print(sys.argv[1], sys.argv[2], io["iops"], io["bw"] / 1024.0)
' "$job" "$server" >> "$results"
  tail -1 "$results" | awk -v r="$round" \
    '{printf "round %s  %-18s %-12s %10.0f IOPS %9.1f MiB/s\n", r, $1, $2, $3, $4}'
}

# bench_report SERVER... -- A/B...: per job the median MiB/s of each server
# and the ratio of the medians for each pair A/B.
bench_report() {
  python3 - "$results" "$@" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
args = sys.argv[2:]
cut = args.index("--")
servers, pairs = args[:cut], [p.split("/") for p in args[cut + 1:]]
jobs = []
for r in rows:
    if r[0] not in jobs:
        jobs.append(r[0])
def med(j, s):
    return statistics.median(float(r[3]) for r in rows if r[0] == j and r[1] == s)
head = "%-18s" % "job (MiB/s)" + "".join(" %12s" % s for s in servers)
print("\n" + head + "".join(" %11s" % "/".join(p) for p in pairs))
for j in jobs:
    m = {s: med(j, s) for s in servers}
    line = "%-18s" % j + "".join(" %12.1f" % m[s] for s in servers)
    print(line + "".join(" %10.2fx" % (m[a] / m[b]) for a, b in pairs))
PY
}
