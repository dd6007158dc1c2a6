/*
 * source_batch.h — what every source worker does the same way in a
 * batch's transaction, whatever it reads (source_batch.c).
 */
#ifndef SP_SOURCE_BATCH_H
#define SP_SOURCE_BATCH_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "access/xlogdefs.h"
#include "utils/elog.h"
#include "utils/palloc.h"
#include "utils/resowner.h"

#include "apply.h"

/* a subtransaction, and where it began (see sp_subxact_begin) */
typedef struct SpSubxact
{
	MemoryContext cxt;
	ResourceOwner owner;
} SpSubxact;

/*
 * A message or change that could not become rows, or whose rows a view
 * refused.  Where it came from: a Kafka message's topic, partition and
 * offset, or (topic NULL) a change's LSN.
 */
typedef struct SpDeadLetter
{
	const char *topic;
	int32		partition;
	int64		offset;
	XLogRecPtr	lsn;
	const void *key;			/* as it came; NULL: none */
	size_t		key_len;
	const void *payload;		/* NULL: none */
	size_t		payload_len;
	const char *error;
} SpDeadLetter;

extern void sp_batch_add(SpBatch *batch, HeapTuple tuple, int weight);
extern void sp_batch_end(SpBatch *batch);
extern void sp_subxact_begin(SpSubxact *sx, MemoryContext cxt);
extern void sp_subxact_end(SpSubxact *sx, bool keep);
extern ErrorData *sp_subxact_catch(SpSubxact *sx);
extern char *sp_error_text(ErrorData *edata);
extern char *sp_column_error_text(const char *column, ErrorData *edata);
extern char *sp_event_time_error(TupleDesc desc, AttrNumber att, Datum value, bool isnull);
extern void sp_write_dead_letter(const char *source, const SpDeadLetter *d);

#endif
