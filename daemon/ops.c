/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Control requests: one function per op, each checking its arguments and
 * calling libudm.  Nothing here logs table text (tables may hold keys).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "ops.h"

struct op {
  struct udm_ctx *ctx;
  struct udmd_attach *attach;
  int client_fd; /* the connection, to notice a client gone during a wait */
  const struct udm_msg *req;
  struct udm_msg payload;
  int err;
  char msg[2048];
};

static int fail(struct op *o, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct op *o, int err, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->msg, sizeof o->msg, fmt, ap);
  va_end(ap);
  o->err = err;
  return -1;
}

/* The failure libudm just reported on this thread. */
static int fail_lib(struct op *o)
{
  return fail(o, udm_errno() ? udm_errno() : EIO, "%s", udm_errmsg());
}

static int out_of_memory(struct op *o)
{
  return fail(o, ENOMEM, "udmd: out of memory");
}

static const char *arg(const struct op *o, const char *key)
{
  return udm_msg_get(o->req, key);
}

static int bool_arg(struct op *o, const char *key, bool *out)
{
  const char *v = arg(o, key);
  *out = false;
  if (!v)
    return 0;
  if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
    return fail(o, EINVAL, "argument %s must be 0 or 1, not '%s'", key, v);
  *out = v[0] == '1';
  return 0;
}

/* Decimal digits up to max; what names the unit for the message. */
static int u64_arg(struct op *o, const char *key, uint64_t max, const char *what,
                   uint64_t *out)
{
  const char *v = arg(o, key);
  uint64_t n = 0;
  if (!v || !*v)
    return fail(o, EINVAL, "argument %s is missing", key);
  for (const char *p = v; *p; p++) {
    if (*p < '0' || *p > '9' || n > (max - (uint64_t)(*p - '0')) / 10)
      return fail(o, EINVAL, "argument %s: '%s' is not %s (0 to %llu)", key, v, what,
                  (unsigned long long)max);
    n = n * 10 + (uint64_t)(*p - '0');
  }
  *out = n;
  return 0;
}

static struct udm_device *lookup(struct op *o)
{
  const char *name = arg(o, "name");
  if (!name) {
    fail(o, EINVAL, "argument name is missing");
    return NULL;
  }
  struct udm_device *dev = udm_device_lookup(o->ctx, name);
  if (!dev)
    fail(o, ENXIO, "device %s does not exist", name);
  return dev;
}

/* ---- names of all devices, copied so the ops may call the library ---- */
struct names {
  char **v;
  size_t n, cap;
};

