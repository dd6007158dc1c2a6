/*
 * launcher.c — the launcher background worker and the shared memory every
 * streamproc worker reports through.
 *
 * The launcher is registered in _PG_init and runs once per cluster,
 * connected to no database.  It keeps one supervisor (supervisor.c) running
 * in each database that has the extension:
 *
 *   startup ──► probe every connectable, non-template database once
 *                 (a supervisor that finds no extension there exits and
 *                  marks the database no_extension)
 *   kick    ──► CREATE EXTENSION, create_kafka_source and start_source ask,
 *                 at commit, for their database's supervisor
 *   pause   ──► DROP/RENAME DATABASE, CREATE DATABASE ... TEMPLATE and
 *                 ALTER DATABASE ... SET TABLESPACE need the database to
 *                 themselves: our processes there are stopped first, and
 *                 not restarted for a while
 *
 * A supervisor that dies is started again after a few seconds; after a
 * crash of any backend the postmaster restarts the launcher and with it
 * everything below.
 */
#include "postgres.h"

#include <signal.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "nodes/parsenodes.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "workers.h"

SpShared   *sp_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* seconds a paused database is left alone, and between supervisor retries */
#define PAUSE_SECONDS 10
#define RETRY_SECONDS 5

static int
slot_count(void)
{
	return Max(max_worker_processes, 8);
}

static Size
shared_size(void)
{
	Size		size = MAXALIGN(sizeof(SpShared));

	size = add_size(size, mul_size(slot_count(), sizeof(SpDbSlot)));
	size = add_size(size, mul_size(slot_count(), sizeof(SpWorkerSlot)));
	return size;
}

static void
sp_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_size());
	RequestNamedLWLockTranche("streamproc", 1);
}

static void
sp_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	sp_shared = ShmemInitStruct("streamproc", shared_size(), &found);
	if (!found)
	{
		char	   *p = (char *) sp_shared;

		memset(sp_shared, 0, shared_size());
		sp_shared->lock = &(GetNamedLWLockTranche("streamproc"))->lock;
		sp_shared->nslots = slot_count();
		p += MAXALIGN(sizeof(SpShared));
		sp_shared->dbs = (SpDbSlot *) p;
		p += sizeof(SpDbSlot) * sp_shared->nslots;
		sp_shared->workers = (SpWorkerSlot *) p;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* ------------------------------------------------------------------------
 * Asking for a database's supervisor
 * ------------------------------------------------------------------------
 */

/* the slot of a database, made if absent; caller holds the lock exclusively */
static SpDbSlot *
db_slot(Oid dboid, bool create)
{
	SpDbSlot   *free_slot = NULL;
	int			i;

	for (i = 0; i < sp_shared->nslots; i++)
	{
		SpDbSlot   *s = &sp_shared->dbs[i];

		if (s->dboid == dboid)
			return s;
		if (s->dboid == InvalidOid && free_slot == NULL)
			free_slot = s;
	}
	if (!create || free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(SpDbSlot));
	free_slot->dboid = dboid;
	return free_slot;
}

/*
 * Have the database's supervisor look at the catalog now, starting it if
 * it is not running.
 */
void
sp_kick_database(Oid dboid)
{
	SpDbSlot   *s;
	Latch	   *latch = NULL;

	if (sp_shared == NULL)
		return;
	LWLockAcquire(sp_shared->lock, LW_EXCLUSIVE);
	s = db_slot(dboid, true);
	if (s != NULL)
	{
		s->wanted = true;
		s->no_extension = false;
		s->kicked = true;
		latch = s->supervisor_pid != 0 ? s->supervisor_latch : sp_shared->launcher_latch;
	}
	LWLockRelease(sp_shared->lock);
	if (latch != NULL)
		SetLatch(latch);
}

/*
 * The supervisor of dboid is about to read the catalog: kicks so far are
 * answered (a later one stays set; see the launcher's reaping).
 */
void
sp_clear_kick(Oid dboid)
{
	SpDbSlot   *s;

	LWLockAcquire(sp_shared->lock, LW_EXCLUSIVE);
	s = db_slot(dboid, false);
	if (s != NULL)
		s->kicked = false;
	LWLockRelease(sp_shared->lock);
}

static bool kick_at_commit = false;

static void
kick_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (kick_at_commit)
				sp_kick_database(MyDatabaseId);
			kick_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			kick_at_commit = false;
			break;
		default:
			break;
	}
}

/* sources changed in this transaction: wake the supervisor once it commits */
void
sp_request_kick_at_commit(void)
{
	kick_at_commit = true;
}

/*
 * Stop our processes connected to a database that a command needs to
 * itself, and keep them away for PAUSE_SECONDS.  Waits (a little) for them
 * to be gone; the command itself then waits like for any other session.
 */
