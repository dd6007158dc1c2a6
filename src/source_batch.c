/*
 * source_batch.c — what every source worker (source_kafka.c,
 * source_pg_rows.c) does the same way in a batch's transaction, whatever
 * it reads:
 *
 *   weighted rows ──► sp_batch_add ──► SpBatch ──► sp_apply_batch (apply.c)
 *     in a subtransaction; a data error (sp_subxact_catch) sets aside the
 *     message or change it came from ──► sp_write_dead_letter
 *   ──► committed together with the source's position
 *
 * A data error is one about a row's data (a value its type rejects,
 * division by zero in a view's expressions, ...): the row's message or
 * change goes to streamproc.dead_letters and the batch goes on.  Any other
 * error (a missing table, a lock timeout) is not the row's fault and aborts
 * the batch.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"

#include "source_batch.h"

/* a row into the batch: weight +1 counts it, -1 takes it back */
void
sp_batch_add(SpBatch *batch, HeapTuple tuple, int weight)
{
	Tuplestorestate **store = weight > 0 ? &batch->rows : &batch->retractions;

	if (*store == NULL)
		*store = tuplestore_begin_heap(false, false, Max(work_mem, 64 * 1024));
	tuplestore_puttuple(*store, tuple);
	if (weight > 0)
		batch->nrows++;
	else
		batch->nretractions++;
}

/* the batch's rows, once applied */
void
sp_batch_end(SpBatch *batch)
{
	if (batch->rows)
		tuplestore_end(batch->rows);
	if (batch->retractions)
		tuplestore_end(batch->retractions);
}

/*
 * Begin a subtransaction, in memory context cxt; ended by sp_subxact_end,
 * or, in the PG_CATCH around it, sp_subxact_catch.  Both come back to cxt
 * and the resource owner of now.
 */
void
sp_subxact_begin(SpSubxact *sx, MemoryContext cxt)
{
	sx->cxt = cxt;
	sx->owner = CurrentResourceOwner;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
}

/* keep it, or roll it back (a probe) */
void
sp_subxact_end(SpSubxact *sx, bool keep)
{
	if (keep)
		ReleaseCurrentSubTransaction();
	else
		RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(sx->cxt);
	CurrentResourceOwner = sx->owner;
}

/* an error caught for a dead letter: its message, and where it arose */
char *
sp_error_text(ErrorData *edata)
{
	return edata->context ? psprintf("%s (%s)", edata->message, edata->context)
		: pstrdup(edata->message);
}

/* a conversion error for a dead letter, naming the column if known */
char *
sp_column_error_text(const char *column, ErrorData *edata)
{
	return column ? psprintf("column \"%s\": %s", column, edata->message)
		: pstrdup(edata->message);
}

/*
 * Why a row's event time cannot be counted (the text of its dead letter),
 * or NULL if it can.
 */
char *
sp_event_time_error(TupleDesc desc, AttrNumber att, Datum value, bool isnull)
{
	const char *col = NameStr(TupleDescAttr(desc, att - 1)->attname);

	if (isnull)
		return psprintf("event-time column \"%s\" is missing or null", col);
	if (TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(value)))
		return psprintf("event-time column \"%s\" must be finite", col);
	return NULL;
}

/* errors about a row's data: its message or change is set aside */
static bool
is_data_error(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_DATA_EXCEPTION:
		case ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION:
		case ERRCODE_PLPGSQL_ERROR: /* raised by a PL/pgSQL function */
		case ERRCODE_SQL_ROUTINE_EXCEPTION:
		case ERRCODE_EXTERNAL_ROUTINE_EXCEPTION:
		case ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION:
			return true;
		default:
			return false;
	}
}

/*
 * In the PG_CATCH around a subtransaction: a data error is returned
 * (copied into its memory context) and the subtransaction rolled back;
 * any other error goes up.
 */
ErrorData *
sp_subxact_catch(SpSubxact *sx)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(sx->cxt);
	edata = CopyErrorData();
	if (!is_data_error(edata->sqlerrcode))
		PG_RE_THROW();
	FlushErrorState();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(sx->cxt);
	CurrentResourceOwner = sx->owner;
	return edata;
}

static Datum
bytea_datum(const void *data, size_t len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), data, len);
	return PointerGetDatum(b);
}

/* a dead letter, under SPI in the batch's transaction: it commits with it */
void
sp_write_dead_letter(const char *source, const SpDeadLetter *d)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	if (plan == NULL)
	{
		plan = SPI_prepare("INSERT INTO streamproc.dead_letters"
						   " (source, topic, partition, \"offset\", lsn, key, payload, error)"
						   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", 8,
						   (Oid[]) {TEXTOID, TEXTOID, INT4OID, INT8OID, LSNOID, BYTEAOID, BYTEAOID, TEXTOID});
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the dead-letter insert");
	}
	values[0] = CStringGetTextDatum(source);
	if (d->topic != NULL)
	{
		values[1] = CStringGetTextDatum(d->topic);
		values[2] = Int32GetDatum(d->partition);
		values[3] = Int64GetDatum(d->offset);
		nulls[4] = 'n';
	}
	else
	{
		nulls[1] = nulls[2] = nulls[3] = 'n';
		values[4] = LSNGetDatum(d->lsn);
	}
	if (d->key != NULL)
		values[5] = bytea_datum(d->key, d->key_len);
	else
		nulls[5] = 'n';
	if (d->payload != NULL)
		values[6] = bytea_datum(d->payload, d->payload_len);
	else
		nulls[6] = 'n';
	values[7] = CStringGetTextDatum(d->error);
	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write a dead letter");
}
