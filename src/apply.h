/*
 * apply.h — applying a batch of stream rows to the stream's continuous views.
 */
#ifndef SP_APPLY_H
#define SP_APPLY_H

#include "access/attnum.h"
#include "datatype/timestamp.h"
#include "utils/tuplestore.h"

/* what a source hands the engine: rows and where they came from */
typedef struct SpBatch
{
	Oid			stream;
	const char *input;			/* the stream input, e.g. "sql" */
	Tuplestorestate *rows;		/* NULL when the stream has no views */
	int64		nrows;
	bool		has_event_time; /* max_event_time is set */
	TimestampTz max_event_time;
} SpBatch;

extern void sp_apply_init(void);
extern bool sp_stream_has_views(Oid stream);
extern AttrNumber sp_stream_event_time_att(Oid stream);
extern void sp_apply_batch(SpBatch *batch);

#endif
