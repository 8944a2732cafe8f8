/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The dmsetup verbs.  Output is what dmsetup prints for the same facts, so
 * scripts written for dmsetup keep working; --json gives the facts to
 * programs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <udm/driver.h>
#include <udm/udm.h>

#include "cli.h"
#include "platform.h"
#include "runtime.h"

/* Tables are read whole; the control protocol caps a message at 16 MiB. */
#define TABLE_MAX (UDM_CTL_MAX_FRAME - 4096)

char *cli_read_text(FILE *f, const char *what)
{
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);
  if (!buf) {
    cli_error("out of memory");
    return NULL;
  }
  for (;;) {
    if (len + 1 == cap) {
      if (cap > TABLE_MAX) {
        cli_error("the table in %s is larger than %u bytes", what, TABLE_MAX);
        free(buf);
        return NULL;
      }
      char *n = realloc(buf, cap * 2);
      if (!n) {
        cli_error("out of memory");
        free(buf);
        return NULL;
      }
      buf = n;
      cap *= 2;
    }
    size_t got = fread(buf + len, 1, cap - 1 - len, f);
    len += got;
    if (got == 0)
      break;
  }
  if (ferror(f)) {
    cli_error("cannot read the table from %s: %s", what, strerror(errno));
    free(buf);
    return NULL;
  }
  buf[len] = '\0';
  if (strlen(buf) != len) {
    cli_error("the table in %s contains a NUL byte", what);
    free(buf);
    return NULL;
  }
  return buf;
}

/* The table from --table TEXT, or a FILE argument, or stdin (as dmsetup). */
static char *table_text(const char *text, const char *file)
{
  if (text) {
    char *t = strdup(text);
    if (!t)
      cli_error("out of memory");
    return t;
  }
  if (!file || strcmp(file, "-") == 0)
    return cli_read_text(stdin, "standard input");
  FILE *f = fopen(file, "r");
  if (!f) {
    cli_error("cannot open table file %s: %s", file, strerror(errno));
    return NULL;
  }
  char *t = cli_read_text(f, file);
  fclose(f);
  return t;
}

/* A request op=OP name=NAME: returns 0 or -1 (message printed). */
int cli_request(struct cli *c, struct udm_msg *req, struct udm_msg *resp)
{
  udm_msg_init(resp);
  if (c->fd < 0 && cli_connect(c) < 0)
    return -1;
  return cli_call(c, req, resp);
}

int cli_new_req(struct udm_msg *req, const char *op, const char *name)
{
  udm_msg_init(req);
  int r = udm_msg_add(req, "op", op);
  if (r == 0 && name)
    r = udm_msg_add(req, "name", name);
  if (r < 0)
    cli_error("out of memory");
  return r;
}

/* Send and forget the answer's payload: the exit status of simple verbs. */
static int simple(struct cli *c, struct udm_msg *req)
{
  struct udm_msg resp;
  int r = cli_request(c, req, &resp);
  udm_msg_free(req);
  udm_msg_free(&resp);
  return r < 0 ? EXIT_FAIL : EXIT_OK;
}

/*
 * SPEC ([FORMAT:]PATH[?options], or udm:NAME) with a relative PATH made
 * absolute: udmd resolves paths from its own directory, not the caller's.
 */
static char *absolute_spec(const char *spec)
{
  if (strncmp(spec, "udm:", 4) == 0 || strncmp(spec, "/dev/mapper/", 12) == 0)
    return strdup(spec);
  size_t fl = 0;
  while ((spec[fl] >= 'a' && spec[fl] <= 'z') || (spec[fl] >= '0' && spec[fl] <= '9') ||
         spec[fl] == '_' || spec[fl] == '-')
    fl++;
  fl = (fl > 0 && spec[fl] == ':') ? fl + 1 : 0;
  if (spec[fl] == '/')
    return strdup(spec);
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd))
    return NULL;
  size_t n = strlen(spec) + strlen(cwd) + 2;
  char *out = malloc(n);
  if (out)
    snprintf(out, n, "%.*s%s/%s", (int)fl, spec, cwd, spec + fl);
  return out;
}