void
sp_pause_database(Oid dboid)
{
	int			i;
	int			waited;

	if (sp_shared == NULL || !OidIsValid(dboid))
		return;
	for (waited = 0; waited < 1000; waited++)
	{
		bool		any = false;

		LWLockAcquire(sp_shared->lock, LW_EXCLUSIVE);
		{
			SpDbSlot   *s = db_slot(dboid, false);

			if (s != NULL)
			{
				s->paused_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															  PAUSE_SECONDS * 1000);
				if (s->supervisor_pid != 0)
				{
					kill(s->supervisor_pid, SIGTERM);
					any = true;
				}
			}
		}
		for (i = 0; i < sp_shared->nslots; i++)
		{
			SpWorkerSlot *w = &sp_shared->workers[i];

			if (w->pid != 0 && w->dboid == dboid)
			{
				kill(w->pid, SIGTERM);
				any = true;
			}
		}
		LWLockRelease(sp_shared->lock);
		if (!any)
			return;
		/* up to 10 seconds */
		pg_usleep(10 * 1000L);
		CHECK_FOR_INTERRUPTS();
	}
}

/* may the current user copy the database (it is a template, or theirs) */
static bool
may_copy(Oid dboid)
{
	HeapTuple	tup;
	bool		ok = false;

	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	if (HeapTupleIsValid(tup))
	{
		ok = ((Form_pg_database) GETSTRUCT(tup))->datistemplate ||
			pg_database_ownercheck(dboid, GetUserId());
		ReleaseSysCache(tup);
	}
	return ok;
}

/*
 * Pause a database for a command that needs it to itself, but only when
 * the command can succeed as far as privileges go: a role that may not drop
 * (or copy, or rename) the database must not be able to stop its sources
 * by trying.
 */
static void
pause_if_owner(Oid dboid)
{
	if (OidIsValid(dboid) && pg_database_ownercheck(dboid, GetUserId()))
		sp_pause_database(dboid);
}

/*
 * Utility commands that need a database to themselves, or that install
 * the extension: called by the ProcessUtility hook before they run.
 */
void
sp_workers_utility(Node *parsetree)
{
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			pause_if_owner(get_database_oid(((DropdbStmt *) parsetree)->dbname, true));
			break;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE && have_createdb_privilege())
				pause_if_owner(get_database_oid(((RenameStmt *) parsetree)->subname, true));
			break;
		case T_CreatedbStmt:
			foreach(lc, ((CreatedbStmt *) parsetree)->options)
			{
				DefElem    *d = lfirst(lc);
				Oid			template;

				if (strcmp(d->defname, "template") != 0 || d->arg == NULL)
					continue;
				template = get_database_oid(defGetString(d), true);
				if (OidIsValid(template) && have_createdb_privilege() && may_copy(template))
					sp_pause_database(template);
			}
			break;
		case T_AlterDatabaseStmt:
			foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
			{
				DefElem    *d = lfirst(lc);

				if (strcmp(d->defname, "tablespace") == 0)
					pause_if_owner(get_database_oid(((AlterDatabaseStmt *) parsetree)->dbname, true));
			}
			break;
		case T_CreateExtensionStmt:
			if (strcmp(((CreateExtensionStmt *) parsetree)->extname, "streamproc") == 0)
				sp_request_kick_at_commit();
			break;
		default:
			break;
	}
}

void
sp_workers_init(void)
{
	BackgroundWorker worker;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = sp_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = sp_shmem_startup;
	RegisterXactCallback(kick_xact_callback, NULL);

	if (IsBinaryUpgrade)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = RETRY_SECONDS;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "streamproc");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "sp_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "streamproc launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "streamproc launcher");
	RegisterBackgroundWorker(&worker);
}

/* ------------------------------------------------------------------------
 * Worker slots
 * ------------------------------------------------------------------------
 */

static void
release_worker_slot(int code, Datum arg)
{
	SpWorkerSlot *slot = (SpWorkerSlot *) DatumGetPointer(arg);

	LWLockAcquire(sp_shared->lock, LW_EXCLUSIVE);
	if (slot->pid == MyProcPid)
		slot->pid = 0;
	LWLockRelease(sp_shared->lock);
}

/* a slot for this source worker, freed when the process exits */
SpWorkerSlot *
sp_worker_slot_claim(int32 source_id, int32 worker_index)
{
	SpWorkerSlot *slot = NULL;
	int			i;

	LWLockAcquire(sp_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < sp_shared->nslots; i++)
	{
		if (sp_shared->workers[i].pid == 0)
		{
			slot = &sp_shared->workers[i];
			memset(slot, 0, sizeof(SpWorkerSlot));
			slot->pid = MyProcPid;
			slot->dboid = MyDatabaseId;
			slot->source_id = source_id;
			slot->worker_index = worker_index;
			break;
		}
	}
	LWLockRelease(sp_shared->lock);
	if (slot == NULL)
		elog(ERROR, "no free streamproc worker slot");
	before_shmem_exit(release_worker_slot, PointerGetDatum(slot));
	return slot;
}

