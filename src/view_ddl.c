/*
 * view_ddl.c — the DDL of continuous views.
 *
 *   streamproc.create_view(name, query, emit, retention)
 *   CREATE VIEW name WITH (streamproc.continuous) AS SELECT ...   (hook)
 *   streamproc.drop_view(name)  /  DROP VIEW name
 *
 * A continuous view is three objects tied together by pg_depend:
 *
 *   read view  name                 ── what users query
 *      ▲ internal
 *   state table streamproc.state_N  ── keys, partial states, row count;
 *      │ normal                        unique index on the keys
 *      ▼
 *   stream, joined tables, functions of the query
 *
 * Dropping the read view drops the state table with it; dropping the stream
 * is refused while views read it unless CASCADE.  Only apply.c writes state
 * tables.
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_rewrite.h"
#include "rewrite/rewriteSupport.h"
#include "rewrite/prs2lock.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "catalog/pg_type.h"
#include "parser/parse_func.h"
#include "parser/parsetree.h"
#include "parser/parse_relation.h"
#include "commands/tablecmds.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "common/keywords.h"
#include "parser/scanner.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/varlena.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "source.h"
#include "stream_copy.h"
#include "view_compile.h"
#include "view_ddl.h"
#include "workers.h"
#include "window.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static void
spi_ddl(const char *sql)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc != SPI_OK_UTILITY)
		elog(ERROR, "SPI_execute failed (%d): %s", rc, sql);
}

static char *
column_def(const char *name, Oid type, int32 typmod, Oid collation)
{
	char	   *def = psprintf("%s %s", quote_identifier(name),
							   format_type_extended(type, typmod,
													FORMAT_TYPE_TYPEMOD_GIVEN |
													FORMAT_TYPE_FORCE_QUALIFY));

	if (OidIsValid(collation) && collation != DEFAULT_COLLATION_OID)
		def = psprintf("%s COLLATE %s", def, generate_collation_name(collation));
	return def;
}

/*
 * Create the state table; returns its OID.  It belongs to the extension's
 * catalog owner, not to the view's creator, who may only read it (through
 * the view): nobody else may add triggers or indexes to what streamproc
 * writes on everyone's behalf.
 */
