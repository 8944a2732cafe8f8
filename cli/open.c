/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udm open / udm close: cryptsetup's verbs for encrypted volumes.  The
 * header is read and the keys derived here, in the client (volumes/); the
 * devices are then made in udmd by ordinary create requests whose tables
 * carry the keys over the owner-only control socket.  Passphrases and keys
 * live in locked memory and are wiped; nothing here prints or logs a key.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <udm/udm.h>

#include "cli.h"
#include "open.h"
#include "secure.h"

/* The most udm reads of a key file or of a passphrase on standard input. */
#define SECRET_MAX (8u << 20)

struct secret {
  char *buf; /* locked */
  size_t len, cap;
};

static int secret_grow(struct secret *s)
{
  size_t cap = s->cap ? s->cap * 2 : 4096;
  char *n = udm_secure_alloc(cap);
  if (!n)
    return -ENOMEM;
  if (s->buf)
    memcpy(n, s->buf, s->len);
  udm_secure_free(s->buf);
  s->buf = n;
  s->cap = cap;
  return 0;
}

/*
 * Read fd into s: everything (a key file), or up to the first newline,
 * which is not kept (a passphrase).  One byte at a time for a line, so
 * nothing after the newline is consumed.
 */
static int secret_read(struct secret *s, int fd, bool line, const char *what)
{
  for (;;) {
    if (s->len == s->cap && secret_grow(s) < 0) {
      cli_error("out of memory");
      return -1;
    }
    size_t want = line ? 1 : s->cap - s->len;
    ssize_t n = read(fd, s->buf + s->len, want);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      cli_error("open: cannot read %s: %s", what, strerror(errno));
      return -1;
    }
    if (n == 0)
      return 0;
    if (line && s->buf[s->len] == '\n') {
      s->buf[s->len] = '\0';
      return 0;
    }
    s->len += (size_t)n;
    if (s->len > SECRET_MAX) {
      cli_error("open: %s is larger than %u bytes", what, SECRET_MAX);
      return -1;
    }
  }
}

static int secret_from_file(struct secret *s, const char *path)
{
  if (!strcmp(path, "-"))
    return secret_read(s, STDIN_FILENO, false, "the key from standard input");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    cli_error("open: cannot open key file %s: %s", path, strerror(errno));
    return -1;
  }
  int r = secret_read(s, fd, false, path);
  close(fd);
  return r;
}

/* A passphrase: from the terminal without echo, else one line of standard input. */
static int secret_passphrase(struct secret *s, const char *source)
{
  if (!isatty(STDIN_FILENO))
    return secret_read(s, STDIN_FILENO, true, "the passphrase from standard input");
  struct termios old, quiet;
  if (tcgetattr(STDIN_FILENO, &old) < 0) {
    cli_error("open: cannot read the terminal's settings: %s", strerror(errno));
    return -1;
  }
  quiet = old;
  quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
  quiet.c_lflag |= ICANON;
  fprintf(stderr, "Enter passphrase for %s: ", source);
  fflush(stderr);
  if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0) {
    cli_error("open: cannot turn off the terminal's echo: %s", strerror(errno));
    return -1;
  }
  int r = secret_read(s, STDIN_FILENO, true, "the passphrase");
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
  fputc('\n', stderr);
  return r;
}

/* A request whose failure is an answer, not an error: 0 success, 1 failure, -1 transport. */
static int ask(struct cli *c, struct udm_msg *req, struct udm_msg *resp)
{
  const char *why = "";
  udm_msg_init(resp);
  if (c->fd < 0 && cli_connect(c) < 0)
    return -1;
  int r = udm_msg_send(c->fd, req);
  if (r == 0)
    r = udm_msg_recv(c->fd, resp, &why);
  if (r != 0) {
    cli_error("lost the connection to udmd: %s", r == -EBADMSG ? why
                                               : r == 1      ? "closed"
                                                             : strerror(-r));
    return -1;
  }
  const char *status = udm_msg_get(resp, "status");
  return status && !strcmp(status, "0") ? 0 : 1;
}