static int collect_name(void *opaque, const char *name)
{
  struct names *ns = opaque;
  if (ns->n == ns->cap) {
    size_t cap = ns->cap ? ns->cap * 2 : 16;
    char **v = realloc(ns->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    ns->v = v;
    ns->cap = cap;
  }
  if (!(ns->v[ns->n] = strdup(name)))
    return -ENOMEM;
  ns->n++;
  return 0;
}

static void names_free(struct names *ns)
{
  for (size_t i = 0; i < ns->n; i++)
    free(ns->v[i]);
  free(ns->v);
}

/*
 * Call fn for the device named by the request, or for every device when
 * the request names none (devices removed meanwhile are skipped).
 */
static int for_devices(struct op *o, int (*fn)(struct op *, struct udm_device *))
{
  if (arg(o, "name")) {
    struct udm_device *dev = lookup(o);
    if (!dev)
      return -1;
    int r = fn(o, dev);
    udm_device_unref(dev);
    return r;
  }
  struct names ns = {0};
  if (udm_ctx_foreach_device(o->ctx, collect_name, &ns) != 0) {
    names_free(&ns);
    return out_of_memory(o);
  }
  int r = 0;
  for (size_t i = 0; i < ns.n && r == 0; i++) {
    struct udm_device *dev = udm_device_lookup(o->ctx, ns.v[i]);
    if (!dev)
      continue;
    r = fn(o, dev);
    udm_device_unref(dev);
  }
  names_free(&ns);
  return r;
}

/* ---- the ops ---- */

static int op_create(struct op *o)
{
  const char *name = arg(o, "name"), *uuid = arg(o, "uuid"), *table = arg(o, "table");
  bool readonly;
  if (!name)
    return fail(o, EINVAL, "argument name is missing");
  if (bool_arg(o, "readonly", &readonly) < 0)
    return -1;
  struct udm_device *dev = udm_device_create(o->ctx, name, uuid && *uuid ? uuid : NULL,
                                             readonly ? UDM_DEVICE_READONLY : 0);
  if (!dev)
    return fail_lib(o);
  if (table && (udm_table_load(dev, table) < 0 || udm_device_resume(dev) < 0)) {
    /* As dmsetup does: a device whose table fails is not left behind. */
    fail_lib(o);
    udm_device_remove(dev, UDM_REMOVE_FORCE);
    udm_device_unref(dev);
    return -1;
  }
  udm_device_unref(dev);
  udmd_log(LOG_INFO, "created device %s", name);
  return 0;
}

static int op_remove(struct op *o)
{
  bool force;
  if (bool_arg(o, "force", &force) < 0)
    return -1;
  struct udm_device *dev = lookup(o);
  if (!dev)
    return -1;
  /* An attached device is detached first (force) or refused. */
  int r = udmd_attach_remove(o->attach, dev, force, o->msg, sizeof o->msg);
  if (r < 0)
    o->err = -r;
  else
    udmd_log(LOG_INFO, "removed device %s", udm_device_name(dev));
  udm_device_unref(dev);
  return r < 0 ? -1 : 0;
}

static int op_load(struct op *o)
{
  const char *table = arg(o, "table");
  if (!table)
    return fail(o, EINVAL, "argument table is missing");
  struct udm_device *dev = lookup(o);
  if (!dev)
    return -1;
  int r = udm_table_load(dev, table);
  if (r < 0)
    fail_lib(o);
  udm_device_unref(dev);
  return r;
}

static int op_clear(struct op *o)
{
  struct udm_device *dev = lookup(o);
  if (!dev)
    return -1;
  int r = udm_table_clear(dev);
  if (r < 0)
    fail_lib(o);
  udm_device_unref(dev);
  return r;
}

static int op_suspend(struct op *o)
{
  struct udm_device *dev = lookup(o);
  if (!dev)
    return -1;
  int r = udm_device_suspend(dev, 0);
  if (r < 0)
    fail_lib(o);
  udm_device_unref(dev);
  return r;
}

static int op_resume(struct op *o)
{
  struct udm_device *dev = lookup(o);
  if (!dev)
    return -1;
  uint64_t size = udm_device_size(dev);
  unsigned block_size = udm_device_block_size(dev);
  int r = udm_device_resume(dev);
  if (r < 0) {
    fail_lib(o);
  } else if (udm_device_size(dev) != size || udm_device_block_size(dev) != block_size) {
    /* An attached block device follows a table that resizes or reblocks the device. */
    unsigned now = udm_device_block_size(dev);
    int e = udmd_attach_follow(o->attach, udm_device_name(dev), udm_device_size(dev) != size,
                               now != block_size ? now : 0, o->msg, sizeof o->msg);
    if (e < 0) {
      o->err = -e;
      r = -1;
    }
  }
  udm_device_unref(dev);
  return r;
}

static int add_text(struct op *o, struct udm_device *dev, const char *key, bool status)
{
  bool showkeys, inactive, measure = false;
  if (bool_arg(o, "showkeys", &showkeys) < 0 || bool_arg(o, "inactive", &inactive) < 0 ||
      (status && bool_arg(o, "measure", &measure) < 0))
    return -1;
  unsigned flags = (showkeys ? UDM_TABLE_SHOWKEYS : 0) | (inactive ? UDM_TABLE_INACTIVE : 0) |
                   (measure ? UDM_TABLE_MEASURE : 0);
  char *text = NULL;
  int r = status ? udm_device_status(dev, flags, &text) : udm_device_table(dev, flags, &text);
  if (r < 0)
    return fail_lib(o);
  if (udm_msg_add(&o->payload, "name", udm_device_name(dev)) < 0 ||
      udm_msg_add(&o->payload, key, text) < 0) {
    udm_ctl_wipe_free(text);
    return out_of_memory(o);
  }
  udm_ctl_wipe_free(text);
  return 0;
}

static int table_of(struct op *o, struct udm_device *dev)
{
  return add_text(o, dev, "table", false);
}

static int status_of(struct op *o, struct udm_device *dev)
{
  return add_text(o, dev, "status", true);
}

static int op_table(struct op *o)
{
  return for_devices(o, table_of);
}

static int op_status(struct op *o)
{
  return for_devices(o, status_of);
}

static int info_of(struct op *o, struct udm_device *dev)
{
  struct udm_info i;
  if (udm_device_info(dev, &i) < 0)
    return fail_lib(o);
  struct udm_msg *p = &o->payload;
  int r = udm_msg_add(p, "name", i.name);
  if (r == 0)
    r = udm_msg_add(p, "uuid", i.uuid);
  if (r == 0)
    r = udm_msg_addf(p, "suspended", "%d", i.suspended ? 1 : 0);
  if (r == 0)
    r = udm_msg_addf(p, "live_table", "%d", i.live_table ? 1 : 0);
  if (r == 0)
    r = udm_msg_addf(p, "inactive_table", "%d", i.inactive_table ? 1 : 0);
  if (r == 0)
    r = udm_msg_addf(p, "readonly", "%d", i.readonly ? 1 : 0);
  if (r == 0)
    r = udm_msg_addf(p, "open_count", "%u", i.open_count);
  if (r == 0)
    r = udm_msg_addf(p, "holders", "%u", i.holders);
  if (r == 0)
    r = udm_msg_addf(p, "event_nr", "%lu", (unsigned long)i.event_nr);
  if (r == 0)
    r = udm_msg_addf(p, "target_count", "%u", i.target_count);
  if (r == 0)
    r = udm_msg_addf(p, "size", "%llu", (unsigned long long)i.size);
  if (r == 0)
    r = udm_msg_addf(p, "minor", "%u", i.minor);
  if (r == 0)
    r = udm_msg_addf(p, "bad_block_hits", "%llu", (unsigned long long)i.bad_block_hits);
  if (r == 0) /* not in struct udm_info, whose layout is ABI */
    r = udm_msg_addf(p, "logical_block_size", "%u", udm_device_block_size(dev));
  char blockdev[256] = "";
  bool dio = false;
  udmd_attach_lookup(o->attach, i.name, blockdev, sizeof blockdev, &dio);
  if (r == 0)
    r = udm_msg_add(p, "block_device", blockdev);
  if (r == 0)
    r = udm_msg_addf(p, "direct_io", "%d", dio ? 1 : 0);
  return r < 0 ? out_of_memory(o) : 0;
}

static int op_info(struct op *o)
{
  return for_devices(o, info_of);
}

static int op_attach(struct op *o)
{
  const char *name = arg(o, "name");
  if (!name)
    return fail(o, EINVAL, "argument name is missing");
  char devpath[256];
  bool dio = false;
  int r = udmd_attach_device(o->attach, name, devpath, sizeof devpath, &dio, o->msg,
                             sizeof o->msg);
  if (r < 0) {
    o->err = -r;
    return -1;
  }
  if (udm_msg_add(&o->payload, "block_device", devpath) < 0 ||
      udm_msg_addf(&o->payload, "direct_io", "%d", dio ? 1 : 0) < 0)
    return out_of_memory(o);
  return 0;
}

static int op_detach(struct op *o)
{
  const char *name = arg(o, "name");
  if (!name)
    return fail(o, EINVAL, "argument name is missing");
  int r = udmd_attach_detach(o->attach, name, o->msg, sizeof o->msg);
  if (r < 0) {
    o->err = -r;
    return -1;
  }
  return 0;
}

static int op_message(struct op *o)
{
  const char *message = arg(o, "message");
  uint64_t sector = 0;
  if (u64_arg(o, "sector", UINT64_MAX, "a number of sectors", &sector) < 0)
    return -1;
  if (!message)
    return fail(o, EINVAL, "argument message is missing");
  struct udm_device *dev = lookup(o);
  if (!dev)
    return -1;
  char *reply = NULL;
  int r = udm_device_message(dev, sector, message, &reply);
  if (r < 0)
    fail_lib(o);
  else if (udm_msg_add(&o->payload, "reply", reply ? reply : "") < 0)
    r = out_of_memory(o);
  free(reply);
  udm_device_unref(dev);
  return r;
}

/*
 * Whether the client closed its end, or the daemon shut the connection
 * down to stop: then nobody waits for the answer.  Data the client sent
 * ahead (its next request) is left for the connection loop; the hang-up
 * shows even behind such data.
 */
static bool client_gone(int fd)
{
  if (fd < 0)
    return false;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, 0) <= 0)
    return false;
  if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
    return true;
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static long long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How often a wait looks whether its client is still there. */
#define WAIT_SLICE_MS 200

