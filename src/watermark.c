/*
 * watermark.c — event-time watermarks.
 *
 * Every input of a stream (INSERT/COPY is the input 'sql'; later each Kafka
 * partition) reports the greatest event time it has delivered.  The stream's
 * watermark is
 *
 *     min over inputs heard from within idle_timeout of (max event time)
 *       − watermark_delay
 *
 * and it never moves backward (advance_watermark() can only push it
 * forward).  An input that has rows still to deliver but has not yet
 * delivered any (a Kafka partition at startup) reports '-infinity': it
 * holds the watermark where it is until it speaks, or is idle.  A stream without an event-time column uses arrival time.
 *
 *   input 'sql'      ─ max 10:00:07 ─┐
 *   input 'p0'       ─ max 10:00:05 ─┼─ min 10:00:05 − delay 2s ─► 10:00:03
 *   input 'p1' idle  ─ max 09:58:00 ─┘  (excluded)
 *
 * A window [start, end) is closed once watermark >= end.  The watermark is
 * kept in streamproc.stream_defs and updated in the transaction of the
 * batch that moved it, so it is exactly as durable as the views.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "view_compile.h"
#include "watermark.h"

/*
 * The stream's watermark, locking it until the end of the transaction.
 */
/*
 * The per-batch queries, planned once per backend (the plan cache replans
 * them if the catalog changes).
 */
static SPIPlanPtr
kept_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare: %s", sql);
		*plan = p;
	}
	return *plan;
}

static SPIPlanPtr get_plan = NULL;
static SPIPlanPtr input_plan = NULL;
static SPIPlanPtr move_plan = NULL;

bool
sp_watermark_get(Oid stream, TimestampTz *wm)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(stream)};
	bool		isnull = true;
	SpSavedUser su;

	sp_catalog_enter(&su);
	SPI_connect();
	/*
	 * Locked and read afresh: batches of one stream take turns from here, so
	 * each sees the watermark the previous one left, and a closed window
	 * stays closed.
	 */
	if (SPI_execute_plan(kept_plan(&get_plan,
								   "SELECT watermark FROM streamproc.stream_defs WHERE relid = $1 FOR UPDATE",
								   1, types),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the watermark of stream %u", stream);
	if (SPI_processed > 0)
		*wm = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	sp_catalog_leave(&su);
	return !isnull;
}

/*
 * Record that each input delivered rows up to its max event time, and move
 * the stream's watermark.  Returns false when the stream has no watermark
 * yet.
 */
bool
sp_watermark_observe(Oid stream, int ninputs, const char **inputs,
					 const TimestampTz *max_event_times, TimestampTz *wm)
{
	Oid			types[3] = {OIDOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3];
	bool		isnull = true;
	SpSavedUser su;
	int			i;

	values[0] = ObjectIdGetDatum(stream);

	sp_catalog_enter(&su);
	SPI_connect();
	for (i = 0; i < ninputs; i++)
	{
		values[1] = CStringGetTextDatum(inputs[i]);
		values[2] = TimestampTzGetDatum(max_event_times[i]);
		if (SPI_execute_plan(kept_plan(&input_plan,
									   "INSERT INTO streamproc.stream_inputs AS i (stream, input, max_event_time, last_seen)"
									   " VALUES ($1, $2, $3, pg_catalog.now())"
									   " ON CONFLICT (stream, input) DO UPDATE"
									   " SET max_event_time = GREATEST(i.max_event_time, excluded.max_event_time),"
									   "     last_seen = excluded.last_seen",
									   3, types),
							 values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record the event time of stream %u", stream);
	}
	if (SPI_execute_plan(kept_plan(&move_plan,
								   "UPDATE streamproc.stream_defs d"
								   "   SET watermark = GREATEST(d.watermark, ("
								   "       SELECT NULLIF(pg_catalog.min(i.max_event_time), '-infinity'::pg_catalog.timestamptz) - d.watermark_delay"
								   "         FROM streamproc.stream_inputs i"
								   "        WHERE i.stream = d.relid"
								   "          AND (d.idle_timeout IS NULL OR i.last_seen >= pg_catalog.now() - d.idle_timeout)))"
								   " WHERE d.relid = $1 RETURNING d.watermark",
								   1, types),
						 values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not move the watermark of stream %u", stream);
	if (SPI_processed > 0)
		*wm = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	sp_catalog_leave(&su);
	return !isnull;
}

PG_FUNCTION_INFO_V1(sp_advance_watermark);

/* streamproc.advance_watermark(stream regclass, ts timestamptz): punctuation */
Datum
sp_advance_watermark(PG_FUNCTION_ARGS)
{
	Oid			stream = PG_GETARG_OID(0);
	Oid			types[2] = {OIDOID, TIMESTAMPTZOID};
	Datum		values[2] = {ObjectIdGetDatum(stream), PG_GETARG_DATUM(1)};
	TimestampTz wm = 0;
	bool		isnull = true;
	SpSavedUser su;

	sp_check_extension();
	if (!sp_is_stream(stream) || !sp_catalog_stream_exists(stream))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a stream", get_rel_name(stream) ? get_rel_name(stream) : "?")));
	if (!pg_class_ownercheck(stream, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_FOREIGN_TABLE, get_rel_name(stream));
	if (TIMESTAMP_NOT_FINITE(PG_GETARG_TIMESTAMPTZ(1)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a watermark must be a finite timestamp")));

	sp_catalog_enter(&su);
	SPI_connect();
	if (SPI_execute_with_args("UPDATE streamproc.stream_defs SET watermark = GREATEST(watermark, $2)"
							  " WHERE relid = $1 RETURNING watermark",
							  2, types, values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not advance the watermark of stream %u", stream);
	if (SPI_processed > 0)
		wm = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	sp_catalog_leave(&su);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(wm);
}
