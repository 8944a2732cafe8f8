/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The scenario interpreter: parse a .scn file and run it against a backend,
 * printing one canonical line per command ("COMMAND -> RESULT", extra output
 * indented by two spaces).  Both sides of the differential test run this very
 * code, so any difference in their output is a difference in behaviour.
 */
#define _GNU_SOURCE
#include "scenario.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#ifdef __linux__
#include <sys/sysmacros.h> /* major(), minor(); sys/types.h has them elsewhere */
#endif
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINES 4096
#define MAX_TOKENS 64
#define IO_ALIGN 4096
#define DIGEST_CHUNK (1u << 20)
#define HEX_MAX 4096

struct line {
  unsigned lineno;
  bool indented;
  char *text;
};

static const struct {
  int err;
  const char *name;
} errno_names[] = {
  {EPERM, "EPERM"}, {ENOENT, "ENOENT"}, {EIO, "EIO"}, {ENXIO, "ENXIO"},
  {E2BIG, "E2BIG"}, {EBADF, "EBADF"}, {EAGAIN, "EAGAIN"}, {ENOMEM, "ENOMEM"},
  {EACCES, "EACCES"}, {EFAULT, "EFAULT"}, {ENOTBLK, "ENOTBLK"}, {EBUSY, "EBUSY"},
  {EEXIST, "EEXIST"}, {EXDEV, "EXDEV"}, {ENODEV, "ENODEV"}, {ENOTDIR, "ENOTDIR"},
  {EISDIR, "EISDIR"}, {EINVAL, "EINVAL"}, {ENFILE, "ENFILE"}, {EMFILE, "EMFILE"},
  {ENOTTY, "ENOTTY"}, {EFBIG, "EFBIG"}, {ENOSPC, "ENOSPC"}, {ESPIPE, "ESPIPE"},
  {EROFS, "EROFS"}, {ERANGE, "ERANGE"}, {EDEADLK, "EDEADLK"}, {ENAMETOOLONG, "ENAMETOOLONG"},
  {ENOSYS, "ENOSYS"}, {ENOTEMPTY, "ENOTEMPTY"}, {ENOMSG, "ENOMSG"}, {ENODATA, "ENODATA"},
  {ETIME, "ETIME"}, {ENOLINK, "ENOLINK"}, {EBADMSG, "EBADMSG"}, {EOVERFLOW, "EOVERFLOW"},
  {EILSEQ, "EILSEQ"}, {EOPNOTSUPP, "EOPNOTSUPP"}, {ETIMEDOUT, "ETIMEDOUT"},
  {ECANCELED, "ECANCELED"},
#ifdef ENOTSUP
  {ENOTSUP, "EOPNOTSUPP"}, /* the same value on Linux; one name for both sides */
#endif
#ifdef EREMOTEIO
  {EREMOTEIO, "EREMOTEIO"},
#endif
#ifdef ENOKEY
  {ENOKEY, "ENOKEY"}, {EKEYREJECTED, "EKEYREJECTED"},
#endif
#ifdef ENOMEDIUM
  {EMEDIUMTYPE, "EMEDIUMTYPE"}, {ENOMEDIUM, "ENOMEDIUM"},
#endif
};

const char *scn_errno_name(int err)
{
  static _Thread_local char buf[32];
  for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
    if (errno_names[i].err == err)
      return errno_names[i].name;
  snprintf(buf, sizeof buf, "E%d", err);
  return buf;
}

int scn_errno_from_text(const char *s)
{
  for (int e = 1; e < 134; e++) {
    char needle[160];
    snprintf(needle, sizeof needle, ": %s", strerror(e));
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) {
      char after = p[strlen(needle)];
      if (after == '\0' || after == '\n' || after == '\r')
        return e;
    }
  }
  return 0;
}

/* ---- the data pattern ---------------------------------------------------- */
/*
 * Byte OFF of pattern SEED: a mix of (seed, off/8), so a misplaced or repeated
 * sector shows.  Writes and verifies start at byte SKIP of the pattern (0
 * unless "SEED+SKIP" is given), so data can be checked wherever it lands;
 * a disk's fill is the pattern from its byte 0.
 */