static int op_wait(struct op *o)
{
  uint64_t nr = 0, timeout = 0;
  bool has_timeout = arg(o, "timeout") != NULL;
  if (arg(o, "event_nr") &&
      u64_arg(o, "event_nr", UINT32_MAX, "an event number", &nr) < 0)
    return -1;
  if (has_timeout && u64_arg(o, "timeout", INT32_MAX, "a number of milliseconds",
                             &timeout) < 0)
    return -1;
  struct udm_device *dev = lookup(o);
  if (!dev)
    return -1;
  /* In slices, so that a client that goes away (or a daemon that stops) ends the wait. */
  long long deadline = now_ms() + (long long)timeout;
  int r;
  for (;;) {
    long long left = has_timeout ? deadline - now_ms() : WAIT_SLICE_MS;
    int slice = left <= 0 ? 0 : left < WAIT_SLICE_MS ? (int)left : WAIT_SLICE_MS;
    r = udm_device_wait_event(dev, (uint32_t)nr, slice);
    if (r == 0)
      break;
    if (udm_errno() != ETIMEDOUT) {
      fail_lib(o);
      break;
    }
    if (has_timeout && left <= WAIT_SLICE_MS) {
      fail(o, ETIMEDOUT, "wait %s: no event after event %llu within %llu ms",
           udm_device_name(dev), (unsigned long long)nr, (unsigned long long)timeout);
      break;
    }
    if (client_gone(o->client_fd)) {
      fail(o, ECONNRESET, "wait %s: the client went away", udm_device_name(dev));
      break;
    }
  }
  struct udm_info i;
  if (r == 0 && udm_device_info(dev, &i) == 0 &&
      udm_msg_addf(&o->payload, "event_nr", "%lu", (unsigned long)i.event_nr) < 0)
    r = out_of_memory(o);
  udm_device_unref(dev);
  return r;
}

