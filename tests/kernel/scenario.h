/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Scenario interpreter shared by the two sides of the kernel differential
 * test: scenario-io (inside the VM, real device-mapper through dmsetup and
 * block devices) and udm-scenario (libudm in-process).  Both parse the same
 * .scn file with this code and print the same canonical lines; only the
 * backend, a small table of callbacks, differs.  The format is described in
 * docs/testing.md.
 */
#ifndef UDM_TESTS_KERNEL_SCENARIO_H
#define UDM_TESTS_KERNEL_SCENARIO_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SCN_MAX_DISKS 16
#define SCN_MAX_DEVICES 32

struct scn_disk {
  char role[32];          /* name used as $role */
  uint64_t size;          /* bytes */
  char file[512];         /* the backing file the harness created */
  char devpath[512];      /* what $role becomes in tables (backend's choice) */
  int fd;                 /* for direct I/O on the disk ("write $a ...") */
  void *priv;             /* backend's */
  bool nodigest;          /* left out of the closing digests ("nodigest") */
};

enum scn_dm_verb {
  SCN_CREATE,   /* text = table */
  SCN_LOAD,     /* text = table */
  SCN_SUSPEND,
  SCN_RESUME,
  SCN_REMOVE,
  SCN_TABLE,    /* *out = table text */
  SCN_STATUS,   /* *out = status text */
  SCN_MESSAGE,  /* text = message; *out = reply (maybe empty) */
  SCN_INFO,     /* *out = "live=L inactive=I suspended=S readonly=R" */
  SCN_WAIT,     /* sector = event number: return once the device's differs */
};

/* Every callback returns 0 or a positive errno; -1 means "failed, errno unknown". */
struct scn_backend {
  void *opaque;
  /* Make DISK usable: fill in devpath (and priv).  The file exists and is filled. */
  int (*disk_attach)(void *opaque, struct scn_disk *disk);
  void (*disk_detach)(void *opaque, struct scn_disk *disk);
  int (*dm)(void *opaque, enum scn_dm_verb verb, const char *name,
            uint64_t sector, const char *text, char **out);
  /* I/O on mapped device NAME: bytes done (full length) or -errno. */
  ssize_t (*dev_pread)(void *opaque, const char *name, void *buf, size_t len, uint64_t off);
  ssize_t (*dev_pwrite)(void *opaque, const char *name, const void *buf, size_t len,
                        uint64_t off);
  int (*dev_discard)(void *opaque, const char *name, uint64_t off, uint64_t len);
  int (*dev_zeroout)(void *opaque, const char *name, uint64_t off, uint64_t len);
  int (*dev_flush)(void *opaque, const char *name);
  int (*dev_size)(void *opaque, const char *name, uint64_t *size);
  /* Logical block size in bytes (BLKSSZGET / udm_device_block_size). */
  int (*dev_block_size)(void *opaque, const char *name, unsigned *bytes);
  /*
   * Canonical form of one token of table/status text, or NULL to keep it:
   * a backing disk becomes "$role", another mapped device "/dev/mapper/NAME".
   */
  const char *(*canon_token)(void *opaque, const char *token, char *buf, size_t bufsize);
  /* How a disk is opened for direct I/O: O_DIRECT for block devices. */
  int disk_open_flags;
  /* "kernel" or "udm": which "SIDE: COMMAND" lines this backend runs. */
  const char *side;
  /* Extra NAME=VALUE entries for programs run by "exec" (NULL-terminated), or NULL. */
  const char *const *exec_env;
  /*
   * The program the "dmsetup ARGS" command runs: dmsetup in the VM, udm's
   * command line on the udm side (serving this side's devices); NULL when
   * this side has none.
   */
  const char *dmsetup_program;
  /* Where "exec" finds a word "@/NAME": tests/kernel/scripts (/in/scripts in the VM). */
  const char *scripts_dir;
  /*
   * Where "disk ... image=NAME" finds NAME: images run-diff made before the
   * run with udm-scenario --save-disks (tests/kernel/images; /in/images in the VM).
   */
  const char *images_dir;
  /* When set (udm-scenario --save-disks DIR), each disk's final file is kept there as ROLE. */
  const char *save_dir;
  /*
   * The udm side's "udm: open [--stdin TEXT] ARGS..." (the arguments of "udm
   * open", $role already the disk; the passphrase is TEXT without the final
   * newline) and "udm: close NAME".  NULL on the kernel side, where a host
   * program (tcplay, cryptsetup) maps the volume through "kernel: exec".
   */
  int (*volume_open)(void *opaque, char **argv, int argc, const char *secret, size_t len);
  int (*volume_close)(void *opaque, const char *name);
};

struct scn_run {
  struct scn_disk disks[SCN_MAX_DISKS];
  unsigned ndisks;
  char devices[SCN_MAX_DEVICES][128]; /* mapped devices alive, creation order */
  unsigned char device_side_only[SCN_MAX_DEVICES]; /* made by a "SIDE: create" line */
  unsigned ndevices;
  const char *workdir;
};

/* Run the scenario at PATH; disk files go into WORKDIR.  Returns 0, or 2 on a harness error. */
int scn_run_file(const char *path, const char *workdir, const struct scn_backend *be,
                 struct scn_run *run);
const struct scn_disk *scn_find_disk(const struct scn_run *run, const char *role);

/* Helpers shared with the backends. */
const char *scn_errno_name(int err);
/* errno whose strerror() text ends a line of S (dmsetup's "...failed: TEXT"), or 0. */
int scn_errno_from_text(const char *s);

/* Everything in FD from its start, NUL-terminated (malloc'd): captured output. */
char *scn_read_all(int fd);

#endif
