/*
 * source.h — sources as the SQL functions and views see them.
 */
#ifndef SP_SOURCE_H
#define SP_SOURCE_H

#include <librdkafka/rdkafka.h>

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

extern bool sp_option_is_secret(const char *key);
extern char *sp_jsonb_scalar_text(JsonbValue *v);
extern int	sp_kafka_jwt_problem(rd_kafka_conf_t *conf);
extern void sp_kafka_jwt_error(int problem) pg_attribute_noreturn();
extern List *sp_catalog_stream_sources(Oid stream);
extern void sp_check_create_source(FunctionCallInfo fcinfo, const char *func, int nargs,
								   int optional);
extern void sp_check_source_stream(const char *name, Oid stream);
extern bool sp_stream_has_retracting_source(Oid stream);

#endif
