/* Crypto workers for one WireGuard device: fork-join over a batch.
 *
 * The data thread gathers a batch (a recvmmsg round's data messages, or the
 * datagrams queued for one sendmmsg), hands its AEAD work to the pool with
 * wg_workers_run() and takes items itself alongside the helper threads; the
 * call returns when every item is done. Everything else — the replay
 * window, timers, endpoints, cryptokey routing, TUN and socket I/O — stays
 * on the data thread, in the batch's order, so per-peer order and the
 * replay rules are the single thread's exactly.
 *
 * A pool of n workers is the data thread plus n - 1 helpers started with
 * xb_thread_start(); n = 1 starts nothing and runs every item inline, which
 * is the data path as it was before workers existed. Runs are serialised by
 * the caller (the device lock). An item function may touch only its own
 * item and data that no-one writes during the run.
 *
 * Memory per helper: its thread stack and one libcrypto cipher context
 * (tunnel/aead.h), whatever the load; the work lives in the device's own
 * fixed-size batches. Each helper wipes its cipher context's key after every
 * run (xb_aead_forget), so no helper keeps a session key past its batch.
 */
#ifndef XB_WORKERS_H
#define XB_WORKERS_H

#include <stddef.h>

/* The default's cap: past it the per-peer serial step and the TUN I/O on
 * the data thread bound a device (docs/wireguard.md, "Speed"). */
#define WG_WORKERS_MAX 8

struct wg_workers;

/* Half the online CPUs, at most WG_WORKERS_MAX, at least 1. */
unsigned wg_workers_default(void);
/* n workers, 1 <= n <= 64 (NULL with n = 1: nothing to start). 0 or an
 * error number. */
int wg_workers_start(struct wg_workers **out, unsigned n);
unsigned wg_workers_count(const struct wg_workers *w);	/* 1 for NULL */
/* Below this much work (bytes to seal or open) a run is done inline: waking
 * a helper costs a few microseconds, about what 16 KiB of ChaCha20-Poly1305
 * takes on one core, so a batch of ACKs or keepalives is not worth it. */
#define WG_WORKERS_MIN_BYTES (16 * 1024)

/* fn(ctx, i) for every i < n_items, spread over the pool when bytes (the
 * run's work) reaches WG_WORKERS_MIN_BYTES; returns when all are done. w
 * may be NULL: inline. */
void wg_workers_run(struct wg_workers *w, void (*fn)(void *ctx, size_t i), void *ctx, size_t n_items,
		    size_t bytes);
/* Stop and join the helpers; w may be NULL. */
void wg_workers_stop(struct wg_workers *w);

#endif
