/* libFuzzer: nfnetlink answers to a batch of set updates into netlink.c's
 * acks() (what xb_nl_batch(), nft_set.c's exchange, does with each read).
 * netlink.c is #included for its statics. Input: the answers, in a buffer of exactly their size; the
 * batch's sequence numbers are [100, 103]. Check: an error taken is the
 * error field of an answer in range. */
#include "gateway/kernel/netlink.c"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf;
	int err = 0;
	bool done;

	if (size > INT32_MAX || !(buf = malloc(size ? size : 1)))
		return 0;
	memcpy(buf, data, size);
	done = acks(buf, (int)size, 100, 103, &err);
	check(!done || size >= NLMSG_HDRLEN + sizeof(struct nlmsgerr));
	free(buf);
	return 0;
}
