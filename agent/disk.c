/* Disk encryption: whether the filesystem holding / (and each configured
 * mount) sits on dm-crypt.
 *
 * The block device behind a filesystem is st_dev of any path on it. In
 * /sys/dev/block/MAJ:MIN a device-mapper device has dm/uuid, which for a
 * dm-crypt target starts with "CRYPT-" (LUKS: "CRYPT-LUKS2-..."); any other
 * stacked device (LVM, RAID) lists what it is built on under slaves/. The
 * rule: a device is encrypted when it is a crypt target, or when it has
 * slaves and every one of them is encrypted — an LVM volume group spanning
 * one LUKS and one plain disk is not. A device with neither is plain.
 * Filesystems without a block device (btrfs subvolumes report an anonymous
 * major 0, tmpfs, NFS) are unknown and left out.
 */
#include "agent/posture.h"
#include "common/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Stacks deeper than this (crypt on LVM on RAID on crypt ...) are refused
 * rather than followed: a loop in a bad tree must end. */
#define MAX_DEPTH 8
#define MAX_SLAVES 64

static int walk(const char *dir, int depth);

static int is_crypt(const char *dir)
{
	char path[PATH_MAX], uuid[128] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/dm/uuid", dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, uuid, sizeof(uuid) - 1);
	close(fd);
	return n >= 6 && !strncmp(uuid, "CRYPT-", 6);
}

/* 1 when dir has slaves and all are encrypted, 0 when one is not or there
 * are none, -1 when the tree cannot be read. */
static int slaves(const char *dir, int depth)
{
	char path[PATH_MAX];
	struct dirent *de;
	int n = 0, ret = 1;
	DIR *d;

	snprintf(path, sizeof(path), "%s/slaves", dir);
	if (!(d = opendir(path)))
		return 0;
	while (ret == 1 && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (++n > MAX_SLAVES) {
			ret = -1;
			break;
		}
		snprintf(path, sizeof(path), "%s/slaves/%s", dir, de->d_name);
		ret = walk(path, depth + 1);
	}
	closedir(d);
	return n ? ret : 0;
}

static int walk(const char *dir, int depth)
{
	if (depth > MAX_DEPTH)
		return -1;
	if (access(dir, F_OK))
		return -1;
	if (is_crypt(dir))
		return 1;
	return slaves(dir, depth);
}

int xba_dev_encrypted(const struct xba_env *env, unsigned maj, unsigned min)
{
	char dir[PATH_MAX];

	if (maj == 0)
		return -1;
	snprintf(dir, sizeof(dir), "%s/sys/dev/block/%u:%u", env->root, maj, min);
	return walk(dir, 0);
}

/* Of the filesystem holding path (below root, so tests can use a tree). */
static int path_encrypted(const struct xba_env *env, const char *mount)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s%s", env->root, mount);
	if (stat(path, &st)) {
		log_debug("disk_encryption: %s: cannot stat", mount);
		return -1;
	}
	return xba_dev_encrypted(env, major(st.st_dev), minor(st.st_dev));
}

int xba_collect_disk(const struct xba_env *env, json_t *report)
{
	const struct xba_conf *c = env->conf;
	json_t *de = json_object(), *vols = json_array();
	int sys = path_encrypted(env, "/");

	if (!de || !vols)
		goto oom;
	if (sys >= 0)
		json_object_set_new(de, "system", json_boolean(sys));
	for (size_t i = 0; i < c->n_mounts; i++) {
		int e = path_encrypted(env, c->mounts[i]);

		if (e >= 0 && json_array_append_new(vols, json_pack("{s:s,s:b}", "mount",
				c->mounts[i], "encrypted", e)))
			goto oom;
	}
	if (json_array_size(vols))
		json_object_set(de, "volumes", vols);
	json_decref(vols);
	if (!json_object_size(de)) {
		json_decref(de);
		return 0;
	}
	return json_object_set_new(report, "disk_encryption", de);
oom:
	json_decref(de);
	json_decref(vols);
	return -1;
}
