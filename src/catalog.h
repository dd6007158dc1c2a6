/*
 * catalog.h — the extension's catalog tables (streamproc.stream_defs,
 * streamproc.view_defs).
 */
#ifndef SP_CATALOG_H
#define SP_CATALOG_H

#include "datatype/timestamp.h"
#include "access/attnum.h"
#include "nodes/pg_list.h"

typedef struct SpViewDef
{
	int64		id;
	Oid			relid;			/* read view */
	Oid			stream;
	Oid			state_relid;
	char	   *sql;			/* canonical query */
	char	   *tree;			/* analyzed query (nodeToString), or NULL when
								 * made in another database (a restore) */
	Interval   *retention;		/* or NULL */
} SpViewDef;

/* who was running, while catalog work runs as the catalog's owner */
typedef struct SpSavedUser
{
	Oid			userid;
	int			sec_context;
	int			guc_nestlevel;
} SpSavedUser;

extern void sp_check_extension(void);
extern Oid	sp_catalog_owner(void);
extern char *sp_origin(void);
extern void sp_catalog_rename_event_time(Oid stream, const char *oldname, const char *newname);
extern Oid	sp_rel_owner(Oid relid);
extern void sp_catalog_enter(SpSavedUser *saved);
extern void sp_catalog_leave(SpSavedUser *saved);
extern void sp_spi_run(const char *sql, int nargs, Oid *types, Datum *values,
					   const char *nulls, int expected);
extern bool sp_catalog_lookup(const char *sql, Oid relid, Oid *result);
extern void sp_become_user(Oid userid, int sec_flags, SpSavedUser *saved);
extern Oid	sp_catalog_schema(void);
extern int64 sp_catalog_next_view_id(void);
extern void sp_catalog_insert_stream(Oid relid, AttrNumber event_time,
									 const char *event_time_name,
									 Interval *delay, Interval *idle);
extern void sp_catalog_insert_view(int64 id, Oid relid, Oid stream,
								   Oid state_relid, const char *query,
								   const char *canonical, const char *tree,
								   const char *emit,
								   Interval *retention, const char *window_kind,
								   const char *window_column,
								   Interval *window_size, Interval *window_slide,
								   bool event_time_window);
extern List *sp_catalog_stream_views(Oid stream);
extern bool sp_catalog_view_stream(Oid view_relid, Oid *stream);
extern bool sp_catalog_stream_exists(Oid relid);
extern void sp_catalog_forget(Oid relid);
extern AttrNumber sp_catalog_stream_event_time(Oid stream);
extern void sp_catalog_add_late_rows(Oid view_relid, int64 n);

#endif