/* The uuid of device NAME into *uuid (malloc'd; NULL when there is no such device). */
static int device_uuid(struct cli *c, const char *name, char **uuid)
{
  struct udm_msg req, resp;
  udm_msg_init(&req);
  *uuid = NULL;
  if (udm_msg_add(&req, "op", "info") < 0 || udm_msg_add(&req, "name", name) < 0) {
    udm_msg_free(&req);
    cli_error("out of memory");
    return -1;
  }
  int r = ask(c, &req, &resp);
  udm_msg_free(&req);
  if (r == 0) {
    const char *u = udm_msg_get(&resp, "uuid");
    *uuid = strdup(u ? u : "");
    if (!*uuid) {
      cli_error("out of memory");
      r = -1;
    }
  } else if (r == 1) {
    const char *e = udm_msg_get(&resp, "errno");
    if (!e || strcmp(e, "ENXIO")) {
      const char *m = udm_msg_get(&resp, "message");
      cli_error("%s", m && *m ? m : "udmd reported a failure without a message");
      r = -1;
    } else {
      r = 0;
    }
  }
  udm_msg_free(&resp);
  return r;
}

/* Wipe every value of a message (the table holds a key), then free it. */
static void msg_free_secret(struct udm_msg *m)
{
  for (unsigned i = 0; i < m->count; i++)
    udm_wipe(m->fields[i].value, strlen(m->fields[i].value));
  udm_msg_free(m);
}

/* Create one device of the plan; the encoded frame is wiped after sending. */
static int create_device(struct cli *c, const struct udm_open_device *d, bool readonly)
{
  struct udm_msg req, resp;
  udm_msg_init(&req);
  udm_msg_init(&resp);
  int r = udm_msg_add(&req, "op", "create");
  if (r == 0)
    r = udm_msg_add(&req, "name", d->name);
  if (r == 0)
    r = udm_msg_add(&req, "uuid", d->uuid);
  if (r == 0 && readonly)
    r = udm_msg_add(&req, "readonly", "1");
  if (r == 0)
    r = udm_msg_add(&req, "table", d->table);
  uint8_t *frame = NULL;
  size_t len = 0;
  if (r == 0)
    r = udm_msg_encode(&req, &frame, &len);
  msg_free_secret(&req);
  if (r < 0) {
    cli_error("out of memory");
    return -1;
  }
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(c->fd, frame + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    done += (size_t)n;
  }
  udm_wipe(frame, len);
  free(frame);
  const char *why = "";
  r = done == len ? udm_msg_recv(c->fd, &resp, &why) : -EPIPE;
  if (r != 0) {
    cli_error("lost the connection to udmd: %s", r == -EBADMSG ? why
                                               : r == 1      ? "closed"
                                                             : strerror(-r));
    return -1;
  }
  const char *status = udm_msg_get(&resp, "status");
  if (!status || strcmp(status, "0")) {
    const char *m = udm_msg_get(&resp, "message");
    cli_error("open: %s", m && *m ? m : "udmd reported a failure without a message");
    r = -1;
  }
  udm_msg_free(&resp);
  return r;
}

static void remove_quietly(struct cli *c, const char *name)
{
  struct udm_msg req, resp;
  udm_msg_init(&req);
  if (udm_msg_add(&req, "op", "remove") == 0 && udm_msg_add(&req, "name", name) == 0 &&
      udm_msg_add(&req, "force", "1") == 0)
    ask(c, &req, &resp), udm_msg_free(&resp);
  udm_msg_free(&req);
}

static bool parse_u64(const char *s, uint64_t *v)
{
  if (!s || !*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 19)
    return false;
  *v = strtoull(s, NULL, 10);
  return true;
}

