/* Logging: stderr (default) or syslog, with levels.
 *
 * log_warn() and fatal() append strerror(errno); log_warnx() and fatalx() do
 * not. fatal*() is for start-up only. Packet-path code uses log_ratelimit() so
 * that a flood of bad packets cannot flood the log.
 */
#ifndef XB_LOG_H
#define XB_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(const char *ident, enum log_level level, bool use_syslog);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A token bucket for one class of messages: at most burst messages, refilled
 * at per_sec a second. log_ratelimit() returns true when a message may go out;
 * the count of suppressed messages is reported with the next one allowed. */
struct log_rl {
	uint32_t per_sec, burst;
	double tokens;
	uint64_t last_ns;
	uint64_t suppressed;
};
#define LOG_RL_INIT(per_sec, burst) { (per_sec), (burst), (burst), 0, 0 }
bool log_ratelimit(struct log_rl *rl);

#endif