static Oid
create_state_table(SpViewShape *shape, int64 id)
{
	Oid			creator = GetUserId();
	SpSavedUser su;
	Oid			relid;
	StringInfoData sql;
	StringInfoData keys;
	char	   *name = psprintf("state_%lld", (long long) id);
	char	   *qname = quote_qualified_identifier("streamproc", name);
	ListCell   *lc;
	int			keyno = 0;

	initStringInfo(&sql);
	initStringInfo(&keys);
	appendStringInfo(&sql, "CREATE TABLE %s (", qname);
	/*
	 * Index order: a tumble/hop window first, so that new windows append at
	 * the right edge and retention deletes a range; a session start last, so
	 * that the sessions of one key are a range.
	 */
	if (shape->window_kind == SP_WINDOW_TUMBLE || shape->window_kind == SP_WINDOW_HOP)
		appendStringInfoString(&keys, quote_identifier(((SpKey *) list_nth(shape->keys, shape->window_key))->name));
	foreach(lc, shape->keys)
	{
		SpKey	   *key = lfirst(lc);

		appendStringInfo(&sql, "%s, ", column_def(key->name, key->type, key->typmod,
												  key->collation));
		if (keyno != shape->window_key || shape->window_kind == SP_WINDOW_NONE)
			appendStringInfo(&keys, "%s%s", keys.len ? ", " : "", quote_identifier(key->name));
		keyno++;
	}
	if (shape->window_kind == SP_WINDOW_SESSION)
		appendStringInfo(&keys, "%s%s", keys.len ? ", " : "",
						 quote_identifier(((SpKey *) list_nth(shape->keys, shape->window_key))->name));
	foreach(lc, shape->aggs)
	{
		SpAggCol   *col = lfirst(lc);

		appendStringInfo(&sql, "%s, ", column_def(col->name, col->storedtype, -1,
												  col->collation));
	}
	/* room on each page for HOT updates of the states */
	appendStringInfo(&sql, "%s pg_catalog.int8 NOT NULL%s) WITH (fillfactor = 70)",
					 SP_ROWS_COLUMN,
					 shape->window_kind == SP_WINDOW_SESSION ?
					 ", " SP_SESSION_END_COLUMN " pg_catalog.timestamptz NOT NULL" : "");
	sp_catalog_enter(&su);
	spi_ddl(sql.data);
	spi_ddl(psprintf("CREATE UNIQUE INDEX %s ON %s (%s) NULLS NOT DISTINCT",
					 quote_identifier(psprintf("%s_key", name)), qname, keys.data));
	/* publishable even under FOR ALL TABLES publications */
	spi_ddl(psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", qname));
	spi_ddl(psprintf("COMMENT ON TABLE %s IS %s", qname,
					 quote_literal_cstr("state of a streamproc continuous view; written only by streamproc")));
	if (creator != GetUserId())
		spi_ddl(psprintf("GRANT SELECT ON %s TO %s", qname,
						 quote_identifier(GetUserNameFromId(creator, false))));
	relid = get_relname_relid(name, sp_catalog_schema());
	sp_catalog_leave(&su);
	return relid;
}

/*
 * Create a continuous view named rv from an unanalyzed SELECT.
 */
static Oid
define_view(RangeVar *rv, RawStmt *raw, const char *source,
			const char *query_text, const char *emit, Interval *retention)
{
	char	   *canonical;
	SpViewShape *shape;
	Oid			nspid;
	int64		id;
	Oid			state_relid;
	Oid			view_relid;
	char	   *read_sql;
	int			nestlevel;
	ObjectAddress state_addr;
	ObjectAddress view_addr;
	SpKey	   *winkey = NULL;

	sp_check_extension();
	if (strcmp(emit, "changes") != 0 && strcmp(emit, "final") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid emit mode \"%s\"", emit),
				 errhint("Use 'changes' or 'final'.")));
	if (rv->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views cannot be temporary")));

	canonical = sp_view_canonical_sql(raw, source);
	shape = sp_view_shape(canonical, NULL);
	/* its creator must be able to read what the view reads */
	(void) ExecCheckRTPerms(shape->query->rtable, true);
	if (isQueryUsingTempRelation(shape->query))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a continuous view cannot read temporary tables"),
				 errdetail("A continuous view outlives the session that creates it.")));
	if ((strcmp(emit, "final") == 0 || retention != NULL) && !shape->event_time_window)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 strcmp(emit, "final") == 0 ?
				 errmsg("emit 'final' needs a window over the stream's event-time column") :
				 errmsg("retention needs a window over the stream's event-time column"),
				 errdetail("Windows close when the watermark of the stream's event time passes their end."),
				 errhint("Create the stream with event_time => 'column' and group by streamproc.tumble(column, ...), streamproc.hop(column, ...) or streamproc.session(column, ...) with constant sizes.")));
	if (retention != NULL)
		(void) sp_window_usecs(retention, "retention");
	/* in-flight writes to the stream finish before the view starts counting */
	LockRelationOid(shape->stream, ShareRowExclusiveLock);
	/* after the lock: a CDC source being created meanwhile is seen */
	if (sp_stream_has_retracting_source(shape->stream))
	{
		char	   *why;

		if (!sp_view_can_retract(shape, &why))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("stream \"%s\" has a CDC source, and this continuous view cannot take rows back",
							get_rel_name(shape->stream)),
					 errdetail_internal("%s", why),
					 errhint("%s.", SP_RETRACT_HINT)));
	}

	nspid = RangeVarGetAndCheckCreationNamespace(rv, NoLock, NULL);
	if (isAnyTempNamespace(nspid))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views cannot be temporary")));
	if (OidIsValid(get_relname_relid(rv->relname, nspid)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists", rv->relname)));

	id = sp_catalog_next_view_id();
	SPI_connect();
	nestlevel = sp_push_catalog_search_path();
	state_relid = create_state_table(shape, id);
	read_sql = sp_view_read_sql(shape, state_relid, strcmp(emit, "final") == 0, retention);
	spi_ddl(psprintf("CREATE VIEW %s AS %s",
					 quote_qualified_identifier(get_namespace_name(nspid), rv->relname),
					 read_sql));
	sp_pop_search_path(nestlevel);
	SPI_finish();
	view_relid = get_relname_relid(rv->relname, nspid);

	/* the state table lives and dies with the view, and needs what the query needs */
	ObjectAddressSet(state_addr, RelationRelationId, state_relid);
	ObjectAddressSet(view_addr, RelationRelationId, view_relid);
	recordDependencyOn(&state_addr, &view_addr, DEPENDENCY_INTERNAL);
	{
		/*
		 * What the query reads is needed by the view's rule, as for any view:
		 * dropping it or changing a column type it uses gets the usual errors.
		 */
		ObjectAddress rule_addr;

		ObjectAddressSet(rule_addr, RewriteRelationId,
						 get_rewrite_oid(view_relid, ViewSelectRuleName, false));
		recordDependencyOnExpr(&rule_addr, (Node *) shape->query, NIL,
							   DEPENDENCY_NORMAL);
	}

	/* plan once now, so that a query that cannot run fails here */
	(void) sp_view_partial_plan(shape, GetUserId(), 1000);
	if (sp_view_can_retract(shape, NULL))
		(void) sp_view_retract_plan(shape, GetUserId(), 1000);

	if (shape->window_key >= 0)
		winkey = list_nth(shape->keys, shape->window_key);
	sp_catalog_insert_view(id, view_relid, shape->stream, state_relid,
						   query_text, canonical, nodeToString(shape->query),
						   emit, retention,
						   shape->window_kind == SP_WINDOW_HOP ? "hop" :
						   shape->window_kind == SP_WINDOW_TUMBLE ? "tumble" :
						   shape->window_kind == SP_WINDOW_SESSION ? "session" : NULL,
						   winkey ? winkey->name : NULL,
						   shape->window_size, shape->window_slide,
						   shape->event_time_window);

	/* backends writing to the stream reload its views */
	CacheInvalidateRelcacheByRelid(shape->stream);
	return view_relid;
}

PG_FUNCTION_INFO_V1(sp_create_view);

/*
 * streamproc.create_view(name text, query text, emit text, retention interval)
 */
Datum
sp_create_view(PG_FUNCTION_ARGS)
{
	RangeVar   *rv;
	char	   *query;
	RawStmt    *raw;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name, query and emit must not be NULL")));
	rv = makeRangeVarFromNameList(textToQualifiedNameList(PG_GETARG_TEXT_PP(0)));
	query = text_to_cstring(PG_GETARG_TEXT_PP(1));
	raw = sp_parse_select(query);
	PG_RETURN_OID(define_view(rv, raw, query, query,
							  text_to_cstring(PG_GETARG_TEXT_PP(2)),
							  PG_ARGISNULL(3) ? NULL : PG_GETARG_INTERVAL_P(3)));
}

PG_FUNCTION_INFO_V1(sp_drop_view);

/* streamproc.drop_view(name text) */
Datum
sp_drop_view(PG_FUNCTION_ARGS)
{
	RangeVar   *rv;
	Oid			relid;
	Oid			stream;
	ObjectAddress addr;

	sp_check_extension();
	rv = makeRangeVarFromNameList(textToQualifiedNameList(PG_GETARG_TEXT_PP(0)));
	relid = RangeVarGetRelidExtended(rv, AccessExclusiveLock, 0,
									 RangeVarCallbackOwnsRelation, NULL);
	if (!sp_catalog_view_stream(relid, &stream))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a continuous view", rv->relname),
				 errhint("Use DROP VIEW or DROP TABLE for other relations.")));
	LockRelationOid(stream, ShareRowExclusiveLock);

	ObjectAddressSet(addr, RelationRelationId, relid);
	performDeletion(&addr, DROP_RESTRICT, 0);
	sp_catalog_forget(relid);
	CacheInvalidateRelcacheByRelid(stream);
	PG_RETURN_VOID();
}

