/* Threads and the scheduler. The daemon's main thread (control, DNS,
 * probes) runs SCHED_BATCH: its wakeups do not preempt the thread that
 * woke it, so a busy DNS service takes its queries in batches instead of
 * one context switch each. Data-path threads must not inherit that — a
 * packet waiting behind a batch is latency — so they start SCHED_OTHER
 * whatever their creator runs as. */
#ifndef XB_THREAD_H
#define XB_THREAD_H

#include <pthread.h>

/* pthread_create with the normal policy (SCHED_OTHER), not the creator's.
 * 0 or an error number, as pthread_create. */
int xb_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* The calling thread to SCHED_BATCH (nice unchanged). 0 or -errno. */
int xb_thread_batch(void);

#endif
