/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fence around operating-system specifics.  Everything outside
 * platform/ is POSIX C11; each function here has one implementation per
 * platform file (linux.c, darwin.c).  All return 0 or a negative errno.
 */
#ifndef UDM_PLATFORM_H
#define UDM_PLATFORM_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

/* Size in bytes of the block device open on fd. */
int udm_platform_blockdev_size(int fd, uint64_t *bytes);
/* Logical block size of the block device open on fd. */
int udm_platform_blockdev_logical_block_size(int fd, unsigned *bytes);
/* Deallocate [off, off+len) so that it reads back as zeros (file or block device). */
int udm_platform_punch_hole(int fd, bool blockdev, uint64_t off, uint64_t len);
/* Zero [off, off+len) keeping it allocated, without writing data buffers. */
int udm_platform_zero_range(int fd, bool blockdev, uint64_t off, uint64_t len);
/* Open a file with the cache bypassed (O_DIRECT or F_NOCACHE). */
int udm_platform_open_direct(const char *path, int flags);
/*
 * Whether fd bypasses the cache, as far as the system can tell: O_DIRECT on
 * Linux; macOS cannot read F_NOCACHE back, so false there.
 */
bool udm_platform_fd_is_direct(int fd);
/*
 * Next data and next hole at or after off (lseek SEEK_DATA/SEEK_HOLE).
 * -ENXIO when off is in a hole that runs to the end; -EOPNOTSUPP when the
 * system cannot tell.
 */
int udm_platform_seek_data(int fd, uint64_t off, uint64_t *data);
int udm_platform_seek_hole(int fd, uint64_t off, uint64_t *hole);
/* Absolute path of the running executable, into buf. */
int udm_platform_self_exe(char *buf, size_t size);
/* User id of the process at the other end of a connected Unix socket. */
int udm_platform_peer_uid(int fd, uid_t *uid);
/*
 * True when the CPU is 64-bit ARM with the ARMv8 CRC32 instructions (Linux:
 * the kernel's HWCAP_CRC32; Apple Silicon always has them).  False on other
 * architectures: x86 asks the compiler's cpuid support, which needs no OS.
 */
bool udm_platform_cpu_has_arm_crc32(void);
/*
 * x86-64: true when the OS keeps the SSE, AVX and AVX-512 (opmask, ZMM)
 * register state of this process's threads, so AVX-512 code may run (the
 * CPU's own feature bits are the caller's to ask, with CPUID).  Linux:
 * XCR0 (XGETBV).  macOS turns AVX-512 state on in a thread at its first
 * AVX-512 instruction, so XCR0 says no until then: it asks sysctl
 * hw.optional.avx512f instead, from macOS 12.2 (Darwin 21.3) on, since
 * earlier kernels could corrupt the opmask registers on signal return.
 * False on other architectures.
 */
bool udm_platform_os_avx512_state(void);
/*
 * Make what was written to fd durable (UDM_OP_FLUSH, UDM_IO_FUA): Linux
 * fdatasync; macOS fcntl F_FULLFSYNC, since its fsync leaves the data in
 * the drive's cache, and fsync where the file system refuses F_FULLFSYNC.
 */
int udm_platform_datasync(int fd);
/* Set st's access, modification and change times (macOS: st_*timespec). */
void udm_platform_stat_set_times(struct stat *st, struct timespec t);
/*
 * The runtime directory when $UDM_RUNTIME_DIR is not set, into buf (*why
 * says what is missing when there is none).  Linux: /run/udm for root,
 * else $XDG_RUNTIME_DIR/udm.  macOS: /var/run/udm for root, else
 * $XDG_RUNTIME_DIR/udm when set, else "udm" in the user's private
 * temporary folder (confstr _CS_DARWIN_USER_TEMP_DIR, $TMPDIR's usual
 * value; emptied at boot, as a runtime directory is).
 */
int udm_platform_runtime_dir(char *buf, size_t size, const char **why);


/* ---- block devices over files: the FUSE export's attach (docs/fuse.md) ---- */
/*
 * Mark the calling thread, and threads it creates from now on, as working
 * for the I/O path (Linux PR_SET_IO_FLUSHER: no reclaim recursion into
 * filesystem I/O, so writeback through a loop device over our own files
 * cannot deadlock on us).  -EPERM without CAP_SYS_RESOURCE; a no-op on macOS.
 */
int udm_platform_set_io_flusher(void);

/*
 * Keep [p, p + len) (whole pages) out of core dumps: MADV_DONTDUMP on
 * Linux, MADV_NOCORE on the BSDs.  -EOPNOTSUPP where the system has no
 * such advice (macOS: there, keys rely on the process not dumping core).
 */
int udm_platform_no_core(void *p, size_t len);
/*
 * Attach FILE as a kernel block device; its path (/dev/loopN, /dev/diskN)
 * goes into devpath.  logical_block_size 0 means 512.  On Linux: a loop
 * device set up in one LOOP_CONFIGURE (legacy ioctls when the kernel lacks
 * it), read-only when asked, direct I/O when the kernel accepts it for FILE
 * (*direct_io says whether it did; may be NULL), never autoclear, so the
 * device stays until detached even when nobody has it open.
 */
