/* RFC 6479 anti-replay bitmap, with the WireGuard kernel module's edge rules.
 *
 * Counters are stored shifted by one (position p = counter + 1) so that
 * r->counter == 0 can mean "nothing accepted yet". Bit p lives in word
 * (p / 64) mod 128 of the ring. Invariants, with N = r->counter:
 *  - the words of positions N - 8128 .. N (128 consecutive words, the one
 *    holding N included) hold exactly the accepted positions in that range;
 *  - no bit above N is set, so a word entered by advancing needs no history.
 * Advancing N clears only the words it moves into; the 64 bits of slack are
 * what lets it clear whole words rather than shift.
 */
#include "tunnel/replay.h"

#include <string.h>

#define WORDS (WG_REPLAY_BITS / 64)

_Static_assert(WG_REJECT_AFTER_MESSAGES == 0xffffffffffffdfffULL,
	       "Reject-After-Messages is 2^64 - 2^13 - 1");
_Static_assert((WORDS & (WORDS - 1)) == 0, "the ring size must be a power of two");

void wg_replay_init(struct wg_replay *r)
{
	memset(r, 0, sizeof(*r));
}

/* Move the top of the window to position p > r->counter, clearing the ring
 * words between the old top word and p's word (all of them on a long jump). */
static void advance(struct wg_replay *r, uint64_t p)
{
	uint64_t cur = r->counter / 64, n = p / 64 - cur;

	if (n > WORDS)
		n = WORDS;
	for (uint64_t i = 1; i <= n; i++)
		r->bitmap[(cur + i) & (WORDS - 1)] = 0;
	r->counter = p;
}

bool wg_replay_accept(struct wg_replay *r, uint64_t counter)
{
	uint64_t p, *word, bit;

	if (counter >= WG_REJECT_AFTER_MESSAGES)
		return false;
	p = counter + 1;	/* cannot overflow: counter < 2^64 - 2^13 - 1 */
	/* With H the highest accepted counter (N = H + 1), H - 8128 is the
	 * oldest counter still judged by the bitmap; older is rejected. */
	if (p + WG_REPLAY_WINDOW < r->counter)
		return false;
	if (p > r->counter)
		advance(r, p);
	word = &r->bitmap[(p / 64) & (WORDS - 1)];
	bit = UINT64_C(1) << (p % 64);
	if (*word & bit)
		return false;
	*word |= bit;
	return true;
}