char *cli_image_table(const char *spec)
{
  char *abs = absolute_spec(spec);
  struct udm_ctx *ctx = abs ? udm_ctx_new() : NULL;
  uint64_t bytes = 0;
  char *table = NULL, *word = NULL;
  if (!ctx) {
    cli_error("create --image: out of memory");
  } else if (udm_image_size(ctx, abs, &bytes) < 0) {
    cli_error("create --image: %s", udm_errmsg());
  } else if (bytes < 512) {
    cli_error("create --image: %s holds less than one 512-byte sector", abs);
  } else if (!(word = udm_table_escape(abs))) {
    cli_error("create --image: %s", udm_errmsg());
  } else {
    size_t n = strlen(word) + 64;
    if ((table = malloc(n)))
      snprintf(table, n, "0 %llu linear %s 0", (unsigned long long)(bytes / 512), word);
  }
  free(word);
  free(abs);
  udm_ctx_free(ctx);
  return table;
}

int verb_create(struct cli *c, struct cli_args *a)
{
  const char *name = a->pos[0], *file = a->npos > 1 ? a->pos[1] : NULL;
  const char *text = cli_opt_val(a, "table"), *image = cli_opt_val(a, "image");
  bool notable = cli_opt_set(a, "notable");
  if ((notable || image) && (text || file || (notable && image))) {
    cli_error("create: --notable, --image and a table exclude each other");
    return EXIT_USAGE;
  }
  if (text && file) {
    cli_error("create: give the table with --table or as a file, not both");
    return EXIT_USAGE;
  }
  char *table = notable ? NULL : image ? cli_image_table(image) : table_text(text, file);
  if (!notable && !table)
    return EXIT_FAIL;
  struct udm_msg req;
  int r = cli_new_req(&req, "create", name);
  if (r == 0 && cli_opt_val(a, "uuid"))
    r = udm_msg_add(&req, "uuid", cli_opt_val(a, "uuid"));
  if (r == 0 && cli_opt_set(a, "readonly"))
    r = udm_msg_add(&req, "readonly", "1");
  if (r == 0 && table)
    r = udm_msg_add(&req, "table", table);
  free(table);
  if (r < 0) {
    udm_msg_free(&req);
    return EXIT_FAIL;
  }
  int status = simple(c, &req);
  if (status != EXIT_OK || !cli_opt_set(a, "attach"))
    return status;
  /* As with a refused table, a device that cannot be attached is not left behind. */
  char devpath[256];
  if (cli_attach(c, name, devpath, sizeof devpath) < 0) {
    struct udm_msg rm;
    if (cli_new_req(&rm, "remove", name) == 0 && udm_msg_add(&rm, "force", "1") == 0)
      simple(c, &rm);
    else
      udm_msg_free(&rm);
    return EXIT_FAIL;
  }
  puts(devpath);
  return EXIT_OK;
}

int cli_attach(struct cli *c, const char *name, char *devpath, size_t n)
{
  struct udm_msg req, resp;
  if (cli_new_req(&req, "attach", name) < 0)
    return -1;
  int r = cli_request(c, &req, &resp);
  udm_msg_free(&req);
  const char *dev = r == 0 ? udm_msg_get(&resp, "block_device") : NULL;
  if (r == 0 && (!dev || !*dev)) {
    cli_error("attach %s: udmd did not say which block device it attached", name);
    r = -1;
  }
  if (r == 0)
    snprintf(devpath, n, "%s", dev);
  udm_msg_free(&resp);
  return r;
}

int cli_detach(struct cli *c, const char *name)
{
  struct udm_msg req;
  if (cli_new_req(&req, "detach", name) < 0)
    return -1;
  return simple(c, &req) == EXIT_OK ? 0 : -1;
}

int verb_attach(struct cli *c, struct cli_args *a)
{
  char devpath[256];
  if (cli_attach(c, a->pos[0], devpath, sizeof devpath) < 0)
    return EXIT_FAIL;
  puts(devpath);
  return EXIT_OK;
}

/* ---- detach without a daemon: what a dead udmd left attached ---- */

struct leftovers {
  const char *name;
  const char *dir;
  unsigned detached, busy, failed;
};

static int detach_leftover(void *opaque, const char *devpath, const char *backing)
{
  struct leftovers *l = opaque;
  int r = udm_platform_detach(devpath);
  if (r == 0 || r == -ENXIO) {
    cli_error("detach %s: udmd is not running on %s; detached %s, left attached to %s",
              l->name, l->dir, devpath, backing);
    l->detached++;
  } else if (r == -EBUSY) {
    cli_error("detach %s: udmd is not running on %s; %s is in use (mounted or open) and "
              "will detach when its last user closes it",
              l->name, l->dir, devpath);
    l->busy++;
  } else {
    cli_error("detach %s: %s: %s", l->name, devpath, strerror(-r));
    l->failed++;
  }
  return 0;
}

