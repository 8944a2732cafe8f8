# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the NBD benchmarks (sourced, not run): option parsing, finding the
# built programs, checking the peers are installed, starting and stopping the
# servers (udm-nbd-serve, nbdkit, qemu-storage-daemon, any daemon), running
# the jobs round by round, reading fio's JSON and printing medians with
# ratios.  The caller sets its defaults (rounds, runtime, size_mb) before
# bench_options, its scratch folder in $work, and names its results file.

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
  # %.17g: the very double Python's bw / 1024.0 gave.
  bench_fio_io | awk -v j="$job" -v s="$server" '{ printf "%s %s %s %.17g\n", j, s, $1, $2 / 1024.0 }' \
    >> "$results"
  tail -1 "$results" | awk -v r="$round" \
    '{printf "round %s  %-18s %-12s %10.0f IOPS %9.1f MiB/s\n", r, $1, $2, $3, $4}'
}

# bench_fio_io [FILE]: fio's JSON (FILE or stdin; what comes before it is
# skipped) -> "IOPS KIB/S BYTES/S" of its first job, in the direction that
# moved more bytes (reads unless it wrote).
bench_fio_io() {
  python3 -c '
import json, sys
text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
j = json.loads(text[text.find("{"):])["jobs"][0]
io = j["write"] if j["write"]["io_bytes"] > j["read"]["io_bytes"] else j["read"]
print(io["iops"], io["bw"], io["bw_bytes"])
' "$@"
}

# bench_fio_opts: the fio options every job shares (one job, $runtime
# seconds after a second's ramp, over $size_mb MiB, JSON); the ioengine is
# the caller's.
bench_fio_opts() {
  echo "--numjobs=1 --time_based --runtime=$runtime --ramp_time=1" \
    "--size=${size_mb}M --output-format=json --group_reporting"
}

# bench_fio_cmd NAME URI FIO-OPTION...: the fio command line of one job
# ($fio_common and the options) on URI, for a server's --run.
bench_fio_cmd() {
  local name=$1 uri=$2
  shift 2
  echo "fio --name=$name $fio_common $* --uri=$uri"
}

# bench_serve_fio NAME SERVE-OPTION... -- FIO-OPTION...: fio on the export of
# udm-nbd-serve ($serve) with those options (--table ...); its JSON on stdout.
# fio uses the device of the last --table: tables come lowest first, so that
# devices stacked with udm:NAME exist before the table that names them.
bench_serve_fio() {
  local name=$1 opts=() export=
  shift
  while [ "$1" != -- ]; do
    [ "$1" = --table ] && export=${2%%=*}
    opts+=("$1")
    shift
  done
  shift
  "$serve" --socket "$work/udm.sock" "${opts[@]}" \
    --run "$(bench_fio_cmd "$name" "\"nbd+unix:///$export?socket=\$sock\"" "$@")"
}

# bench_nbdkit_fio NAME NBDKIT-ARGUMENT... -- FIO-OPTION...: the same on an
# nbdkit of its own (PLUGIN, filters and parameters), on a fresh Unix socket
# each time (nbdkit leaves its socket file behind).
bench_nbdkit_fio() {
  local name=$1 args=()
  shift
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  nbdkit --exit-with-parent -U "$work/nbdkit-$name-$round.sock" "${args[@]}" \
    --run "$(bench_fio_cmd "$name" '"$uri"' "$@")"
}

# bench_daemon SOCKET COMMAND...: COMMAND (staying in the foreground) in the
# background until bench_daemon_stop or bench_cleanup; returns once SOCKET
# exists, the pid in $bench_pid.
bench_pids=()
bench_daemon() {
  local sock=$1 i
  shift
  "$@" &
  bench_pid=$!
  bench_pids+=("$bench_pid")
  for i in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
}

bench_daemon_stop() {
  local p kept=()
  for p in "${bench_pids[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  bench_pids=("${kept[@]}")
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# bench_qsd PIDFILE QSD-ARGUMENT...: qemu-storage-daemon, daemonized (its
# exports are ready when this returns).  bench_qsd_stop PIDFILE stops it and
# waits until it is gone (killed after 30 s); the pid is read once, since
# qsd removes its pidfile as it exits.
bench_qsd() {
  local pidf=$1
  shift
  rm -f "$pidf"
  qemu-storage-daemon --daemonize --pidfile "$pidf" "$@"
}

bench_qsd_stop() {
  local pid i
  pid=$(cat "$1" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  for i in $(seq 600); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null || true
}

# bench_cleanup, for trap EXIT: the daemons bench_daemon started, and $work
# (unless emptied).
bench_cleanup() {
  local p
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -z "${work:-}" ] || rm -rf "$work"
}

# bench_rounds [--run FUNCTION] SERVER...: $rounds rounds of every job of
# $jobs ("NAME FIO-OPTION..."), each on every server in turn, recorded in
# $results (emptied first): run_SERVER NAME FIO-OPTION..., or with --run,
# FUNCTION SERVER NAME FIO-OPTION...; both print fio's JSON.
bench_rounds() {
  local run= job name server
  if [ "$1" = --run ]; then
    run=$2
    shift 2
  fi
  local servers=("$@")
  : > "$results"
  for round in $(seq 1 "$rounds"); do
    for job in "${jobs[@]}"; do
      set -- $job
      name=$1
      shift
      for server in "${servers[@]}"; do
        if [ -n "$run" ]; then
          "$run" "$server" "$name" "$@"
        else
          "run_$server" "$name" "$@"
        fi | bench_record "$name" "$server"
      done
    done
  done
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