static int op_rename(struct op *o)
{
  const char *name = arg(o, "name"), *new_name = arg(o, "new_name"), *uuid = arg(o, "uuid");
  if (!name)
    return fail(o, EINVAL, "argument name is missing");
  if (!new_name == !uuid)
    return fail(o, EINVAL, "op rename takes one of new_name and uuid");
  if (uuid) {
    struct udm_device *dev = lookup(o);
    if (!dev)
      return -1;
    int r = udm_device_set_uuid(dev, uuid);
    if (r < 0)
      fail_lib(o);
    udm_device_unref(dev);
    return r;
  }
  struct udm_device *dev = lookup(o);
  if (!dev)
    return -1;
  udm_device_unref(dev);
  int r = udmd_attach_rename(o->attach, name, new_name, o->msg, sizeof o->msg);
  if (r < 0)
    o->err = -r;
  return r < 0 ? -1 : 0;
}

/* One device a table uses: dep_path, dep_device (a udm device's name), dep_minor. */
static int add_dep(void *opaque, const struct udm_dep *dep)
{
  struct udm_msg *p = opaque;
  if (udm_msg_add(p, "dep_path", dep->path) < 0 ||
      udm_msg_add(p, "dep_device", dep->device ? dep->device : "") < 0 ||
      udm_msg_addf(p, "dep_minor", "%u", dep->minor) < 0)
    return -ENOMEM;
  return 0;
}