static int count_attached(void *opaque, const char *devpath, const char *backing)
{
  (void)devpath;
  (void)backing;
  ++*(unsigned *)opaque;
  return 0;
}

/* Whether a udmd holds the lock of dir (alive, if not answering). */
static bool daemon_alive(const char *dir)
{
  char path[PATH_MAX];
  if (udm_runtime_path(path, sizeof path, dir, UDM_LOCK_FILE) < 0)
    return false;
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return false;
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  bool alive = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
  close(fd);
  return alive;
}

static int detach_offline(const char *dir, const char *name)
{
  char file[PATH_MAX], link[PATH_MAX], devdir[PATH_MAX], under[PATH_MAX];
  if (snprintf(file, sizeof file, "%s/%s/%s", dir, UDM_DEV_DIR, name) >= (int)sizeof file ||
      snprintf(link, sizeof link, "%s/block/%s", dir, name) >= (int)sizeof link ||
      snprintf(under, sizeof under, "%s/%s/", dir, UDM_DEV_DIR) >= (int)sizeof under) {
    cli_error("detach %s: the path is too long", name);
    return EXIT_FAIL;
  }
  snprintf(devdir, sizeof devdir, "%s/%s", dir, UDM_DEV_DIR);
  struct leftovers l = {.name = name, .dir = dir};
  int r = udm_platform_foreach_attached(file, detach_leftover, &l);
  if (r < 0) {
    cli_error("detach %s: cannot list attached block devices: %s", name, strerror(-r));
    return EXIT_FAIL;
  }
  if (l.detached + l.busy + l.failed == 0) {
    cli_error("detach %s: udmd is not running on %s, and nothing is attached to %s", name,
              dir, file);
    return EXIT_FAIL;
  }
  unlink(link);
  /* The last leftover gone and no daemon: clear the dead export's mount too. */
  unsigned remaining = 0;
  struct stat st;
  if (stat(devdir, &st) < 0 && errno == ENOTCONN && !daemon_alive(dir) &&
      udm_platform_foreach_attached(under, count_attached, &remaining) == 0 && remaining == 0)
    udm_platform_unmount_stale(devdir);
  return l.busy + l.failed ? EXIT_FAIL : EXIT_OK;
}

int verb_detach(struct cli *c, struct cli_args *a)
{
  const char *name = a->pos[0];
  if (cli_runtime_dir(c) < 0)
    return EXIT_FAIL;
  /* No daemon is started for this: with none, its leftovers are detached here. */
  int fd = cli_connect_socket(c->dir);
  if (fd == -ENOENT || fd == -ECONNREFUSED)
    return detach_offline(c->dir, name);
  if (fd < 0) {
    cli_error("cannot connect to udmd on %s/%s: %s", c->dir, UDM_CONTROL_SOCKET,
              strerror(-fd));
    return EXIT_FAIL;
  }
  if (cli_hello(fd) < 0) {
    close(fd);
    return EXIT_FAIL;
  }
  c->fd = fd;
  return cli_detach(c, name) < 0 ? EXIT_FAIL : EXIT_OK;
}

int verb_remove(struct cli *c, struct cli_args *a)
{
  int status = EXIT_OK;
  for (int i = 0; i < a->npos; i++) {
    struct udm_msg req;
    if (cli_new_req(&req, "remove", a->pos[i]) < 0 ||
        (cli_opt_set(a, "force") && udm_msg_add(&req, "force", "1") < 0)) {
      udm_msg_free(&req);
      return EXIT_FAIL;
    }
    if (simple(c, &req) != EXIT_OK)
      status = EXIT_FAIL;
  }
  return status;
}

int verb_load(struct cli *c, struct cli_args *a)
{
  const char *text = cli_opt_val(a, "table"), *file = a->npos > 1 ? a->pos[1] : NULL;
  if (text && file) {
    cli_error("load: give the table with --table or as a file, not both");
    return EXIT_USAGE;
  }
  char *table = table_text(text, file);
  if (!table)
    return EXIT_FAIL;
  struct udm_msg req;
  int r = cli_new_req(&req, "load", a->pos[0]);
  if (r == 0)
    r = udm_msg_add(&req, "table", table);
  free(table);
  if (r < 0) {
    udm_msg_free(&req);
    return EXIT_FAIL;
  }
  return simple(c, &req);
}

