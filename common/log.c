/* Logging to stderr or syslog; see log.h. */
#include "common/log.h"
#include "common/clock.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

static struct {
	const char *ident;
	enum log_level level;
	bool syslog;
} lg = { "xborder", LOG_LVL_INFO, false };

void log_init(const char *ident, enum log_level level, bool use_syslog)
{
	lg.ident = ident;
	lg.level = level;
	lg.syslog = use_syslog;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(enum log_level level) { lg.level = level; }

bool log_enabled(enum log_level level) { return level <= lg.level; }

static void vlog(enum log_level level, const char *err, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const tag[] = { "error", "warning", "info", "debug" };
	char msg[1024];

	if (!log_enabled(level))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (lg.syslog) {
		if (err)
			syslog(prio[level], "%s: %s", msg, err);
		else
			syslog(prio[level], "%s", msg);
		return;
	}
	if (err)
		fprintf(stderr, "%s: %s: %s: %s\n", lg.ident, tag[level], msg, err);
	else
		fprintf(stderr, "%s: %s: %s\n", lg.ident, tag[level], msg);
}

#define LOG_FN(name, level, with_errno)                                  \
	void name(const char *fmt, ...)                                  \
	{                                                                \
		int saved = errno;                                       \
		va_list ap;                                              \
		va_start(ap, fmt);                                       \
		vlog(level, with_errno ? strerror(saved) : NULL, fmt, ap); \
		va_end(ap);                                              \
		errno = saved;                                           \
	}
LOG_FN(log_warn, LOG_LVL_WARN, 1)
LOG_FN(log_warnx, LOG_LVL_WARN, 0)
LOG_FN(log_info, LOG_LVL_INFO, 0)
LOG_FN(log_debug, LOG_LVL_DEBUG, 0)

void fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERR, strerror(saved), fmt, ap);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

bool log_ratelimit(struct log_rl *rl)
{
	uint64_t now = clock_mono_ns();

	if (rl->last_ns) {
		rl->tokens += (double)(now - rl->last_ns) * rl->per_sec / 1e9;
		if (rl->tokens > rl->burst)
			rl->tokens = rl->burst;
	}
	rl->last_ns = now;
	if (rl->tokens < 1) {
		rl->suppressed++;
		return false;
	}
	rl->tokens -= 1;
	if (rl->suppressed) {
		log_warnx("%llu similar messages suppressed", (unsigned long long)rl->suppressed);
		rl->suppressed = 0;
	}
	return true;
}
