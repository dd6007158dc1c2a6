/*
 * apply.h — applying a batch of stream rows to the stream's continuous views.
 */
#ifndef SP_APPLY_H
#define SP_APPLY_H

#include "utils/tuplestore.h"

extern void sp_apply_init(void);
extern bool sp_stream_has_views(Oid stream);
extern void sp_apply_batch(Oid stream, Tuplestorestate *rows, int64 nrows);

#endif