static int each_name(struct cli *c, struct cli_args *a, const char *op)
{
  int status = EXIT_OK;
  for (int i = 0; i < a->npos; i++) {
    struct udm_msg req;
    if (cli_new_req(&req, op, a->pos[i]) < 0)
      return EXIT_FAIL;
    if (simple(c, &req) != EXIT_OK)
      status = EXIT_FAIL;
  }
  return status;
}

int verb_suspend(struct cli *c, struct cli_args *a)
{
  return each_name(c, a, "suspend");
}

int verb_resume(struct cli *c, struct cli_args *a)
{
  return each_name(c, a, "resume");
}

/* ---- the query verbs: the answer is a list of per-device records ---- */

/*
 * Ask op for the named devices (all when none is named) and call fn for
 * each record of the answer: fields [first, end) starting with name=.
 */
typedef void (*record_fn)(struct cli_args *a, const struct udm_msg *m, unsigned first,
                          unsigned end, bool multiple, bool json_first);

const char *cli_field(const struct udm_msg *m, unsigned first, unsigned end,
                      const char *key)
{
  for (unsigned i = first; i < end; i++)
    if (strcmp(m->fields[i].key, key) == 0)
      return m->fields[i].value;
  return "";
}

static int query(struct cli *c, struct cli_args *a, const char *op, record_fn fn,
                 bool (*add_opts)(struct cli_args *, struct udm_msg *))
{
  bool json = cli_opt_set(a, "json");
  bool multiple = a->npos != 1;
  bool any = false;
  int status = EXIT_OK;
  int rounds = a->npos ? a->npos : 1;
  if (json)
    fputs("[", stdout);
  for (int i = 0; i < rounds; i++) {
    struct udm_msg req, resp;
    if (cli_new_req(&req, op, a->npos ? a->pos[i] : NULL) < 0 || (add_opts && !add_opts(a, &req))) {
      udm_msg_free(&req);
      return EXIT_FAIL;
    }
    int r = cli_request(c, &req, &resp);
    udm_msg_free(&req);
    if (r < 0) {
      udm_msg_free(&resp);
      status = EXIT_FAIL;
      continue;
    }
    /* Records begin at each name= after the status fields. */
    unsigned n = resp.count, first = n;
    for (unsigned k = 0; k <= n; k++) {
      if (k < n && strcmp(resp.fields[k].key, "name") != 0)
        continue;
      if (first < k) {
        fn(a, &resp, first, k, multiple, !any);
        any = true;
      }
      first = k;
    }
    udm_msg_free(&resp);
  }
  if (json)
    fputs("]\n", stdout);
  else if (!any && a->npos == 0 && status == EXIT_OK)
    puts("No devices found");
  return status;
}

static bool add_table_opts(struct cli_args *a, struct udm_msg *req)
{
  if (cli_opt_set(a, "showkeys") && udm_msg_add(req, "showkeys", "1") < 0)
    return false;
  if (cli_opt_set(a, "inactive") && udm_msg_add(req, "inactive", "1") < 0)
    return false;
  return true;
}

/* "0 2048 linear /dev/x 0" as a JSON object. */
static void json_segment(const char *line, size_t len)
{
  char *copy = strndup(line, len);
  if (!copy)
    return;
  char *save = NULL;
  char *start = strtok_r(copy, " ", &save), *length = strtok_r(NULL, " ", &save);
  char *target = strtok_r(NULL, " ", &save);
  char *args = save ? save : (char *)"";
  size_t al = strlen(args);
  while (al && (args[al - 1] == ' ' || args[al - 1] == '\n'))
    args[--al] = '\0';
  printf("{\"start\": %s, \"length\": %s, \"target\": ", start ? start : "0",
         length ? length : "0");
  json_str(stdout, target ? target : "");
  fputs(", \"args\": ", stdout);
  json_str(stdout, args);
  fputs("}", stdout);
  free(copy);
}

/*
 * dmsetup prints "START LENGTH TYPE " and then the parameters, so a line
 * without parameters ends in a blank: libudm's table text does not.
 */
bool cli_line_needs_blank(const char *line, size_t len)
{
  unsigned words = 0;
  for (size_t i = 0; i < len; i++)
    if (line[i] != ' ' && (i == 0 || line[i - 1] == ' '))
      words++;
  return words == 3 && len && line[len - 1] != ' ';
}

/* Whether a table or status line is of the --target type (all are without one). */
static bool of_target(const struct cli_args *a, const char *line)
{
  const char *want = cli_opt_val(a, "target");
  char type[128] = "";
  if (!want)
    return true;
  return sscanf(line, "%*s %*s %127s", type) == 1 && strcmp(type, want) == 0;
}