static int deps_of(struct op *o, struct udm_device *dev)
{
  bool inactive;
  if (bool_arg(o, "inactive", &inactive) < 0)
    return -1;
  if (udm_msg_add(&o->payload, "name", udm_device_name(dev)) < 0)
    return out_of_memory(o);
  int r = udm_device_foreach_used(dev, inactive ? UDM_TABLE_INACTIVE : 0, add_dep,
                                  &o->payload);
  if (r < 0)
    return r == -1 ? fail_lib(o) : out_of_memory(o);
  return 0;
}

static int op_deps(struct op *o)
{
  return for_devices(o, deps_of);
}

static int op_mknodes(struct op *o)
{
  const char *name = arg(o, "name");
  unsigned made, removed;
  udmd_attach_mknodes(o->attach, name, &made, &removed);
  if (udm_msg_addf(&o->payload, "made", "%u", made) < 0 ||
      udm_msg_addf(&o->payload, "removed", "%u", removed) < 0)
    return out_of_memory(o);
  return 0;
}

static int add_target(void *opaque, const char *name, const unsigned version[3])
{
  struct udm_msg *p = opaque;
  if (udm_msg_add(p, "target", name) < 0 ||
      udm_msg_addf(p, "version", "%u.%u.%u", version[0], version[1], version[2]) < 0)
    return -ENOMEM;
  return 0;
}

static int op_targets(struct op *o)
{
  if (udm_ctx_foreach_target(o->ctx, add_target, &o->payload) != 0)
    return out_of_memory(o);
  return 0;
}

static int op_version(struct op *o)
{
  if (udm_msg_add(&o->payload, "library", udm_version_string()) < 0 ||
      udm_msg_addf(&o->payload, "protocol", "%d", UDM_CTL_VERSION) < 0)
    return out_of_memory(o);
  return 0;
}

static const struct {
  const char *name;
  int (*fn)(struct op *);
  const char *keys[6]; /* the arguments it takes besides op */
} ops[] = {
    {"create", op_create, {"name", "uuid", "readonly", "table"}},
    {"remove", op_remove, {"name", "force"}},
    {"load", op_load, {"name", "table"}},
    {"clear", op_clear, {"name"}},
    {"suspend", op_suspend, {"name"}},
    {"resume", op_resume, {"name"}},
    {"table", op_table, {"name", "showkeys", "inactive"}},
    {"status", op_status, {"name", "inactive", "measure"}},
    {"info", op_info, {"name"}},
    {"message", op_message, {"name", "sector", "message"}},
    {"wait", op_wait, {"name", "event_nr", "timeout"}},
    {"rename", op_rename, {"name", "new_name", "uuid"}},
    {"deps", op_deps, {"name", "inactive"}},
    {"mknodes", op_mknodes, {"name"}},
    {"attach", op_attach, {"name"}},
    {"detach", op_detach, {"name"}},
    {"targets", op_targets, {NULL}},
    {"version", op_version, {NULL}},
};