static uint64_t mix64(uint64_t z)
{
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void pattern_fill(uint8_t *buf, size_t len, uint64_t off, uint64_t seed)
{
  uint64_t word = 0, word_index = UINT64_MAX;
  for (size_t i = 0; i < len; i++) {
    uint64_t at = off + i;
    if (at >> 3 != word_index) {
      word_index = at >> 3;
      word = mix64(seed << 40 ^ word_index);
    }
    buf[i] = (uint8_t)(word >> (8 * (at & 7)));
  }
}

/* ---- parsing helpers ------------------------------------------------------ */
static int parse_size(const char *s, uint64_t *out)
{
  char *end;
  errno = 0;
  if (!*s || *s == '-')
    return -1;
  uint64_t v = strtoull(s, &end, 0);
  if (errno)
    return -1;
  uint64_t mult = 1;
  if (*end == 's')
    mult = 512;
  else if (*end == 'K' || *end == 'k')
    mult = 1ull << 10;
  else if (*end == 'M')
    mult = 1ull << 20;
  else if (*end == 'G')
    mult = 1ull << 30;
  if (mult != 1)
    end++;
  if (*end || v > UINT64_MAX / mult)
    return -1;
  *out = v * mult;
  return 0;
}

/* "SEED" or "SEED+SKIP" (SKIP a size, e.g. 4K). */
static int parse_seed(const char *s, uint64_t *seed, uint64_t *skip)
{
  char buf[64];
  snprintf(buf, sizeof buf, "%s", s);
  char *plus = strchr(buf, '+');
  *skip = 0;
  if (plus) {
    *plus = '\0';
    if (parse_size(plus + 1, skip))
      return -1;
  }
  return parse_size(buf, seed);
}

static int split(char *s, char **tok, int max)
{
  int n = 0;
  for (char *p = strtok(s, " \t"); p; p = strtok(NULL, " \t")) {
    if (n == max)
      return -1;
    tok[n++] = p;
  }
  return n;
}

static void *alloc_io(size_t len)
{
  void *p = NULL;
  if (posix_memalign(&p, IO_ALIGN, len ? len : 1))
    return NULL;
  return p;
}

const struct scn_disk *scn_find_disk(const struct scn_run *run, const char *role)
{
  for (unsigned i = 0; i < run->ndisks; i++)
    if (!strcmp(run->disks[i].role, role))
      return &run->disks[i];
  return NULL;
}

/* ---- output --------------------------------------------------------------- */
static char echo_buf[1024];

static void set_echo(char **tok, int n)
{
  size_t used = 0;
  echo_buf[0] = '\0';
  for (int i = 0; i < n; i++)
    used += (size_t)snprintf(echo_buf + used, used < sizeof echo_buf ? sizeof echo_buf - used : 0,
                             "%s%s", i ? " " : "", tok[i]);
}

static void result(const char *fmt, ...)
{
  va_list ap;
  printf("%s -> ", echo_buf);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

static void result_err(int err)
{
  if (err < 0)
    result("FAILED");
  else
    result("%s", scn_errno_name(err));
}

/* Print TEXT indented, each token canonicalised, trailing blanks dropped. */
static void print_canon_text(const struct scn_backend *be, const char *text)
{
  char *copy = strdup(text ? text : "");
  char *save = NULL;
  for (char *ln = strtok_r(copy, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
    char out[4096];
    size_t used = 0;
    const char *p = ln;
    out[0] = '\0';
    while (*p) {
      if (*p == ' ' || *p == '\t') {
        if (used + 1 < sizeof out)
          out[used++] = *p;
        p++;
        continue;
      }
      size_t len = strcspn(p, " \t");
      char token[512], canon[512];
      snprintf(token, sizeof token, "%.*s", (int)len, p);
      const char *c = be->canon_token ? be->canon_token(be->opaque, token, canon, sizeof canon) : NULL;
      if (!c)
        c = token;
      used += (size_t)snprintf(out + used, sizeof out - used, "%s", c);
      if (used >= sizeof out)
        used = sizeof out - 1;
      p += len;
    }
    while (used && (out[used - 1] == ' ' || out[used - 1] == '\t'))
      used--;
    out[used] = '\0';
    printf("  %s\n", out);
  }
  fflush(stdout);
  free(copy);
}

/* ---- I/O on a target: "$role" (the disk itself) or a mapped device ------- */
struct target {
  const struct scn_disk *disk; /* NULL for a mapped device */
  const char *name;
};

static int resolve_target(const struct scn_run *run, const char *word, struct target *t)
{
  t->disk = NULL;
  t->name = word;
  if (word[0] == '$') {
    t->disk = scn_find_disk(run, word + 1);
    return t->disk ? 0 : -1;
  }
  return 0;
}

static ssize_t target_pread(const struct scn_backend *be, const struct target *t, void *buf,
                            size_t len, uint64_t off)
{
  if (!t->disk)
    return be->dev_pread(be->opaque, t->name, buf, len, off);
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(t->disk->fd, (char *)buf + done, len - done, (off_t)(off + done));
    if (n < 0)
      return -errno;
    if (n == 0)
      break;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

static ssize_t target_pwrite(const struct scn_backend *be, const struct target *t,
                             const void *buf, size_t len, uint64_t off)
{
  if (!t->disk)
    return be->dev_pwrite(be->opaque, t->name, buf, len, off);
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(t->disk->fd, (const char *)buf + done, len - done, (off_t)(off + done));
    if (n < 0)
      return -errno;
    if (n == 0)
      break;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

static int target_size(const struct scn_backend *be, const struct target *t, uint64_t *size)
{
  if (t->disk) {
    *size = t->disk->size;
    return 0;
  }
  return be->dev_size(be->opaque, t->name, size);
}

static void op_digest(const struct scn_backend *be, const struct target *t)
{
  uint64_t size;
  int err = target_size(be, t, &size);
  if (err) {
    result_err(err);
    return;
  }
  uint8_t *buf = alloc_io(DIGEST_CHUNK);
  struct sha256 s;
  sha256_init(&s);
  for (uint64_t off = 0; off < size; off += DIGEST_CHUNK) {
    size_t len = size - off < DIGEST_CHUNK ? (size_t)(size - off) : DIGEST_CHUNK;
    ssize_t n = target_pread(be, t, buf, len, off);
    if (n < 0) {
      free(buf);
      result("%s at %" PRIu64, scn_errno_name((int)-n), off);
      return;
    }
    if ((size_t)n != len) {
      free(buf);
      result("short at %" PRIu64, off + (uint64_t)n);
      return;
    }
    sha256_update(&s, buf, len);
  }
  free(buf);
  uint8_t d[32];
  char hex[65];
  sha256_final(&s, d);
  for (unsigned i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
  result("ok size=%" PRIu64 " sha256:%s", size, hex);
}

enum read_kind { READ_DIGEST, READ_HEX, READ_VERIFY };

static void op_read(const struct scn_backend *be, const struct target *t, uint64_t off,
                    size_t len, enum read_kind kind, bool zero, uint64_t seed, uint64_t skip)
{
  uint8_t *buf = alloc_io(len);
  ssize_t n = target_pread(be, t, buf, len, off);
  if (n < 0) {
    result_err((int)-n);
    free(buf);
    return;
  }
  char shortmsg[48] = "";
  if ((size_t)n != len)
    snprintf(shortmsg, sizeof shortmsg, " short=%zd", n);
  if (kind == READ_DIGEST) {
    char hex[65];
    sha256_hex(buf, (size_t)n, hex);
    result("ok%s sha256:%.16s", shortmsg, hex);
  } else if (kind == READ_HEX) {
    result("ok%s", shortmsg);
    for (size_t i = 0; i < (size_t)n; i += 32) {
      printf("  +%04zx:", i);
      for (size_t j = i; j < i + 32 && j < (size_t)n; j++)
        printf("%s%02x", (j - i) % 8 ? "" : " ", buf[j]);
      putchar('\n');
    }
    fflush(stdout);
  } else {
    uint8_t *want = alloc_io(len);
    if (zero)
      memset(want, 0, len);
    else
      pattern_fill(want, len, skip, seed);
    size_t first = SIZE_MAX, bad = 0;
    for (size_t i = 0; i < (size_t)n; i++)
      if (buf[i] != want[i]) {
        if (first == SIZE_MAX)
          first = i;
        bad++;
      }
    if (!bad)
      result("ok%s match", shortmsg);
    else
      result("ok%s mismatch first=+%zu bytes=%zu", shortmsg, first, bad);
    free(want);
  }
  free(buf);
}

static void op_write(const struct scn_backend *be, const struct target *t, uint64_t off,
                     size_t len, bool zero, uint64_t seed, uint64_t skip)
{
  uint8_t *buf = alloc_io(len);
  if (zero)
    memset(buf, 0, len);
  else
    pattern_fill(buf, len, skip, seed);
  ssize_t n = target_pwrite(be, t, buf, len, off);
  free(buf);
  if (n < 0)
    result_err((int)-n);
  else if ((size_t)n != len)
    result("ok short=%zd", n);
  else
    result("ok");
}

/* ---- disks ------------------------------------------------------------------ */
/* Copy image NAME from the backend's images folder into FD (no larger than SIZE). */
static int copy_image(const struct scn_backend *be, const char *name, int fd, uint64_t size)
{
  char src[1024];
  if (!be->images_dir || strstr(name, ".."))
    return ENOENT;
  snprintf(src, sizeof src, "%s/%s", be->images_dir, name);
  int in = open(src, O_RDONLY);
  if (in < 0)
    return errno;
  uint8_t *buf = alloc_io(DIGEST_CHUNK);
  int err = 0;
  uint64_t off = 0;
  for (;;) {
    ssize_t got = read(in, buf, DIGEST_CHUNK);
    if (got < 0) {
      err = errno;
      break;
    }
    if (got == 0)
      break;
    if (off + (uint64_t)got > size) {
      err = EFBIG;
      break;
    }
    if (pwrite(fd, buf, (size_t)got, (off_t)off) != got) {
      err = EIO;
      break;
    }
    off += (uint64_t)got;
  }
  free(buf);
  close(in);
  return err;
}

/* Attach disk d (its file made) through the backend and open it: it counts from here. */
static int attach_disk(struct scn_run *run, const struct scn_backend *be, struct scn_disk *d)
{
  int err = be->disk_attach(be->opaque, d);
  if (err)
    return err;
  d->fd = open(d->devpath, O_RDWR | be->disk_open_flags);
  if (d->fd < 0)
    return errno;
  run->ndisks++;
  return 0;
}

static int make_disk(struct scn_run *run, const struct scn_backend *be, const char *role,
                     uint64_t size, bool zero, uint64_t seed, const char *image)
{
  if (run->ndisks == SCN_MAX_DISKS || strlen(role) >= sizeof run->disks[0].role ||
      scn_find_disk(run, role))
    return EINVAL;
  struct scn_disk *d = &run->disks[run->ndisks];
  memset(d, 0, sizeof *d);
  d->fd = -1;
  snprintf(d->role, sizeof d->role, "%s", role);
  d->size = size;
  snprintf(d->file, sizeof d->file, "%s/%s.img", run->workdir, role);
  int fd = open(d->file, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    return errno;
  if (ftruncate(fd, (off_t)size) < 0) {
    int err = errno;
    close(fd);
    return err;
  }
  if (image) {
    int err = copy_image(be, image, fd, size);
    if (err) {
      close(fd);
      return err;
    }
  } else if (!zero) {
    uint8_t *buf = alloc_io(DIGEST_CHUNK);
    for (uint64_t off = 0; off < size; off += DIGEST_CHUNK) {
      size_t len = size - off < DIGEST_CHUNK ? (size_t)(size - off) : DIGEST_CHUNK;
      pattern_fill(buf, len, off, seed);
      if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len) {
        free(buf);
        close(fd);
        return EIO;
      }
    }
    free(buf);
  }
  fsync(fd);
  close(fd);
  return attach_disk(run, be, d);
}

/*
 * A second path to disk OTHER: a hard link to its file, attached as a disk
 * of its own (a second loop device over the same file in the VM; another
 * name for the same file in udm), so the two are distinct devices with the
 * same bytes.
 */
static int link_disk(struct scn_run *run, const struct scn_backend *be, const char *role,
                     const char *other)
{
  const struct scn_disk *o = scn_find_disk(run, other);
  if (!o || run->ndisks == SCN_MAX_DISKS || strlen(role) >= sizeof run->disks[0].role ||
      scn_find_disk(run, role))
    return EINVAL;
  struct scn_disk *d = &run->disks[run->ndisks];
  memset(d, 0, sizeof *d);
  d->fd = -1;
  snprintf(d->role, sizeof d->role, "%s", role);
  d->size = o->size;
  snprintf(d->file, sizeof d->file, "%s/%s.img", run->workdir, role);
  if (link(o->file, d->file) < 0)
    return errno;
  return attach_disk(run, be, d);
}

/* ---- exec: a program on this side (in the VM, or on the host for udm) ----------- */
/*
 * TEXT of "--stdin TEXT" is one word: "\n" is a newline, "\xHH" a byte, "\\" a
 * backslash; a final newline is added.  Decoded into OUT, length in *len.
 */
static int decode_input(const char *text, char *out, size_t outsize, size_t *len)
{
  size_t n = 0;
  for (const char *p = text; *p; p++) {
    char c = *p;
    if (c == '\\' && p[1] == 'n') {
      c = '\n';
      p++;
    } else if (c == '\\' && p[1] == '\\') {
      p++;
    } else if (c == '\\' && p[1] == 'x' && p[2] && p[3]) {
      char hex[3] = {p[2], p[3], 0}, *end;
      c = (char)strtoul(hex, &end, 16);
      if (*end)
        return -1;
      p += 3;
    }
    if (n + 2 > outsize)
      return -1;
    out[n++] = c;
  }
  out[n++] = '\n';
  *len = n;
  return 0;
}

static bool child_running(pid_t pid, int *status)
{
  pid_t r = waitpid(pid, status, WNOHANG);
  return r == 0;
}

/*
 * Feed INPUT to the child one line at a time, each only once the child has
 * read the one before: a program that prompts twice ("Passphrase:", "Repeat
 * passphrase:") and does one read() per prompt, as tcplay does, then gets
 * one line per read from a pipe too.  Returns with the child reaped if it
 * exited meanwhile (*reaped set).
 */
static void feed_lines(int wfd, int rfd, const char *input, size_t len, pid_t pid, int *status,
                       bool *reaped)
{
  size_t at = 0;
  while (at < len && !*reaped) {
    const char *nl = memchr(input + at, '\n', len - at);
    size_t chunk = nl ? (size_t)(nl - (input + at)) + 1 : len - at;
    if (write(wfd, input + at, chunk) != (ssize_t)chunk)
      return;
    at += chunk;
    for (;;) {
      int queued = 0;
      if (ioctl(rfd, FIONREAD, &queued) < 0 || queued == 0)
        break;
      if (!child_running(pid, status)) {
        *reaped = true;
        break;
      }
      struct timespec ts = {0, 5 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
}

static void print_indented(const char *text)
{
  const char *p = text;
  while (*p) {
    size_t len = strcspn(p, "\n");
    size_t keep = len;
    while (keep && (p[keep - 1] == ' ' || p[keep - 1] == '\t' || p[keep - 1] == '\r'))
      keep--;
    printf("  %.*s\n", (int)keep, p);
    p += len;
    if (*p)
      p++;
  }
  fflush(stdout);
}

char *scn_read_all(int fd)
{
  size_t cap = 4096, len = 0;
  char *s = malloc(cap);
  lseek(fd, 0, SEEK_SET);
  for (;;) {
    if (len + 1 >= cap)
      s = realloc(s, cap *= 2);
    ssize_t got = read(fd, s + len, cap - len - 1);
    if (got <= 0)
      break;
    len += (size_t)got;
  }
  s[len] = '\0';
  return s;
}

static int scratch_fd(const struct scn_run *run)
{
  char path[600];
  snprintf(path, sizeof path, "%s/exec.XXXXXX", run->workdir);
  int fd = mkstemp(path);
  if (fd >= 0)
    unlink(path);
  return fd;
}

/*
 * Run ARGV (a "$role" word becomes the disk's device: its loop device in the
 * VM, its file for udm) in a new session, so it has no controlling terminal.
 * Prints "ok" or "exit N" / "signal N", then its stdout indented; its stderr
 * goes to ours, prefixed, for the report.  Returns -1 on a harness error.
 */
/*
 * The output of "dmsetup": a disk as $ROLE wherever it shows, as its path
 * (the loop device, the file) or, when it is a block device, as its number
 * "MAJ:MIN" or "MAJ, MIN" (dmsetup deps, ls --tree, table --concise).
 * Lines are printed whole, trailing blanks included: they are compared.
 */
static void print_canonical(const struct scn_run *run, const char *text)
{
  char nums[SCN_MAX_DISKS][2][32];
  struct stat st;
  for (unsigned i = 0; i < run->ndisks; i++) {
    nums[i][0][0] = nums[i][1][0] = '\0';
    if (!stat(run->disks[i].devpath, &st) && S_ISBLK(st.st_mode)) {
      snprintf(nums[i][0], sizeof nums[i][0], "%u:%u", major(st.st_rdev), minor(st.st_rdev));
      snprintf(nums[i][1], sizeof nums[i][1], "%u, %u", major(st.st_rdev), minor(st.st_rdev));
    }
  }
  fputs("  ", stdout);
  for (const char *p = text; *p;) {
    bool replaced = false;
    bool boundary = p == text || !(p[-1] >= '0' && p[-1] <= '9');
    for (unsigned i = 0; i < run->ndisks && !replaced; i++) {
      const char *forms[3] = {run->disks[i].devpath, nums[i][0], nums[i][1]};
      for (unsigned f = 0; f < 3 && !replaced; f++) {
        size_t len = strlen(forms[f]);
        if (!len || strncmp(p, forms[f], len) || (f && !boundary) ||
            (f && p[len] >= '0' && p[len] <= '9'))
          continue;
        printf("$%s", run->disks[i].role);
        p += len;
        replaced = true;
      }
    }
    if (replaced)
      continue;
    putchar(*p);
    if (*p == '\n' && p[1])
      fputs("  ", stdout);
    p++;
  }
  if (*text && text[strlen(text) - 1] != '\n')
    putchar('\n');
  fflush(stdout);
}

static int op_exec(const struct scn_run *run, const struct scn_backend *be, char **words, int n,
                   const char *input_text, bool dmsetup)
{
  char *argv[MAX_TOKENS + 1];
  char opt[MAX_TOKENS][600]; /* "KEY=$role" words (dd of=$disk): KEY=devpath */
  for (int k = 0; k < n; k++) {
    argv[k] = words[k];
    const char *eq = strstr(words[k], "=$");
    if (words[k][0] == '@' && words[k][1] == '/') {
      if (!be->scripts_dir)
        return -1;
      snprintf(opt[k], sizeof opt[k], "%s%s", be->scripts_dir, words[k] + 1);
      argv[k] = opt[k];
    } else if (words[k][0] == '$') {
      const struct scn_disk *d = scn_find_disk(run, words[k] + 1);
      if (!d)
        return -1;
      argv[k] = (char *)d->devpath;
    } else if (eq && words[k][0] != '-') {
      const struct scn_disk *d = scn_find_disk(run, eq + 2);
      if (!d)
        return -1;
      snprintf(opt[k], sizeof opt[k], "%.*s%s", (int)(eq + 1 - words[k]), words[k], d->devpath);
      argv[k] = opt[k];
    }
  }
  argv[n] = NULL;
  if (dmsetup)
    argv[0] = (char *)be->dmsetup_program;
  char input[4096];
  size_t input_len = 0;
  if (input_text && decode_input(input_text, input, sizeof input, &input_len))
    return -1;

  int in[2];
  int out = scratch_fd(run), err = scratch_fd(run);
  if (out < 0 || err < 0 || pipe(in) < 0) {
    result_err(errno);
    return 0;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    result_err(errno);
    return 0;
  }
  if (pid == 0) {
    setsid();
    dup2(in[0], 0);
    dup2(out, 1);
    dup2(err, 2);
    close(in[0]);
    close(in[1]);
    for (const char *const *e = be->exec_env; e && *e; e++)
      putenv((char *)*e);
    execvp(argv[0], argv);
    fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int status = 0;
  bool reaped = false;
  void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
  feed_lines(in[1], in[0], input, input_len, pid, &status, &reaped);
  close(in[1]);
  close(in[0]);
  signal(SIGPIPE, old_pipe);
  while (!reaped && waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  char *out_text = scn_read_all(out), *err_text = scn_read_all(err);
  close(out);
  close(err);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    result("ok");
  else if (WIFEXITED(status))
    result("exit %d", WEXITSTATUS(status));
  else
    result("signal %d", WTERMSIG(status));
  if (dmsetup)
    print_canonical(run, out_text);
  else
    print_indented(out_text);
  if (*err_text) {
    fprintf(stderr, "%s (stderr):\n", echo_buf);
    fputs(err_text, stderr);
    if (err_text[strlen(err_text) - 1] != '\n')
      fputc('\n', stderr);
  }
  free(out_text);
  free(err_text);
  return 0;
}

/* ---- the interpreter ------------------------------------------------------------ */
static void harness_error(const char *path, unsigned lineno, const char *what)
{
  fprintf(stderr, "%s:%u: %s\n", path, lineno, what);
  printf("HARNESS-ERROR %s:%u: %s\n", path, lineno, what);
  fflush(stdout);
}

static void forget_device(struct scn_run *run, const char *name)
{
  for (unsigned i = 0; i < run->ndevices; i++)
    if (!strcmp(run->devices[i], name)) {
      memmove(run->devices[i], run->devices[i + 1],
              (run->ndevices - i - 1) * sizeof run->devices[0]);
      memmove(&run->device_side_only[i], &run->device_side_only[i + 1],
              (run->ndevices - i - 1) * sizeof run->device_side_only[0]);
      run->ndevices--;
      return;
    }
}

static void remember_device(struct scn_run *run, const char *name, bool side_only)
{
  forget_device(run, name);
  if (run->ndevices < SCN_MAX_DEVICES) {
    run->device_side_only[run->ndevices] = side_only;
    snprintf(run->devices[run->ndevices++], sizeof run->devices[0], "%s", name);
  }
}

/* Substitute $role tokens of a table line with the disk's devpath. */
static int substitute(const struct scn_run *run, const char *in, char *out, size_t outsize)
{
  size_t used = 0;
  const char *p = in;
  while (*p == ' ' || *p == '\t')
    p++;
  while (*p) {
    size_t len = strcspn(p, " \t");
    char token[512];
    snprintf(token, sizeof token, "%.*s", (int)len, p);
    const char *rep = token;
    if (token[0] == '$') {
      const struct scn_disk *d = scn_find_disk(run, token + 1);
      if (!d)
        return -1;
      rep = d->devpath;
    }
    used += (size_t)snprintf(out + used, used < outsize ? outsize - used : 0, "%s", rep);
    p += len;
    size_t blanks = strspn(p, " \t");
    if (blanks && p[blanks])
      used += (size_t)snprintf(out + used, used < outsize ? outsize - used : 0, " ");
    p += blanks;
  }
  used += (size_t)snprintf(out + used, used < outsize ? outsize - used : 0, "\n");
  return used < outsize ? 0 : -1;
}

static int run_dm(struct scn_run *run, const struct scn_backend *be, enum scn_dm_verb verb,
                  const char *name, uint64_t sector, const char *text, bool side_only)
{
  char *out = NULL;
  int err = be->dm(be->opaque, verb, name, sector, text, &out);
  if (err) {
    result_err(err);
  } else {
    if (verb == SCN_CREATE)
      remember_device(run, name, side_only);
    if (verb == SCN_REMOVE)
      forget_device(run, name);
    result("ok");
    if (out && *out)
      print_canon_text(be, out);
  }
  free(out);
  return 0;
}

int scn_run_file(const char *path, const char *workdir, const struct scn_backend *be,
                 struct scn_run *run)
{
  memset(run, 0, sizeof *run);
  run->workdir = workdir;
  FILE *f = fopen(path, "r");
  if (!f) {
    harness_error(path, 0, strerror(errno));
    return 2;
  }
  static struct line lines[MAX_LINES];
  unsigned nlines = 0, lineno = 0;
  char *buf = NULL;
  size_t cap = 0;
  ssize_t got;
  while ((got = getline(&buf, &cap, f)) >= 0) {
    lineno++;
    while (got && (buf[got - 1] == '\n' || buf[got - 1] == '\r' || buf[got - 1] == ' ' ||
                   buf[got - 1] == '\t'))
      buf[--got] = '\0';
    char *hash = buf[0] == '#' ? buf : strstr(buf, " #");
    if (!hash)
      hash = strstr(buf, "\t#");
    if (hash)
      *hash = '\0';
    if (strspn(buf, " \t") == strlen(buf))
      continue;
    if (nlines == MAX_LINES) {
      harness_error(path, lineno, "too many lines");
      fclose(f);
      return 2;
    }
    lines[nlines].lineno = lineno;
    lines[nlines].indented = buf[0] == ' ' || buf[0] == '\t';
    lines[nlines].text = strdup(buf);
    nlines++;
  }
  free(buf);
  fclose(f);

  int rc = 0;
  for (unsigned i = 0; i < nlines && !rc; i++) {
    char *tok[MAX_TOKENS];
    char work[4096];
    unsigned ln = lines[i].lineno;
    if (lines[i].indented) {
      harness_error(path, ln, "indented line outside a create/load table");
      rc = 2;
      break;
    }
    snprintf(work, sizeof work, "%s", lines[i].text);
    int n = split(work, tok, MAX_TOKENS);
    if (n <= 0) {
      harness_error(path, ln, "cannot split line");
      rc = 2;
      break;
    }
    set_echo(tok, n);
    /*
     * "kernel: COMMAND" and "udm: COMMAND" run on that side only (a table
     * after it belongs to it).  Their lines keep the prefix, and run-diff
     * leaves them out of the comparison: they set up what the compared
     * commands after them then check.
     */
    bool side_only = false;
    if (!strcmp(tok[0], "kernel:") || !strcmp(tok[0], "udm:")) {
      if (n < 2) {
        harness_error(path, ln, "nothing after kernel:/udm:");
        rc = 2;
        break;
      }
      char mine[16];
      snprintf(mine, sizeof mine, "%s:", be->side ? be->side : "");
      if (!strcmp(tok[1], "disk")) {
        harness_error(path, ln, "disks belong to both sides (no kernel:/udm: before disk)");
        rc = 2;
        break;
      }
      if (strcmp(tok[0], mine)) {
        while (i + 1 < nlines && lines[i + 1].indented)
          i++;
        continue;
      }
      side_only = true;
      memmove(tok, tok + 1, (size_t)(n - 1) * sizeof tok[0]);
      n--;
    }
    const char *cmd = tok[0];
    uint64_t a, b;

    if (!strcmp(cmd, "disk") && n == 3 && !strncmp(tok[2], "path=", 5)) {
      /* disk ROLE path=OTHER: a second path to disk OTHER (multipath) */
      int err = link_disk(run, be, tok[1], tok[2] + 5);
      if (err) {
        harness_error(path, ln, strerror(err));
        rc = 2;
        break;
      }
      result("ok");
    } else if (!strcmp(cmd, "disk")) {
      /* disk ROLE SIZE [fill=SEED|fill=zero|image=NAME] [nodigest] */
      uint64_t seed = 0;
      bool zero = true, nodigest = false;
      const char *image = NULL;
      if (n >= 4 && !strcmp(tok[n - 1], "nodigest")) {
        nodigest = true;
        n--;
      }
      if (n == 4 && !strncmp(tok[3], "image=", 6) && tok[3][6])
        image = tok[3] + 6;
      else if (n < 3 || n > 4 || parse_size(tok[2], &a) ||
               (n == 4 && (strncmp(tok[3], "fill=", 5) ||
                           (strcmp(tok[3] + 5, "zero") && parse_size(tok[3] + 5, &seed))))) {
        harness_error(path, ln,
                      "usage: disk ROLE SIZE [fill=SEED|fill=zero|image=NAME] [nodigest]");
        rc = 2;
        break;
      }
      if (image && parse_size(tok[2], &a)) {
        harness_error(path, ln, "usage: disk ROLE SIZE image=NAME [nodigest]");
        rc = 2;
        break;
      }
      if (n == 4 && !image && strcmp(tok[3] + 5, "zero"))
        zero = false;
      int err = make_disk(run, be, tok[1], a, zero, seed, image);
      if (err) {
        harness_error(path, ln, strerror(err));
        rc = 2;
        break;
      }
      run->disks[run->ndisks - 1].nodigest = nodigest;
      result("ok");
    } else if (!strcmp(cmd, "create") || !strcmp(cmd, "load")) {
      if (n != 2) {
        harness_error(path, ln, "usage: create|load NAME, then the table lines indented");
        rc = 2;
        break;
      }
      char table[16384];
      size_t used = 0;
      table[0] = '\0';
      while (i + 1 < nlines && lines[i + 1].indented) {
        i++;
        if (substitute(run, lines[i].text, table + used, sizeof table - used)) {
          harness_error(path, lines[i].lineno, "unknown $disk or table too long");
          rc = 2;
          break;
        }
        used += strlen(table + used);
      }
      if (rc)
        break;
      run_dm(run, be, cmd[0] == 'c' ? SCN_CREATE : SCN_LOAD, tok[1], 0, table, side_only);
    } else if (!strcmp(cmd, "suspend") || !strcmp(cmd, "resume") || !strcmp(cmd, "remove") ||
               !strcmp(cmd, "table") || !strcmp(cmd, "status") || !strcmp(cmd, "info")) {
      static const struct {
        const char *word;
        enum scn_dm_verb verb;
      } verbs[] = {{"suspend", SCN_SUSPEND}, {"resume", SCN_RESUME}, {"remove", SCN_REMOVE},
                   {"table", SCN_TABLE},     {"status", SCN_STATUS}, {"info", SCN_INFO}};
      if (n != 2) {
        harness_error(path, ln, "usage: VERB NAME");
        rc = 2;
        break;
      }
      for (size_t v = 0; v < sizeof verbs / sizeof verbs[0]; v++)
        if (!strcmp(cmd, verbs[v].word))
          run_dm(run, be, verbs[v].verb, tok[1], 0, NULL, side_only);
    } else if (!strcmp(cmd, "wait")) {
      /* wait NAME EVENT_NR: until the device's event number differs (dmsetup wait) */
      if (n != 3 || parse_size(tok[2], &a)) {
        harness_error(path, ln, "usage: wait NAME EVENT_NR");
        rc = 2;
        break;
      }
      run_dm(run, be, SCN_WAIT, tok[1], a, NULL, side_only);
    } else if (!strcmp(cmd, "exec")) {
      /* exec [--stdin TEXT] PROGRAM ARGS... */
      int first = 1;
      const char *input = NULL;
      if (n >= 3 && !strcmp(tok[1], "--stdin")) {
        input = tok[2];
        first = 3;
      }
      if (first >= n || tok[first][0] == '-') {
        harness_error(path, ln, "usage: exec [--stdin TEXT] PROGRAM ARGS...");
        rc = 2;
        break;
      }
      if (op_exec(run, be, tok + first, n - first, input, false)) {
        harness_error(path, ln, "exec: unknown $disk, no @/ scripts or input too long");
        rc = 2;
        break;
      }
    } else if (!strcmp(cmd, "dmsetup")) {
      /* dmsetup ARGS...: dmsetup in the VM, udm's command line for udm */
      if (n < 2 || !be->dmsetup_program) {
        harness_error(path, ln, n < 2 ? "usage: dmsetup VERB ARGS..."
                                      : "this side has no program for dmsetup");
        rc = 2;
        break;
      }
      if (op_exec(run, be, tok, n, NULL, true)) {
        harness_error(path, ln, "dmsetup: unknown $disk");
        rc = 2;
        break;
      }
    } else if (!strcmp(cmd, "open") || !strcmp(cmd, "close")) {
      /* udm: open [--stdin TEXT] ARGS... | udm: close NAME (udm side only) */
      if (!be->volume_open || !be->volume_close) {
        harness_error(path, ln, "open/close run on the udm side only (udm: open ...); the "
                                "kernel side maps volumes with kernel: exec tcplay/cryptsetup");
        rc = 2;
        break;
      }
      int first = 1, err;
      char secret[4096];
      size_t slen = 0;
      if (n >= 3 && !strcmp(tok[1], "--stdin")) {
        if (decode_input(tok[2], secret, sizeof secret, &slen)) {
          harness_error(path, ln, "open: --stdin TEXT too long");
          rc = 2;
          break;
        }
        slen--; /* the newline decode_input adds */
        first = 3;
      }
      if (cmd[0] == 'c') {
        err = n == 2 ? be->volume_close(be->opaque, tok[1]) : EINVAL;
      } else {
        for (int k = first; k < n; k++)
          if (tok[k][0] == '$') {
            const struct scn_disk *d = scn_find_disk(run, tok[k] + 1);
            if (d)
              tok[k] = (char *)d->devpath;
          }
        err = be->volume_open(be->opaque, tok + first, n - first, secret, slen);
      }
      memset(secret, 0, sizeof secret);
      if (err)
        result_err(err);
      else
        result("ok");
    } else if (!strcmp(cmd, "message")) {
      /* message NAME SECTOR WORDS... */
      if (n < 4 || parse_size(tok[2], &a)) {
        harness_error(path, ln, "usage: message NAME SECTOR WORDS...");
        rc = 2;
        break;
      }
      char msg[1024];
      size_t used = 0;
      msg[0] = '\0';
      for (int k = 3; k < n; k++) {
        /* A $role word names the disk (multipath's fail_path $a). */
        const struct scn_disk *d = tok[k][0] == '$' ? scn_find_disk(run, tok[k] + 1) : NULL;
        used += (size_t)snprintf(msg + used, used < sizeof msg ? sizeof msg - used : 0, "%s%s",
                                 k > 3 ? " " : "", d ? d->devpath : tok[k]);
      }
      run_dm(run, be, SCN_MESSAGE, tok[1], a, msg, side_only);
    } else {
      /* I/O: VERB TARGET [OFF LEN [SEED]] */
      struct target t;
      if (n < 2 || resolve_target(run, tok[1], &t)) {
        harness_error(path, ln, "unknown command, or unknown $disk");
        rc = 2;
        break;
      }
      bool needs_range = strcmp(cmd, "flush") && strcmp(cmd, "digest") && strcmp(cmd, "size") &&
                         strcmp(cmd, "blocksize");
      bool needs_seed = !strcmp(cmd, "write") || !strcmp(cmd, "verify");
      int want = 2 + (needs_range ? 2 : 0) + (needs_seed ? 1 : 0);
      if (n != want || (needs_range && (parse_size(tok[2], &a) || parse_size(tok[3], &b)))) {
        harness_error(path, ln, "wrong arguments (see docs/testing.md)");
        rc = 2;
        break;
      }
      uint64_t seed = 0, skip = 0;
      bool zero = needs_seed && !strcmp(tok[4], "zero");
      if (needs_seed && !zero && parse_seed(tok[4], &seed, &skip)) {
        harness_error(path, ln, "SEED must be a number, NUMBER+SKIP, or \"zero\"");
        rc = 2;
        break;
      }
      if (needs_range &&
          (a % 512 || b % 512)) {
        harness_error(path, ln, "offset and length must be multiples of 512 (O_DIRECT)");
        rc = 2;
        break;
      }
      if (needs_range && (!strcmp(cmd, "read") || !strcmp(cmd, "readhex") ||
                          !strcmp(cmd, "write") || !strcmp(cmd, "verify")) &&
          (b > (64u << 20) || (!strcmp(cmd, "readhex") && b > HEX_MAX))) {
        harness_error(path, ln, "length too large for one operation");
        rc = 2;
        break;
      }
      if (!strcmp(cmd, "write"))
        op_write(be, &t, a, (size_t)b, zero, seed, skip);
      else if (!strcmp(cmd, "read"))
        op_read(be, &t, a, (size_t)b, READ_DIGEST, false, 0, 0);
      else if (!strcmp(cmd, "readhex"))
        op_read(be, &t, a, (size_t)b, READ_HEX, false, 0, 0);
      else if (!strcmp(cmd, "verify"))
        op_read(be, &t, a, (size_t)b, READ_VERIFY, zero, seed, skip);
      else if (!strcmp(cmd, "digest"))
        op_digest(be, &t);
      else if (!strcmp(cmd, "size")) {
        uint64_t size;
        int err = target_size(be, &t, &size);
        if (err)
          result_err(err);
        else
          result("ok %" PRIu64, size);
      } else if (t.disk) {
        harness_error(path, ln, "discard/zeroout/flush/blocksize act on mapped devices only");
        rc = 2;
        break;
      } else if (!strcmp(cmd, "discard") || !strcmp(cmd, "zeroout")) {
        int err = cmd[0] == 'd' ? be->dev_discard(be->opaque, t.name, a, b)
                                : be->dev_zeroout(be->opaque, t.name, a, b);
        if (err)
          result_err(err);
        else
          result("ok");
      } else if (!strcmp(cmd, "flush")) {
        int err = be->dev_flush(be->opaque, t.name);
        if (err)
          result_err(err);
        else
          result("ok");
      } else if (!strcmp(cmd, "blocksize")) {
        unsigned bs = 0;
        int err = be->dev_block_size(be->opaque, t.name, &bs);
        if (err)
          result_err(err);
        else
          result("ok %u", bs);
      } else {
        harness_error(path, ln, "unknown command");
        rc = 2;
        break;
      }
    }
  }

  /* Epilogue, identical on both sides: tear down in reverse, then the disks' final bytes. */
  if (!rc) {
    printf("# end\n");
    while (run->ndevices) {
      char name[128];
      snprintf(name, sizeof name, "%s", run->devices[run->ndevices - 1]);
      char side[16];
      snprintf(side, sizeof side, "%s:", be->side ? be->side : "?");
      char *words[3] = {side, "remove", name};
      bool side_only = run->device_side_only[run->ndevices - 1];
      set_echo(words + !side_only, 3 - !side_only);
      char *out = NULL;
      int err = be->dm(be->opaque, SCN_REMOVE, name, 0, NULL, &out);
      free(out);
      if (err)
        result_err(err);
      else
        result("ok");
      forget_device(run, name); /* even on failure: do not loop */
    }
    for (unsigned d = 0; d < run->ndisks; d++) {
      if (run->disks[d].nodigest)
        continue;
      char word[40];
      snprintf(word, sizeof word, "$%s", run->disks[d].role);
      char *words[2] = {"digest", word};
      set_echo(words, 2);
      struct target t = {&run->disks[d], word};
      op_digest(be, &t);
    }
  }
  for (unsigned d = 0; d < run->ndisks; d++) {
    if (run->disks[d].fd >= 0)
      close(run->disks[d].fd);
    be->disk_detach(be->opaque, &run->disks[d]);
    char keep[1024];
    if (be->save_dir && !rc)
      snprintf(keep, sizeof keep, "%s/%s", be->save_dir, run->disks[d].role);
    if (!be->save_dir || rc || rename(run->disks[d].file, keep) < 0)
      unlink(run->disks[d].file);
  }
  for (unsigned k = 0; k < nlines; k++)
    free(lines[k].text);
  return rc;
}