int verb_open(struct cli *c, struct cli_args *a)
{
  const char *type = cli_opt_val(a, "type") ? cli_opt_val(a, "type") : "luks";
  const char *source = a->pos[0], *name = a->pos[1];
  const char *keyfile = cli_opt_val(a, "key-file");
  bool tc = !strcmp(type, "tcrypt") || !strcmp(type, "veracrypt");
  bool plain = !strcmp(type, "plain");
  if (!udm_open_type_valid(type)) {
    cli_error("open: unknown --type '%s' (luks, luks1, luks2, tcrypt, veracrypt, plain)", type);
    return EXIT_USAGE;
  }
  static const char *const plain_only[] = {"cipher", "key-size", "hash", "offset", "skip",
                                           "size"};
  for (size_t i = 0; i < sizeof plain_only / sizeof plain_only[0]; i++)
    if (!plain && cli_opt_set(a, plain_only[i])) {
      cli_error("open: --%s applies to --type plain only", plain_only[i]);
      return EXIT_USAGE;
    }
  if (!tc && (cli_opt_set(a, "hidden") || cli_opt_set(a, "tcrypt-system"))) {
    cli_error("open: --hidden and --tcrypt-system apply to --type tcrypt and veracrypt only");
    return EXIT_USAGE;
  }
  if (strcmp(type, "veracrypt") && cli_opt_set(a, "veracrypt-pim")) {
    cli_error("open: --veracrypt-pim applies to --type veracrypt only");
    return EXIT_USAGE;
  }

  struct udm_open_request req = {.type = type, .name = name, .device_prefix = "udm:"};
  uint64_t v;
  if (cli_opt_set(a, "veracrypt-pim")) {
    if (!parse_u64(cli_opt_val(a, "veracrypt-pim"), &v) || v > 2147468) {
      cli_error("open: invalid --veracrypt-pim '%s'", cli_opt_val(a, "veracrypt-pim"));
      return EXIT_USAGE;
    }
    req.tcrypt.pim = (unsigned)v;
  }
  req.tcrypt.hidden = cli_opt_set(a, "hidden");
  req.tcrypt.system = cli_opt_set(a, "tcrypt-system");
  req.cipher = cli_opt_val(a, "cipher");
  req.hash = cli_opt_val(a, "hash");
  if (cli_opt_set(a, "key-size")) {
    if (!parse_u64(cli_opt_val(a, "key-size"), &v) || v == 0 || v % 8 || v > 4096) {
      cli_error("open: invalid --key-size '%s' (bits, a multiple of 8)",
                cli_opt_val(a, "key-size"));
      return EXIT_USAGE;
    }
    req.key_bits = (unsigned)v;
  }
  static const char *const sectors[] = {"offset", "skip", "size"};
  uint64_t *dst[] = {&req.offset, &req.skip, &req.size};
  for (size_t i = 0; i < 3; i++)
    if (cli_opt_set(a, sectors[i]) && !parse_u64(cli_opt_val(a, sectors[i]), dst[i])) {
      cli_error("open: invalid --%s '%s' (512-byte sectors)", sectors[i],
                cli_opt_val(a, sectors[i]));
      return EXIT_USAGE;
    }

  char path[PATH_MAX];
  if (!realpath(source, path)) {
    cli_error("open: %s: %s", source, strerror(errno));
    return EXIT_FAIL;
  }
  req.source = path;

  /* Refuse a name in use before the (slow) key derivation. */
  for (unsigned i = 0; i < UDM_TCRYPT_MAX_LEVELS; i++) {
    char n[UDM_NAME_MAX + 16], *uuid;
    if (i)
      snprintf(n, sizeof n, "%s_%u", name, i);
    else
      snprintf(n, sizeof n, "%s", name);
    if (device_uuid(c, n, &uuid) < 0)
      return EXIT_FAIL;
    bool exists = uuid != NULL;
    free(uuid);
    if (exists && (i == 0 || tc)) {
      cli_error("open: device %s already exists", n);
      return EXIT_FAIL;
    }
  }

  struct secret s = {0};
  const char *keyfiles[1] = {keyfile};
  int r;
  if (keyfile && !tc) {
    r = secret_from_file(&s, keyfile);
    req.secret_is_keyfile = plain;
  } else {
    r = secret_passphrase(&s, source);
    if (keyfile) {
      req.tcrypt.keyfiles = keyfiles;
      req.tcrypt.nkeyfiles = 1;
    }
  }
  if (r < 0 || (!s.buf && secret_grow(&s) < 0)) {
    udm_secure_free(s.buf);
    return EXIT_FAIL;
  }
  req.secret = s.buf;
  req.secret_len = s.len;
  struct udm_open_plan *plan = NULL;
  char *err = NULL;
  r = udm_open_plan(&req, &plan, &err);
  udm_secure_free(s.buf);
  if (r < 0) {
    cli_error("%s", err ? err : strerror(-r));
    free(err);
    return EXIT_FAIL;
  }
  int status = EXIT_OK;
  size_t made = 0;
  for (; made < plan->count; made++)
    if (create_device(c, &plan->dev[made], cli_opt_set(a, "readonly")) < 0) {
      status = EXIT_FAIL;
      break;
    }
  if (status != EXIT_OK)
    while (made-- > 0)
      remove_quietly(c, plan->dev[made].name);
  else if (plan->warning)
    fprintf(stderr, "udm: warning: %s\n", plan->warning);
  udm_open_plan_free(plan);
  return status;
}

