/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inode numbers of the export.  A device's inode is its udm minor plus
 * UDM_FUSE_FIRST_INO; minors are never reused in a context, so an inode
 * number never names two devices and a device removed and created again
 * gets a new inode (old handles fail with ENOENT instead of reaching the
 * new device).  The kernel names files by inode; this table remembers the
 * device name behind each inode it has been told about, counted as the
 * FUSE protocol counts lookups.
 */
#ifndef UDM_FUSE_INODES_H
#define UDM_FUSE_INODES_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <udm/udm.h>

#define UDM_FUSE_FIRST_INO 2 /* 1 is the root directory */

struct udm_fuse_inode;

struct udm_fuse_inodes {
  pthread_mutex_t lock;
  struct udm_fuse_inode *v;
  size_t n, cap;
};

int udm_fuse_inodes_init(struct udm_fuse_inodes *t);
void udm_fuse_inodes_destroy(struct udm_fuse_inodes *t);
/* One more kernel reference to ino, named name. */
int udm_fuse_inodes_remember(struct udm_fuse_inodes *t, uint64_t ino, const char *name);
/* The kernel dropped nlookup references to ino. */
void udm_fuse_inodes_forget(struct udm_fuse_inodes *t, uint64_t ino, uint64_t nlookup);
/* The device behind ino is now called name (a known ino only). */
void udm_fuse_inodes_rename(struct udm_fuse_inodes *t, uint64_t ino, const char *name);
/* The device name of ino into name; -ENOENT when unknown. */
int udm_fuse_inodes_name(struct udm_fuse_inodes *t, uint64_t ino,
                         char name[UDM_NAME_MAX + 1]);

#endif
