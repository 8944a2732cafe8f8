/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdevmapper.so.1.02.1 over udmd: the dm_task_* interface of the
 * device-mapper library, answered by udmd through the control protocol
 * (docs/control-protocol.md), so that device-mapper tools run unmodified.
 * docs/libdevmapper.md describes what is supported and how.
 *
 * The structures and constants below are the library's published ABI
 * (libdevmapper.h); their layout must not change.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "libdm.h"
#include "platform.h"
#include "protocol.h"
#include "runtime.h"

#define EXPORT __attribute__((visibility("default")))

/* ---- the published ABI ---- */
enum {
  DM_DEVICE_CREATE,
  DM_DEVICE_RELOAD,
  DM_DEVICE_REMOVE,
  DM_DEVICE_REMOVE_ALL,
  DM_DEVICE_SUSPEND,
  DM_DEVICE_RESUME,
  DM_DEVICE_INFO,
  DM_DEVICE_DEPS,
  DM_DEVICE_RENAME,
  DM_DEVICE_VERSION,
  DM_DEVICE_STATUS,
  DM_DEVICE_TABLE,
  DM_DEVICE_WAITEVENT,
  DM_DEVICE_LIST,
  DM_DEVICE_CLEAR,
  DM_DEVICE_MKNODES,
  DM_DEVICE_LIST_VERSIONS,
  DM_DEVICE_TARGET_MSG,
  DM_DEVICE_SET_GEOMETRY,
  DM_DEVICE_ARM_POLL,
  DM_DEVICE_GET_TARGET_VERSION,
};

static const char *const task_names[] = {
    "create", "reload", "remove", "remove_all", "suspend", "resume",
    "info", "deps", "rename", "version", "status", "table", "waitevent",
    "list", "clear", "mknodes", "list_versions", "target_msg", "set_geometry",
    "arm_poll", "get_target_version",
};

struct dm_info {
  int exists;
  int suspended;
  int live_table;
  int inactive_table;
  int32_t open_count;
  uint32_t event_nr;
  uint32_t major;
  uint32_t minor;
  int read_only;
  int32_t target_count;
  int deferred_remove;
  int internal_suspend;
};

struct dm_deps {
  uint32_t count;
  uint32_t filler;
  uint64_t device[];
};

struct dm_names {
  uint64_t dev;
  uint32_t next;
  char name[];
};

struct dm_versions {
  uint32_t next;
  uint32_t version[3];
  char name[];
};

typedef void (*dm_log_with_errno_fn)(int level, const char *file, int line, int dm_errno_or_class,
                                     const char *f, ...);
typedef void (*dm_log_fn)(int level, const char *file, int line, const char *f, ...);

/* ---- log ---- */
#define LOG_ERR 3
#define LOG_WARN 4
#define LOG_DEBUG 7

static int verbose_level;

static void default_log_with_errno(int level, const char *file, int line, int err,
                                   const char *f, ...) __attribute__((format(printf, 5, 6)));
