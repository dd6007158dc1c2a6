/*
 * source_worker.h — what every source worker (source_kafka.c,
 * source_pg.c) does the same way, whatever it reads (source_worker.c).
 */
#ifndef SP_SOURCE_WORKER_H
#define SP_SOURCE_WORKER_H

#include "datatype/timestamp.h"
#include "utils/palloc.h"

#include "workers.h"

/* rows per second, measured once a second */
typedef struct SpWorkerRate
{
	TimestampTz last_tick;
	int64		rows_at_tick;
} SpWorkerRate;

/* the worker's start and life */
extern SpSourceWorkerArgs sp_source_worker_start(void);
extern SpWorkerSlot *sp_source_worker_claim(const char *name, int32 source_id, int32 worker_index,
											bool parallel);
extern void sp_source_worker_loop(int32 source_id, SpWorkerSlot *slot, MemoryContext cxt,
								  void (*run) (void *arg), void (*start_over) (void *arg),
								  void *arg) pg_attribute_noreturn();
extern bool sp_worker_rate_tick(SpWorkerRate *rate, SpWorkerSlot *slot, TimestampTz now);
extern void sp_source_record_error(int32 source_id, const char *msg);

/* transactions of the worker's own */
extern void sp_worker_xact_begin(void);
extern void sp_worker_xact_commit(void);
extern bool sp_source_worker_lookup(int32 source_id, const char *sql, bool read_only);

#endif
