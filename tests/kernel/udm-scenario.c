/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udm-scenario: the udm side of the kernel differential test.  Runs a .scn
 * file against libudm in-process: disks are plain files named in tables by
 * path, dm commands are udm_* calls, I/O is udm_device_pread/pwrite/...
 * Prints exactly what scenario-io prints in the VM for the same behaviour.
 *
 *   udm-scenario SCENARIO.scn [WORKDIR]
 *
 * For the "dmsetup ARGS" command it serves its context on a control socket
 * of its own (udmd's control code, without the FUSE export), and runs udm's
 * command line ($UDM_CLI) against it.
 */
#define _GNU_SOURCE
#include "scenario.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <udm/udm.h>

#include "control.h"
#include "open.h"

struct udm_side {
  struct udm_ctx *ctx;
  struct scn_run run;
};

/* The errno of a failed udm call, its message to stderr for the report. */
static int failed(const char *call, const char *name)
{
  int err = udm_errno();
  if (!err)
    err = errno ? errno : -1;
  fprintf(stderr, "%s %s: %s\n", call, name, udm_errmsg());
  return err;
}

static int udm_disk_attach(void *opaque, struct scn_disk *disk)
{
  (void)opaque;
  char *abs = realpath(disk->file, NULL);
  if (!abs)
    return errno;
  snprintf(disk->devpath, sizeof disk->devpath, "%s", abs);
  free(abs);
  return 0;
}

static void udm_disk_detach(void *opaque, struct scn_disk *disk)
{
  (void)opaque;
  (void)disk;
}

static int udm_dm(void *opaque, enum scn_dm_verb verb, const char *name, uint64_t sector,
                  const char *text, char **out)
{
  struct udm_side *side = opaque;
  struct udm_device *dev;
  int rc = 0;
  *out = NULL;

  if (verb == SCN_CREATE) {
    /* As dmsetup create: make the device, load, resume; undo on failure. */
    dev = udm_device_create(side->ctx, name, NULL, 0);
    if (!dev)
      return failed("udm_device_create", name);
    if (udm_table_load(dev, text) < 0)
      rc = failed("udm_table_load", name);
    else if (udm_device_resume(dev) < 0)
      rc = failed("udm_device_resume", name);
    if (rc)
      udm_device_remove(dev, 0);
    udm_device_unref(dev);
    return rc;
  }

  dev = udm_device_lookup(side->ctx, name);
  if (!dev)
    return failed("udm_device_lookup", name);
  switch (verb) {
  case SCN_CREATE:
    break;
  case SCN_LOAD:
    if (udm_table_load(dev, text) < 0)
      rc = failed("udm_table_load", name);
    break;
  case SCN_SUSPEND:
    if (udm_device_suspend(dev, 0) < 0)
      rc = failed("udm_device_suspend", name);
    break;
  case SCN_RESUME:
    if (udm_device_resume(dev) < 0)
      rc = failed("udm_device_resume", name);
    break;
  case SCN_REMOVE:
    if (udm_device_remove(dev, 0) < 0)
      rc = failed("udm_device_remove", name);
    break;
  case SCN_TABLE:
    if (udm_device_table(dev, 0, out) < 0)
      rc = failed("udm_device_table", name);
    break;
  case SCN_STATUS:
    if (udm_device_status(dev, 0, out) < 0)
      rc = failed("udm_device_status", name);
    break;
  case SCN_MESSAGE:
    if (udm_device_message(dev, sector, text, out) < 0)
      rc = failed("udm_device_message", name);
    break;
  case SCN_WAIT:
    /* dmsetup wait has no timeout; a minute stands in for the VM's scenario timeout. */
    if (udm_device_wait_event(dev, (uint32_t)sector, 60000) < 0)
      rc = failed("udm_device_wait_event", name);
    break;
  case SCN_INFO: {
    struct udm_info info;
    if (udm_device_info(dev, &info) < 0) {
      rc = failed("udm_device_info", name);
      break;
    }
    *out = malloc(128);
    snprintf(*out, 128, "live=%d inactive=%d suspended=%d readonly=%d", info.live_table ? 1 : 0,
             info.inactive_table ? 1 : 0, info.suspended ? 1 : 0, info.readonly ? 1 : 0);
    break;
  }
  }
  udm_device_unref(dev);
  return rc;
}

static struct udm_device *lookup(struct udm_side *side, const char *name, int *err)
{
  struct udm_device *dev = udm_device_lookup(side->ctx, name);
  if (!dev)
    *err = failed("udm_device_lookup", name);
  return dev;
}

static ssize_t udm_pread_op(void *opaque, const char *name, void *buf, size_t len, uint64_t off)
{
  int err = 0;
  struct udm_device *dev = lookup(opaque, name, &err);
  if (!dev)
    return -err;
  ssize_t rc = (ssize_t)len;
  if (udm_device_pread(dev, buf, len, off) < 0)
    rc = -failed("udm_device_pread", name);
  udm_device_unref(dev);
  return rc;
}

static ssize_t udm_pwrite_op(void *opaque, const char *name, const void *buf, size_t len,
                             uint64_t off)
{
  int err = 0;
  struct udm_device *dev = lookup(opaque, name, &err);
  if (!dev)
    return -err;
  ssize_t rc = (ssize_t)len;
  if (udm_device_pwrite(dev, buf, len, off, 0) < 0)
    rc = -failed("udm_device_pwrite", name);
  udm_device_unref(dev);
  return rc;
}

static int udm_discard_op(void *opaque, const char *name, uint64_t off, uint64_t len)
{
  int err = 0;
  struct udm_device *dev = lookup(opaque, name, &err);
  if (!dev)
    return err;
  if (udm_device_discard(dev, len, off, 0) < 0)
    err = failed("udm_device_discard", name);
  udm_device_unref(dev);
  return err;
}

static int udm_zeroout_op(void *opaque, const char *name, uint64_t off, uint64_t len)
{
  int err = 0;
  struct udm_device *dev = lookup(opaque, name, &err);
  if (!dev)
    return err;
  if (udm_device_write_zeroes(dev, len, off, 0) < 0)
    err = failed("udm_device_write_zeroes", name);
  udm_device_unref(dev);
  return err;
}

static int udm_flush_op(void *opaque, const char *name)
{
  int err = 0;
  struct udm_device *dev = lookup(opaque, name, &err);
  if (!dev)
    return err;
  if (udm_device_flush(dev) < 0)
    err = failed("udm_device_flush", name);
  udm_device_unref(dev);
  return err;
}

static int udm_size_op(void *opaque, const char *name, uint64_t *size)
{
  int err = 0;
  struct udm_device *dev = lookup(opaque, name, &err);
  if (!dev)
    return err;
  *size = udm_device_size(dev);
  udm_device_unref(dev);
  return 0;
}

static int udm_block_size_op(void *opaque, const char *name, unsigned *bytes)
{
  int err = 0;
  struct udm_device *dev = lookup(opaque, name, &err);
  if (!dev)
    return err;
  *bytes = udm_device_block_size(dev);
  udm_device_unref(dev);
  return 0;
}

/*
 * "udm: open": the CLI's udm open without the daemon.  The same plan
 * (volumes/open.c) is made into devices in-process.
 */
static int udm_volume_open(void *opaque, char **argv, int argc, const char *secret, size_t len)
{
  struct udm_side *side = opaque;
  struct udm_open_request req = {.type = "luks", .secret = secret, .secret_len = len,
                                 .device_prefix = "udm:"};
  const char *pos[2], *keyfile = NULL;
  int npos = 0;
  bool readonly = false;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    bool more = i + 1 < argc;
    if (!strcmp(a, "--type") && more)
      req.type = argv[++i];
    else if (!strcmp(a, "--key-file") && more)
      keyfile = argv[++i];
    else if (!strcmp(a, "--veracrypt-pim") && more)
      req.tcrypt.pim = (unsigned)strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--hidden"))
      req.tcrypt.hidden = true;
    else if (!strcmp(a, "--tcrypt-system"))
      req.tcrypt.system = true;
    else if (!strcmp(a, "--readonly"))
      readonly = true;
    else if (a[0] != '-' && npos < 2)
      pos[npos++] = a;
    else {
      fprintf(stderr, "open: unsupported argument '%s'\n", a);
      return EINVAL;
    }
  }
  if (npos != 2) {
    fprintf(stderr, "open: SOURCE and NAME needed\n");
    return EINVAL;
  }
  if (keyfile) {
    req.tcrypt.keyfiles = &keyfile;
    req.tcrypt.nkeyfiles = 1;
  }
  req.source = pos[0];
  req.name = pos[1];
  struct udm_open_plan *plan;
  char *err = NULL;
  int r = udm_open_plan(&req, &plan, &err);
  if (r < 0) {
    fprintf(stderr, "open %s: %s\n", pos[1], err ? err : strerror(-r));
    free(err);
    return -r;
  }
  if (plan->warning)
    fprintf(stderr, "open %s: %s\n", pos[1], plan->warning);
  int rc = 0;
  for (size_t i = 0; i < plan->count && !rc; i++) {
    struct udm_device *dev = udm_device_create(side->ctx, plan->dev[i].name, plan->dev[i].uuid,
                                               readonly ? UDM_DEVICE_READONLY : 0);
    if (!dev)
      rc = failed("udm_device_create", plan->dev[i].name);
    else if (udm_table_load(dev, plan->dev[i].table) < 0 || udm_device_resume(dev) < 0)
      rc = failed("udm_table_load/resume", plan->dev[i].name);
    if (rc && dev)
      udm_device_remove(dev, 0);
    if (dev)
      udm_device_unref(dev);
  }
  udm_open_plan_free(plan);
  return rc;
}

