/* Device expiry: the `expires' key's time format and the judgement.
 *
 * A time is RFC 3339 with whole seconds: "2027-01-31T00:00:00Z", or with a
 * numeric offset ("2027-01-31T08:00:00+08:00"); a lower-case `t' or `z'
 * is accepted as RFC 3339 allows. Leap seconds (:60) are refused: Unix
 * time has none. The daemon judges a device expired from that second on
 * (gateway/enrol.c), at every apply and every tick.
 */
#include "policy/internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* n decimal digits at s, into *v. */
static bool digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int month_days(int y, int m)
{
	static const int md[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : md[m - 1];
}

bool xb_time_parse(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
	size_t n = strlen(s);

	if (n < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
	    s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se))
		return false;
	if (n == 20 && (s[19] == 'Z' || s[19] == 'z'))
		sign = 0;
	else if (n == 25 && (s[19] == '+' || s[19] == '-') && digits(s + 20, 2, &oh) &&
		 s[22] == ':' && digits(s + 23, 2, &om) && oh <= 23 && om <= 59)
		sign = s[19] == '+' ? 1 : -1;
	else
		return false;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 ||
	    se > 59)
		return false;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se -
	       sign * (oh * 3600 + om * 60);
	return true;
}

void xb_time_format(char buf[static 21], int64_t t)
{
	int64_t z = t / 86400 + 719468, s = t % 86400;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int d = (int)(doy - (153 * mp + 2) / 5 + 1), m = (int)(mp < 10 ? mp + 3 : mp - 9);
	int y = (int)(yoe + era * 400 + (m <= 2));

	if (s < 0) {	/* before 1970: not a time the parser gives */
		memcpy(buf, "1970-01-01T00:00:00Z", 21);
		return;
	}
	char tmp[64];

	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02dZ", y % 10000, m % 13, d % 32,
		 (int)(s / 3600) % 24, (int)(s / 60 % 60), (int)(s % 60));
	memcpy(buf, tmp, 21);
	buf[20] = '\0';
}

bool xb_device_expired(const struct xb_device *dv, int64_t now)
{
	return dv->expires > 0 && now >= dv->expires;
}
