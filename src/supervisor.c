/*
 * supervisor.c — one per database with the extension: keeps the source
 * workers that the catalog asks for running, and no others.
 *
 * Every second, or as soon as a source is created, started, stopped or
 * dropped (the SQL functions wake it at commit), it reads
 * streamproc.source_defs and reconciles:
 *
 *   wanted (enabled source, worker index < parallelism)   running?
 *     yes / no   ─► start it (after a backoff if it died recently)
 *     no  / yes  ─► terminate it (its open batch rolls back: nothing lost)
 *
 * A (source, index) never has two workers: a new one starts only once the
 * old one's handle reports it stopped, and each worker also holds a session
 * lock on its (source, index) for good measure (source_kafka.c).  When the
 * extension is dropped the supervisor stops its workers and exits.
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
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "workers.h"

/* a worker this supervisor started */
typedef struct Child
{
	int32		source_id;
	int32		worker_index;
	char		kind[16];
	BackgroundWorkerHandle *handle; /* NULL: not running */
	TimestampTz started_at;
	TimestampTz restart_at;		/* earliest next start */
	int			backoff_ms;
	bool		wanted;
	bool		reported;		/* "could not start" already recorded */
} Child;

static List *children = NIL;

static Child *
find_child(int32 source_id, int32 worker_index)
{
	ListCell   *lc;

	foreach(lc, children)
	{
		Child	   *c = lfirst(lc);

		if (c->source_id == source_id && c->worker_index == worker_index)
			return c;
	}
	return NULL;
}

static BackgroundWorkerHandle *
start_worker(Child *c, const char *name)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	SpSourceWorkerArgs args;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "streamproc");
	snprintf(worker.bgw_function_name, BGW_MAXLEN,
			 strcmp(c->kind, "pg") == 0 ? "sp_pg_source_main" : "sp_kafka_source_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "streamproc source %s [%d]", name, c->worker_index);
	snprintf(worker.bgw_type, BGW_MAXLEN, "streamproc source");
	args.dboid = MyDatabaseId;
	args.source_id = c->source_id;
	args.worker_index = c->worker_index;
	memcpy(worker.bgw_extra, &args, sizeof(args));
	worker.bgw_main_arg = Int32GetDatum(c->source_id);
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		return NULL;
	return handle;
}

static void
record_start_failure(int32 source_id)
{
	Oid			types[2] = {INT4OID, TEXTOID};
	Datum		values[2];

	values[0] = Int32GetDatum(source_id);
	values[1] = CStringGetTextDatum("could not start a source worker: no free background worker slot (raise max_worker_processes)");
	SPI_execute_with_args("UPDATE streamproc.source_defs SET last_error = $2, last_error_at = pg_catalog.now() WHERE id = $1",
						  2, types, values, NULL, false, 0);
}

/*
 * One reconciliation pass.  Returns false when the extension is gone.
 */