static void print_lines(struct cli_args *a, const struct udm_msg *m, unsigned first,
                        unsigned end, bool multiple, bool json_first, const char *key)
{
  const char *name = cli_field(m, first, end, "name"), *text = cli_field(m, first, end, key);
  if (cli_opt_set(a, "json")) {
    fputs(json_first ? "\n  {\"name\": " : ",\n  {\"name\": ", stdout);
    json_str(stdout, name);
    fputs(", \"segments\": [", stdout);
    bool firstseg = true;
    for (const char *p = text; *p;) {
      const char *nl = strchr(p, '\n');
      size_t len = nl ? (size_t)(nl - p) : strlen(p);
      if (len && of_target(a, p)) {
        fputs(firstseg ? "" : ", ", stdout);
        json_segment(p, len);
        firstseg = false;
      }
      p += len + (nl ? 1 : 0);
    }
    fputs("]}", stdout);
    return;
  }
  /* dmsetup prints one line even for a device without a table (none for --target). */
  if (!*text && !cli_opt_set(a, "target")) {
    if (multiple)
      printf("%s: ", name);
    putchar('\n');
    return;
  }
  for (const char *p = text; *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (of_target(a, p)) {
      if (multiple)
        printf("%s: ", name);
      printf("%.*s%s\n", (int)len, p, cli_line_needs_blank(p, len) ? " " : "");
    }
    p += len + (nl ? 1 : 0);
  }
}

static void table_record(struct cli_args *a, const struct udm_msg *m, unsigned first,
                         unsigned end, bool multiple, bool json_first)
{
  print_lines(a, m, first, end, multiple, json_first, "table");
}

static void status_record(struct cli_args *a, const struct udm_msg *m, unsigned first,
                          unsigned end, bool multiple, bool json_first)
{
  print_lines(a, m, first, end, multiple, json_first, "status");
}

int verb_table(struct cli *c, struct cli_args *a)
{
  return query(c, a, "table", table_record, add_table_opts);
}

int verb_status(struct cli *c, struct cli_args *a)
{
  return query(c, a, "status", status_record, add_table_opts);
}

static bool add_measure_opts(struct cli_args *a, struct udm_msg *req)
{
  return add_table_opts(a, req) && udm_msg_add(req, "measure", "1") >= 0;
}

/* dmsetup measure: the status query with the IMA flag, printed as status is. */
int verb_measure(struct cli *c, struct cli_args *a)
{
  return query(c, a, "status", status_record, add_measure_opts);
}

static bool yes(const struct udm_msg *m, unsigned first, unsigned end, const char *key)
{
  return strcmp(cli_field(m, first, end, key), "1") == 0;
}

