/*
 * workers.h — streamproc's background workers and the shared memory they
 * report through.
 *
 *   postmaster
 *     └─ launcher (static, one per cluster)            launcher.c
 *          └─ supervisor (one per database with the extension)   supervisor.c
 *               └─ source worker × parallelism (per source)      source_kafka.c,
 *                                                                 source_pg.c (one)
 *
 * The launcher starts supervisors, a supervisor starts and stops the source
 * workers of its database from the catalog (streamproc.source_defs), and
 * every worker reports its state in a slot of SpShared, which
 * streamproc.sources reads.
 */
#ifndef SP_WORKERS_H
#define SP_WORKERS_H

#include "datatype/timestamp.h"
#include "nodes/nodes.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

#define SP_ERROR_LEN 512

/* what the launcher knows of one database */
typedef struct SpDbSlot
{
	Oid			dboid;			/* InvalidOid: free */
	bool		wanted;			/* run a supervisor there */
	bool		no_extension;	/* its supervisor found no extension */
	bool		kicked;			/* asked for since the launcher or the
								 * supervisor last looked */
	TimestampTz paused_until;	/* DROP/RENAME DATABASE in progress */
	pid_t		supervisor_pid;
	Latch	   *supervisor_latch;
} SpDbSlot;

/* one running source worker */
typedef struct SpWorkerSlot
{
	pid_t		pid;			/* 0: free */
	Oid			dboid;
	int32		source_id;
	int32		worker_index;
	bool		in_error;
	TimestampTz last_error_at;
	char		last_error[SP_ERROR_LEN];
	double		rows_per_sec;
	int64		rows_total;
} SpWorkerSlot;

typedef struct SpShared
{
	LWLock	   *lock;
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	int			nslots;
	SpDbSlot   *dbs;			/* nslots of each, after the struct */
	SpWorkerSlot *workers;
} SpShared;

extern SpShared *sp_shared;

extern void sp_workers_init(void);
extern void sp_kick_database(Oid dboid);
extern void sp_clear_kick(Oid dboid);
extern void sp_pause_database(Oid dboid);
extern void sp_request_kick_at_commit(void);
extern void sp_workers_utility(Node *parsetree);

extern SpWorkerSlot *sp_worker_slot_claim(int32 source_id, int32 worker_index);
extern void sp_worker_report_error(SpWorkerSlot *slot, const char *msg);

/* entry points (bgw_function_name) */
extern PGDLLEXPORT void sp_launcher_main(Datum arg);
extern PGDLLEXPORT void sp_supervisor_main(Datum arg);
extern PGDLLEXPORT void sp_kafka_source_main(Datum arg);
extern PGDLLEXPORT void sp_pg_source_main(Datum arg);

/* what a supervisor passes to a source worker (bgw_extra) */
typedef struct SpSourceWorkerArgs
{
	Oid			dboid;
	int32		source_id;
	int32		worker_index;
} SpSourceWorkerArgs;

#endif
