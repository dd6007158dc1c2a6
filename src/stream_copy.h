/*
 * stream_copy.h — COPY ... FROM into a stream (stream_copy.c).
 */
#ifndef SP_STREAM_COPY_H
#define SP_STREAM_COPY_H

#include "nodes/plannodes.h"
#include "tcop/cmdtag.h"
#include "utils/queryenvironment.h"

/*
 * Run pstmt (a CopyStmt) if it is COPY ... FROM into a stream and return
 * true; false (nothing done) for any other COPY.
 */
extern bool sp_copy_into_stream(PlannedStmt *pstmt, const char *queryString,
								QueryEnvironment *queryEnv, QueryCompletion *qc);

#endif