static bool
reconcile(void)
{
	ListCell   *lc;
	uint64		i;
	TimestampTz now = GetCurrentTimestamp();
	bool		present;

	/*
	 * A kick from here on asks for a catalog this pass may not see: it stays
	 * set, so that the launcher starts the supervisor again should this one
	 * stop before it has looked once more.
	 */
	sp_clear_kick(MyDatabaseId);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	present = OidIsValid(get_extension_oid("streamproc", true));

	foreach(lc, children)
		((Child *) lfirst(lc))->wanted = false;

	if (present)
	{
		MemoryContext top = TopMemoryContext;

		pgstat_report_activity(STATE_RUNNING, "reading streamproc.source_defs");
		SPI_connect();
		if (SPI_execute("SELECT s.id, s.name, s.kind, g.i"
						"  FROM streamproc.source_defs s,"
						"       pg_catalog.generate_series(0, s.parallelism - 1) g(i)"
						" WHERE s.enabled ORDER BY s.id, g.i",
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.source_defs");
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			int32		id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
			char	   *name = SPI_getvalue(tup, desc, 2);
			char	   *kind = SPI_getvalue(tup, desc, 3);
			int32		index = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
			Child	   *c = find_child(id, index);

			if (c == NULL)
			{
				MemoryContext old = MemoryContextSwitchTo(top);

				c = palloc0(sizeof(Child));
				c->source_id = id;
				c->worker_index = index;
				c->backoff_ms = 1000;
				children = lappend(children, c);
				MemoryContextSwitchTo(old);
			}
			strlcpy(c->kind, kind, sizeof(c->kind));
			c->wanted = true;

			if (c->handle != NULL || c->restart_at > now)
				continue;
			{
				MemoryContext old = MemoryContextSwitchTo(top);

				c->handle = start_worker(c, name);
				MemoryContextSwitchTo(old);
			}
			if (c->handle == NULL)
			{
				c->restart_at = TimestampTzPlusMilliseconds(now, 5000);
				if (!c->reported)
				{
					ereport(WARNING,
							(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
							 errmsg("could not start a worker for streamproc source \"%s\"", name),
							 errhint("Raise max_worker_processes.")));
					record_start_failure(id);
					c->reported = true;
				}
				continue;
			}
			c->reported = false;
			c->started_at = now;
		}
		SPI_finish();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	/* stop what is no longer wanted; forget what has stopped */
	foreach(lc, children)
	{
		Child	   *c = lfirst(lc);

		if (!c->wanted && c->handle != NULL)
			TerminateBackgroundWorker(c->handle);
	}
	return present;
}

/* notice workers that exited, and schedule their restart */
static void
reap_children(void)
{
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();

	foreach(lc, children)
	{
		Child	   *c = lfirst(lc);
		pid_t		pid;

		if (c->handle == NULL ||
			GetBackgroundWorkerPid(c->handle, &pid) != BGWH_STOPPED)
			continue;
		pfree(c->handle);
		c->handle = NULL;
		/*
		 * A worker that keeps dying is restarted less and less often: after
		 * 1 s, then 2, 4, ... up to 60 s; one that ran for a minute starts
		 * over at 1 s.
		 */
		if (TimestampDifferenceExceeds(c->started_at, now, 60 * 1000))
			c->backoff_ms = 1000;
		c->restart_at = TimestampTzPlusMilliseconds(now, c->wanted ? c->backoff_ms : 0);
		c->backoff_ms = Min(c->backoff_ms * 2, 60 * 1000);
	}
	foreach(lc, children)
	{
		Child	   *c = lfirst(lc);

		if (!c->wanted && c->handle == NULL)
		{
			children = foreach_delete_current(children, lc);
			pfree(c);
		}
	}
}

static void
stop_all_children(void)
{
	ListCell   *lc;

	foreach(lc, children)
	{
		Child	   *c = lfirst(lc);

		if (c->handle != NULL)
			TerminateBackgroundWorker(c->handle);
	}
}

static void
leave_database_slot(int code, Datum arg)
{
	int			i;

	LWLockAcquire(sp_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < sp_shared->nslots; i++)
	{
		SpDbSlot   *s = &sp_shared->dbs[i];

		if (s->dboid == MyDatabaseId && s->supervisor_pid == MyProcPid)
		{
			s->supervisor_pid = 0;
			s->supervisor_latch = NULL;
			if (DatumGetBool(arg))
				s->no_extension = true;
		}
	}
	LWLockRelease(sp_shared->lock);
}

static void
supervisor_shutdown(int code, Datum arg)
{
	/* our workers go with us: a new supervisor starts them again */
	stop_all_children();
}

static void
enter_database_slot(void)
{
	int			i;

	LWLockAcquire(sp_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < sp_shared->nslots; i++)
	{
		SpDbSlot   *s = &sp_shared->dbs[i];

		if (s->dboid == MyDatabaseId)
		{
			s->supervisor_pid = MyProcPid;
			s->supervisor_latch = MyLatch;
		}
	}
	LWLockRelease(sp_shared->lock);
}

void
sp_supervisor_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("streamproc supervisor");

	enter_database_slot();
	before_shmem_exit(leave_database_slot, BoolGetDatum(false));
	before_shmem_exit(supervisor_shutdown, (Datum) 0);

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		reap_children();
		if (!reconcile())
		{
			/* DROP EXTENSION: stop everything, and stay away until asked */
			stop_all_children();
			cancel_before_shmem_exit(supervisor_shutdown, (Datum) 0);
			cancel_before_shmem_exit(leave_database_slot, BoolGetDatum(false));
			leave_database_slot(0, BoolGetDatum(true));
			proc_exit(0);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
