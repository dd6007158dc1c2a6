/*
 * apply.h — applying a batch of stream rows to the stream's continuous views.
 */
#ifndef SP_APPLY_H
#define SP_APPLY_H

#include "access/attnum.h"
#include "nodes/bitmapset.h"
#include "datatype/timestamp.h"
#include "utils/tuplestore.h"

/* event-time progress of one input of a stream (see watermark.c) */
typedef struct SpBatchInput
{
	const char *name;			/* "sql", or "<source>:<partition>" */
	bool		has_event_time; /* else arrival time counts */
	TimestampTz max_event_time;
} SpBatchInput;

/*
 * What a source hands the engine: weighted rows and where they came from.
 * Rows weigh +1 (inserts); retractions weigh -1 (a CDC delete, or the old
 * image of an update) and take a row that was counted before back out of
 * every view.  Both are in the stream's row layout.
 */
typedef struct SpBatch
{
	Oid			stream;
	Tuplestorestate *rows;		/* NULL when the stream has no views */
	int64		nrows;
	Tuplestorestate *retractions;	/* NULL: none */
	int64		nretractions;
	/*
	 * The least event time of the rows and retractions, if the writer
	 * tracked it: a batch with none behind the watermark's open windows
	 * skips looking for late rows.  false: look every time.
	 */
	bool		has_min_event_time;
	TimestampTz min_event_time;
	int			ninputs;		/* inputs whose progress to record; 0: none */
	SpBatchInput *inputs;
} SpBatch;

extern void sp_apply_init(void);
extern bool sp_stream_has_views(Oid stream);
extern AttrNumber sp_stream_event_time_att(Oid stream);
extern void sp_apply_batch(SpBatch *batch);
extern void sp_keep_batch_memory(void);

/*
 * The stream's columns (attribute numbers) that its views read, in
 * CurrentMemoryContext; *all: every column may be read (a whole-row
 * reference, the late-row plan of an event-time view).  Views cannot be
 * created or dropped while a writer holds its lock on the stream.
 */
extern Bitmapset *sp_stream_view_columns(Oid stream, bool *all);

/*
 * ERROR (naming the view and the aggregate, with a hint) unless every
 * continuous view on the stream can take rows back: called when a source
 * that retracts (debezium, PostgreSQL logical replication) is created.
 * Locks the stream against new views until the end of the transaction.
 */
extern void sp_check_stream_retractable(Oid stream);

#endif
