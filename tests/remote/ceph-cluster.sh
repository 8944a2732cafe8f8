# SPDX-License-Identifier: LGPL-2.1-or-later
# A single-node Ceph cluster for tests and benchmarks, all on loopback in a
# directory of its own: one monitor (msgr2 on a free port), one manager,
# one OSD on memstore (RAM, nothing on disk), cephx with one keyring, pools
# of size 1.  Sourced after tests/remote/lib.sh (or anything defining fail).
#
#   ceph_start DIR     start it; sets CEPH_CONF (DIR/ceph.conf) and CEPH_DIR
#   ceph_stop          kill its daemons (ceph_start arranges it at exit too)
#   ceph_pool NAME     a replicated pool of size 1 for RBD images

ceph_free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

ceph_start() {
  local d=$1 fsid uuid port
  CEPH_DIR=$d
  mkdir -p "$d/mon.a" "$d/osd.0" "$d/mgr.x" "$d/run"
  fsid=$(cat /proc/sys/kernel/random/uuid)
  port=$(ceph_free_port)
  CEPH_CONF=$d/ceph.conf
  export CEPH_CONF CEPH_DIR
  cat > "$CEPH_CONF" <<CONF
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:$port
public_network = 127.0.0.1/32
ms_bind_msgr1 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
keyring = $d/keyring
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
run_dir = $d/run
log_file = $d/\$name.log
admin_socket = $d/run/\$name.asok
pid_file = $d/run/\$name.pid
mon_data = $d/mon.a
osd_data = $d/osd.0
mgr_data = $d/mgr.x
osd_objectstore = memstore
memstore_device_bytes = 1073741824
osd_max_object_name_len = 460
osd_max_object_namespace_len = 64
mgr_initial_modules =
CONF
  ceph-authtool --create-keyring "$d/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$d/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
    --cap mgr 'allow *' >/dev/null
  ceph-authtool "$d/keyring" --gen-key -n osd.0 --cap mon 'allow profile osd' \
    --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
  ceph-authtool "$d/keyring" --gen-key -n mgr.x --cap mon 'allow profile mgr' \
    --cap osd 'allow *' >/dev/null
  monmaptool --create --addv a "[v2:127.0.0.1:$port]" --fsid "$fsid" "$d/monmap" >/dev/null
  trap 'ceph_stop; remote_cleanup' EXIT
  ceph-mon --mkfs -i a --monmap "$d/monmap" --keyring "$d/keyring" || fail "ceph-mon --mkfs"
  ceph-mon -i a || fail "ceph-mon did not start"
  uuid=$(cat /proc/sys/kernel/random/uuid)
  timeout 30 ceph osd new "$uuid" 0 >/dev/null || fail "ceph osd new: no monitor"
  ceph-osd -i 0 --mkfs --osd-uuid "$uuid" --keyring "$d/keyring" 2>/dev/null || fail "ceph-osd --mkfs"
  cp "$d/keyring" "$d/osd.0/keyring"
  ceph-osd -i 0 2>/dev/null || fail "ceph-osd did not start"
  cp "$d/keyring" "$d/mgr.x/keyring"
  ceph-mgr -i x || fail "ceph-mgr did not start"
}

# (size 1 by osd_pool_default_size; each ceph command costs a second or two,
# so neither `rbd pool init` nor an application tag: RBD works without them.)
ceph_pool() {
  timeout 30 ceph osd pool create "$1" 8 8 replicated --autoscale-mode=off >/dev/null 2>&1 ||
    fail "ceph osd pool create $1"
}

ceph_stop() {
  local f pid
  [ -n "${CEPH_DIR:-}" ] || return 0
  for f in "$CEPH_DIR"/run/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill -9 "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  done
}