/* "udm: close NAME": NAME, then NAME_1, NAME_2 while they exist. */
static int udm_volume_close(void *opaque, const char *name)
{
  struct udm_side *side = opaque;
  for (unsigned i = 0; i < UDM_TCRYPT_MAX_LEVELS; i++) {
    char n[UDM_NAME_MAX + 16];
    if (i)
      snprintf(n, sizeof n, "%s_%u", name, i);
    else
      snprintf(n, sizeof n, "%s", name);
    struct udm_device *dev = udm_device_lookup(side->ctx, n);
    if (!dev)
      return i ? 0 : failed("udm_device_lookup", n);
    int rc = udm_device_remove(dev, 0) < 0 ? failed("udm_device_remove", n) : 0;
    udm_device_unref(dev);
    if (rc)
      return rc;
  }
  return 0;
}

/* A disk's path becomes $role; "udm:NAME" is udm's spelling of /dev/mapper/NAME. */
static const char *udm_canon_token(void *opaque, const char *token, char *buf, size_t size)
{
  struct udm_side *side = opaque;
  for (unsigned i = 0; i < side->run.ndisks; i++)
    if (!strcmp(token, side->run.disks[i].devpath) || !strcmp(token, side->run.disks[i].file)) {
      snprintf(buf, size, "$%s", side->run.disks[i].role);
      return buf;
    }
  if (!strncmp(token, "udm:", 4)) {
    snprintf(buf, size, "/dev/mapper/%s", token + 4);
    return buf;
  }
  return NULL;
}

