#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Crash consistency (crash.py): $CRASH_CYCLES cycles (default 30) of writes
# through NBD and through the attached block device, SIGKILL of udmd at a
# random moment, restart and a full read-back, for linear, striped, crypt,
# mirror (disk log; legs identical after the resync), era (era_check clean,
# every block written recorded) and cache (writeback, smq), over storage
# that loses what udm did not flush (nbdkit's writeback cache under
# nbdfuse, killed with udmd).  Fails when a durable write is
# lost or a sector holds bytes never written to it.  CRASH_SEED repeats a
# run (the seed is printed); CRASH_STORAGE=file uses the files directly.
# First, the checks must catch a target that breaks each rule on purpose
# (flakey dropping writes, flakey corrupting them).
. "$(dirname "$0")/../cli/lib.sh"
need_blockdev
need_python_nbd
need nbdkit
need nbdfuse
TESTDIR=$(cd "$(dirname "$0")" && pwd)
crash() {
  "$PY_NBD" -I "$TESTDIR/crash.py" --udm "$UDM" --udmd "$UDMD" "$@"
}

mkdir "$WORK/neg"
if crash --work "$WORK/neg" --cycles 2 --doors nbd --targets drop-writes,corrupt-writes \
     > "$WORK/neg.out" 2>&1; then
  fail "the checks passed a target that drops and corrupts writes: $(cat "$WORK/neg.out")"
fi
grep -q "durable write .* lost" "$WORK/neg.out" ||
  fail "dropped writes went unnoticed: $(cat "$WORK/neg.out")"
grep -q "holds bytes never written to it" "$WORK/neg.out" ||
  fail "corrupted writes went unnoticed: $(cat "$WORK/neg.out")"

targets=${CRASH_TARGETS:-linear,striped,crypt,mirror,era}
if ! command -v era_check >/dev/null && grep -q era <<<"$targets"; then
  # scripts/install-deps installs it (thin-provisioning-tools): in CI its
  # absence is a missing install step.
  [ "${CI:-}" = true ] && fail "era_check (thin-provisioning-tools) is not installed"
  echo "era_check not installed: era left out"
  targets=$(sed 's/,era//; s/^era,//; s/^era$//' <<<"$targets")
fi
crash --work "$WORK" --cycles "${CRASH_CYCLES:-30}" ${CRASH_SEED:+--seed "$CRASH_SEED"} \
  --targets "$targets" ${CRASH_STORAGE:+--storage "$CRASH_STORAGE"} ||
  fail "crash cycles (see above)"
! grep -q Sanitizer "$WORK/udmd.log" || fail "a sanitizer report in udmd's log"
echo PASS
