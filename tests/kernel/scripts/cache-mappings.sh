# SPDX-License-Identifier: MIT
# cache-mappings.sh META: the superblock, mappings and dirty bits of the
# dm-cache metadata on META (cache_dump, hints and discards left out: they
# are each policy's own), then how many mappings and how many dirty.
cache_dump "$1" >/tmp/cache-mappings.$$ || exit 1
grep -E '<superblock|<mapping ' /tmp/cache-mappings.$$ | sed 's/^ *//'
echo "mappings $(grep -c '<mapping ' /tmp/cache-mappings.$$) dirty $(grep -c 'dirty="true"' /tmp/cache-mappings.$$)"
rm -f /tmp/cache-mappings.$$
