/*
 * decode.h — message formats: one message payload → one row of a stream.
 *
 * Formats: "json" (an object, keys matched to column names), "csv" (one
 * RFC 4180 record, fields in column order) and "text" (the whole payload is
 * the value of the stream's only column).  See decode.c.
 */
#ifndef SP_DECODE_H
#define SP_DECODE_H

#include "access/tupdesc.h"
#include "utils/palloc.h"

typedef struct SpDecoder SpDecoder;

/*
 * format is "json", "csv" or "text"; anything else, or a stream the format
 * cannot fill, is an ERROR.  desc is the stream's TupleDesc (the decoder
 * keeps a copy of what it needs); everything is allocated in cxt.
 */
extern SpDecoder *sp_decoder_create(const char *format, TupleDesc desc,
									MemoryContext cxt);

/*
 * Decode one message into values[]/nulls[] (desc->natts entries; dropped
 * columns are NULL).
 *
 * Malformed input that the decoder detects itself (invalid JSON, not an
 * object, a nested value for a column that is not json, wrong CSV field
 * count, a NUL byte, invalid encoding) returns false with *error set to a
 * palloc'd message such as "invalid JSON at byte 17: expected ':' after
 * object key" (byte offsets count from 0).  No ERROR is raised for those.
 *
 * Errors raised by a column type's input function propagate as ERRORs;
 * sp_decoder_column() then names the column being converted.
 *
 * Values and error messages are allocated in CurrentMemoryContext.
 */
extern bool sp_decode(SpDecoder *d, const char *data, size_t len,
					  Datum *values, bool *nulls, char **error);

/* the column whose input function was running when an ERROR escaped sp_decode, or NULL */
extern const char *sp_decoder_column(SpDecoder *d);

/* "json", "csv" or "text" */
extern const char *sp_decoder_format(SpDecoder *d);

#endif
