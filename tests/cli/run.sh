# SPDX-License-Identifier: LGPL-2.1-or-later
# udm run: private daemon, $uri and $UDM_RUNTIME_DIR, COMMAND's exit status,
# everything torn down.
. "$(dirname "$0")/lib.sh"
need nbdinfo
make_file "$WORK/a.img" 512 a
export TMPDIR="$WORK"

"$UDM" run --table "d=0 1024 linear $WORK/a.img 0" --table "z=0 8 zero" -- sh -c '
  nbdinfo --size "$uri" >"$0/size"
  "$UDM" ls >"$0/ls"
  echo "$UDM_RUNTIME_DIR" >"$0/rtname"
  exit 3' "$WORK"
rc=$?
[ $rc = 3 ] || fail "exit status 3 became $rc"
expect_eq "size through \$uri" "524288" "$(cat "$WORK/size")"
expect_eq "devices inside" "d	(253:0)
z	(253:1)" "$(cat "$WORK/ls")"
rt=$(cat "$WORK/rtname")
case "$rt" in "$WORK"/udm-run.*) ;; *) fail "private runtime dir $rt is not fresh";; esac
[ -e "$rt" ] && fail "the private runtime directory $rt was not removed"
[ -e "$UDM_RUNTIME_DIR" ] && fail "udm run touched the user's runtime directory"

"$UDM" run --table "d=0 8 zero" -- true || fail "true did not give 0"
"$UDM" run --table "d=0 8 zero" -- sh -c 'kill -TERM $$'
[ $? = 143 ] || fail "a command killed by SIGTERM should give 143"
"$UDM" run --table "d=0 8 zero" -- /nonexistent/cmd 2>/dev/null
[ $? = 127 ] || fail "a missing command should give 127"

# A bad table: exit 1 naming the cause; the command never runs.
expect_fail "line 1: unknown target type 'nosuch'" \
  "$UDM" run --table "d=0 8 nosuch" -- touch "$WORK/ran"
[ -e "$WORK/ran" ] && fail "the command ran despite the bad table"
"$UDM" run -- true 2>/dev/null || fail "run with no devices"
"$UDM" run --table d=x 2>/dev/null; [ $? = 2 ] || fail "run without a command is a usage error"
[ -z "$(ls -d "$WORK"/udm-run.* 2>/dev/null)" ] || fail "runtime directories left: $(ls -d "$WORK"/udm-run.*)"
echo ok
