# SPDX-License-Identifier: LGPL-2.1-or-later
# Hostile and broken clients (hostile.py) get protocol errors or a closed
# connection; afterwards a normal client still works, and the host tears
# down promptly although an idle client still holds a connection.
source "$(dirname "$0")/lib.sh"
require nbdinfo truncate
PY=python3
command -v "$PY" >/dev/null || require python3
scratch

truncate -s 16M "$WORK/backing"
export IDLE_PID_FILE=$WORK/idle.pid
trap '[ -s "$IDLE_PID_FILE" ] && kill "$(cat "$IDLE_PID_FILE")" 2>/dev/null; rm -rf "$WORK"' EXIT
start=$(date +%s)
serve --table disk="0 32768 linear $WORK/backing 0" --run "
  '$PY' '$TESTDIR/hostile.py' \"\$sock\" disk 16777216 &&
  nbdinfo --size \"\$uri\" > '$WORK/size'
" || fail "hostile clients broke the server (or a case failed)"
elapsed=$(( $(date +%s) - start ))
[ "$(cat "$WORK/size")" = 16777216 ] || fail "normal client after the hostile ones"
[ "$elapsed" -lt 25 ] || fail "teardown waited for an idle client (${elapsed}s)"
echo PASS
