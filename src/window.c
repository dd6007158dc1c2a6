/*
 * window.c — window functions for the GROUP BY of a continuous view.
 *
 *   tumble(ts, size [, origin])  start of the size-long window holding ts
 *   hop(ts, size, slide)         start of the latest hopping window holding ts;
 *                                in a view this is the slide bucket, and the
 *                                read view expands each bucket into the
 *                                size/slide windows that contain it
 *   hop_windows(ts, size, slide) every window start holding ts (set)
 *   window_end(start, size)      start + size
 *
 * Windows are fixed durations counted in microseconds from an origin (Unix
 * epoch by default): a day is 24 hours whatever the time zone, so all of
 * these are immutable.  Sizes with months or years are refused.
 *
 *      origin            ts
 *        |----|----|----|-x--|----|      tumble(ts, size) = start of x's cell
 *                        ^
 */
#include "postgres.h"

#include "funcapi.h"
#include "utils/timestamp.h"

#include "window.h"

int64
sp_window_usecs(const Interval *size, const char *what)
{
	int64		us;

	if (size->month != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not contain months or years", what),
				 errdetail("Windows are fixed durations; months and years vary in length."),
				 errhint("Use days instead, e.g. '30 days'.")));
	if (pg_mul_s64_overflow((int64) size->day, USECS_PER_DAY, &us) ||
		pg_add_s64_overflow(us, size->time, &us))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s is out of range", what)));
	if (us <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", what)));
	return us;
}

bool
sp_window_floor_checked(TimestampTz ts, int64 size, TimestampTz origin,
						TimestampTz *result)
{
	int64		delta;
	int64		q;

	if (TIMESTAMP_NOT_FINITE(ts) || TIMESTAMP_NOT_FINITE(origin) ||
		pg_sub_s64_overflow(ts, origin, &delta))
		return false;
	q = delta / size;
	if (delta % size < 0)
		q--;
	if (pg_mul_s64_overflow(q, size, &delta) ||
		pg_add_s64_overflow(origin, delta, result))
		return false;
	return IS_VALID_TIMESTAMP(*result);
}

TimestampTz
sp_window_floor(TimestampTz ts, int64 size, TimestampTz origin)
{
	TimestampTz result;

	if (TIMESTAMP_NOT_FINITE(ts) || TIMESTAMP_NOT_FINITE(origin))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("cannot assign an infinite timestamp to a window")));
	if (!sp_window_floor_checked(ts, size, origin, &result))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return result;
}

static void
check_hop(int64 size, int64 slide)
{
	if (size % slide != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hop window size must be a multiple of its slide"),
				 errhint("Choose e.g. size '10 seconds' with slide '2 seconds'.")));
}

PG_FUNCTION_INFO_V1(sp_tumble);
Datum
sp_tumble(PG_FUNCTION_ARGS)
{
	TimestampTz ts = PG_GETARG_TIMESTAMPTZ(0);
	int64		size = sp_window_usecs(PG_GETARG_INTERVAL_P(1), "window size");
	TimestampTz origin = PG_NARGS() > 2 ? PG_GETARG_TIMESTAMPTZ(2) : SP_UNIX_EPOCH;

	PG_RETURN_TIMESTAMPTZ(sp_window_floor(ts, size, origin));
}

PG_FUNCTION_INFO_V1(sp_hop);
Datum
sp_hop(PG_FUNCTION_ARGS)
{
	TimestampTz ts = PG_GETARG_TIMESTAMPTZ(0);
	int64		size = sp_window_usecs(PG_GETARG_INTERVAL_P(1), "window size");
	int64		slide = sp_window_usecs(PG_GETARG_INTERVAL_P(2), "window slide");

	check_hop(size, slide);
	PG_RETURN_TIMESTAMPTZ(sp_window_floor(ts, slide, SP_UNIX_EPOCH));
}

PG_FUNCTION_INFO_V1(sp_hop_windows);
Datum
sp_hop_windows(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	TimestampTz *next;
	int64		slide;

	if (SRF_IS_FIRSTCALL())
	{
		TimestampTz ts = PG_GETARG_TIMESTAMPTZ(0);
		int64		size = sp_window_usecs(PG_GETARG_INTERVAL_P(1), "window size");
		MemoryContext old;

		slide = sp_window_usecs(PG_GETARG_INTERVAL_P(2), "window slide");
		check_hop(size, slide);
		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		next = palloc(sizeof(TimestampTz));
		*next = sp_window_floor(ts, slide, SP_UNIX_EPOCH) - (size - slide);
		funcctx->user_fctx = next;
		funcctx->max_calls = size / slide;
		MemoryContextSwitchTo(old);
	}
	funcctx = SRF_PERCALL_SETUP();
	next = (TimestampTz *) funcctx->user_fctx;
	if (funcctx->call_cntr < funcctx->max_calls)
	{
		TimestampTz result = *next;

		slide = sp_window_usecs(PG_GETARG_INTERVAL_P(2), "window slide");
		*next += slide;
		SRF_RETURN_NEXT(funcctx, TimestampTzGetDatum(result));
	}
	SRF_RETURN_DONE(funcctx);
}

PG_FUNCTION_INFO_V1(sp_window_end);
Datum
sp_window_end(PG_FUNCTION_ARGS)
{
	TimestampTz start = PG_GETARG_TIMESTAMPTZ(0);
	int64		size = sp_window_usecs(PG_GETARG_INTERVAL_P(1), "window size");
	TimestampTz result;

	if (TIMESTAMP_NOT_FINITE(start))
		PG_RETURN_TIMESTAMPTZ(start);
	if (pg_add_s64_overflow(start, size, &result) || !IS_VALID_TIMESTAMP(result))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	PG_RETURN_TIMESTAMPTZ(result);
}

PG_FUNCTION_INFO_V1(sp_session);

/*
 * streamproc.session(ts, gap): only meaningful as a GROUP BY key of a
 * continuous view, where the session of a row depends on its neighbours.
 */
Datum
sp_session(PG_FUNCTION_ARGS)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("streamproc.session() can only be used as a GROUP BY key of a continuous view"),
			 errdetail("A session is made of neighbouring rows, which a single call cannot see."),
			 errhint("Use it in the GROUP BY of streamproc.create_view(), or use streamproc.tumble() here.")));
	PG_RETURN_NULL();
}