static void info_record(struct cli_args *a, const struct udm_msg *m, unsigned first,
                        unsigned end, bool multiple, bool json_first)
{
  (void)multiple;
  const char *name = cli_field(m, first, end, "name"), *uuid = cli_field(m, first, end, "uuid");
  bool live = yes(m, first, end, "live_table"), inactive = yes(m, first, end, "inactive_table");
  bool suspended = yes(m, first, end, "suspended"), ro = yes(m, first, end, "readonly");
  const char *tables = live && inactive ? "LIVE & INACTIVE"
                       : live           ? "LIVE"
                       : inactive       ? "INACTIVE"
                                        : "None";
  const char *minor = cli_field(m, first, end, "minor");
  const char *blockdev = cli_field(m, first, end, "block_device");
  const char *bad_hits = cli_field(m, first, end, "bad_block_hits");
  if (!*bad_hits)
    bad_hits = "0";
  const char *block_size = cli_field(m, first, end, "logical_block_size");
  if (!*block_size) /* a udmd from before the field */
    block_size = "512";
  if (cli_opt_set(a, "json")) {
    fputs(json_first ? "\n  {\"name\": " : ",\n  {\"name\": ", stdout);
    json_str(stdout, name);
    fputs(", \"uuid\": ", stdout);
    json_str(stdout, uuid);
    printf(", \"state\": \"%s\", \"suspended\": %s, \"read_only\": %s, "
           "\"read_ahead\": %d, \"tables_present\": \"%s\", \"live_table\": %s, "
           "\"inactive_table\": %s, \"open_count\": %s, \"event_nr\": %s, "
           "\"major\": %d, \"minor\": %s, \"target_count\": %s, \"holders\": %s, "
           "\"size\": %s",
           suspended ? "SUSPENDED" : "ACTIVE", suspended ? "true" : "false",
           ro ? "true" : "false", UDM_CLI_READ_AHEAD, tables, live ? "true" : "false",
           inactive ? "true" : "false", cli_field(m, first, end, "open_count"),
           cli_field(m, first, end, "event_nr"), UDM_CLI_MAJOR, minor,
           cli_field(m, first, end, "target_count"), cli_field(m, first, end, "holders"),
           cli_field(m, first, end, "size"));
    fputs(", \"block_device\": ", stdout);
    if (*blockdev)
      json_str(stdout, blockdev);
    else
      fputs("null", stdout);
    printf(", \"direct_io\": %s, \"bad_block_hits\": %s, \"logical_block_size\": %s}",
           yes(m, first, end, "direct_io") ? "true" : "false", bad_hits, block_size);
    return;
  }
  printf("Name:              %s\n", name);
  printf("State:             %s%s\n", suspended ? "SUSPENDED" : "ACTIVE",
         ro ? " (READ-ONLY)" : "");
  printf("Read Ahead:        %d\n", UDM_CLI_READ_AHEAD);
  printf("Tables present:    %s\n", tables);
  /* As in the kernel, where a table using a device holds it open. */
  printf("Open count:        %lu\n", strtoul(cli_field(m, first, end, "open_count"), NULL, 10) +
                                          strtoul(cli_field(m, first, end, "holders"), NULL, 10));
  printf("Event number:      %s\n", cli_field(m, first, end, "event_nr"));
  printf("Major, minor:      %d, %s\n", UDM_CLI_MAJOR, minor);
  printf("Number of targets: %s\n", cli_field(m, first, end, "target_count"));
  if (*blockdev)
    printf("Block device:      %s\n", blockdev);
  /* Only when not dmsetup's implied 512, like the lines around it. */
  if (strcmp(block_size, "512") != 0)
    printf("Logical block size: %s\n", block_size);
  /* Only for devices whose image reported bad blocks: dmsetup has no such line. */
  if (strcmp(bad_hits, "0") != 0)
    printf("Bad blocks hit:    %s\n", bad_hits);
  if (*uuid)
    printf("UUID: %s\n", uuid);
  putchar('\n');
}

int verb_info(struct cli *c, struct cli_args *a)
{
  return query(c, a, "info", info_record, NULL);
}

static void ls_record(struct cli_args *a, const struct udm_msg *m, unsigned first,
                      unsigned end, bool multiple, bool json_first)
{
  (void)multiple;
  const char *name = cli_field(m, first, end, "name"), *minor = cli_field(m, first, end, "minor");
  if (cli_opt_set(a, "json")) {
    fputs(json_first ? "\n  {\"name\": " : ",\n  {\"name\": ", stdout);
    json_str(stdout, name);
    printf(", \"major\": %d, \"minor\": %s}", UDM_CLI_MAJOR, minor);
    return;
  }
  /* -o devname, blkdevname: dmsetup's names; a device not attached keeps its number. */
  const char *o = cli_opt_val(a, "options"), *blockdev = cli_field(m, first, end, "block_device");
  if (o && !strcmp(o, "devname"))
    printf("%s\t(%s)\n", name, name);
  else if (o && !strcmp(o, "blkdevname") && *blockdev)
    printf("%s\t(%s)\n", name, strrchr(blockdev, '/') ? strrchr(blockdev, '/') + 1 : blockdev);
  else
    printf("%s\t(%d:%s)\n", name, UDM_CLI_MAJOR, minor);
}

