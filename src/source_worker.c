/*
 * source_worker.c — what every source worker (source_kafka.c, source_pg.c)
 * does the same way, whatever it reads: its start, one process per
 * (source, worker index), its life of runs and backoffs, its errors, and
 * its transactions of its own (what it does in a batch's transaction is
 * in source_batch.c).
 *
 *   start, claim ──► run ──► error ──► start over ──► still wanted? ── no ──► exit
 *                     ▲                                       │ yes
 *                     └──── back off ◄──── report the error ◄─┘
 *
 * A run reads and applies until an error; the error is reported in the
 * worker's slot in shared memory (streamproc.sources) and in
 * streamproc.source_defs.last_error, where it outlives the process.  The
 * backoff is a second, doubled at every failure up to 30 seconds, and a
 * second again after a minute without failures.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "source_worker.h"

/* advisory lock space for "(source, worker index) is running" */
#define SP_LOCK_FIELD4 0x5350

/* ------------------------------------------------------------------------
 * The worker's start and life
 * ------------------------------------------------------------------------
 */

/* signals, the database; what the supervisor passed (bgw_extra) */
SpSourceWorkerArgs
sp_source_worker_start(void)
{
	SpSourceWorkerArgs args;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(args.dboid, InvalidOid, 0);
	sp_keep_batch_memory();
	return args;
}

/*
 * The worker takes its place, under its source's name: one process per
 * (source, worker index), whatever happens, by an advisory lock held for
 * the life of the process (a second one logs so and leaves), and a slot in
 * shared memory.  parallel: the source has workers told apart by their
 * index (Kafka), not just one.
 */
SpWorkerSlot *
sp_source_worker_claim(const char *name, int32 source_id, int32 worker_index, bool parallel)
{
	LOCKTAG		tag;
	bool		locked;

	pgstat_report_appname(name);
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) source_id, (uint32) worker_index, SP_LOCK_FIELD4);
	StartTransactionCommand();
	locked = LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
	CommitTransactionCommand();
	if (!locked)
	{
		if (parallel)
			ereport(LOG,
					(errmsg("streamproc source \"%s\" worker %d is already running", name, worker_index)));
		else
			ereport(LOG,
					(errmsg("streamproc source \"%s\" is already running", name)));
		proc_exit(1);
	}
	return sp_worker_slot_claim(source_id, worker_index);
}

/* is the source still there to run? */
static bool
source_wanted(int32 id)
{
	bool		wanted = false;

	PG_TRY();
	{
		wanted = sp_source_worker_lookup(id, "SELECT 1 FROM streamproc.source_defs WHERE id = $1 AND enabled",
										 true);
		sp_worker_xact_commit();
	}
	PG_CATCH();
	{
		FlushErrorState();
		AbortOutOfAnyTransaction();
		wanted = false;
	}
	PG_END_TRY();
	return wanted;
}

/*
 * Run until the source is stopped or dropped.  run(arg) reads and applies
 * until an error; start_over(arg) then drops what the failed run left (an
 * error of its own is ignored: it cleans up after a failure already), so
 * that the next run starts from the committed position.  cxt lives as long
 * as the worker.
 */
void
sp_source_worker_loop(int32 source_id, SpWorkerSlot *slot, MemoryContext cxt,
					  void (*run) (void *arg), void (*start_over) (void *arg), void *arg)
{
	int			backoff_ms = 1000;
	TimestampTz last_failure = 0;

	for (;;)
	{
		MemoryContext old = CurrentMemoryContext;

		PG_TRY();
		{
			run(arg);
		}
		PG_CATCH();
		{
			ErrorData  *edata;
			TimestampTz now;

			HOLD_INTERRUPTS();
			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			EmitErrorReport();
			FlushErrorState();
			AbortOutOfAnyTransaction();
			MemoryContextSwitchTo(old);
			RESUME_INTERRUPTS();

			/* the cleanup may fail too (a dead connection): that is no news */
			PG_TRY();
			{
				start_over(arg);
			}
			PG_CATCH();
			{
				MemoryContextSwitchTo(old);
				FlushErrorState();
			}
			PG_END_TRY();
			if (!source_wanted(source_id))
				proc_exit(0);
			sp_worker_report_error(slot, edata->message);
			sp_source_record_error(source_id, edata->message);
			FreeErrorData(edata);

			/* back off more while failures keep coming */
			now = GetCurrentTimestamp();
			if (TimestampDifferenceExceeds(last_failure, now, 60000))
				backoff_ms = 1000;
			last_failure = now;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 backoff_ms, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			backoff_ms = Min(backoff_ms * 2, 30000);
		}
		PG_END_TRY();
	}
}

/*
 * The worker's rows per second, into its slot, once a second: false until
 * a second has passed since the last time (the caller's once-a-second work
 * waits with it).
 */
bool
sp_worker_rate_tick(SpWorkerRate *rate, SpWorkerSlot *slot, TimestampTz now)
{
	long		secs;
	int			usecs;

	if (!TimestampDifferenceExceeds(rate->last_tick, now, 1000))
		return false;
	TimestampDifference(rate->last_tick, now, &secs, &usecs);
	if (rate->last_tick != 0)
		slot->rows_per_sec = (slot->rows_total - rate->rows_at_tick) / (secs + usecs / 1e6);
	rate->rows_at_tick = slot->rows_total;
	rate->last_tick = now;
	return true;
}

/* ------------------------------------------------------------------------
 * Transactions of the worker's own
 * ------------------------------------------------------------------------
 */

/* a transaction, with SPI and a snapshot */
void
sp_worker_xact_begin(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
}

void
sp_worker_xact_commit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Begin a transaction and look the source up in streamproc.source_defs
 * with sql ($1: the source's id): true if the extension is there and sql
 * found the row, which is then in SPI_tuptable.  The caller commits.
 */
bool
sp_source_worker_lookup(int32 source_id, const char *sql, bool read_only)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(source_id)};

	sp_worker_xact_begin();
	return OidIsValid(get_extension_oid("streamproc", true)) &&
		SPI_execute_with_args(sql, 1, types, values, NULL, read_only, 1) == SPI_OK_SELECT &&
		SPI_processed == 1;
}

/* record a source error in the catalog, where it outlives this process */
void
sp_source_record_error(int32 source_id, const char *msg)
{
	MemoryContext old = CurrentMemoryContext;

	PG_TRY();
	{
		Oid			types[2] = {INT4OID, TEXTOID};
		Datum		values[2];

		sp_worker_xact_begin();
		values[0] = Int32GetDatum(source_id);
		values[1] = CStringGetTextDatum(msg);
		SPI_execute_with_args("UPDATE streamproc.source_defs"
							  "   SET last_error = $2, last_error_at = pg_catalog.now()"
							  " WHERE id = $1",
							  2, types, values, NULL, false, 0);
		sp_worker_xact_commit();
	}
	PG_CATCH();
	{
		/* the catalog may be gone (DROP EXTENSION): shared memory has it */
		FlushErrorState();
		AbortOutOfAnyTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
}
