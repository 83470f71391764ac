/* See thread.h. */
#include "common/thread.h"

#include <errno.h>
#include <sched.h>

int xb_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	struct sched_param sp = { .sched_priority = 0 };
	pthread_attr_t attr;
	int r;

	if ((r = pthread_attr_init(&attr)))
		return r;
	if (!(r = pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED)) &&
	    !(r = pthread_attr_setschedpolicy(&attr, SCHED_OTHER)) &&
	    !(r = pthread_attr_setschedparam(&attr, &sp)))
		r = pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return r;
}

int xb_thread_batch(void)
{
	struct sched_param sp = { .sched_priority = 0 };

	/* pid 0: the calling thread only (Linux schedules threads). */
	return sched_setscheduler(0, SCHED_BATCH, &sp) < 0 ? -errno : 0;
}