/*
 * The text of the SELECT in CREATE VIEW ... AS SELECT: everything after the
 * first AS outside parentheses.
 */
static char *
view_select_text(const char *source, int location, int len)
{
	char	   *stmt;
	core_yy_extra_type extra;
	core_yyscan_t scanner;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	int			depth = 0;
	int			tok;
	int			as_token = ScanKeywordTokens[ScanKeywordLookup("as", &ScanKeywords)];

	if (location < 0)
		location = 0;
	stmt = len > 0 ? pnstrdup(source + location, len) : pstrdup(source + location);
	scanner = scanner_init(stmt, &extra, &ScanKeywords, ScanKeywordTokens);
	while ((tok = core_yylex(&yylval, &yylloc, scanner)) != 0)
	{
		if (tok == '(')
			depth++;
		else if (tok == ')')
			depth--;
		else if (depth == 0 && tok == as_token)
		{
			char	   *rest = stmt + yylloc + 2;

			scanner_finish(scanner);
			while (*rest == ' ' || *rest == '\n' || *rest == '\t' || *rest == '\r')
				rest++;
			return pstrdup(rest);
		}
	}
	scanner_finish(scanner);
	return stmt;
}

/*
 * CREATE VIEW name WITH (streamproc.continuous [, streamproc.emit = ...,
 * streamproc.retention = ...]) AS SELECT ...
 */