/* ls --target TYPE: the devices whose live table has a TYPE line, as "NAME\t(253, MINOR)". */
static int ls_target(struct cli *c, struct cli_args *a)
{
  struct udm_msg req, tables, infos;
  int r = cli_new_req(&req, "table", NULL);
  if (r == 0)
    r = cli_request(c, &req, &tables);
  udm_msg_free(&req);
  if (r == 0 && (r = cli_new_req(&req, "info", NULL)) == 0) {
    r = cli_request(c, &req, &infos);
    udm_msg_free(&req);
  } else {
    udm_msg_init(&infos);
  }
  bool json = cli_opt_set(a, "json"), any = false;
  if (r == 0 && json)
    fputs("[", stdout);
  for (unsigned k = 0; r == 0 && k + 1 < tables.count; k++) {
    if (strcmp(tables.fields[k].key, "name") || strcmp(tables.fields[k + 1].key, "table"))
      continue;
    const char *name = tables.fields[k].value;
    bool match = false;
    for (const char *p = tables.fields[k + 1].value; *p && !match;) {
      match = of_target(a, p);
      const char *nl = strchr(p, '\n');
      p = nl ? nl + 1 : p + strlen(p);
    }
    const char *minor = NULL;
    for (unsigned i = 0; i + 1 < infos.count && !minor; i++)
      if (!strcmp(infos.fields[i].key, "name") && !strcmp(infos.fields[i].value, name))
        for (unsigned j = i + 1; j < infos.count && strcmp(infos.fields[j].key, "name"); j++)
          if (!strcmp(infos.fields[j].key, "minor"))
            minor = infos.fields[j].value;
    if (!match || !minor)
      continue;
    if (json) {
      fputs(any ? ",\n  {\"name\": " : "\n  {\"name\": ", stdout);
      json_str(stdout, name);
      printf(", \"major\": %d, \"minor\": %s}", UDM_CLI_MAJOR, minor);
    } else {
      printf("%s\t(%d, %s)\n", name, UDM_CLI_MAJOR, minor);
    }
    any = true;
  }
  if (r == 0 && json)
    fputs("]\n", stdout);
  udm_msg_free(&tables);
  udm_msg_free(&infos);
  return r < 0 ? EXIT_FAIL : EXIT_OK;
}

int verb_ls(struct cli *c, struct cli_args *a)
{
  const char *o = cli_opt_val(a, "options");
  if (o && strcmp(o, "devno") && strcmp(o, "devname") && strcmp(o, "blkdevname")) {
    cli_error("ls: option -o %s: expected devno, devname or blkdevname (tree options go "
              "with --tree)", o);
    return EXIT_USAGE;
  }
  if (cli_opt_val(a, "target"))
    return ls_target(c, a);
  return query(c, a, "info", ls_record, NULL);
}

int verb_message(struct cli *c, struct cli_args *a)
{
  const char *sector = a->pos[1];
  size_t len = 1;
  for (int i = 2; i < a->npos; i++)
    len += strlen(a->pos[i]) + 1;
  char *msg = calloc(1, len);
  if (!msg) {
    cli_error("out of memory");
    return EXIT_FAIL;
  }
  for (int i = 2; i < a->npos; i++) {
    if (i > 2)
      strcat(msg, " ");
    strcat(msg, a->pos[i]);
  }
  struct udm_msg req, resp;
  int r = cli_new_req(&req, "message", a->pos[0]);
  if (r == 0)
    r = udm_msg_add(&req, "sector", sector);
  if (r == 0)
    r = udm_msg_add(&req, "message", msg);
  free(msg);
  if (r < 0) {
    udm_msg_free(&req);
    return EXIT_FAIL;
  }
  r = cli_request(c, &req, &resp);
  udm_msg_free(&req);
  if (r == 0) {
    const char *reply = udm_msg_get(&resp, "reply");
    if (reply && *reply) {
      if (reply[strlen(reply) - 1] == '\n')
        fputs(reply, stdout);
      else
        puts(reply);
    }
  }
  udm_msg_free(&resp);
  return r < 0 ? EXIT_FAIL : EXIT_OK;
}

/*
 * dmsetup wait: sleep until NAME's event number differs from EVENT_NR
 * (0 when not given, as dmsetup; the kernel compares for inequality,
 * which is "exceeds" until the 32-bit counter wraps).  Prints nothing.
 */
/*
 * Ctrl-C ends a wait even where SIGINT came ignored (a background job of a
 * script): die of it, silently; udmd sees the connection close and lets go.
 */
static void wait_interrupted(int sig)
{
  signal(sig, SIG_DFL);
  raise(sig);
}

int verb_wait(struct cli *c, struct cli_args *a)
{
  signal(SIGINT, wait_interrupted);
  if (cli_opt_set(a, "progress")) {
    if (a->npos > 1) {
      cli_error("wait --progress NAME takes no EVENT_NR");
      return EXIT_USAGE;
    }
    return cli_wait_progress(c, a->pos[0]);
  }
  const char *nr = a->npos > 1 ? a->pos[1] : "0";
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(nr, &end, 10);
  if (!*nr || *end || *nr < '0' || *nr > '9' || errno || v > UINT32_MAX) {
    cli_error("wait: invalid event number '%s' (0 to 4294967295)", nr);
    return EXIT_USAGE;
  }
  struct udm_msg req, resp;
  int r = cli_new_req(&req, "wait", a->pos[0]);
  if (r == 0)
    r = udm_msg_addf(&req, "event_nr", "%llu", v);
  if (r < 0) {
    udm_msg_free(&req);
    return EXIT_FAIL;
  }
  r = cli_request(c, &req, &resp);
  udm_msg_free(&req);
  udm_msg_free(&resp);
  return r < 0 ? EXIT_FAIL : EXIT_OK;
}