static bool takes(const char *const *keys, const char *key)
{
  for (unsigned i = 0; i < 6 && keys[i]; i++)
    if (strcmp(keys[i], key) == 0)
      return true;
  return false;
}

static void respond(struct udm_msg *resp, struct op *o)
{
  char num[16];
  udm_msg_free(resp);
  if (udm_msg_addf(resp, "status", "%d", o->err ? 1 : 0) < 0 ||
      udm_msg_add(resp, "errno", o->err ? udm_errno_name(o->err, num, sizeof num) : "0") < 0 ||
      udm_msg_add(resp, "message", o->err ? o->msg : "") < 0)
    goto oom;
  if (!o->err)
    for (unsigned i = 0; i < o->payload.count; i++)
      if (udm_msg_add(resp, o->payload.fields[i].key, o->payload.fields[i].value) < 0)
        goto oom;
  return;
oom:
  /* Best effort: a short answer needs little memory. */
  udmd_ops_error(resp, ENOMEM, "udmd: out of memory");
}

void udmd_ops_error(struct udm_msg *resp, int err, const char *message)
{
  char num[16];
  udm_msg_free(resp);
  udm_msg_add(resp, "status", "1");
  udm_msg_add(resp, "errno", udm_errno_name(err, num, sizeof num));
  udm_msg_add(resp, "message", message);
}

void udmd_ops_handle(struct udm_ctx *ctx, struct udmd_attach *attach, int client_fd,
                     const struct udm_msg *req, struct udm_msg *resp)
{
  struct op o = {.ctx = ctx, .attach = attach, .client_fd = client_fd, .req = req};
  udm_msg_init(&o.payload);
  const char *name = udm_msg_get(req, "op");
  unsigned i;
  if (!name || req->count == 0 || strcmp(req->fields[0].key, "op") != 0) {
    fail(&o, EPROTO, "a request must start with op=");
    goto out;
  }
  for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (strcmp(ops[i].name, name) == 0)
      break;
  if (i == sizeof ops / sizeof ops[0]) {
    fail(&o, ENOTSUP, "unknown op '%.64s'", name);
    goto out;
  }
  for (unsigned k = 1; k < req->count; k++) {
    if (!takes(ops[i].keys, req->fields[k].key)) {
      fail(&o, EINVAL, "op %s takes no argument '%s'", name, req->fields[k].key);
      goto out;
    }
    for (unsigned j = 1; j < k; j++)
      if (strcmp(req->fields[j].key, req->fields[k].key) == 0) {
        fail(&o, EINVAL, "op %s: argument '%s' given twice", name, req->fields[k].key);
        goto out;
      }
  }
  ops[i].fn(&o);
out:
  respond(resp, &o);
  udm_msg_free(&o.payload);
}

int udmd_ops_hello(const struct udm_msg *req, struct udm_msg *resp)
{
  const char *op = udm_msg_get(req, "op"), *v = udm_msg_get(req, "version");
  char *end = NULL;
  long version = v ? strtol(v, &end, 10) : 0;
  udm_msg_free(resp);
  if (!op || strcmp(op, "hello") != 0) {
    udmd_ops_error(resp, EPROTO, "the first request must be op=hello version=N");
    return -1;
  }
  if (!v || !*v || *end || version < 1) {
    udmd_ops_error(resp, EPROTONOSUPPORT,
                   "udmd speaks control protocol version 1; the client offered none");
    return -1;
  }
  int r = udm_msg_add(resp, "status", "0");
  if (r == 0)
    r = udm_msg_add(resp, "errno", "0");
  if (r == 0)
    r = udm_msg_add(resp, "message", "");
  if (r == 0)
    r = udm_msg_addf(resp, "version", "%d", UDM_CTL_VERSION);
  if (r == 0)
    r = udm_msg_addf(resp, "server", "udmd %s", udm_version_string());
  if (r < 0) {
    udmd_ops_error(resp, ENOMEM, "udmd: out of memory");
    return -1;
  }
  return 0;
}
