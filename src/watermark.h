/*
 * watermark.h — event-time watermarks of streams.
 */
#ifndef SP_WATERMARK_H
#define SP_WATERMARK_H

#include "datatype/timestamp.h"

extern bool sp_watermark_get(Oid stream, TimestampTz *wm);
extern bool sp_watermark_observe(Oid stream, const char *input,
								 TimestampTz max_event_time, TimestampTz *wm);

#endif
