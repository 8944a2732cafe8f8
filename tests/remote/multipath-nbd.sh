# SPDX-License-Identifier: LGPL-2.1-or-later
# multipath over two NBD servers exporting the same file: fio writes and
# verifies through udmd's multipath device while one server, then the
# other, is killed and restarted; no error reaches fio, the killed paths
# fail and udm_path_checker reinstates them once their server is back.
# With both servers down and queue_if_no_path a read waits, and completes
# once a server returns; fail_if_no_path fails one that waits.  With nbdkit
# on two Unix sockets; then the fio part again over TCP between network
# namespaces the test creates (udmd in one, each server in its own, joined
# by veth pairs; addresses only inside those namespaces).
source "$(dirname "$0")/lib.sh"
require nbdkit fio qemu-io ip timeout truncate
: "${UDM:?UDM must name udm}" "${UDMD:?UDMD must name udmd}"
fio --enghelp 2>/dev/null | grep -qw nbd || require fio-nbd-engine
[ "$(id -u)" = 0 ] || { [ "${CI:-}" = true ] && fail "needs root (network namespaces)"; echo "SKIP: needs root"; exit 77; }
remote_scratch
truncate -s 64M "$WORK/disk.img"
S=$((64 * 2048))
NS=udm-mp-$$
UDMD_PID=
FIO_PID=

# Runs under set -e too: nothing in it may fail (a netns never made, a
# server already gone), or the rest, $WORK's removal included, is skipped.
cleanup() {
  [ -n "$FIO_PID" ] && kill -9 "$FIO_PID" 2>/dev/null || true
  local f i pids=$UDMD_PID
  # Ours, and one a udm command started on demand after ours died (its lock).
  for f in "$WORK"/rt*/udmd.lock; do
    i=$(cat "$f" 2>/dev/null) || continue
    [ "$(readlink "/proc/$i/exe" 2>/dev/null)" = "$(readlink -f "$UDMD")" ] && pids="$pids $i" || true
  done
  for f in $pids; do # SIGTERM: udmd unmounts its export itself
    kill "$f" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$f" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$f" 2>/dev/null || true
  done
  for f in "$WORK"/*.pid; do [ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true; done
  for f in c s1 s2; do ip netns del "$NS-$f" 2>/dev/null || true; done
  # The export of a udmd that had to be killed stays mounted, dead.
  for f in $(awk -v w="$WORK/" 'index($2, w) == 1 && $3 == "fuse.udm" {print $2}' /proc/mounts); do
    umount -l "$f" 2>/dev/null || true
  done
  remote_cleanup
}
trap cleanup EXIT

udm() { timeout 20 "$UDM" "$@"; }

# start_udmd [NETNS]: a udmd of the test's own, in NETNS when given.
start_udmd() {
  export UDM_RUNTIME_DIR=$WORK/rt$1
  mkdir -p "$UDM_RUNTIME_DIR"
  if [ -n "$1" ]; then
    nsenter --net="/run/netns/$1" "$UDMD" -f -v 2>>"$WORK/udmd.log" &
  else
    "$UDMD" -f -v 2>>"$WORK/udmd.log" &
  fi
  UDMD_PID=$!
  for i in $(seq 100); do
    [ -S "$UDM_RUNTIME_DIR/nbd.sock" ] && [ -S "$UDM_RUNTIME_DIR/control.sock" ] && return
    sleep 0.1
  done
  fail "udmd did not start: $(cat "$WORK/udmd.log")"
}

# The threads of udmd, to explain a hang (when gdb is there).
stacks() {
  command -v gdb >/dev/null && timeout 30 gdb -p "$UDMD_PID" -batch -ex "thread apply all bt 15" 2>&1 |
    grep -E "^Thread|^#"
}

stop_udmd() {
  kill "$UDMD_PID"
  wait "$UDMD_PID" 2>/dev/null
  UDMD_PID=
}

# server N start|kill: nbdkit number N ($netns and $listen_N say where).
server() {
  local n=$1 pidf=$WORK/s$1.pid pid
  case $2 in
    start)
      rm -f "$pidf" "$WORK/s$n.sock"
      if [ -n "${netns:-}" ]; then
        local addr_var=addr_$n
        nsenter --net="/run/netns/$NS-s$n" nbdkit -P "$pidf" -i "${!addr_var}" -p 10809 file "$WORK/disk.img"
      else
        nbdkit -P "$pidf" -U "$WORK/s$n.sock" file "$WORK/disk.img"
      fi
      for i in $(seq 100); do [ -s "$pidf" ] && break; sleep 0.05; done
      [ -s "$pidf" ] || fail "server $n did not start" ;;
    kill)
      pid=$(cat "$pidf")
      kill -9 "$pid"
      while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done ;;
  esac
}

# Fields of INFO status: path 1 and path 2 as "A|F:fail_count".
paths() { udm status mp | awk '{print $15 ":" $16, $18 ":" $19}'; }

# wait_paths WANT: until paths prints WANT (the checker's period is 200 ms).
wait_paths() {
  for i in $(seq 100); do
    [ "$(paths | sed 's/:[0-9]*//g')" = "$1" ] && return
    sleep 0.1
  done
  fail "paths are '$(paths)', expected '$1'"
}

# fail_fio WHY: fail with what fio, udm and udmd say.
fail_fio() {
  fail "$1: $(cat "$WORK/fio.err" "$WORK/fio" 2>/dev/null); paths: $(paths)
udmd -v: $(tail -30 "$WORK/udmd.log")
$(stacks)"
}

