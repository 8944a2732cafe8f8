/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libudm internals shared by the files of lib/.  Not installed. */
#ifndef UDM_LIB_INTERNAL_H
#define UDM_LIB_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>

#include <udm/target.h>
#include <udm/udm.h>

#define UDM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- errors (error.c) ---- */
/* Record a failure for udm_errmsg(); returns -1 and sets errno = err. */
int udm__fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *udm__fail_null(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- text buffers (buf.c) ---- */
struct udm_buf {
  char *data;
  size_t len;
  size_t cap;
  bool failed;
};
void udm_buf_init(struct udm_buf *b);
void udm_buf_free(struct udm_buf *b);
/* Hand the text to the caller (never NULL unless allocation failed). */
char *udm_buf_steal(struct udm_buf *b);
/* A malloc'd formatted string (NULL when out of memory): messages. */
char *udm__strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Overwrite n bytes with zeros, in a way the compiler keeps (table text may hold keys). */
void udm__wipe(void *p, size_t n);
char *udm__vstrf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* ---- backing devices (dev.c, dev_file.c, dev_udm.c) ---- */
struct udm_engine;
struct udm_retired_name {
  struct udm_retired_name *next;
  char *text;
};
struct udm_dev_ops {
  /* Synchronous: blocks the calling thread; 0 or -errno. */
  int (*submit)(struct udm_dev *d, struct udm_io *io);
  /*
   * Asynchronous (optional): start io and call udm_io_complete(io, err)
   * once, possibly before returning.  Missing: submit runs inline.
   */
  void (*submit_async)(struct udm_dev *d, struct udm_io *io);
  int (*extents)(struct udm_dev *d, udm_sector_t sector, uint64_t nr,
                 udm_extent_fn fn, void *opaque);
  void (*close)(struct udm_dev *d);
};

struct udm_dev {
  const struct udm_dev_ops *ops;
  char *name;              /* as written in the table, escapes removed */
  /*
   * What tables print for it (udm_dev_name): the name with blanks and
   * backslashes escaped again, or, once the udm device it stands for was
   * renamed, its new name.  Replaced under ctx->lock; readers without it
   * may still hold an old text, so old texts stay in `retired` until close.
   */
  _Atomic(char *) display;
  struct udm_retired_name *retired;
  unsigned users;          /* targets of the table sharing this open */
  unsigned mode;           /* UDM_DEV_READ | UDM_DEV_WRITE */
  udm_sector_t size;       /* sectors */
  /* Bytes: the smallest request it takes (a udm device: its live table's). */
  unsigned logical_block_size;
  struct udm_dev *next;    /* the table's list of opened devices */
  void *priv;              /* per kind */
  /* Files and images: the context's I/O engine (engine.h); udm devices: NULL. */
  struct udm_engine *engine;
  /* The context whose table opened it (its settings: crc32c-accel for bufio). */
  struct udm_ctx *ctx;
};

/* Open by table name; the kind is chosen from the name's form. */
int udm__dev_open(struct udm_ctx *ctx, struct udm_device *owner, const char *name,
                  unsigned mode, bool readonly_device, struct udm_dev **out,
                  char **errmsg);
int udm__dev_open_file(const char *name, const char *path, unsigned mode,
                       bool direct, struct udm_engine *engine, struct udm_dev **out,
                       char **errmsg);
int udm__dev_open_udm(struct udm_ctx *ctx, struct udm_device *owner,
                      const char *name, const char *devname, unsigned mode,
                      struct udm_dev **out, char **errmsg);
/* Remote devices (dev_nbd.c, dev_rbd.c): SPEC is what follows "nbd:" / "rbd:". */
int udm__dev_open_nbd(const char *name, const char *uri, unsigned mode,
                      struct udm_dev **out, char **errmsg);
int udm__dev_open_rbd(const char *name, const char *spec, unsigned mode,
                      struct udm_dev **out, char **errmsg);
/* The udm device behind a dev, or NULL for files. */
struct udm_device *udm__dev_udm_device(struct udm_dev *d);

/* ---- tables (table.c) ---- */
struct udm_table_ctx {
  struct udm_ctx *ctx;
  struct udm_device *owner;
  bool readonly;
  /* A backing device asked for writing could only be opened read-only. */
  bool backing_readonly;
  unsigned num_targets;
  struct udm_target *targets;
  udm_sector_t size;       /* sectors */
  struct udm_dev *devs;    /* opened backing devices, shared by targets */
  unsigned caps;           /* UDM_CAP_* */
  struct udm_limits limits; /* combined over targets and devices (table.c) */
};
typedef struct udm_table_ctx udm_table;

/* Build a table from text; on failure *errmsg says which line and why. */
int udm__table_create(struct udm_ctx *ctx, struct udm_device *owner, const char *text,
                      bool readonly, udm_table **out, char **errmsg);
void udm__table_destroy(udm_table *t);
/* Index of the target holding sector (sector < t->size). */
unsigned udm__table_find(const udm_table *t, udm_sector_t sector);
int udm__table_text(udm_table *t, enum udm_status_type type, unsigned flags,
                    char **out);
void udm__table_presuspend(udm_table *t);
void udm__table_postsuspend(udm_table *t);
int udm__table_preresume(udm_table *t, char **errmsg);
void udm__table_resume(udm_table *t);

/* ---- contexts and devices (ctx.c, device.c) ---- */
struct udm_target_reg {
  const struct udm_target_type *type;
};

struct udm_registry_entry;

struct udm_ctx {
  pthread_mutex_t lock;      /* namespace, target types and all control operations */
  /*
   * Objects shared by targets (registry.c), under their own lock, taken
   * by ctr, dtr, hooks and workers without ctx->lock (a leaf: nothing is
   * locked under it).  registry_cond: an entry left the making or
   * releasing state.
   */
  pthread_mutex_t registry_lock;
  pthread_cond_t registry_cond;
  struct udm_registry_entry *registry;
  struct udm_device *devices;
  struct udm_target_reg *types;
  unsigned num_types;
  unsigned next_minor;
  /* Image drivers (ctx.c): registered copies, and shared objects loaded. */
  struct udm_image_driver **drivers;
  unsigned num_drivers;
  void **plugins;
  unsigned num_plugins;
  bool plugin_dir_scanned;
  /* Directories where a frontend serves the devices as files (export.c). */
  struct udm_export_dir *exports;
  unsigned num_exports;
  /* The I/O engine (engine.c), made on first use under engine_lock. */
  pthread_mutex_t engine_lock;
  _Atomic(struct udm_engine *) engine;
  /*
   * Settings (settings.c; udm_ctx_set_option), each read from the
   * environment by udm_ctx_new.  The strings under settings_lock (a leaf).
   */
  pthread_mutex_t settings_lock;
  char *keys_dir;          /* NULL: none (crypt key references fail) */
  char *driver_path;       /* NULL: the installed UDM_DRIVER_DIR */
  atomic_bool crypt_accel;
  atomic_bool crc32c_accel;
  /* udm_ctx_set_progress (progress.c), under settings_lock. */
  udm_progress_fn *progress_fn;
  void *progress_opaque;
};

/* Settings read from the environment (udm_ctx_new), and freed. */
int udm__ctx_settings_init(struct udm_ctx *ctx);
void udm__ctx_settings_free(struct udm_ctx *ctx);
/* Copy of the driver path (NULL: UDM_DRIVER_DIR); -ENOMEM. */
int udm__ctx_driver_path(struct udm_ctx *ctx, char **out);


/*
 * Where PATH leads, decided without touching an export directory (export.c):
 * 1 and *devname (malloc'd) when it is the file of device NAME in one of
 * ctx's export directories, or a loop device attached over one; 0 when it
 * leads elsewhere (or nowhere: opening it will say why); -errno and *errmsg
 * when it names an export directory itself or a path below one of its
 * files.  Takes ctx->lock briefly; the _locked form is for a caller that
 * holds it.
 */
int udm__export_resolve(struct udm_ctx *ctx, const char *path, char **devname,
                        char **errmsg);
int udm__export_resolve_locked(struct udm_ctx *ctx, const char *path, char **devname,
                               char **errmsg);
void udm__export_free_all(struct udm_ctx *ctx);

struct udm_image_driver;
/* The driver for FORMAT (scanning the plugin directory once), or NULL. */
const struct udm_image_driver *udm__ctx_find_driver(struct udm_ctx *ctx,
                                                    const char *format);
/* "raw, qcow2, ..." for messages; malloc'd. */
char *udm__ctx_driver_names(struct udm_ctx *ctx);
/* Open SPEC ("PATH?opts") with an image driver (dev_image.c). */
int udm__dev_open_image(struct udm_ctx *ctx, const struct udm_image_driver *drv,
                        const char *name, const char *spec, unsigned mode,
                        struct udm_engine *engine,
                        struct udm_dev **out, char **errmsg);
/* Bad-block hits of a table's image devices (dev_image.c). */
uint64_t udm__table_bad_block_hits(const struct udm_table_ctx *t);
extern const struct udm_image_driver *const udm__builtin_drivers[];
extern const unsigned udm__num_builtin_drivers;

/* Release what targets left in the registry (udm_ctx_free). */
void udm__registry_free(struct udm_ctx *ctx);

/* The registry entry for NAME, or NULL.  Caller holds ctx->lock. */
const struct udm_target_type *udm__ctx_find_type(struct udm_ctx *ctx, const char *name);
struct udm_device *udm__ctx_find_device(struct udm_ctx *ctx, const char *name);

struct udm_device {
  struct udm_ctx *ctx;
  char name[UDM_NAME_MAX + 1];
  char uuid[UDM_UUID_MAX + 1];
  unsigned flags;            /* UDM_DEVICE_* */
  unsigned minor;
  atomic_uint refs;
  struct udm_device *next;   /* ctx list, under ctx->lock */

  /* Serialises control operations on this device; taken before ctx->lock. */
  pthread_mutex_t ctl_lock;
  /* Serialises status and table text with messages; taken after ctx->lock. */
  pthread_mutex_t status_lock;
  /* I/O gate: see io.c for the protocol. */
  pthread_mutex_t gate_lock;
  pthread_cond_t gate_cond;
  atomic_uint in_flight;
  atomic_bool suspended;
  atomic_bool dead;          /* removed: every request fails with EIO */

  /*
   * Requests that arrived while suspended (whole), and pieces targets asked
   * to hold (UDM_MAPIO_REQUEUE): both under gate_lock, started again at
   * resume (io.c).  Neither counts in in_flight, so suspend never waits
   * for them.
   */
  struct udm_req *deferred, **deferred_tail;
  struct udm_piece *held;
  /* event_nr changes: udm_device_wait_event sleeps here, under gate_lock. */
  pthread_cond_t event_cond;
  _Atomic(udm_table *) live; /* swapped only while suspended and drained */
  udm_table *inactive;       /* under ctx->lock */
  unsigned open_count;       /* under ctx->lock */
  unsigned holders;          /* tables of other devices using this one */
  atomic_uint event_nr;
  /*
   * udm_target_kick calls, under gate_lock: a piece a target asks to hold
   * after a kick it could not see yet is mapped again instead (io.c).
   */
  atomic_uint kick_gen;
  /* The live table's logical block size in bytes (0: no table), for I/O calls. */
  atomic_uint block_size;
  /*
   * The live table's size in bytes (0: no table), for udm_device_size,
   * which completions call under locks of their own (a FUSE read's, run
   * inside a message's udm_target_kick under the status lock): taking the
   * context's lock there would invert udm_device_status's order.
   */
  _Atomic uint64_t size;
};

/* Enter/leave the I/O gate; enter returns the live table (NULL: none). */
udm_table *udm__io_enter(struct udm_device *d);
void udm__io_leave(struct udm_device *d);
/* Drain and hold: waits for in_flight to reach zero.  Caller holds d->ctl_lock only. */
void udm__gate_close(struct udm_device *d);
/*
 * Reopen the gate.  What waited meanwhile (deferred requests, held pieces)
 * is handed back in *work for udm__io_restart, to be called once the
 * caller has dropped its locks (targets' map() runs there).
 */
struct udm_io_backlog {
  struct udm_req *deferred;
  struct udm_piece *held;
};
void udm__gate_open(struct udm_device *d, struct udm_io_backlog *work);
/* Start a backlog again (err 0), or fail all of it with err (a removed device). */
void udm__io_restart(struct udm_io_backlog *work, int err);
/* Take d's backlog (gate_lock inside), e.g. to fail it at removal. */
void udm__io_take_backlog(struct udm_device *d, struct udm_io_backlog *work);

/* Submit a sector-aligned request to a device (used for stacking). */
int udm__device_submit(struct udm_device *d, struct udm_io *io);
/* The same, asynchronously: udm_io_complete(io, err) when done. */
void udm__device_submit_async(struct udm_device *d, struct udm_io *io);
/* Extents of a device in sectors. */
int udm__device_extents(struct udm_device *d, udm_sector_t sector, uint64_t nr,
                        udm_extent_fn fn, void *opaque);

/* Does device `from` depend (through any table) on device `to`? ctx->lock held. */
bool udm__device_depends_on(struct udm_device *from, struct udm_device *to);

/* ---- builtin targets (generated from targets/meson.build) ---- */
extern const struct udm_target_type *const udm__builtin_targets[];
extern const unsigned udm__num_builtin_targets;

#endif
