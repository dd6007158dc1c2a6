/*
 * window.h — window assignment: tumbling and hopping windows.
 */
#ifndef SP_WINDOW_H
#define SP_WINDOW_H

#include "datatype/timestamp.h"

/* the origin of tumbling and hopping windows unless given: the Unix epoch */
#define SP_UNIX_EPOCH ((TimestampTz) -((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY))

extern int64 sp_window_usecs(const Interval *size, const char *what);
extern TimestampTz sp_window_floor(TimestampTz ts, int64 size,
								   TimestampTz origin);
/* the same, false instead of an ERROR for an infinite or out-of-range one */
extern bool sp_window_floor_checked(TimestampTz ts, int64 size,
									TimestampTz origin, TimestampTz *result);

#endif
