# SPDX-License-Identifier: LGPL-2.1-or-later
# usage: man-targets.sh udm-targets.7 TARGET...
# udm-targets(7) describes every built-in target: each has a line
# ".B <name>" (its syntax, or the placeholder of a target still being written).
page=$1
shift
[ -r "$page" ] || { echo "FAIL: cannot read $page"; exit 1; }
status=0
for t in "$@"; do
  grep -qx "\.B $t" "$page" || { echo "FAIL: $page has no .B $t (its syntax)"; status=1; }
done
[ $# -ge 10 ] || { echo "FAIL: only $# targets given"; status=1; }
exit $status