/* Is uuid U that of a lower device NAME_I made by udm open? */
static bool is_subdev(const char *u, const char *sub)
{
  size_t lu = strlen(u), ls = strlen(sub);
  return !strncmp(u, UDM_OPEN_SUBDEV_PREFIX, strlen(UDM_OPEN_SUBDEV_PREFIX)) && lu > ls + 1 &&
         u[lu - ls - 1] == '-' && !strcmp(u + lu - ls, sub);
}

int verb_close(struct cli *c, struct cli_args *a)
{
  const char *name = a->pos[0];
  char *uuid;
  if (device_uuid(c, name, &uuid) < 0)
    return EXIT_FAIL;
  if (!uuid) {
    cli_error("close: device %s does not exist", name);
    return EXIT_FAIL;
  }
  bool ours = !strncmp(uuid, UDM_OPEN_UUID_PREFIX, strlen(UDM_OPEN_UUID_PREFIX)) &&
              strncmp(uuid, UDM_OPEN_SUBDEV_PREFIX, strlen(UDM_OPEN_SUBDEV_PREFIX));
  free(uuid);
  if (!ours) {
    cli_error("close: %s was not made by 'udm open' (use 'udm remove')", name);
    return EXIT_FAIL;
  }
  struct udm_msg req, resp;
  udm_msg_init(&req);
  if (udm_msg_add(&req, "op", "remove") < 0 || udm_msg_add(&req, "name", name) < 0) {
    udm_msg_free(&req);
    cli_error("out of memory");
    return EXIT_FAIL;
  }
  int r = ask(c, &req, &resp);
  udm_msg_free(&req);
  if (r == 1) {
    const char *m = udm_msg_get(&resp, "message");
    cli_error("close: %s", m && *m ? m : "udmd reported a failure without a message");
  }
  udm_msg_free(&resp);
  if (r != 0)
    return EXIT_FAIL;
  /* The lower devices of a cascade, top down. */
  int status = EXIT_OK;
  for (unsigned i = 1; i < UDM_TCRYPT_MAX_LEVELS; i++) {
    char sub[UDM_NAME_MAX + 16];
    snprintf(sub, sizeof sub, "%s_%u", name, i);
    if (device_uuid(c, sub, &uuid) < 0)
      return EXIT_FAIL;
    bool mine = uuid && is_subdev(uuid, sub);
    free(uuid);
    if (!mine)
      break;
    udm_msg_init(&req);
    if (udm_msg_add(&req, "op", "remove") < 0 || udm_msg_add(&req, "name", sub) < 0) {
      udm_msg_free(&req);
      return EXIT_FAIL;
    }
    r = ask(c, &req, &resp);
    udm_msg_free(&req);
    if (r == 1) {
      const char *m = udm_msg_get(&resp, "message");
      cli_error("close: %s", m && *m ? m : "udmd reported a failure without a message");
      status = EXIT_FAIL;
    }
    udm_msg_free(&resp);
    if (r != 0)
      return EXIT_FAIL;
  }
  return status;
}
