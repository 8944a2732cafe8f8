# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the remote-backing tests: the NBD tests' helpers (tool checks,
# scratch space, the captive host udm-nbd-serve as `serve`), and servers the
# tests start and stop themselves.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../nbd/lib.sh"

PIDS=()
# Kill what the test started, then remove the scratch directory.
remote_cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    kill -9 "$p" 2>/dev/null || true
  done
  [ -n "${WORK:-}" ] && rm -rf "$WORK"
}

# remote_scratch: scratch space whose cleanup also stops the servers.
remote_scratch() {
  scratch
  trap remote_cleanup EXIT
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_nbdkit PIDFILE ARGS...: nbdkit in the background, ready when it returns.
start_nbdkit() {
  local pidfile=$1
  shift
  rm -f "$pidfile"
  nbdkit -P "$pidfile" "$@" || fail "nbdkit $* did not start"
  # nbdkit may return before its pidfile is written.
  local i
  for i in $(seq 100); do [ -s "$pidfile" ] && break; sleep 0.05; done
  [ -s "$pidfile" ] || fail "nbdkit $* wrote no pidfile"
  PIDS+=("$(cat "$pidfile")")
}

# stop_pidfile PIDFILE: kill -9 the server and wait until it is gone.
stop_pidfile() {
  local pid
  pid=$(cat "$1")
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

# start_qsd PIDFILE ARGS...: qemu-storage-daemon, daemonized, ready when it returns.
start_qsd() {
  local pidfile=$1
  shift
  rm -f "$pidfile"
  qemu-storage-daemon --daemonize --pidfile "$pidfile" "$@" || fail "qemu-storage-daemon did not start"
  PIDS+=("$(cat "$pidfile")")
}
