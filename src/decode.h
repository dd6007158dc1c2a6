/*
 * decode.h — message formats: one message payload → the rows of a stream
 * it stands for.
 *
 * Formats: "json" (an object, keys matched to column names), "csv" (one
 * RFC 4180 record, fields in column order), "text" (the whole payload is
 * the value of the stream's only column) and "debezium" (a change event:
 * up to two rows, weighing +1 or -1).  See decode.c.
 */
#ifndef SP_DECODE_H
#define SP_DECODE_H

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "utils/palloc.h"

typedef struct SpDecoder SpDecoder;

/* the most rows one message stands for (a Debezium update) */
#define SP_DECODE_MAX_ROWS 2

/*
 * format is "json", "csv", "text" or "debezium"; anything else, or a stream the format
 * cannot fill, is an ERROR.  desc is the stream's TupleDesc (the decoder
 * keeps a copy of what it needs); everything is allocated in cxt.
 */
extern SpDecoder *sp_decoder_create(const char *format, TupleDesc desc,
									MemoryContext cxt);

/*
 * Decode one message into the weighted rows it stands for: values[i] and
 * nulls[i] (i < SP_DECODE_MAX_ROWS, each desc->natts entries; dropped
 * columns are NULL) and weights[i] (+1: insert, -1: retract).  Returns how
 * many rows.
 *
 * json, csv and text give one row of weight +1.  debezium gives, for op
 * "c" or "r" the "after" row (+1), for "d" the "before" row (-1), for "u"
 * the "before" row (-1) then the "after" row (+1); and 0 rows for a
 * tombstone (data NULL: a message without a value, or the null "payload"
 * of one serialized with its schema).
 *
 * Malformed input that the decoder detects itself (no value but for a
 * Debezium tombstone, invalid JSON, not an object, a nested value for a
 * column that is not json, wrong CSV field count, a NUL byte, invalid
 * encoding; for debezium a change without the rows it needs, an unknown op
 * or a message that is not a change event) returns -1 with *error set to a
 * palloc'd message such as "invalid JSON at byte 17: expected ':' after
 * object key" (byte offsets count from 0).  No ERROR is raised for those.
 *
 * Errors raised by a column type's input function propagate as ERRORs;
 * sp_decoder_column() then names the column being converted.  The
 * message's rows are then all lost together, never one without the other.
 *
 * Values and error messages are allocated in CurrentMemoryContext.
 */
extern int	sp_decode_changes(SpDecoder *d, const char *data, size_t len,
							  Datum **values, bool **nulls, int *weights,
							  char **error);

/* the column whose input function was running when an ERROR escaped sp_decode_changes, or NULL */
extern const char *sp_decoder_column(SpDecoder *d);


/*
 * Column types whose text form is converted without fmgr, giving exactly
 * what their input functions give (int2in, int4in, int8in, textin: the
 * same calls; timestamptz: its common ISO form with a zone).  Only the
 * types themselves, never a domain over them or a typmod.
 */
typedef enum SpInputKind
{
	SP_INPUT_CALL,				/* the input function */
	SP_INPUT_INT2,
	SP_INPUT_INT4,
	SP_INPUT_INT8,
	SP_INPUT_TEXT,
	SP_INPUT_TIMESTAMPTZ
} SpInputKind;

extern SpInputKind sp_input_kind(Oid type, int32 typmod);

/* str (not NULL) as a kind's value; false: call the input function */
extern bool sp_input_direct(SpInputKind kind, char *str, Datum *value);

#endif