int cli_targets(struct cli *c, struct udm_msg *resp)
{
  struct udm_msg req;
  if (cli_new_req(&req, "targets", NULL) < 0)
    return -1;
  int r = cli_request(c, &req, resp);
  udm_msg_free(&req);
  if (r < 0) {
    udm_msg_free(resp);
    return -1;
  }
  return 0;
}

void cli_print_target(const char *name, const char *version, bool json, bool first)
{
  if (json) {
    unsigned v[3] = {0, 0, 0};
    sscanf(version, "%u.%u.%u", &v[0], &v[1], &v[2]);
    fputs(first ? "\n  {\"name\": " : ",\n  {\"name\": ", stdout);
    json_str(stdout, name);
    printf(", \"version\": [%u, %u, %u]}", v[0], v[1], v[2]);
  } else {
    printf("%-16s v%s\n", name, version);
  }
}

int verb_targets(struct cli *c, struct cli_args *a)
{
  struct udm_msg resp;
  if (cli_targets(c, &resp) < 0)
    return EXIT_FAIL;
  bool json = cli_opt_set(a, "json"), first = true;
  if (json)
    fputs("[", stdout);
  for (unsigned i = 0; i + 1 < resp.count; i++) {
    if (strcmp(resp.fields[i].key, "target") != 0 ||
        strcmp(resp.fields[i + 1].key, "version") != 0)
      continue;
    cli_print_target(resp.fields[i].value, resp.fields[i + 1].value, json, first);
    first = false;
  }
  if (json)
    fputs("]\n", stdout);
  udm_msg_free(&resp);
  return EXIT_OK;
}

int verb_version(struct cli *c, struct cli_args *a)
{
  struct udm_msg req, resp;
  if (cli_new_req(&req, "version", NULL) < 0)
    return EXIT_FAIL;
  int r = cli_request(c, &req, &resp);
  udm_msg_free(&req);
  const char *driver = r == 0 ? udm_msg_get(&resp, "library") : NULL;
  const char *protocol = r == 0 ? udm_msg_get(&resp, "protocol") : NULL;
  if (cli_opt_set(a, "json")) {
    printf("{\"library\": \"%s\", \"driver\": ", UDM_VERSION_STRING);
    if (driver)
      json_str(stdout, driver);
    else
      fputs("null", stdout);
    printf(", \"protocol\": %s}\n", protocol ? protocol : "null");
  } else {
    printf("Library version:   %s\n", UDM_VERSION_STRING);
    if (driver)
      printf("Driver version:    %s\n", driver);
  }
  udm_msg_free(&resp);
  return r < 0 ? EXIT_FAIL : EXIT_OK;
}

/* Percent-encode what an NBD URI cannot hold literally. */
static void uri_escape(FILE *f, const char *s, bool keep_slash)
{
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        strchr("-._~", *p) || (keep_slash && *p == '/'))
      fputc(*p, f);
    else
      fprintf(f, "%%%02X", *p);
  }
}

void cli_print_uri(FILE *f, const char *dir, const char *name)
{
  fputs("nbd+unix:///", f);
  uri_escape(f, name, false);
  fputs("?socket=", f);
  uri_escape(f, dir, true);
  fputs("/" UDM_NBD_SOCKET, f);
}

char *cli_uri(const char *dir, const char *name)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f)
    return NULL;
  cli_print_uri(f, dir, name);
  fclose(f);
  return buf;
}

int verb_uri(struct cli *c, struct cli_args *a)
{
  if (cli_runtime_dir(c) < 0)
    return EXIT_FAIL;
  cli_print_uri(stdout, c->dir, a->pos[0]);
  putchar('\n');
  return EXIT_OK;
}

void cli_records(const struct udm_msg *m,
                 void (*fn)(void *opaque, const struct udm_msg *m, unsigned first, unsigned end),
                 void *opaque)
{
  unsigned n = m->count, first = n;
  for (unsigned k = 0; k <= n; k++) {
    if (k < n && strcmp(m->fields[k].key, "name") != 0)
      continue;
    if (first < k)
      fn(opaque, m, first, k);
    first = k;
  }
}
