/*
 * stream_fdw.h — the batch writer behind INSERT and COPY into a stream
 * (stream_fdw.c).
 */
#ifndef SP_STREAM_FDW_H
#define SP_STREAM_FDW_H

#include "utils/relcache.h"

typedef struct SpStreamWriter SpStreamWriter;

/* one statement's writer; the relation stays open while it lives */
extern SpStreamWriter *sp_writer_begin(Relation stream);

/*
 * A row in the stream's layout (dropped columns NULL).  Every
 * streamproc.batch_size rows the batch is applied to the stream's views.
 */
extern void sp_writer_add(SpStreamWriter *w, Datum *values, bool *nulls);

/* apply what is left; NULL is a no-op */
extern void sp_writer_end(SpStreamWriter *w);

#endif
