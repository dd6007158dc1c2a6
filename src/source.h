/*
 * source.h — sources as the SQL functions and views see them.
 */
#ifndef SP_SOURCE_H
#define SP_SOURCE_H

#include "nodes/pg_list.h"
#include "utils/jsonb.h"

extern bool sp_option_is_secret(const char *key);
extern char *sp_jsonb_scalar_text(JsonbValue *v);
extern List *sp_catalog_stream_sources(Oid stream);
extern void sp_check_source_admin(const char *action);
extern void sp_check_source_name(const char *name);
extern bool sp_stream_has_retracting_source(Oid stream);

#endif