static bool
handle_view_stmt(ViewStmt *vs, const char *source, PlannedStmt *pstmt,
				 QueryCompletion *qc)
{
	bool		continuous = false;
	char	   *emit = "changes";
	Interval   *retention = NULL;
	DefElem    *other = NULL;
	ListCell   *lc;
	RawStmt    *raw;

	foreach(lc, vs->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (def->defnamespace == NULL || strcmp(def->defnamespace, "streamproc") != 0)
		{
			other = def;
			continue;
		}
		if (strcmp(def->defname, "continuous") == 0)
			continuous = defGetBoolean(def);
		else if (strcmp(def->defname, "emit") == 0)
			emit = defGetString(def);
		else if (strcmp(def->defname, "retention") == 0)
			retention = DatumGetIntervalP(DirectFunctionCall3(interval_in,
															  CStringGetDatum(defGetString(def)),
															  ObjectIdGetDatum(InvalidOid),
															  Int32GetDatum(-1)));
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized parameter \"streamproc.%s\"", def->defname),
					 errhint("Valid parameters are streamproc.continuous, streamproc.emit and streamproc.retention.")));
	}
	if (!continuous)
	{
		if (vs->options != NIL && other == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("streamproc parameters require streamproc.continuous")));
		return false;
	}
	if (other != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parameter \"%s\" cannot be used with a continuous view", other->defname)));
	if (vs->replace)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("CREATE OR REPLACE is not supported for continuous views"),
				 errhint("Drop the view and create it again.")));
	if (vs->aliases != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a column name list is not supported for continuous views"),
				 errhint("Name the columns with AS in the SELECT list.")));
	if (vs->withCheckOption != NO_CHECK_OPTION)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("WITH CHECK OPTION is not supported for continuous views")));

	/* the DDL form is create_view() by another name: same privilege */
	{
		Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, INTERVALOID};
		Oid			fn;

		sp_check_extension();
		fn = LookupFuncName(list_make2(makeString("streamproc"), makeString("create_view")),
							4, argtypes, false);
		if (pg_proc_aclcheck(fn, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION, "streamproc.create_view");
	}
	raw = makeNode(RawStmt);
	raw->stmt = copyObject(vs->query);
	raw->stmt_location = pstmt->stmt_location;
	raw->stmt_len = pstmt->stmt_len;
	(void) define_view(copyObject(vs->view), raw, source,
					   view_select_text(source, pstmt->stmt_location, pstmt->stmt_len),
					   emit, retention);
	if (qc)
		SetQueryCompletion(qc, CMDTAG_CREATE_VIEW, 0);
	return true;
}

static void
sp_process_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (IsA(parsetree, ViewStmt) &&
		handle_view_stmt((ViewStmt *) parsetree, queryString, pstmt, qc))
		return;
	if (IsA(parsetree, CopyStmt) &&
		sp_copy_into_stream(pstmt, queryString, queryEnv, qc))
		return;
	sp_workers_utility(parsetree);

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	/* a renamed event-time column: its name is what a restore goes by */
	if (IsA(parsetree, RenameStmt) &&
		((RenameStmt *) parsetree)->renameType == OBJECT_COLUMN &&
		((RenameStmt *) parsetree)->relation != NULL)
	{
		RenameStmt *rs = (RenameStmt *) parsetree;
		Oid			relid = RangeVarGetRelid(rs->relation, NoLock, true);

		if (OidIsValid(relid) && sp_is_stream(relid) &&
			OidIsValid(get_extension_oid("streamproc", true)))
			sp_catalog_rename_event_time(relid, rs->subname, rs->newname);
	}
}

void
sp_view_ddl_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = sp_process_utility;
}
