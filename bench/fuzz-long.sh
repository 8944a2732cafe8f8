#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The long fuzzing campaign: every fuzz target for SECONDS (default 3600)
# in turn, from a -Dfuzz=true build (made in build-fuzz with clang,
# ASan+UBSan, when missing), its corpus grown across runs in CORPUS_DIR
# (default build-fuzz/fuzz-corpus; the in-tree seeds and crashes are
# replayed first each time).  Prints a Markdown table for docs/testing.md:
# per target the executions, executions per second, coverage (edges that
# libFuzzer's instrumentation saw) and corpus size; a crash stops nothing
# else but is listed with the input kept for fuzz/corpus/NAME.
#   bench/fuzz-long.sh [--seconds N] [--build DIR] [--corpus DIR] [TARGET...]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$here/..
seconds=3600 build=$root/build-fuzz corpus=
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --corpus) corpus=$2; shift 2 ;;
    -*) echo "usage: $0 [--seconds N] [--build DIR] [--corpus DIR] [TARGET...]" >&2; exit 2 ;;
    *) break ;;
  esac
done
corpus=${corpus:-$build/fuzz-corpus}
if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" "$root" -Dwerror=true -Dfuzz=true \
    -Db_sanitize=address,undefined -Db_lundef=false || exit 1
fi
ninja -C "$build" fuzz-targets || exit 1
mkdir -p "$corpus"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "fuzzing each target for $seconds s; corpora in $corpus" >&2
FUZZ_KEEP=$corpus FUZZ_ARTIFACTS=${FUZZ_ARTIFACTS:-$corpus} \
  "$root/fuzz/run" "$build" "$seconds" "$@" | tee "$log" >&2
status=${PIPESTATUS[0]}
echo
echo "| fuzz target | time | executions | exec/s | coverage (edges) | corpus (files/bytes) | found |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
python3 - "$log" "$seconds" <<'PY'
import re, sys
secs = int(sys.argv[2])
for line in open(sys.argv[1]):
    m = re.match(r"fuzz-(\S+): ok, (\S+) runs in \S+ \((\S+) exec/s\), cov (\S+) edges, corpus (\S+)", line)
    if m:
        t, runs, rate, cov, corp = m.groups()
        print(f"| {t} | {secs} s | {runs} | {rate} | {cov} | {corp} | nothing |")
        continue
    m = re.match(r"fuzz-(\S+): FAILED", line)
    if m:
        print(f"| {m.group(1)} | {secs} s | | | | | a crash: see the log above |")
PY
exit "$status"
