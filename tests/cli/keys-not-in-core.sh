# SPDX-License-Identifier: LGPL-2.1-or-later
# Keys never reach a core dump: udmd holds two crypt devices (XTS, which
# may take the VAES path, and CBC-ESSIV through libgcrypt) that have served
# I/O, and (built with GnuTLS) serves NBD over TLS with a PSK a client has
# used, is made to dump core (SIGABRT), and the core is searched for each
# key, as raw bytes (either XTS half too) and as hex text.
# The device's backing file path must be in the core: it proves the dump
# holds the heap the table went through.
# core_pattern is global: when it pipes to a helper (systemd-coredump,
# apport), root points it at a file for the test and puts it back.
. "$(dirname "$0")/lib.sh"
need nbdcopy
pattern_file=/proc/sys/kernel/core_pattern
old_pattern=$(cat "$pattern_file")
restore_pattern() { [ -n "${old_pattern:-}" ] && echo "$old_pattern" >"$pattern_file" 2>/dev/null; }
case $old_pattern in
  core | core.* | /* | %*) ;;  # a file (relative names land in udmd's cwd, $WORK)
  *)
    [ "$(id -u)" = 0 ] || { echo "SKIP: core_pattern '$old_pattern' is not a file and we are not root"; exit 77; }
    trap 'restore_pattern; cleanup' EXIT
    echo "$WORK/core" >"$pattern_file" || fail "cannot set core_pattern"
    ;;
esac
ulimit -c unlimited || fail "ulimit -c unlimited"
# The sanitizers map terabytes of shadow and turn core dumps off; asked to
# dump, they mark the shadow MADV_DONTDUMP.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}disable_coredump=0:use_madv_dontdump=1:handle_abort=0"
export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}disable_coredump=0:use_madv_dontdump=1:handle_abort=0"

key_xts=$(od -An -tx1 -N64 /dev/urandom | tr -d ' \n')
key_cbc=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
truncate -s 4M "$WORK/backing-for-core-test.img"
# With GnuTLS: a TLS PSK too, which a client has used over TCP (udm reads
# the PSK file into locked memory at each handshake and wipes it).
key_psk=
if "$UDMD" -f --nbd-tcp 127.0.0.1:1 --tls=on --tls-psk /nonexistent 2>&1 |
     grep -q "without GnuTLS"; then
  echo "udmd is built without GnuTLS: no TLS PSK to look for"
  start_udmd
else
  need psktool
  need nbdinfo
  psktool -u alice -p "$WORK/keys.psk" >/dev/null || fail "psktool"
  key_psk=$(sed -n 's/^alice://p' "$WORK/keys.psk")
  [ -n "$key_psk" ] || fail "no key in $(cat "$WORK/keys.psk")"
  port=$(/usr/bin/python3 -I -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
  start_udmd --nbd-tcp "127.0.0.1:$port" --tls=on --tls-psk "$WORK/keys.psk"
fi
udm create x --table "0 4096 crypt aes-xts-plain64 $key_xts 0 $WORK/backing-for-core-test.img 0" ||
  fail "create x"
udm create c --table "0 4096 crypt aes-cbc-essiv:sha256 $key_cbc 0 $WORK/backing-for-core-test.img 4096" ||
  fail "create c"
head -c 1M /dev/urandom >"$WORK/data"
for d in x c; do
  uri="nbd+unix:///$d?socket=$UDM_RUNTIME_DIR/nbd.sock"
  timeout "$T" nbdcopy "$WORK/data" "$uri" || fail "write through $d"
  timeout "$T" nbdcopy "$uri" "$WORK/back" || fail "read through $d"
  cmp -n 1048576 "$WORK/data" "$WORK/back" || fail "$d reads back other bytes"
done
if [ -n "$key_psk" ]; then
  size=$(timeout "$T" nbdinfo --size \
    "nbds://alice@127.0.0.1:$port/x?tls-psk-file=$WORK/keys.psk") || fail "nbdinfo over TLS PSK"
  expect_eq "size over TLS PSK" 2097152 "$size"
fi
# The thread that answers a control request wipes and frees the answer
# after sending it: a dump taken before that thread is gone would catch the
# key in flight, not left behind.  So wait until udmd has no more threads
# than before the request (its connection threads end with their client).
threads() { ls "/proc/$DAEMON_PID/task" | wc -l; }
settled() { local a; a=$(threads); sleep 0.2; [ "$(threads)" = "$a" ]; }
wait_until settled || fail "udmd's threads never settled"
before=$(threads)
udm table --showkeys x >/dev/null || fail "table --showkeys"
no_more_threads() { [ "$(threads)" -le "$before" ]; }
wait_until no_more_threads || fail "the thread that answered table --showkeys did not end"
kill -ABRT "$DAEMON_PID"
timeout "$T" tail --pid="$DAEMON_PID" -f /dev/null || fail "udmd did not die of SIGABRT"
wait "$DAEMON_PID"
DAEMON_PID=
core=$(ls -t "$WORK"/core* 2>/dev/null | head -n 1)
[ -n "$core" ] && [ -s "$core" ] || fail "udmd left no core in $WORK (core_pattern '$(cat $pattern_file)')"
python3 -I - "$core" "$key_xts" "$key_cbc" "$WORK/backing-for-core-test.img" "$key_psk" <<'PY' || fail "a key is in the core"
import mmap, sys
core, kx, kc, path, kp = sys.argv[1:]
with open(core, "rb") as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
assert m.find(path.encode()) >= 0, "the core holds no heap (the backing path is missing)"
found = []
for name, key in (("xts", kx), ("cbc", kc)) + ((("TLS PSK", kp),) if kp else ()):
    raw = bytes.fromhex(key)
    pieces = {"raw": raw, "hex": key.encode(), "HEX": key.upper().encode()}
    if len(raw) == 64:
        pieces.update({"raw first half": raw[:32], "raw second half": raw[32:]})
    for what, b in pieces.items():
        at = m.find(b)
        if at >= 0:
            found.append("%s key, %s, at offset %d" % (name, what, at))
print("\n".join(found) or "no key in the core (%d bytes)" % len(m))
sys.exit(1 if found else 0)
PY
rm -f "$core"
echo ok
