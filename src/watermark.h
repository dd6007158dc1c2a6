/*
 * watermark.h — event-time watermarks of streams.
 */
#ifndef SP_WATERMARK_H
#define SP_WATERMARK_H

#include "datatype/timestamp.h"

extern bool sp_watermark_get(Oid stream, TimestampTz *wm);
extern bool sp_watermark_observe(Oid stream, int ninputs, const char **inputs,
								 const TimestampTz *max_event_times, TimestampTz *wm);

#endif
