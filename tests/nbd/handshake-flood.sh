# SPDX-License-Identifier: LGPL-2.1-or-later
# The NBD handshake has a deadline and its own share of the connection
# slots: a flood of idle half-finished handshakes (handshake-flood.py) never
# locks out a real client or an established one, and an idle handshake is
# closed at the deadline (--handshake-timeout, 3 s here).
source "$(dirname "$0")/lib.sh"
require nbdinfo python3
scratch

serve --handshake-timeout 3000 --table disk="0 2048 zero" --run "
  python3 '$TESTDIR/handshake-flood.py' \"\$sock\" \"\$uri\" disk 1048576 3
" || fail "idle handshakes locked clients out (or lasted past the deadline)"
echo PASS