int main(int argc, char **argv)
{
  /* --save-disks DIR: keep the disks' final files (run-diff's images, docs/testing.md). */
  const char *save_dir = NULL;
  if (argc >= 3 && !strcmp(argv[1], "--save-disks")) {
    save_dir = argv[2];
    argv += 2;
    argc -= 2;
  }
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s [--save-disks DIR] SCENARIO.scn [WORKDIR]\n", argv[0]);
    return 2;
  }
  const char *workdir = argc == 3 ? argv[2] : "/tmp/udm-scenario";
  mkdir(workdir, 0700);
  static struct udm_side side;
  side.ctx = udm_ctx_new();
  if (!side.ctx) {
    fprintf(stderr, "udm_ctx_new: %s\n", udm_errmsg());
    return 2;
  }
  struct scn_backend be = {
    .opaque = &side,
    .disk_attach = udm_disk_attach,
    .disk_detach = udm_disk_detach,
    .dm = udm_dm,
    .dev_pread = udm_pread_op,
    .dev_pwrite = udm_pwrite_op,
    .dev_discard = udm_discard_op,
    .dev_zeroout = udm_zeroout_op,
    .dev_flush = udm_flush_op,
    .dev_size = udm_size_op,
    .dev_block_size = udm_block_size_op,
    .canon_token = udm_canon_token,
    .disk_open_flags = 0,
    .side = "udm",
    .volume_open = udm_volume_open,
    .volume_close = udm_volume_close,
  };
  /* udm's command line, on a control socket serving this context. */
  struct udmd_attach *attach = NULL;
  struct udmd_control *control = NULL;
  static char runtime[600], sock[700], env[700];
  const char *cli = getenv("UDM_CLI");
  static const char *exec_env[3];
  static char path_env[8192], bin[700], link[800];
  be.scripts_dir = getenv("UDM_SCN_SCRIPTS");
  be.images_dir = getenv("UDM_SCN_IMAGES");
  be.save_dir = save_dir;
  if (cli && *cli) {
    snprintf(runtime, sizeof runtime, "%s/udm-cli", workdir);
    snprintf(sock, sizeof sock, "%s/control.sock", runtime);
    mkdir(runtime, 0700);
    /* A script exec'd on this side that runs "dmsetup" runs udm. */
    snprintf(bin, sizeof bin, "%s/bin", runtime);
    snprintf(link, sizeof link, "%s/dmsetup", bin);
    mkdir(bin, 0700);
    unlink(link);
    if (symlink(cli, link) < 0) {
      fprintf(stderr, "udm-scenario: symlink %s: %s\n", link, strerror(errno));
      return 2;
    }
    snprintf(path_env, sizeof path_env, "PATH=%s:%s", bin,
             getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    exec_env[1] = path_env;
    if (!(attach = udmd_attach_new(side.ctx, runtime)) ||
        udmd_control_new(side.ctx, attach, sock, &control) < 0 ||
        udmd_control_start(control) < 0) {
      fprintf(stderr, "udm-scenario: cannot serve the control socket %s\n", sock);
      return 2;
    }
    snprintf(env, sizeof env, "UDM_RUNTIME_DIR=%s", runtime);
    exec_env[0] = env;
    be.exec_env = exec_env;
    be.dmsetup_program = cli;
  }
  int rc = scn_run_file(argv[1], workdir, &be, &side.run);
  udmd_control_free(control);
  udmd_attach_free(attach);
  udm_ctx_free(side.ctx);
  return rc;
}