void
sp_worker_report_error(SpWorkerSlot *slot, const char *msg)
{
	LWLockAcquire(sp_shared->lock, LW_EXCLUSIVE);
	if (msg != NULL)
	{
		slot->in_error = true;
		slot->last_error_at = GetCurrentTimestamp();
		strlcpy(slot->last_error, msg, SP_ERROR_LEN);
	}
	else
		slot->in_error = false;
	LWLockRelease(sp_shared->lock);
}

/* ------------------------------------------------------------------------
 * The launcher
 * ------------------------------------------------------------------------
 */

/* what the launcher itself remembers per database slot */
typedef struct LauncherDb
{
	BackgroundWorkerHandle *handle;
	TimestampTz retry_at;
} LauncherDb;

/* mark every connectable, non-template database to be probed */
static void
probe_all_databases(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (!db->datallowconn || db->datistemplate)
			continue;
		LWLockAcquire(sp_shared->lock, LW_EXCLUSIVE);
		{
			SpDbSlot   *s = db_slot(db->oid, true);

			if (s != NULL)
				s->wanted = true;
		}
		LWLockRelease(sp_shared->lock);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
}

static bool
database_connectable(Oid dboid)
{
	HeapTuple	tup;
	bool		ok = false;

	StartTransactionCommand();
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		ok = db->datallowconn && !db->datistemplate;
		ReleaseSysCache(tup);
	}
	CommitTransactionCommand();
	return ok;
}

static BackgroundWorkerHandle *
start_supervisor(Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "streamproc");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "sp_supervisor_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "streamproc supervisor %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "streamproc supervisor");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		return NULL;
	return handle;
}

void
sp_launcher_main(Datum arg)
{
	LauncherDb *local;
	int			i;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	LWLockAcquire(sp_shared->lock, LW_EXCLUSIVE);
	sp_shared->launcher_pid = MyProcPid;
	sp_shared->launcher_latch = MyLatch;
	/* after a crash restart nobody below us is alive */
	for (i = 0; i < sp_shared->nslots; i++)
	{
		sp_shared->dbs[i].supervisor_pid = 0;
		sp_shared->dbs[i].supervisor_latch = NULL;
	}
	LWLockRelease(sp_shared->lock);

	local = MemoryContextAllocZero(TopMemoryContext, sizeof(LauncherDb) * sp_shared->nslots);
	probe_all_databases();

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		for (i = 0; i < sp_shared->nslots; i++)
		{
			SpDbSlot   *s = &sp_shared->dbs[i];
			Oid			dboid;
			bool		start;

			/* reap a supervisor that has exited */
			if (local[i].handle != NULL)
			{
				pid_t		pid;

				if (GetBackgroundWorkerPid(local[i].handle, &pid) == BGWH_STOPPED)
				{
					pfree(local[i].handle);
					local[i].handle = NULL;
					LWLockAcquire(sp_shared->lock, LW_EXCLUSIVE);
					if (s->kicked)
					{
						/* asked for after it looked: look again now */
						s->wanted = true;
						s->no_extension = false;
					}
					else if (s->no_extension)
						s->wanted = false;
					s->supervisor_pid = 0;
					s->supervisor_latch = NULL;
					LWLockRelease(sp_shared->lock);
					local[i].retry_at = TimestampTzPlusMilliseconds(now, RETRY_SECONDS * 1000);
				}
				continue;
			}

			LWLockAcquire(sp_shared->lock, LW_EXCLUSIVE);
			if (s->kicked)
			{
				/* a kick cuts the retry delay short */
				s->kicked = false;
				local[i].retry_at = 0;
			}
			dboid = s->dboid;
			start = OidIsValid(dboid) && s->wanted && s->paused_until <= now &&
				local[i].retry_at <= now;
			LWLockRelease(sp_shared->lock);
			if (!start)
				continue;

			if (!database_connectable(dboid))
			{
				/* dropped, or made a template: forget it */
				LWLockAcquire(sp_shared->lock, LW_EXCLUSIVE);
				if (s->dboid == dboid && s->supervisor_pid == 0)
					memset(s, 0, sizeof(SpDbSlot));
				LWLockRelease(sp_shared->lock);
				continue;
			}
			local[i].handle = start_supervisor(dboid);
			if (local[i].handle == NULL)
			{
				ereport(WARNING,
						(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						 errmsg("streamproc could not start a supervisor for database %u", dboid),
						 errhint("Raise max_worker_processes.")));
				local[i].retry_at = TimestampTzPlusMilliseconds(now, RETRY_SECONDS * 1000);
			}
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
