/*
 * catalog.c — reading and writing the extension's catalog tables.
 *
 *   streamproc.stream_defs  one row per stream (event time, watermark)
 *   streamproc.view_defs    one row per continuous view: its read view, its
 *                           stream, its state table and its canonical query
 *
 * Both are dumped by pg_dump (pg_extension_config_dump).  Rows disappear
 * with the objects they describe: through drop_view()/drop_stream(), or the
 * extension's sql_drop event trigger for plain DROP commands.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/snapmgr.h"
#include "access/xlog.h"
#include "access/htup_details.h"
#include "catalog/pg_class.h"

#include "view_compile.h"

#include "catalog.h"

void
sp_check_extension(void)
{
	if (!OidIsValid(get_extension_oid("streamproc", true)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"streamproc\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION streamproc.")));
}

Oid
sp_catalog_schema(void)
{
	return get_namespace_oid("streamproc", false);
}

/*
 * Run as userid, with search_path = pg_catalog, pg_temp, until
 * sp_catalog_leave().  An error on the way out of the transaction or
 * subtransaction restores the user and the settings by itself.
 */
void
sp_become_user(Oid userid, int sec_flags, SpSavedUser *saved)
{
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	SetUserIdAndSecContext(userid, saved->sec_context | SECURITY_LOCAL_USERID_CHANGE | sec_flags);
	saved->guc_nestlevel = sp_push_catalog_search_path();
}

/*
 * The extension's catalog is read and written by whoever writes to a
 * stream, on behalf of the extension: as the catalog's owner, never with
 * the caller's search_path.
 */
Oid
sp_rel_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Where OIDs and attribute numbers stored in the catalog are valid: this
 * cluster and database.  A dump restored elsewhere carries another origin,
 * and names are used instead.
 */
char *
sp_origin(void)
{
	return psprintf(UINT64_FORMAT "/%u", GetSystemIdentifier(), MyDatabaseId);
}

/* The owner of the extension's catalog (who created the extension). */
Oid
sp_catalog_owner(void)
{
	return sp_rel_owner(get_relname_relid("stream_defs", sp_catalog_schema()));
}

void
sp_catalog_enter(SpSavedUser *saved)
{
	sp_become_user(sp_catalog_owner(), 0, saved);
}

void
sp_catalog_leave(SpSavedUser *saved)
{
	sp_pop_search_path(saved->guc_nestlevel);
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
}

/* run a catalog statement (under SPI); anything but the expected result is a bug */
void
sp_spi_run(const char *sql, int nargs, Oid *types, Datum *values,
		   const char *nulls, int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls,
										   false, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute_with_args failed (%d): %s", rc, sql);
}

/*
 * A read with the latest snapshot: what a backend caches across
 * transactions must not depend on a REPEATABLE READ snapshot.
 */
static void
spi_latest(const char *sql, int nargs, Oid *types, Datum *values)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL ||
		SPI_execute_snapshot(plan, values, NULL, GetLatestSnapshot(),
							 InvalidSnapshot, true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_snapshot failed: %s", sql);
}

int64
sp_catalog_next_view_id(void)
{
	SpSavedUser su;
	bool		isnull;
	int64		id;

	sp_catalog_enter(&su);
	SPI_connect();
	sp_spi_run("SELECT pg_catalog.nextval('streamproc.view_defs_id_seq')",
			 0, NULL, NULL, NULL, SPI_OK_SELECT);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									 SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	sp_catalog_leave(&su);
	return id;
}

