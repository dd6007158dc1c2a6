/*
 * stream.c — creating and dropping streams.
 *
 * A stream is a foreign table of the extension's server "streamproc": users
 * INSERT and COPY into it like a table, SELECT from it returns nothing, and
 * its rows flow to the continuous views that read it (stream_fdw.c).  Its
 * event-time settings live in streamproc.stream_defs.
 */
#include "postgres.h"

#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "commands/tablecmds.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parser.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/varlena.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "source.h"
#include "workers.h"
#include "view_compile.h"

static void
columns_error_context(void *arg)
{
	errcontext("in the column list of stream \"%s\"", (char *) arg);
}

static int
interval_compare(Interval *a, Interval *b)
{
	return DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(a),
											 IntervalPGetDatum(b)));
}

PG_FUNCTION_INFO_V1(sp_create_stream);

/*
 * streamproc.create_stream(name text, columns text, event_time text,
 *                          watermark_delay interval, idle_timeout interval)
 */
Datum
sp_create_stream(PG_FUNCTION_ARGS)
{
	RangeVar   *rv;
	Oid			nspid;
	Oid			existing;
	char	   *columns;
	char	   *sql;
	List	   *stmts;
	CreateForeignTableStmt *stmt;
	char	   *event_time = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	Interval   *delay;
	Interval   *idle = PG_ARGISNULL(4) ? NULL : PG_GETARG_INTERVAL_P(4);
	Interval	zero = {0, 0, 0};
	Oid			relid;
	AttrNumber	att = InvalidAttrNumber;
	ErrorContextCallback errcb;

	sp_check_extension();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream name and columns must not be NULL")));
	delay = PG_ARGISNULL(3) ? &zero : PG_GETARG_INTERVAL_P(3);
	rv = makeRangeVarFromNameList(textToQualifiedNameList(PG_GETARG_TEXT_PP(0)));
	columns = text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (interval_compare(delay, &zero) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("watermark_delay must not be negative")));
	if (idle && interval_compare(idle, &zero) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idle_timeout must be positive")));

	nspid = RangeVarGetAndCheckCreationNamespace(rv, NoLock, NULL);
	existing = get_relname_relid(rv->relname, nspid);
	if (OidIsValid(existing))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 sp_is_stream(existing) ?
				 errmsg("stream \"%s\" already exists", rv->relname) :
				 errmsg("relation \"%s\" already exists", rv->relname)));

	sql = psprintf("CREATE FOREIGN TABLE %s (%s) SERVER streamproc",
				   quote_qualified_identifier(get_namespace_name(nspid), rv->relname),
				   columns);

	errcb.callback = columns_error_context;
	errcb.arg = rv->relname;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
	if (list_length(stmts) != 1 ||
		!IsA(linitial_node(RawStmt, stmts)->stmt, CreateForeignTableStmt))
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("invalid column list for a stream"),
				 errhint("Write columns as in CREATE TABLE, e.g. 'id int, amount numeric, ts timestamptz'.")));
	stmt = (CreateForeignTableStmt *) linitial_node(RawStmt, stmts)->stmt;
	if (stmt->base.inhRelations || stmt->base.partbound || stmt->options ||
		strcmp(stmt->servername, "streamproc") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("invalid column list for a stream"),
				 errhint("Give only column definitions, e.g. 'id int, amount numeric, ts timestamptz'.")));
	if (stmt->base.tableElts == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a stream needs at least one column")));

	SPI_connect();
	if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create stream: %s", sql);
	SPI_finish();
	error_context_stack = errcb.previous;

	relid = get_relname_relid(rv->relname, nspid);
	if (event_time)
	{
		att = get_attnum(relid, event_time);

		if (att == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("event-time column \"%s\" does not exist in stream \"%s\"",
							event_time, rv->relname)));
		if (get_atttype(relid, att) != TIMESTAMPTZOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("event-time column \"%s\" must be of type timestamp with time zone",
							event_time),
					 errhint("Declare the column as timestamptz.")));
	}
	sp_catalog_insert_stream(relid, att, event_time, delay, idle);
	PG_RETURN_OID(relid);
}

PG_FUNCTION_INFO_V1(sp_drop_stream);

/* streamproc.drop_stream(name text, cascade boolean) */
Datum
sp_drop_stream(PG_FUNCTION_ARGS)
{
	RangeVar   *rv;
	Oid			relid;
	bool		cascade = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	ObjectAddress addr;
	List	   *sources;

	sp_check_extension();
	rv = makeRangeVarFromNameList(textToQualifiedNameList(PG_GETARG_TEXT_PP(0)));
	relid = RangeVarGetRelidExtended(rv, AccessExclusiveLock, 0,
									 RangeVarCallbackOwnsRelation, NULL);
	if (!sp_is_stream(relid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a stream", rv->relname)));

	if (!cascade)
	{
		List	   *views;

		sources = sp_catalog_stream_sources(relid);
		if (sources != NIL)
		{
			StringInfoData names;
			ListCell   *lc;

			initStringInfo(&names);
			foreach(lc, sources)
				appendStringInfo(&names, "%s%s", names.len ? ", " : "", (char *) lfirst(lc));
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop stream \"%s\" because sources feed it", rv->relname),
					 errdetail("Sources of the stream: %s.", names.data),
					 errhint("Drop the sources first, or use streamproc.drop_stream('%s', cascade => true).",
							 rv->relname)));
		}
		views = sp_catalog_stream_views(relid);

		if (views != NIL)
		{
			StringInfoData names;
			ListCell   *lc;

			initStringInfo(&names);
			foreach(lc, views)
				appendStringInfo(&names, "%s%s", names.len ? ", " : "",
								 get_rel_name(((SpViewDef *) lfirst(lc))->relid));
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop stream \"%s\" because continuous views read it",
							rv->relname),
					 errdetail("Continuous views on the stream: %s.", names.data),
					 errhint("Drop the views first, or use streamproc.drop_stream('%s', cascade => true).",
							 rv->relname)));
		}
	}
	ObjectAddressSet(addr, RelationRelationId, relid);
	performDeletion(&addr, cascade ? DROP_CASCADE : DROP_RESTRICT, 0);
	sp_catalog_forget(relid);
	sp_request_kick_at_commit();	/* its sources, if any, are gone */
	PG_RETURN_VOID();
}