# wait_paths_fio WANT WHAT: until paths prints WANT while fio runs.  The
# paths change only through fio's I/O and the checker; fio ending first
# would leave the step unproven, so that fails too.
wait_paths_fio() {
  for i in $(seq 600); do
    [ "$(paths | sed 's/:[0-9]*//g')" = "$1" ] && return
    kill -0 "$FIO_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$FIO_PID" 2>/dev/null || { wait "$FIO_PID" || true; fail_fio "$2: fio ended with paths $(paths), not '$1'"; }
  fail_fio "$2: paths are '$(paths)' after 60 s, expected '$1'"
}

# run_case WHAT PATH1 PATH2 [fio-only]
run_case() {
  local what=$1 p1=$2 p2=$3 only=${4:-}
  local table="0 $S multipath 3 queue_if_no_path udm_path_checker 200 0 1 1 round-robin 0 2 1 $p1 1 $p2 1"
  udm create mp --table "$table" || fail "$what: create: $(cat "$WORK/udmd.log")"
  local uri
  uri=$(udm uri mp)

  # fio across a kill and restart of each server in turn.  Each step waits
  # for the state it needs, not for a time: the killed server's path failed
  # by fio's own I/O, the restarted one reinstated by the checker.
  timeout -k 10 ${FIO_TIMEOUT:-100} fio --name=mp --ioengine=nbd --uri="$uri" --size=16M \
    --rw=randwrite --bs=4k --iodepth=16 --rate=4m --verify=crc32c --do_verify=1 \
    --verify_fatal=1 --verify_state_save=0 --output="$WORK/fio" 2>"$WORK/fio.err" &
  FIO_PID=$!
  server 1 kill
  wait_paths_fio "F A" "$what: server 1 killed"
  server 1 start
  wait_paths_fio "A A" "$what: server 1 back"
  server 2 kill
  wait_paths_fio "A F" "$what: server 2 killed"
  server 2 start
  wait "$FIO_PID" || fail_fio "$what: fio failed"
  FIO_PID=
  wait_paths "A A"
  local counts
  counts=$(paths)
  case "$counts" in "A:0 "*|*" A:0") fail "$what: a killed server's path never failed: $counts" ;; esac
  echo "[${SECONDS}s] $what: fio verify passed across both kills; paths $counts (reinstated by the checker)"
  if [ -n "$only" ]; then
    udm remove mp || fail "$what: remove"
    return
  fi

  # Both servers down: a read waits, and completes when one comes back.
  server 1 kill
  server 2 kill
  timeout 60 qemu-io -f raw -c "read 0 1M" "$uri" >"$WORK/read1" 2>&1 &
  local reader=$!
  sleep 1.5
  kill -0 $reader 2>/dev/null || fail "$what: a read did not wait with both servers down: $(cat "$WORK/read1")"
  [ "$(paths | sed 's/:[0-9]*//g')" = "F F" ] || fail "$what: paths $(paths) with both servers down"
  server 2 start
  wait $reader || fail "$what: the held read failed: $(cat "$WORK/read1")"
  echo "[${SECONDS}s] $what: a read held with both servers down completed once one came back"

  # fail_if_no_path fails what waits.
  server 2 kill
  timeout 60 qemu-io -f raw -c "read 0 4k" "$uri" >"$WORK/read2" 2>&1 &
  reader=$!
  sleep 1
  kill -0 $reader 2>/dev/null || fail "$what: the second read did not wait"
  udm message mp 0 fail_if_no_path || fail "$what: fail_if_no_path"
  wait $reader && fail "$what: a held read succeeded after fail_if_no_path"
  grep -q "Input/output error" "$WORK/read2" || fail "$what: not EIO: $(cat "$WORK/read2")"
  echo "[${SECONDS}s] $what: fail_if_no_path failed the held read with EIO"
  server 1 start
  server 2 start
  udm remove mp || fail "$what: remove"
}

# 1. Two Unix sockets.
netns=
server 1 start
server 2 start
start_udmd ""
run_case "unix sockets" "nbd:nbd+unix:///?socket=$WORK/s1.sock&retries=0" \
  "nbd:nbd+unix:///?socket=$WORK/s2.sock&retries=0"
stop_udmd; echo "[${SECONDS}s] udmd stopped"
server 1 kill
server 2 kill

# 2. TCP between namespaces: udmd in $NS-c, server n in $NS-sn, veth pairs.
netns=1
addr_1=10.251.1.2
addr_2=10.251.2.2
for n in c s1 s2; do
  ip netns add "$NS-$n" || fail "ip netns add $NS-$n"
  ip -n "$NS-$n" link set lo up
done
for n in 1 2; do
  ip -n "$NS-c" link add "mpc$n" type veth peer name "mps$n" netns "$NS-s$n" ||
    fail "veth pair $n"
  ip -n "$NS-c" addr add "10.251.$n.1/24" dev "mpc$n"
  ip -n "$NS-c" link set "mpc$n" up
  ip -n "$NS-s$n" addr add "10.251.$n.2/24" dev "mps$n"
  ip -n "$NS-s$n" link set "mps$n" up
done
server 1 start
server 2 start
start_udmd "$NS-c"
run_case "TCP between namespaces" "nbd:nbd://$addr_1:10809/?retries=0" \
  "nbd:nbd://$addr_2:10809/?retries=0" fio-only
stop_udmd; echo "[${SECONDS}s] udmd stopped"
echo PASS