void
sp_catalog_insert_stream(Oid relid, AttrNumber event_time,
						 const char *event_time_name, Interval *delay,
						 Interval *idle)
{
	SpSavedUser su;
	Oid			types[6] = {OIDOID, INT2OID, INTERVALOID, INTERVALOID, TEXTOID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = ObjectIdGetDatum(relid);
	values[1] = Int16GetDatum(event_time);
	nulls[1] = event_time != InvalidAttrNumber ? ' ' : 'n';
	values[2] = IntervalPGetDatum(delay);
	values[3] = idle ? IntervalPGetDatum(idle) : (Datum) 0;
	nulls[3] = idle ? ' ' : 'n';
	values[4] = event_time_name ? CStringGetTextDatum(event_time_name) : (Datum) 0;
	nulls[4] = event_time_name ? ' ' : 'n';
	values[5] = CStringGetTextDatum(psprintf("%s/%u", sp_origin(), relid));
	sp_catalog_enter(&su);
	SPI_connect();
	sp_spi_run("INSERT INTO streamproc.stream_defs (relid, event_time_att, watermark_delay, idle_timeout,"
			 " event_time, origin) VALUES ($1, $2, $3, $4, $5, $6)", 6, types, values, nulls, SPI_OK_INSERT);
	SPI_finish();
	sp_catalog_leave(&su);
}

void
sp_catalog_insert_view(int64 id, Oid relid, Oid stream, Oid state_relid,
					   const char *query, const char *canonical,
					   const char *tree, const char *emit, Interval *retention,
					   const char *window_kind, const char *window_column,
					   Interval *window_size, Interval *window_slide,
					   bool event_time_window)
{
	SpSavedUser su;
	Oid			types[15] = {INT8OID, OIDOID, OIDOID, OIDOID, TEXTOID, TEXTOID,
	TEXTOID, INTERVALOID, TEXTOID, TEXTOID, INTERVALOID, INTERVALOID, BOOLOID, TEXTOID, TEXTOID};
	Datum		values[15];
	char		nulls[15];

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(id);
	values[1] = ObjectIdGetDatum(relid);
	values[2] = ObjectIdGetDatum(stream);
	values[3] = ObjectIdGetDatum(state_relid);
	values[4] = CStringGetTextDatum(query);
	values[5] = CStringGetTextDatum(canonical);
	values[6] = CStringGetTextDatum(emit);
	values[7] = retention ? IntervalPGetDatum(retention) : (Datum) 0;
	nulls[7] = retention ? ' ' : 'n';
	values[8] = window_kind ? CStringGetTextDatum(window_kind) : (Datum) 0;
	nulls[8] = window_kind ? ' ' : 'n';
	values[9] = window_column ? CStringGetTextDatum(window_column) : (Datum) 0;
	nulls[9] = window_column ? ' ' : 'n';
	values[10] = window_size ? IntervalPGetDatum(window_size) : (Datum) 0;
	nulls[10] = window_size ? ' ' : 'n';
	values[11] = window_slide ? IntervalPGetDatum(window_slide) : (Datum) 0;
	nulls[11] = window_slide ? ' ' : 'n';
	values[12] = BoolGetDatum(event_time_window);
	values[13] = CStringGetTextDatum(tree);
	values[14] = CStringGetTextDatum(psprintf("%s/%u/%u", sp_origin(), stream, state_relid));
	sp_catalog_enter(&su);
	SPI_connect();
	sp_spi_run("INSERT INTO streamproc.view_defs (id, relid, stream, state_table, query, canonical_query,"
			 " emit, retention, window_kind, window_column, window_size, window_slide, event_time_window,"
			 " query_tree, origin)"
			 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
			 15, types, values, nulls, SPI_OK_INSERT);
	SPI_finish();
	sp_catalog_leave(&su);
}

/* Continuous views of a stream, oldest first, allocated in the caller's context. */
List *
sp_catalog_stream_views(Oid stream)
{
	SpSavedUser su;
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2] = {ObjectIdGetDatum(stream), CStringGetTextDatum(sp_origin())};
	MemoryContext caller = CurrentMemoryContext;
	List	   *result = NIL;
	uint64		i;

	sp_catalog_enter(&su);
	SPI_connect();
	spi_latest("SELECT id, relid::oid, state_table::oid, canonical_query, retention,"
			   " CASE WHEN origin = $2 || '/' || stream::oid || '/' || state_table::oid THEN query_tree END"
			   " FROM streamproc.view_defs WHERE stream = $1 ORDER BY id",
			   2, types, values);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext old = MemoryContextSwitchTo(caller);
		SpViewDef  *def = palloc0(sizeof(SpViewDef));

		def->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		def->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		def->stream = stream;
		def->state_relid = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		def->sql = TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull));
		{
			Datum		t = SPI_getbinval(tup, desc, 6, &isnull);

			def->tree = isnull ? NULL : TextDatumGetCString(t);
		}
		{
			Datum		r = SPI_getbinval(tup, desc, 5, &isnull);

			if (!isnull)
			{
				def->retention = palloc(sizeof(Interval));
				memcpy(def->retention, DatumGetIntervalP(r), sizeof(Interval));
			}
		}
		result = lappend(result, def);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	sp_catalog_leave(&su);
	return result;
}