static void default_log_with_errno(int level, const char *file, int line, int err,
                                   const char *f, ...)
{
  (void)file;
  (void)line;
  (void)err;
  int lvl = level & 7;
  if (lvl > LOG_WARN && lvl > verbose_level + 3)
    return;
  va_list ap;
  va_start(ap, f);
  vfprintf(stderr, f, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void default_log(int level, const char *file, int line, const char *f, ...)
    __attribute__((format(printf, 4, 5)));
static void default_log(int level, const char *file, int line, const char *f, ...)
{
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  default_log_with_errno(level, file, line, 0, "%s", buf);
}

/* Exported variables: programs call through them (dmsetup does). */
EXPORT dm_log_with_errno_fn dm_log_with_errno = default_log_with_errno;
EXPORT dm_log_fn dm_log = default_log;
static dm_log_fn user_log; /* set by dm_log_init */

void libdm_log(int level, int err, const char *fmt, ...)
{
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (user_log)
    user_log(level, __FILE__, __LINE__, "%s", buf);
  else
    dm_log_with_errno(level, __FILE__, __LINE__, err, "%s", buf);
}

EXPORT void dm_log_with_errno_init(dm_log_with_errno_fn fn)
{
  dm_log_with_errno = fn ? fn : default_log_with_errno;
  user_log = NULL;
}

EXPORT void dm_log_init(dm_log_fn fn)
{
  user_log = fn;
  dm_log = fn ? fn : default_log;
}

EXPORT int dm_log_is_non_default(void)
{
  return user_log != NULL || dm_log_with_errno != default_log_with_errno;
}

EXPORT void dm_log_init_verbose(int level)
{
  verbose_level = level;
}

int libdm_unsupported(const char *call)
{
  libdm_log(LOG_ERR, ENOTSUP, "%s: not supported by udm's libdevmapper (see docs/libdevmapper.md)",
            call);
  errno = ENOTSUP;
  return 0;
}

/* ---- the connection to udmd ---- */
static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static int conn_fd = -1;

static int connect_udmd(void)
{
  char dir[PATH_MAX];
  const char *why = "";
  if (udm_runtime_dir(dir, sizeof dir, &why) < 0) {
    libdm_log(LOG_ERR, 0, "udm: %s", why);
    return -1;
  }
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (udm_runtime_path(sa.sun_path, sizeof sa.sun_path, dir, UDM_CONTROL_SOCKET) < 0) {
    libdm_log(LOG_ERR, 0, "udm: runtime directory %s: name too long", dir);
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) {
    libdm_log(LOG_ERR, errno, "udm: socket: %s", strerror(errno));
    return -1;
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    libdm_log(LOG_ERR, errno,
              "udm: cannot reach udmd at %s: %s (start udmd, or set UDM_RUNTIME_DIR)",
              sa.sun_path, strerror(errno));
    close(fd);
    return -1;
  }
  struct udm_msg req, resp;
  udm_msg_init(&req);
  udm_msg_init(&resp);
  int r = udm_msg_add(&req, "op", "hello");
  if (r == 0)
    r = udm_msg_addf(&req, "version", "%d", UDM_CTL_VERSION);
  if (r == 0)
    r = udm_msg_send(fd, &req);
  if (r == 0)
    r = udm_msg_recv(fd, &resp, &why);
  const char *st = udm_msg_get(&resp, "status");
  if (r != 0 || !st || strcmp(st, "0") != 0) {
    libdm_log(LOG_ERR, 0, "udm: udmd did not answer hello on %s", sa.sun_path);
    close(fd);
    fd = -1;
  }
  udm_msg_free(&req);
  udm_msg_free(&resp);
  return fd;
}

int libdm_call(struct udm_msg *req, struct udm_msg *resp, bool quiet)
{
  const char *why = "";
  pthread_mutex_lock(&conn_lock);
  if (conn_fd < 0)
    conn_fd = connect_udmd();
  if (conn_fd < 0) {
    pthread_mutex_unlock(&conn_lock);
    return -EIO;
  }
  int r = udm_msg_send(conn_fd, req);
  if (r == 0)
    r = udm_msg_recv(conn_fd, resp, &why);
  if (r != 0) {
    close(conn_fd);
    conn_fd = -1;
    pthread_mutex_unlock(&conn_lock);
    libdm_log(LOG_ERR, 0, "udm: lost the connection to udmd: %s",
              r == -EBADMSG ? why : r == 1 ? "closed" : strerror(-r));
    return -EIO;
  }
  pthread_mutex_unlock(&conn_lock);
  const char *st = udm_msg_get(resp, "status");
  if (!st || strcmp(st, "0") != 0) {
    const char *e = udm_msg_get(resp, "errno");
    int err = e ? udm_errno_from_name(e) : EIO;
    if (!quiet) {
      const char *m = udm_msg_get(resp, "message");
      libdm_log(LOG_ERR, err, "device-mapper: %s", m && *m ? m : "udmd failed without a message");
    }
    return -err;
  }
  return 0;
}

/* ---- device numbers ---- */
uint64_t libdm_encode_dev(uint32_t major, uint32_t minor)
{
  return (uint64_t)(minor & 0xff) | ((uint64_t)(major & 0xfff) << 8) |
         ((uint64_t)(minor & ~0xffu) << 12) | ((uint64_t)(major & ~0xfffu) << 32);
}

/* Split a dev_t of this system (it packs the numbers its own way). */
static void split_dev(dev_t d, uint32_t *maj, uint32_t *min)
{
  *maj = udm_platform_dev_major(d);
  *min = udm_platform_dev_minor(d);
}

/* ---- directory of nodes ---- */
static char dev_dir[PATH_MAX] = "/dev";
static char mapper_dir[PATH_MAX] = "/dev/mapper";

static void set_dirs(const char *dir)
{
  snprintf(dev_dir, sizeof dev_dir, "%s", dir);
  size_t n = strlen(dev_dir);
  while (n > 1 && dev_dir[n - 1] == '/')
    dev_dir[--n] = '\0';
  snprintf(mapper_dir, sizeof mapper_dir, "%s/mapper", dev_dir);
}

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static void read_env(void)
{
  const char *d = getenv("DM_DEV_DIR");
  if (d && *d == '/')
    set_dirs(d);
}

EXPORT int dm_set_dev_dir(const char *dir)
{
  pthread_once(&env_once, read_env);
  if (!dir || *dir != '/') {
    libdm_log(LOG_ERR, EINVAL, "dm_set_dev_dir: %s is not an absolute path", dir ? dir : "(null)");
    return 0;
  }
  set_dirs(dir);
  return 1;
}

EXPORT const char *dm_dir(void)
{
  pthread_once(&env_once, read_env);
  return mapper_dir;
}

static void node_path(char *buf, size_t n, const char *name)
{
  snprintf(buf, n, "%s/%s", dm_dir(), name);
}

/* Make DIR/NAME a symlink to the block device; remove it when blockdev is empty. */
static void update_node(const char *name, const char *blockdev)
{
  char path[PATH_MAX], cur[PATH_MAX];
  node_path(path, sizeof path, name);
  ssize_t n = readlink(path, cur, sizeof cur - 1);
  if (n >= 0)
    cur[n] = '\0';
  if (!*blockdev) {
    if (n >= 0 && unlink(path) < 0)
      libdm_log(LOG_WARN, errno, "udm: cannot remove %s: %s", path, strerror(errno));
    return;
  }
  if (n >= 0 && strcmp(cur, blockdev) == 0)
    return;
  mkdir(dev_dir, 0755);
  mkdir(mapper_dir, 0755);
  if (n >= 0)
    unlink(path);
  if (symlink(blockdev, path) < 0)
    libdm_log(LOG_WARN, errno, "udm: cannot make %s -> %s: %s", path, blockdev, strerror(errno));
}

/* ---- tasks ---- */
struct target {
  uint64_t start, length;
  char *type, *params;
  struct target *next;
};

struct dm_task {
  int type;
  char *name, *uuid, *newname, *newuuid, *message;
  uint64_t sector;
  uint32_t event_nr;
  bool ro, inactive, secure, measure;
  int major, minor;
  struct target *head, *tail;
  /* results */
  bool ran;
  struct dm_info info;
  char *res_name, *res_uuid;
  char *response;
  void *list; /* dm_deps, dm_names or dm_versions */
  uint32_t read_ahead;
};

EXPORT struct dm_task *dm_task_create(int type)
{
  if (type < 0 || type > DM_DEVICE_GET_TARGET_VERSION) {
    libdm_log(LOG_ERR, EINVAL, "dm_task_create: unknown task type %d", type);
    return NULL;
  }
  struct dm_task *t = calloc(1, sizeof *t);
  if (!t) {
    libdm_log(LOG_ERR, ENOMEM, "dm_task_create: out of memory");
    return NULL;
  }
  t->type = type;
  t->major = t->minor = -1;
  return t;
}

static void free_targets(struct dm_task *t)
{
  while (t->head) {
    struct target *n = t->head->next;
    free(t->head->type);
    if (t->head->params && t->secure)
      memset(t->head->params, 0, strlen(t->head->params));
    free(t->head->params);
    free(t->head);
    t->head = n;
  }
  t->tail = NULL;
}

EXPORT void dm_task_destroy(struct dm_task *t)
{
  if (!t)
    return;
  free_targets(t);
  free(t->name);
  free(t->uuid);
  free(t->newname);
  free(t->newuuid);
  free(t->message);
  free(t->res_name);
  free(t->res_uuid);
  free(t->response);
  free(t->list);
  free(t);
}

static int set_str(char **dst, const char *s, const char *call)
{
  if (!s) {
    libdm_log(LOG_ERR, EINVAL, "%s: no value given", call);
    return 0;
  }
  char *d = strdup(s);
  if (!d) {
    libdm_log(LOG_ERR, ENOMEM, "%s: out of memory", call);
    return 0;
  }
  free(*dst);
  *dst = d;
  return 1;
}

EXPORT int dm_task_set_name(struct dm_task *t, const char *name)
{
  if (name && strchr(name, '/')) {
    /* A path: dmsetup passes /dev/mapper/NAME through as the name. */
    const char *base = strrchr(name, '/') + 1;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", (int)(base - name - 1), name);
    if (strcmp(dir, dm_dir()) != 0) {
      libdm_log(LOG_ERR, EINVAL, "dm_task_set_name: %s is not in %s", name, dm_dir());
      return 0;
    }
    name = base;
  }
  return set_str(&t->name, name, "dm_task_set_name");
}
EXPORT int dm_task_set_uuid(struct dm_task *t, const char *uuid)
{
  return set_str(&t->uuid, uuid, "dm_task_set_uuid");
}
EXPORT int dm_task_set_newname(struct dm_task *t, const char *n)
{
  return set_str(&t->newname, n, "dm_task_set_newname");
}
EXPORT int dm_task_set_newuuid(struct dm_task *t, const char *u)
{
  return set_str(&t->newuuid, u, "dm_task_set_newuuid");
}
EXPORT int dm_task_set_message(struct dm_task *t, const char *m)
{
  return set_str(&t->message, m, "dm_task_set_message");
}
EXPORT int dm_task_set_sector(struct dm_task *t, uint64_t sector)
{
  t->sector = sector;
  return 1;
}
EXPORT int dm_task_set_ro(struct dm_task *t)
{
  t->ro = true;
  return 1;
}
EXPORT int dm_task_set_event_nr(struct dm_task *t, uint32_t nr)
{
  t->event_nr = nr;
  return 1;
}
EXPORT int dm_task_set_major(struct dm_task *t, int major)
{
  t->major = major;
  return 1;
}
EXPORT int dm_task_set_minor(struct dm_task *t, int minor)
{
  t->minor = minor;
  return 1;
}
EXPORT int dm_task_set_major_minor(struct dm_task *t, int major, int minor, int fallback)
{
  (void)fallback;
  t->major = major;
  t->minor = minor;
  return 1;
}
EXPORT int dm_task_query_inactive_table(struct dm_task *t)
{
  t->inactive = true;
  return 1;
}
/* A status task answers the targets' IMA text ("dmsetup measure"). */
EXPORT int dm_task_ima_measurement(struct dm_task *t)
{
  t->measure = true;
  return 1;
}
EXPORT int dm_task_secure_data(struct dm_task *t)
{
  t->secure = true;
  return 1;
}
/*
 * Options with nothing to do in udm: it holds no queue to flush, no
 * filesystem to freeze, no open count to skip, and reloads are cheap.
 */
EXPORT int dm_task_no_flush(struct dm_task *t)
{
  (void)t;
  return 1;
}
EXPORT int dm_task_skip_lockfs(struct dm_task *t)
{
  (void)t;
  return 1;
}
EXPORT int dm_task_no_open_count(struct dm_task *t)
{
  (void)t;
  return 1;
}
EXPORT int dm_task_enable_checks(struct dm_task *t)
{
  (void)t;
  return 1;
}
EXPORT int dm_task_suppress_identical_reload(struct dm_task *t)
{
  (void)t;
  return 1;
}
EXPORT int dm_task_set_add_node(struct dm_task *t, int add_node)
{
  (void)t;
  (void)add_node;
  return 1;
}
EXPORT int dm_task_set_read_ahead(struct dm_task *t, uint32_t ra, uint32_t flags)
{
  (void)flags;
  t->read_ahead = ra;
  return 1;
}
EXPORT uint32_t dm_task_get_read_ahead(const struct dm_task *t, uint32_t *ra)
{
  (void)t;
  /* The kernel's default read-ahead of a device-mapper device. */
  *ra = LIBDM_READ_AHEAD;
  return 1;
}
/* Node ownership: the node is a symlink to the attached block device. */
EXPORT int dm_task_set_uid(struct dm_task *t, uid_t uid)
{
  (void)t;
  (void)uid;
  return 1;
}
EXPORT int dm_task_set_gid(struct dm_task *t, gid_t gid)
{
  (void)t;
  (void)gid;
  return 1;
}
EXPORT int dm_task_set_mode(struct dm_task *t, mode_t mode)
{
  (void)t;
  (void)mode;
  return 1;
}
EXPORT int dm_task_retry_remove(struct dm_task *t)
{
  (void)t;
  return 1;
}
EXPORT int dm_task_deferred_remove(struct dm_task *t)
{
  (void)t;
  return libdm_unsupported("dm_task_deferred_remove");
}
EXPORT int dm_task_set_geometry(struct dm_task *t, const char *c, const char *h, const char *s,
                                const char *st)
{
  (void)t;
  (void)c;
  (void)h;
  (void)s;
  (void)st;
  return libdm_unsupported("dm_task_set_geometry");
}

EXPORT int dm_task_add_target(struct dm_task *t, uint64_t start, uint64_t size, const char *ttype,
                              const char *params)
{
  struct target *g = calloc(1, sizeof *g);
  if (!g || !ttype || !(g->type = strdup(ttype)) || !(g->params = strdup(params ? params : ""))) {
    if (g) {
      free(g->type);
      free(g);
    }
    libdm_log(LOG_ERR, ENOMEM, "dm_task_add_target: out of memory");
    return 0;
  }
  g->start = start;
  g->length = size;
  if (t->tail)
    t->tail->next = g;
  else
    t->head = g;
  t->tail = g;
  return 1;
}

/* ---- results ---- */
int dm_task_get_info_v97(struct dm_task *t, struct dm_info *i);
EXPORT int dm_task_get_info_v97(struct dm_task *t, struct dm_info *i)
{
  if (!t->ran)
    return 0;
  *i = t->info;
  return 1;
}

/* The first version of the call filled the structure up to deferred_remove. */
int dm_task_get_info_base(struct dm_task *t, struct dm_info *i);
EXPORT int dm_task_get_info_base(struct dm_task *t, struct dm_info *i)
{
  if (!t->ran)
    return 0;
  memcpy(i, &t->info, offsetof(struct dm_info, deferred_remove));
  return 1;
}
#if defined(__ELF__)
/* Symbol versions exist in ELF only; elsewhere the current form is the only one. */
__asm__(".symver dm_task_get_info_base,dm_task_get_info@Base");
__asm__(".symver dm_task_get_info_v97,dm_task_get_info@@DM_1_02_97");
#else
EXPORT int dm_task_get_info(struct dm_task *t, struct dm_info *i)
{
  return dm_task_get_info_v97(t, i);
}
#endif

EXPORT int dm_task_get_info_with_deferred_remove(struct dm_task *t, struct dm_info *i)
{
  if (!t->ran)
    return 0;
  memcpy(i, &t->info, offsetof(struct dm_info, internal_suspend));
  return 1;
}

EXPORT const char *dm_task_get_name(const struct dm_task *t)
{
  return t->res_name ? t->res_name : t->name;
}
EXPORT const char *dm_task_get_name_mangled(const struct dm_task *t)
{
  return dm_task_get_name(t);
}
EXPORT const char *dm_task_get_name_unmangled(const struct dm_task *t)
{
  return dm_task_get_name(t);
}
EXPORT const char *dm_task_get_uuid(const struct dm_task *t)
{
  return t->res_uuid ? t->res_uuid : "";
}
EXPORT const char *dm_task_get_uuid_mangled(const struct dm_task *t)
{
  return dm_task_get_uuid(t);
}
EXPORT const char *dm_task_get_uuid_unmangled(const struct dm_task *t)
{
  return dm_task_get_uuid(t);
}
EXPORT struct dm_deps *dm_task_get_deps(struct dm_task *t)
{
  return t->type == DM_DEVICE_DEPS ? t->list : NULL;
}
EXPORT struct dm_names *dm_task_get_names(struct dm_task *t)
{
  return t->type == DM_DEVICE_LIST ? t->list : NULL;
}
EXPORT struct dm_versions *dm_task_get_versions(struct dm_task *t)
{
  return t->type == DM_DEVICE_LIST_VERSIONS || t->type == DM_DEVICE_GET_TARGET_VERSION ? t->list
                                                                                     : NULL;
}
EXPORT const char *dm_task_get_message_response(struct dm_task *t)
{
  return t->response;
}

EXPORT int dm_task_get_driver_version(struct dm_task *t, char *version, size_t size)
{
  (void)t;
  snprintf(version, size, "%s", LIBDM_DRIVER_VERSION);
  return 1;
}

EXPORT int dm_get_library_version(char *version, size_t size)
{
  snprintf(version, size, "%s", LIBDM_LIBRARY_VERSION);
  return 1;
}

EXPORT int dm_driver_version(char *version, size_t size)
{
  return dm_task_get_driver_version(NULL, version, size);
}

EXPORT void *dm_get_next_target(struct dm_task *t, void *next, uint64_t *start, uint64_t *length,
                                char **target_type, char **params)
{
  struct target *g = next ? next : t->head;
  if (!g) {
    *start = *length = 0;
    *target_type = *params = NULL;
    return NULL;
  }
  *start = g->start;
  *length = g->length;
  *target_type = g->type;
  *params = g->params;
  return g->next;
}

/* ---- running a task ---- */

/* Field key of the record [first, end) of m, or NULL. */
static const char *rec_get(const struct udm_msg *m, unsigned first, unsigned end, const char *key)
{
  for (unsigned i = first; i < end; i++)
    if (strcmp(m->fields[i].key, key) == 0)
      return m->fields[i].value;
  return NULL;
}

/* Records of an answer: each starts at a name= field. */
static unsigned rec_end(const struct udm_msg *m, unsigned first)
{
  unsigned i = first + 1;
  while (i < m->count && strcmp(m->fields[i].key, "name") != 0)
    i++;
  return i;
}

static unsigned rec_first(const struct udm_msg *m)
{
  unsigned i = 0;
  while (i < m->count && strcmp(m->fields[i].key, "name") != 0)
    i++;
  return i;
}

static int new_req(struct udm_msg *req, const char *op, const char *name)
{
  udm_msg_init(req);
  int r = udm_msg_add(req, "op", op);
  if (r == 0 && name)
    r = udm_msg_add(req, "name", name);
  return r;
}

/*
 * Sends a request that new_req and its adds left with status r (sent only if
 * r is 0); resp is made ready either way, req is freed.
 */
static int send_req(struct udm_msg *req, int r, struct udm_msg *resp, bool quiet)
{
  udm_msg_init(resp);
  if (r == 0)
    r = libdm_call(req, resp, quiet);
  udm_msg_free(req);
  return r;
}

static int get_devices(struct udm_msg *resp, const char *name, bool quiet)
{
  struct udm_msg req;
  return send_req(&req, new_req(&req, "info", name), resp, quiet);
}

/* Device number of a udm device: its block device's when attached. */
static void device_number(const struct udm_msg *m, unsigned f, unsigned e, uint32_t *maj,
                          uint32_t *min)
{
  const char *bd = rec_get(m, f, e, "block_device");
  struct stat st;
  if (bd && *bd && stat(bd, &st) == 0 && S_ISBLK(st.st_mode)) {
    split_dev(st.st_rdev, maj, min);
    return;
  }
  const char *mi = rec_get(m, f, e, "minor");
  *maj = LIBDM_MAJOR;
  *min = mi ? (uint32_t)strtoul(mi, NULL, 10) : 0;
}

/* Name of the udm device whose block device is rdev (maj:min), into out. */
static bool udm_by_number(const struct udm_msg *devs, uint32_t maj, uint32_t min, char *out,
                          size_t n)
{
  for (unsigned f = rec_first(devs); f < devs->count;) {
    unsigned e = rec_end(devs, f);
    const char *bd = rec_get(devs, f, e, "block_device");
    if (bd && *bd) {
      uint32_t a, b;
      device_number(devs, f, e, &a, &b);
      if (a == maj && b == min) {
        snprintf(out, n, "%s", devs->fields[f].value);
        return true;
      }
    }
    f = e;
  }
  return false;
}

static bool parse_devno(const char *s, size_t len, uint32_t *maj, uint32_t *min)
{
  char buf[32];
  if (len == 0 || len >= sizeof buf)
    return false;
  memcpy(buf, s, len);
  buf[len] = '\0';
  char *colon = strchr(buf, ':');
  if (!colon || colon == buf || !colon[1])
    return false;
  for (char *p = buf; *p; p++)
    if (p != colon && !isdigit((unsigned char)*p))
      return false;
  *maj = (uint32_t)strtoul(buf, NULL, 10);
  *min = (uint32_t)strtoul(colon + 1, NULL, 10);
  return true;
}

/*
 * Copies params word by word, white space as it is: a word for which repl
 * writes a replacement into its buffer (of n bytes) becomes that.
 */
typedef void word_repl(const char *w, size_t wl, const struct udm_msg *devs, char *repl,
                       size_t n);

static char *map_words(const char *params, const struct udm_msg *devs, word_repl *fn)
{
  size_t cap = strlen(params) * 2 + 64, len = 0;
  char *out = malloc(cap);
  if (!out)
    return NULL;
  const char *p = params;
  while (*p) {
    size_t ws = strspn(p, " \t");
    size_t wl = strcspn(p + ws, " \t");
    const char *w = p + ws;
    char repl[PATH_MAX + 8] = "";
    fn(w, wl, devs, repl, sizeof repl);
    size_t rl = *repl ? strlen(repl) : wl;
    if (len + ws + rl + 1 > cap) {
      cap = (len + ws + rl + 1) * 2;
      char *n = realloc(out, cap);
      if (!n) {
        free(out);
        return NULL;
      }
      out = n;
    }
    memcpy(out + len, p, ws);
    len += ws;
    memcpy(out + len, *repl ? repl : w, rl);
    len += rl;
    p = w + wl;
  }
  out[len] = '\0';
  return out;
}

/*
 * A table from a program, for udm: a word naming an attached udm device
 * (by major:minor, or by a path to its block device) becomes udm:NAME, so
 * the tables stack directly; major:minor of another block device becomes
 * its path.
 */
static void word_in(const char *w, size_t wl, const struct udm_msg *devs, char *repl, size_t n)
{
  uint32_t maj, min;
  char name[256];
  if (parse_devno(w, wl, &maj, &min)) {
    if (udm_by_number(devs, maj, min, name, sizeof name))
      snprintf(repl, n, "udm:%s", name);
    else if (udm_platform_devno_path(maj, min, repl, n) < 0)
      repl[0] = '\0';
  } else if (wl > 1 && *w == '/' && wl < PATH_MAX) {
    char path[PATH_MAX];
    struct stat st;
    memcpy(path, w, wl);
    path[wl] = '\0';
    if (stat(path, &st) == 0 && S_ISBLK(st.st_mode)) {
      split_dev(st.st_rdev, &maj, &min);
      if (udm_by_number(devs, maj, min, name, sizeof name))
        snprintf(repl, n, "udm:%s", name);
    }
  }
}

static char *table_in(const char *params, const struct udm_msg *devs)
{
  return map_words(params, devs, word_in);
}

/* A table line from udm, as the kernel shows it: devices as major:minor. */
static void word_out(const char *w, size_t wl, const struct udm_msg *devs, char *repl, size_t n)
{
  /* udm names a udm device udm:NAME or /dev/mapper/NAME (docs/targets.md). */
  size_t skip = wl > 4 && strncmp(w, "udm:", 4) == 0                 ? 4
                : wl > 12 && strncmp(w, "/dev/mapper/", 12) == 0 ? 12
                                                                   : 0;
  if (skip) {
    for (unsigned f = rec_first(devs); f < devs->count;) {
      unsigned e = rec_end(devs, f);
      const char *name = devs->fields[f].value;
      if (strlen(name) == wl - skip && memcmp(name, w + skip, wl - skip) == 0) {
        uint32_t a, b;
        device_number(devs, f, e, &a, &b);
        snprintf(repl, n, "%u:%u", a, b);
      }
      f = e;
    }
  }
  if (!*repl && wl > 1 && *w == '/' && wl < PATH_MAX) {
    char path[PATH_MAX];
    struct stat st;
    memcpy(path, w, wl);
    path[wl] = '\0';
    if (stat(path, &st) == 0 && S_ISBLK(st.st_mode)) {
      uint32_t a, b;
      split_dev(st.st_rdev, &a, &b);
      snprintf(repl, n, "%u:%u", a, b);
    }
  }
}

static char *table_out(const char *params, const struct udm_msg *devs)
{
  return map_words(params, devs, word_out);
}

static char *task_table(struct dm_task *t, const struct udm_msg *devs)
{
  size_t cap = 256, len = 0;
  char *s = malloc(cap);
  if (!s)
    return NULL;
  s[0] = '\0';
  for (struct target *g = t->head; g; g = g->next) {
    char *params = table_in(g->params, devs);
    if (!params) {
      free(s);
      return NULL;
    }
    size_t need = len + strlen(g->type) + strlen(params) + 64;
    if (need > cap) {
      cap = need * 2;
      char *n = realloc(s, cap);
      if (!n) {
        free(params);
        free(s);
        return NULL;
      }
      s = n;
    }
    len += (size_t)snprintf(s + len, cap - len, "%llu %llu %s %s\n", (unsigned long long)g->start,
                            (unsigned long long)g->length, g->type, params);
    if (t->secure)
      memset(params, 0, strlen(params));
    free(params);
  }
  return s;
}

static void wipe_free(char *s)
{
  if (s) {
    memset(s, 0, strlen(s));
    free(s);
  }
}

static int need_name(struct dm_task *t)
{
  if (t->name)
    return 0;
  if (t->uuid || (t->major >= 0 && t->minor >= 0)) {
    /* Find the device by uuid or number. */
    struct udm_msg devs;
    if (get_devices(&devs, NULL, false) < 0)
      return -1;
    for (unsigned f = rec_first(&devs); f < devs.count;) {
      unsigned e = rec_end(&devs, f);
      const char *u = rec_get(&devs, f, e, "uuid");
      uint32_t a, b;
      device_number(&devs, f, e, &a, &b);
      if ((t->uuid && u && strcmp(u, t->uuid) == 0) ||
          (!t->uuid && a == (uint32_t)t->major && b == (uint32_t)t->minor)) {
        t->name = strdup(devs.fields[f].value);
        break;
      }
      f = e;
    }
    udm_msg_free(&devs);
    if (t->name)
      return 0;
    /* Not there: the info of a device that does not exist. */
    return 1;
  }
  libdm_log(LOG_ERR, EINVAL, "device-mapper: %s: no device name given", task_names[t->type]);
  return -1;
}

static int fill_info(struct dm_task *t, bool quiet_missing)
{
  struct udm_msg devs;
  memset(&t->info, 0, sizeof t->info);
  int r = get_devices(&devs, t->name, true);
  if (r == -ENXIO) {
    udm_msg_free(&devs);
    return 0; /* exists = 0 */
  }
  if (r < 0) {
    if (!quiet_missing) {
      const char *m = udm_msg_get(&devs, "message");
      libdm_log(LOG_ERR, -r, "device-mapper: info: %s", m && *m ? m : strerror(-r));
    }
    udm_msg_free(&devs);
    return -1;
  }
  unsigned f = rec_first(&devs), e = rec_end(&devs, f);
  if (f >= devs.count) {
    udm_msg_free(&devs);
    return 0;
  }
#define NUM(k) (rec_get(&devs, f, e, k) ? strtoul(rec_get(&devs, f, e, k), NULL, 10) : 0)
  t->info.exists = 1;
  t->info.suspended = (int)NUM("suspended");
  t->info.live_table = (int)NUM("live_table");
  t->info.inactive_table = (int)NUM("inactive_table");
  t->info.read_only = (int)NUM("readonly");
  t->info.event_nr = (uint32_t)NUM("event_nr");
  t->info.target_count = (int32_t)NUM("target_count");
  /* Open count as the kernel counts it: its users, tables stacked on it included. */
  long open = (long)NUM("open_count") + (long)NUM("holders");
  const char *bd = rec_get(&devs, f, e, "block_device");
  /*
   * The attachment's own open of the FUSE file is the kernel's node, not a
   * user; the users of that node (a mounted filesystem) are the system's.
   */
  if (bd && *bd) {
    if (open > 0)
      open--;
    struct stat st;
    int users = stat(bd, &st) == 0 && S_ISBLK(st.st_mode)
                    ? udm_platform_blockdev_users(udm_platform_dev_major(st.st_rdev),
                                                  udm_platform_dev_minor(st.st_rdev))
                    : -ENODEV;
    if (users > 0)
      open += users;
  }
  t->info.open_count = (int32_t)open;
#undef NUM
  device_number(&devs, f, e, &t->info.major, &t->info.minor);
  free(t->res_name);
  t->res_name = strdup(devs.fields[f].value);
  const char *u = rec_get(&devs, f, e, "uuid");
  free(t->res_uuid);
  t->res_uuid = strdup(u ? u : "");
  udm_msg_free(&devs);
  return 0;
}

/* Attach a device with a live table that is not attached yet; make its node. */
static int ensure_attached(const char *name)
{
  struct udm_msg devs;
  if (get_devices(&devs, name, false) < 0) {
    udm_msg_free(&devs);
    return -1;
  }
  unsigned f = rec_first(&devs), e = rec_end(&devs, f);
  const char *bd = rec_get(&devs, f, e, "block_device");
  const char *live = rec_get(&devs, f, e, "live_table");
  int r = 0;
  if (bd && *bd) {
    update_node(name, bd);
  } else if (live && strcmp(live, "1") == 0) {
    struct udm_msg req, resp;
    udm_msg_init(&resp);
    r = new_req(&req, "attach", name);
    if (r == 0)
      r = libdm_call(&req, &resp, true);
    if (r == 0) {
      update_node(name, udm_msg_get(&resp, "block_device"));
    } else if (r == -ENOTSUP) {
      /* A udmd without its FUSE export: the device works, without a node. */
      const char *m = udm_msg_get(&resp, "message");
      libdm_log(LOG_WARN, ENOTSUP, "udm: %s has no block device (%s); %s/%s is not made", name,
                m && *m ? m : "udmd cannot attach", dm_dir(), name);
      r = 0;
    } else {
      const char *m = udm_msg_get(&resp, "message");
      libdm_log(LOG_ERR, -r, "device-mapper: %s", m && *m ? m : strerror(-r));
    }
    udm_msg_free(&req);
    udm_msg_free(&resp);
  }
  udm_msg_free(&devs);
  return r < 0 ? -1 : 0;
}

static int simple(const char *op, struct dm_task *t, struct udm_msg *resp)
{
  struct udm_msg req;
  return send_req(&req, new_req(&req, op, t->name), resp, false);
}

static int run_load(struct dm_task *t, const char *op, bool create)
{
  struct udm_msg devs, req, resp;
  if (get_devices(&devs, NULL, false) < 0) {
    udm_msg_free(&devs);
    return -1;
  }
  char *table = t->head ? task_table(t, &devs) : NULL;
  udm_msg_free(&devs);
  if (t->head && !table) {
    libdm_log(LOG_ERR, ENOMEM, "device-mapper: %s: out of memory", op);
    return -1;
  }
  int r = new_req(&req, op, t->name);
  if (r == 0 && create && t->uuid)
    r = udm_msg_add(&req, "uuid", t->uuid);
  if (r == 0 && create && t->ro)
    r = udm_msg_add(&req, "readonly", "1");
  if (r == 0 && table)
    r = udm_msg_add(&req, "table", table);
  else if (r == 0 && !create)
    r = udm_msg_add(&req, "table", "");
  udm_msg_init(&resp);
  if (r == 0)
    r = libdm_call(&req, &resp, false);
  if (req.count && t->secure)
    for (unsigned i = 0; i < req.count; i++)
      if (strcmp(req.fields[i].key, "table") == 0)
        memset(req.fields[i].value, 0, strlen(req.fields[i].value));
  udm_msg_free(&req);
  udm_msg_free(&resp);
  wipe_free(table);
  return r;
}

static int run_remove(struct dm_task *t)
{
  struct udm_msg devs, resp;
  if (get_devices(&devs, t->name, false) < 0) {
    udm_msg_free(&devs);
    return -1;
  }
  unsigned f = rec_first(&devs), e = rec_end(&devs, f);
  const char *bd = rec_get(&devs, f, e, "block_device");
  bool attached = bd && *bd;
  udm_msg_free(&devs);
  if (attached) {
    if (simple("detach", t, &resp) < 0) {
      udm_msg_free(&resp);
      return -1;
    }
    udm_msg_free(&resp);
  }
  int r = simple("remove", t, &resp);
  udm_msg_free(&resp);
  if (r < 0 && attached)
    ensure_attached(t->name); /* refused (still in use): as it was */
  else if (r == 0)
    update_node(t->name, "");
  return r;
}

static int run_rename(struct dm_task *t)
{
  struct udm_msg req, resp;
  if (!t->newname && !t->newuuid) {
    libdm_log(LOG_ERR, EINVAL, "device-mapper: rename: no new name or uuid given");
    return -1;
  }
  int r = new_req(&req, "rename", t->name);
  if (r == 0)
    r = t->newname ? udm_msg_add(&req, "new_name", t->newname)
                   : udm_msg_add(&req, "uuid", t->newuuid);
  r = send_req(&req, r, &resp, false);
  udm_msg_free(&resp);
  if (r == 0 && t->newname) {
    char old[PATH_MAX], target[PATH_MAX];
    node_path(old, sizeof old, t->name);
    ssize_t n = readlink(old, target, sizeof target - 1);
    if (n >= 0) {
      target[n] = '\0';
      unlink(old);
      update_node(t->newname, target);
    }
  }
  return r;
}

/* Table or status of one device as the target list of the task. */
static int run_table(struct dm_task *t, bool status)
{
  struct udm_msg req, resp, devs;
  int r = new_req(&req, status ? "status" : "table", t->name);
  if (r == 0 && t->inactive)
    r = udm_msg_add(&req, "inactive", "1");
  if (r == 0 && status && t->measure)
    r = udm_msg_add(&req, "measure", "1");
  /* The kernel's table holds the keys (dmsetup hides them itself unless --showkeys). */
  if (r == 0 && !status)
    r = udm_msg_add(&req, "showkeys", "1");
  r = send_req(&req, r, &resp, false);
  if (r < 0) {
    udm_msg_free(&resp);
    return r;
  }
  /* Table lines give start, length and type; status lines the status text. */
  struct udm_msg tab;
  udm_msg_init(&tab);
  if (status) {
    r = new_req(&req, "table", t->name);
    if (r == 0 && t->inactive)
      r = udm_msg_add(&req, "inactive", "1");
    if (r == 0)
      r = libdm_call(&req, &tab, false);
    udm_msg_free(&req);
  }
  udm_msg_init(&devs);
  if (r == 0)
    r = get_devices(&devs, NULL, false);
  /* The first field of the answer is status= too: read the device's record. */
  unsigned f = rec_first(&resp), tf = rec_first(&tab);
  const char *text = rec_get(&resp, f, rec_end(&resp, f), status ? "status" : "table");
  const char *ttext = status ? rec_get(&tab, tf, rec_end(&tab, tf), "table") : text;
  free_targets(t);
  while (r == 0 && text && *text) {
    size_t ll = strcspn(text, "\n");
    size_t tl = ttext ? strcspn(ttext, "\n") : 0;
    char *line = strndup(text, ll);
    char *tline = ttext ? strndup(ttext, tl) : NULL;
    unsigned long long start = 0, len = 0;
    int used = 0;
    char type[64] = "";
    if (!line || !tline || sscanf(tline, "%llu %llu %63s %n", &start, &len, type, &used) < 3) {
      free(line);
      free(tline);
      libdm_log(LOG_ERR, EIO, "device-mapper: %s: cannot read udmd's table line",
                status ? "status" : "table");
      r = -EIO;
      break;
    }
    const char *params = line + used;
    if (status) {
      /* udmd's status lines are "START LENGTH TYPE STATUS" too. */
      int u2 = 0;
      unsigned long long a, b;
      char ty[64];
      params = sscanf(line, "%llu %llu %63s %n", &a, &b, ty, &u2) >= 3 && u2 ? line + u2
                                                                              : line + strlen(line);
    }
    if (!used)
      used = (int)strlen(tline);
    char *conv = status ? strdup(params) : table_out(params, &devs);
    if (!conv || !dm_task_add_target(t, start, len, type, conv))
      r = -ENOMEM;
    /* task params now hold the text; wipe our copies of key material */
    memset(line, 0, strlen(line));
    if (conv)
      wipe_free(conv);
    free(line);
    free(tline);
    text += ll + (text[ll] == '\n');
    if (ttext)
      ttext += tl + (ttext[tl] == '\n');
  }
  t->secure = true; /* the target list may hold keys: wipe it when freed */
  for (unsigned i = 0; i < resp.count; i++)
    memset(resp.fields[i].value, 0, strlen(resp.fields[i].value));
  udm_msg_free(&resp);
  udm_msg_free(&tab);
  udm_msg_free(&devs);
  return r;
}

static int run_deps(struct dm_task *t)
{
  struct udm_msg req, resp, devs;
  int r = new_req(&req, "deps", t->name);
  if (r == 0 && t->inactive)
    r = udm_msg_add(&req, "inactive", "1");
  r = send_req(&req, r, &resp, false);
  udm_msg_init(&devs);
  if (r == 0)
    r = get_devices(&devs, NULL, false);
  uint32_t n = 0;
  for (unsigned i = 0; i < resp.count; i++)
    n += strcmp(resp.fields[i].key, "dep_path") == 0;
  struct dm_deps *d = r == 0 ? calloc(1, sizeof *d + n * sizeof(uint64_t)) : NULL;
  if (r == 0 && !d)
    r = -ENOMEM;
  for (unsigned i = 0; r == 0 && i < resp.count; i++) {
    if (strcmp(resp.fields[i].key, "dep_path") != 0)
      continue;
    const char *path = resp.fields[i].value;
    const char *dev = i + 1 < resp.count ? resp.fields[i + 1].value : "";
    const char *minor = i + 2 < resp.count ? resp.fields[i + 2].value : "0";
    uint32_t a = 0, b = 0;
    struct stat st;
    if (*dev) {
      for (unsigned f = rec_first(&devs); f < devs.count;) {
        unsigned e = rec_end(&devs, f);
        if (strcmp(devs.fields[f].value, dev) == 0)
          device_number(&devs, f, e, &a, &b);
        f = e;
      }
    } else if (stat(path, &st) == 0 && S_ISBLK(st.st_mode)) {
      split_dev(st.st_rdev, &a, &b);
    } else {
      a = 0;
      b = (uint32_t)strtoul(minor, NULL, 10);
    }
    d->device[d->count++] = libdm_encode_dev(a, b);
  }
  if (r == 0) {
    free(t->list);
    t->list = d;
  } else {
    free(d);
  }
  udm_msg_free(&resp);
  udm_msg_free(&devs);
  return r;
}

static int run_list(struct dm_task *t)
{
  struct udm_msg devs;
  int r = get_devices(&devs, NULL, false);
  size_t size = 0;
  for (unsigned f = rec_first(&devs); r == 0 && f < devs.count; f = rec_end(&devs, f))
    size += (sizeof(struct dm_names) + strlen(devs.fields[f].value) + 1 + 7) & ~(size_t)7;
  char *buf = r == 0 ? calloc(1, size + sizeof(struct dm_names)) : NULL;
  if (r == 0 && !buf)
    r = -ENOMEM;
  size_t off = 0;
  struct dm_names *prev = NULL;
  for (unsigned f = rec_first(&devs); r == 0 && f < devs.count;) {
    unsigned e = rec_end(&devs, f);
    struct dm_names *nm = (struct dm_names *)(buf + off);
    uint32_t a, b;
    device_number(&devs, f, e, &a, &b);
    nm->dev = libdm_encode_dev(a, b);
    strcpy(nm->name, devs.fields[f].value);
    if (prev)
      prev->next = (uint32_t)((char *)nm - (char *)prev);
    prev = nm;
    off += (sizeof(struct dm_names) + strlen(nm->name) + 1 + 7) & ~(size_t)7;
    f = e;
  }
  /* No devices: dev 0 (what dmsetup takes for "none"). */
  if (r == 0) {
    free(t->list);
    t->list = buf;
  } else {
    free(buf);
  }
  udm_msg_free(&devs);
  return r;
}

static int run_versions(struct dm_task *t)
{
  struct udm_msg req, resp;
  int r = new_req(&req, "targets", NULL);
  r = send_req(&req, r, &resp, false);
  size_t size = sizeof(struct dm_versions);
  for (unsigned i = 0; r == 0 && i < resp.count; i++)
    if (strcmp(resp.fields[i].key, "target") == 0)
      size += (sizeof(struct dm_versions) + strlen(resp.fields[i].value) + 1 + 7) & ~(size_t)7;
  char *buf = r == 0 ? calloc(1, size) : NULL;
  if (r == 0 && !buf)
    r = -ENOMEM;
  size_t off = 0;
  struct dm_versions *prev = NULL;
  bool found = t->type != DM_DEVICE_GET_TARGET_VERSION;
  for (unsigned i = 0; r == 0 && i + 1 < resp.count; i++) {
    if (strcmp(resp.fields[i].key, "target") != 0)
      continue;
    const char *name = resp.fields[i].value;
    if (t->type == DM_DEVICE_GET_TARGET_VERSION) {
      if (!t->name || strcmp(t->name, name) != 0)
        continue;
      found = true;
    }
    struct dm_versions *v = (struct dm_versions *)(buf + off);
    unsigned x = 0, y = 0, z = 0;
    sscanf(resp.fields[i + 1].value, "%u.%u.%u", &x, &y, &z);
    v->version[0] = x;
    v->version[1] = y;
    v->version[2] = z;
    strcpy(v->name, name);
    if (prev)
      prev->next = (uint32_t)((char *)v - (char *)prev);
    prev = v;
    off += (sizeof(struct dm_versions) + strlen(name) + 1 + 7) & ~(size_t)7;
  }
  udm_msg_free(&resp);
  if (r == 0 && !found) {
    libdm_log(LOG_ERR, ENOENT, "device-mapper: get_target_version: no target type %s",
              t->name ? t->name : "(none)");
    r = -ENOENT;
  }
  if (r == 0) {
    free(t->list);
    t->list = buf;
  } else {
    free(buf);
  }
  return r;
}

static int run_message(struct dm_task *t)
{
  struct udm_msg req, resp;
  if (!t->message) {
    libdm_log(LOG_ERR, EINVAL, "device-mapper: target_msg: no message given");
    return -1;
  }
  int r = new_req(&req, "message", t->name);
  if (r == 0)
    r = udm_msg_addf(&req, "sector", "%llu", (unsigned long long)t->sector);
  if (r == 0)
    r = udm_msg_add(&req, "message", t->message);
  r = send_req(&req, r, &resp, false);
  if (r == 0) {
    const char *rep = udm_msg_get(&resp, "reply");
    free(t->response);
    t->response = rep && *rep ? strdup(rep) : NULL;
  }
  udm_msg_free(&resp);
  return r;
}

static int run_wait(struct dm_task *t)
{
  struct udm_msg req, resp;
  int r = new_req(&req, "wait", t->name);
  if (r == 0)
    r = udm_msg_addf(&req, "event_nr", "%u", t->event_nr);
  r = send_req(&req, r, &resp, false);
  udm_msg_free(&resp);
  return r;
}

int libdm_mknodes(const char *name)
{
  struct udm_msg req, resp, devs;
  int r = new_req(&req, "mknodes", name);
  r = send_req(&req, r, &resp, false);
  udm_msg_free(&resp);
  if (r < 0)
    return r;
  r = get_devices(&devs, name, false);
  for (unsigned f = rec_first(&devs); r == 0 && f < devs.count;) {
    unsigned e = rec_end(&devs, f);
    const char *bd = rec_get(&devs, f, e, "block_device");
    update_node(devs.fields[f].value, bd ? bd : "");
    f = e;
  }
  udm_msg_free(&devs);
  return r;
}

/*
 * As the kernel does: remove every device that can go, silently, in passes
 * until a pass removes nothing (a device stacked on another goes first).
 */
static int run_remove_all(void)
{
  bool progress = true;
  int r = 0;
  while (r == 0 && progress) {
    struct udm_msg devs;
    progress = false;
    r = get_devices(&devs, NULL, false);
    for (unsigned f = rec_first(&devs); r == 0 && f < devs.count;) {
      unsigned e = rec_end(&devs, f);
      const char *holders = rec_get(&devs, f, e, "holders");
      if (!holders || strcmp(holders, "0") == 0) {
        struct udm_msg req, resp;
        const char *name = devs.fields[f].value;
        const char *bd = rec_get(&devs, f, e, "block_device");
        int q = 0;
        udm_msg_init(&resp);
        if (bd && *bd) {
          q = new_req(&req, "detach", name);
          if (q == 0)
            q = libdm_call(&req, &resp, true);
          udm_msg_free(&req);
          udm_msg_free(&resp);
          udm_msg_init(&resp);
        }
        if (q == 0) {
          q = new_req(&req, "remove", name);
          if (q == 0)
            q = libdm_call(&req, &resp, true);
          udm_msg_free(&req);
          if (q == 0) {
            update_node(name, "");
            progress = true;
          } else if (bd && *bd) {
            ensure_attached(name);
          }
        }
        udm_msg_free(&resp);
      }
      f = e;
    }
    udm_msg_free(&devs);
  }
  return r;
}

EXPORT int dm_task_run(struct dm_task *t)
{
  struct udm_msg resp;
  int r = 0;
  udm_msg_init(&resp);
  switch (t->type) {
  case DM_DEVICE_VERSION:
    break;
  case DM_DEVICE_LIST:
    r = run_list(t);
    break;
  case DM_DEVICE_LIST_VERSIONS:
  case DM_DEVICE_GET_TARGET_VERSION:
    r = run_versions(t);
    break;
  case DM_DEVICE_REMOVE_ALL:
    r = run_remove_all();
    break;
  case DM_DEVICE_MKNODES:
    r = libdm_mknodes(t->name);
    break;
  case DM_DEVICE_SET_GEOMETRY:
    return libdm_unsupported("dm_task_run(DM_DEVICE_SET_GEOMETRY)");
  case DM_DEVICE_ARM_POLL:
    return libdm_unsupported("dm_task_run(DM_DEVICE_ARM_POLL)");
  default: {
    int n = need_name(t);
    if (n < 0)
      return 0;
    if (n > 0) { /* selected by uuid or number and not found */
      memset(&t->info, 0, sizeof t->info);
      t->ran = true;
      if (t->type == DM_DEVICE_INFO)
        return 1;
      libdm_log(LOG_ERR, ENXIO, "device-mapper: %s: no such device", task_names[t->type]);
      return 0;
    }
    /* As libdevmapper does, a missing device is no failure of these tasks: info says so. */
    if (t->type == DM_DEVICE_INFO || t->type == DM_DEVICE_STATUS) {
      if (fill_info(t, false) < 0)
        return 0;
      if (!t->info.exists) {
        t->ran = true;
        return 1;
      }
    }
    switch (t->type) {
    case DM_DEVICE_CREATE:
      r = run_load(t, "create", true);
      if (r == 0 && t->head && ensure_attached(t->name) < 0) {
        /* Nothing half-made: a device that cannot get its block device goes again. */
        struct udm_msg rm;
        simple("remove", t, &rm);
        udm_msg_free(&rm);
        r = -EIO;
      }
      break;
    case DM_DEVICE_RELOAD:
      r = run_load(t, "load", false);
      break;
    case DM_DEVICE_REMOVE:
      r = run_remove(t);
      break;
    case DM_DEVICE_SUSPEND:
      r = simple("suspend", t, &resp);
      break;
    case DM_DEVICE_RESUME:
      r = simple("resume", t, &resp);
      if (r == 0)
        r = ensure_attached(t->name);
      break;
    case DM_DEVICE_CLEAR:
      r = simple("clear", t, &resp);
      break;
    case DM_DEVICE_INFO:
      break;
    case DM_DEVICE_DEPS:
      r = run_deps(t);
      break;
    case DM_DEVICE_RENAME:
      r = run_rename(t);
      break;
    case DM_DEVICE_STATUS:
      r = run_table(t, true);
      break;
    case DM_DEVICE_TABLE:
      r = run_table(t, false);
      break;
    case DM_DEVICE_WAITEVENT:
      r = run_wait(t);
      break;
    case DM_DEVICE_TARGET_MSG:
      r = run_message(t);
      break;
    }
    udm_msg_free(&resp);
    if (r < 0)
      return 0;
    /* As the kernel does, every device task answers with the device's info. */
    if (t->type != DM_DEVICE_REMOVE && t->type != DM_DEVICE_RENAME) {
      if (fill_info(t, t->type == DM_DEVICE_INFO) < 0)
        return 0;
    } else {
      memset(&t->info, 0, sizeof t->info);
      t->res_name = strdup(t->name);
    }
  }
  }
  udm_msg_free(&resp);
  if (r < 0)
    return 0;
  t->ran = true;
  return 1;
}
