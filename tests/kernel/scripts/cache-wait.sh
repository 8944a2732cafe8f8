# SPDX-License-Identifier: MIT
# cache-wait.sh NAME FIELD MIN: wait (up to 60 s) until cache NAME's status
# field (promotions, demotions or dirty) reaches MIN; exit 1 if it never does.
name=$1 field=$2 min=$3
case $field in
demotions) f=12 ;;
promotions) f=13 ;;
dirty) f=14 ;;
*) echo "cache-wait.sh: unknown field $field" >&2; exit 2 ;;
esac
i=0
while [ $i -lt 600 ]; do
	v=$(dmsetup status "$name" | awk -v f=$f '{print $f}')
	[ -n "$v" ] && [ "$v" -ge "$min" ] && exit 0
	sleep 0.1
	i=$((i + 1))
done
echo "cache-wait.sh: $name's $field is ${v:-?}, never reached $min" >&2
exit 1