/*
 * Run a one-parameter catalog query keyed by a relation OID; true if it
 * returned a row, whose first column (an OID) goes to *result if given.
 */
bool
sp_catalog_lookup(const char *sql, Oid relid, Oid *result)
{
	SpSavedUser su;
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	bool		found;

	sp_catalog_enter(&su);
	SPI_connect();
	sp_spi_run(sql, 1, types, values, NULL, SPI_OK_SELECT);
	found = SPI_processed > 0;
	if (found && result != NULL)
	{
		bool		isnull;

		*result = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	sp_catalog_leave(&su);
	return found;
}

bool
sp_catalog_view_stream(Oid view_relid, Oid *stream)
{
	return sp_catalog_lookup("SELECT stream::oid FROM streamproc.view_defs WHERE relid = $1",
						   view_relid, stream);
}

bool
sp_catalog_stream_exists(Oid relid)
{
	return sp_catalog_lookup("SELECT relid::oid FROM streamproc.stream_defs WHERE relid = $1",
						   relid, NULL);
}

/* Remove catalog rows that describe relid (a stream, a view or a state table). */
void
sp_catalog_forget(Oid relid)
{
	SpSavedUser su;
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	sp_catalog_enter(&su);
	SPI_connect();
	sp_spi_run("DELETE FROM streamproc.view_defs WHERE relid = $1 OR stream = $1 OR state_table = $1",
			 1, types, values, NULL, SPI_OK_DELETE);
	sp_spi_run("DELETE FROM streamproc.late_rows WHERE stream = $1 OR view = $1",
			 1, types, values, NULL, SPI_OK_DELETE);
	sp_spi_run("DELETE FROM streamproc.stream_defs WHERE relid = $1",
			 1, types, values, NULL, SPI_OK_DELETE);
	SPI_finish();
	sp_catalog_leave(&su);
}

/* The stream's event-time column, or InvalidAttrNumber. */
AttrNumber
sp_catalog_stream_event_time(Oid stream)
{
	SpSavedUser su;
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2] = {ObjectIdGetDatum(stream), CStringGetTextDatum(sp_origin())};
	AttrNumber	att = InvalidAttrNumber;

	sp_catalog_enter(&su);
	SPI_connect();
	spi_latest("SELECT event_time_att, event_time::text, origin = $2 || '/' || relid::oid"
			   " FROM streamproc.stream_defs WHERE relid = $1",
			   2, types, values);
	if (SPI_processed > 0)
	{
		bool		isnull;
		bool		namenull;
		bool		here;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		Datum		name = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &namenull);

		here = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		if (!namenull)
		{
			att = here ? DatumGetInt16(d) : get_attnum(stream, TextDatumGetCString(name));
			if (att == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("event-time column \"%s\" of stream \"%s\" does not exist",
								TextDatumGetCString(name), get_rel_name(stream))));
		}
	}
	SPI_finish();
	sp_catalog_leave(&su);
	return att;
}

void
sp_catalog_add_late_rows(Oid view_relid, int64 n)
{
	SpSavedUser su;
	Oid			types[2] = {OIDOID, INT8OID};
	Datum		values[2] = {ObjectIdGetDatum(view_relid), Int64GetDatum(n)};

	sp_catalog_enter(&su);
	SPI_connect();
	sp_spi_run("UPDATE streamproc.view_defs SET late_rows = late_rows + $2 WHERE relid = $1",
			 2, types, values, NULL, SPI_OK_UPDATE);
	SPI_finish();
	sp_catalog_leave(&su);
}

/* Keep the event-time column's name current when it is renamed. */
void
sp_catalog_rename_event_time(Oid stream, const char *oldname, const char *newname)
{
	SpSavedUser su;
	Oid			types[3] = {OIDOID, TEXTOID, TEXTOID};
	Datum		values[3] = {ObjectIdGetDatum(stream), CStringGetTextDatum(oldname),
	CStringGetTextDatum(newname)};

	sp_catalog_enter(&su);
	SPI_connect();
	sp_spi_run("UPDATE streamproc.stream_defs SET event_time = $3 WHERE relid = $1 AND event_time = $2",
			 3, types, values, NULL, SPI_OK_UPDATE);
	SPI_finish();
	sp_catalog_leave(&su);
}
