/* xb-noioctl: run a program with one ioctl refused, to test the paths a
 * kernel that lacks a feature takes (a TUN without offloads).
 *
 *   xb-noioctl REQUEST ERRNO PROGRAM [ARG...]
 *
 * REQUEST is the ioctl's request number (decimal or 0x hex), ERRNO the
 * error it then fails with (decimal). A seccomp filter, inherited across
 * exec and by every thread, makes ioctl(fd, REQUEST, ...) fail; every other
 * system call runs as usual. x86-64 only; anything else exits 2. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int number(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 0);
	return errno || end == s || *end || *out > max ? -1 : 0;
}

int main(int argc, char **argv)
{
	unsigned long req, err;

	if (argc < 4 || number(argv[1], 0xffffffffUL, &req) < 0 || number(argv[2], 4095, &err) < 0) {
		fprintf(stderr, "usage: xb-noioctl REQUEST ERRNO PROGRAM [ARG...]\n");
		return 2;
	}
#if defined(__x86_64__)
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 3),
		/* the request's low 32 bits (the kernel takes it as unsigned int) */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)req, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		fprintf(stderr, "xb-noioctl: seccomp: %s\n", strerror(errno));
		return 2;
	}
	execvp(argv[3], argv + 3);
	fprintf(stderr, "xb-noioctl: %s: %s\n", argv[3], strerror(errno));
	return 127;
#else
	fprintf(stderr, "xb-noioctl: x86-64 only\n");
	return 2;
#endif
}