int udm_platform_attach(const char *file, bool readonly, unsigned logical_block_size,
                        char *devpath, size_t n, bool *direct_io);
/*
 * Detach a block device made by udm_platform_attach.  -EBUSY when it is in
 * use (mounted, open): Linux then detaches it by itself when the last user
 * closes it.  -ENXIO when nothing is attached there.
 */
int udm_platform_detach(const char *devpath);
/* After FILE was resized: make the attached device's size follow it. */
int udm_platform_attach_update_size(const char *devpath, const char *file);
/*
 * After the device behind an attached file changed its logical block size:
 * make the attached device's block size follow (Linux: LOOP_SET_BLOCK_SIZE;
 * -EOPNOTSUPP on macOS, where the file still works through read-modify-write).
 */
int udm_platform_attach_update_block_size(const char *devpath, unsigned logical_block_size);
/*
 * Calls fn for every attached block device whose backing file is PATH, or
 * lies under PATH when PATH ends with '/' (to find what a dead daemon left
 * attached).  Paths are compared after resolving PATH's existing prefix,
 * so a directory whose FUSE server died still matches.  fn returns
 * non-zero to stop; that value is returned.
 */
int udm_platform_foreach_attached(const char *path,
                                  int (*fn)(void *opaque, const char *devpath,
                                            const char *backing_file),
                                  void *opaque);
/*
 * For the implementations of udm_platform_foreach_attached (posix.c): the
 * resolved form of its PATH, and whether a backing file matches it.
 */
struct udm_platform_attached_pattern {
  char want[PATH_MAX];
  size_t len;
  bool under; /* PATH ended with '/': match everything below it */
};
int udm_platform_attached_pattern_init(struct udm_platform_attached_pattern *p,
                                       const char *path);
bool udm_platform_attached_pattern_match(const struct udm_platform_attached_pattern *p,
                                         const char *backing_file);
/* The first device attached to FILE into devpath, or -ENOENT. */
int udm_platform_find_attached(const char *file, char *devpath, size_t n);
/* Unmount DIR, a FUSE mount whose server is gone, lazily. */
int udm_platform_unmount_stale(const char *dir);
/*
 * Abort the FUSE connection mounted at DIR and unmount it, for a server
 * that must exit while one of its own threads waits on it (Linux:
 * umount2 MNT_FORCE, which aborts a FUSE connection even when the mount
 * is busy, then a lazy unmount; macOS: unmount MNT_FORCE).
 */
int udm_platform_abort_mount(const char *dir);

/* ---- paths that may lead into udm's own export (lib/export.c) ---- */
/*
 * lstat() that does not ask a FUSE server for fresh attributes: Linux
 * statx(AT_STATX_DONT_SYNC), which FUSE answers from the kernel's cache, so
 * the mount point of an export whose server is busy (even the caller) can
 * be looked at.  Elsewhere plain lstat(), which macFUSE may forward to the
 * server for a mount point.  Fills st_mode, st_dev, st_ino, st_rdev.
 */
int udm_platform_lstat_cached(const char *path, struct stat *st);
/*
 * The backing file of the loop device whose device number is rdev, as the
 * kernel recorded it (Linux: /sys/dev/block/MAJ:MIN/loop/backing_file),
 * without opening the device.  -ENOENT when rdev is not a bound loop
 * device; macOS: always -ENOENT (hdiutil's attached images are not looked
 * at).
 */
int udm_platform_loop_backing_file(dev_t rdev, char *buf, size_t n);

/* The major and minor of a device number, as this system packs them. */
uint32_t udm_platform_dev_major(dev_t d);
uint32_t udm_platform_dev_minor(dev_t d);
/*
 * A path naming the block device MAJOR:MINOR (on Linux /dev/block/M:m),
 * into buf; -ENOENT when there is none.
 */
int udm_platform_devno_path(uint32_t major, uint32_t minor, char *buf, size_t n);

/* 1 when a filesystem is mounted from the block device MAJOR:MINOR, 0 if not, or -errno. */
int udm_platform_dev_mounted(uint32_t major, uint32_t minor);
/*
 * How many users the system holds the block device MAJOR:MINOR open for,
 * as far as it tells, or -errno: on Linux the block devices stacked on it
 * (sysfs holders), plus one when a filesystem is mounted from it in any
 * mount namespace of a process this one can see (however many mounts:
 * one superblock holds one open), plus one when it is a swap device.
 * Programs that merely have it open are not counted: nothing tells them
 * apart from a passing reader (udev's blkid) without racing it.  macOS:
 * one when a filesystem is mounted from it, else 0.
 */
int udm_platform_blockdev_users(uint32_t major, uint32_t minor);

#endif
