/*
 * view_compile.c — compiling a continuous view.
 *
 * A view's SELECT is analyzed once and turned into three things:
 *
 *   user query ──► shape: group keys + aggregate calls (+ window key)
 *                    │
 *                    ├─► state table   (keys..., _agg1..N partial states, _rows)
 *                    ├─► partial plan  the same query over one batch (an
 *                    │                 ephemeral named relation in place of
 *                    │                 the stream) whose Agg node emits
 *                    │                 partial states: AGGSPLIT_INITIAL_SERIAL
 *                    └─► read view     finalizes the states of each row;
 *                                      for hop, first combines the slide
 *                                      buckets that make up each window
 *
 * The query is stored as canonical SQL (deparsed with search_path =
 * pg_catalog, so every name is qualified) and recompiled from it by each
 * backend that applies batches; that text is also what makes the view
 * survive dump and restore.
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_am.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "parser/analyze.h"
#include "parser/parse_coerce.h"
#include "parser/parse_agg.h"
#include "parser/parse_func.h"
#include "parser/parser.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "agg_support.h"
#include "catalog.h"
#include "view_compile.h"
#include "window.h"

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------
 */

Oid
sp_stream_server_oid(bool missing_ok)
{
	ForeignServer *server = GetForeignServerByName("streamproc", missing_ok);

	return server ? server->serverid : InvalidOid;
}

bool
sp_is_stream(Oid relid)
{
	Oid			server;

	if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
		return false;
	server = sp_stream_server_oid(true);
	return OidIsValid(server) && GetForeignTable(relid)->serverid == server;
}

int
sp_push_catalog_search_path(void)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

/*
 * Undo every setting changed since sp_push_catalog_search_path(), including
 * plain SETs made by code that ran meanwhile (a view's functions must not
 * change the writer's session).
 */
void
sp_pop_search_path(int nestlevel)
{
	AtEOXact_GUC(false, nestlevel);
}

static Oid
streamproc_func(const char *name, int nargs, const Oid *argtypes)
{
	return LookupFuncName(list_make2(makeString("streamproc"), makeString(pstrdup(name))),
						  nargs, argtypes, false);
}

/* Parse text that must be exactly one SELECT. */
RawStmt *
sp_parse_select(const char *sql)
{
	List	   *stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
	RawStmt    *raw;

	if (list_length(stmts) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a continuous view is defined by exactly one SELECT statement"),
				 errdetail("The query text contains %d statements.", list_length(stmts))));
	raw = linitial_node(RawStmt, stmts);
	if (!IsA(raw->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a continuous view is defined by a SELECT statement")));
	return raw;
}

/* ------------------------------------------------------------------------
 * Validation
 * ------------------------------------------------------------------------
 */

typedef struct StreamRefContext
{
	int			depth;
	bool		nested;
} StreamRefContext;

static bool
stream_ref_walker(Node *node, StreamRefContext *ctx)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		bool		result;

		ctx->depth++;
		result = query_tree_walker((Query *) node, stream_ref_walker, ctx,
								   QTW_EXAMINE_RTES_BEFORE);
		ctx->depth--;
		return result;
	}
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (ctx->depth > 0 && rte->rtekind == RTE_RELATION &&
			sp_is_stream(rte->relid))
			ctx->nested = true;
		return false;
	}
	return expression_tree_walker(node, stream_ref_walker, ctx);
}

/* Is range table entry rti on the nullable side of an outer join? */
static bool
rti_nullable(Node *jtnode, Index rti, bool nullable)
{
	if (jtnode == NULL)
		return false;
	if (IsA(jtnode, RangeTblRef))
		return nullable && ((RangeTblRef *) jtnode)->rtindex == rti;
	if (IsA(jtnode, FromExpr))
	{
		ListCell   *lc;

		foreach(lc, ((FromExpr *) jtnode)->fromlist)
			if (rti_nullable(lfirst(lc), rti, nullable))
				return true;
		return false;
	}
	if (IsA(jtnode, JoinExpr))
	{
		JoinExpr   *j = (JoinExpr *) jtnode;
		bool		left_nullable = nullable || j->jointype == JOIN_RIGHT || j->jointype == JOIN_FULL;
		bool		right_nullable = nullable || j->jointype == JOIN_LEFT || j->jointype == JOIN_FULL;

		return rti_nullable(j->larg, rti, left_nullable) ||
			rti_nullable(j->rarg, rti, right_nullable);
	}
	return false;
}

static bool
collect_aggrefs_walker(Node *node, List **aggs)
{
	if (node == NULL)
		return false;
	if (IsA(node, Aggref))
	{
		if (!list_member(*aggs, node))
			*aggs = lappend(*aggs, node);
		return false;
	}
	return expression_tree_walker(node, collect_aggrefs_walker, aggs);
}

static bool
func_used_walker(Node *node, Oid *funcid)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr) && ((FuncExpr *) node)->funcid == *funcid)
		return true;
	return expression_tree_walker(node, func_used_walker, funcid);
}

static void
check_query_form(Query *q)
{
	if (q->commandType != CMD_SELECT || q->utilityStmt != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a continuous view is defined by a SELECT statement")));
	if (q->setOperations)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("UNION, INTERSECT and EXCEPT are not supported in a continuous view"),
				 errhint("Create one continuous view per branch and combine them when reading.")));
	if (q->cteList)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("WITH queries are not supported in a continuous view")));
	if (q->hasWindowFuncs)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("window functions are not supported in a continuous view"),
				 errdetail("An OVER clause needs the whole result, which a continuous view never has."),
				 errhint("For time windows group by streamproc.tumble() or streamproc.hop(); apply OVER when reading the view.")));
	if (q->hasTargetSRFs)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-returning functions are not supported in the select list of a continuous view")));
	if (q->sortClause)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("ORDER BY is not supported in a continuous view"),
				 errhint("Order the rows when reading the view: SELECT ... FROM view ORDER BY ...")));
	if (q->limitCount || q->limitOffset)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("LIMIT and OFFSET are not supported in a continuous view"),
				 errhint("Apply LIMIT when reading the view.")));
	if (q->distinctClause)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("SELECT DISTINCT is not supported in a continuous view"),
				 errhint("Use GROUP BY instead.")));
	if (q->groupingSets)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("GROUPING SETS, ROLLUP and CUBE are not supported in a continuous view")));
	if (q->rowMarks)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("FOR UPDATE and FOR SHARE are not supported in a continuous view")));
}

/* The one stream the query reads; errors for none, two, or nested ones. */
static Index
find_stream(Query *q, Oid *stream)
{
	StreamRefContext ctx = {0, false};
	Index		found = 0;
	ListCell   *lc;
	Index		rti = 0;

	foreach(lc, q->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		rti++;
		if (rte->rtekind != RTE_RELATION || !sp_is_stream(rte->relid))
			continue;
		if (found != 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("a continuous view can read only one stream"),
					 errdetail("The query reads streams \"%s\" and \"%s\".",
							   get_rel_name(*stream), get_rel_name(rte->relid)),
					 errhint("Create one continuous view per stream, or join a stream with ordinary tables.")));
		found = rti;
		*stream = rte->relid;
	}
	(void) query_tree_walker(q, stream_ref_walker, &ctx, QTW_EXAMINE_RTES_BEFORE);
	if (ctx.nested)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("subqueries over a stream are not supported in a continuous view"),
				 errhint("Read the stream directly in the FROM clause of the view's query.")));
	if (found == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a continuous view must read from a stream"),
				 errhint("Create a stream with streamproc.create_stream() and name it in the FROM clause.")));
	if (rti_nullable((Node *) q->jointree, found, false))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a stream cannot be on the nullable side of an outer join in a continuous view"),
				 errhint("Write stream LEFT JOIN table to enrich stream rows.")));
	return found;
}

static void
check_aggref(Aggref *agg)
{
	if (agg->agglevelsup != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("outer-level aggregates are not supported in a continuous view")));
	if (agg->aggdistinct != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s(DISTINCT ...) is not supported in a continuous view",
						get_func_name(agg->aggfnoid)),
				 errdetail("Exact distinct counts need every value ever seen."),
				 errhint("Use the hll extension for approximate distinct counts: hll_cardinality(hll_add_agg(hll_hash_text(col))).")));
	if (agg->aggorder != NIL && agg->aggkind == AGGKIND_NORMAL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("aggregates with ORDER BY are not supported in a continuous view"),
				 errdetail("Aggregate %s orders its input, which needs all rows of a group at once.",
						   get_func_name(agg->aggfnoid)),
				 errhint("streamproc.latest(value, ts) and streamproc.earliest(value, ts) pick a value by time.")));
	{
		Oid			argtypes[FUNC_MAX_ARGS];
		int			nargs = get_aggregate_argtypes(agg, argtypes);

		sp_agg_check_combinable(agg->aggfnoid, nargs, argtypes);
	}
}

/* ------------------------------------------------------------------------
 * Shape
 * ------------------------------------------------------------------------
 */

static char *
unique_name(List **used, const char *base)
{
	char	   *name = pstrdup(base);
	int			n = 1;
	ListCell   *lc;
	bool		clash;

	do
	{
		clash = false;
		foreach(lc, *used)
		{
			if (strcmp(lfirst(lc), name) == 0)
			{
				clash = true;
				name = psprintf("%s_%d", base, ++n);
				break;
			}
		}
	} while (clash);
	*used = lappend(*used, name);
	return name;
}

static Query *
analyze_select(RawStmt *raw, const char *source)
{
	Query	   *q = parse_analyze_fixedparams(raw, source, NULL, 0, NULL);

	check_query_form(q);
	return q;
}

/*
 * Analyze the user's SELECT (with the caller's search_path), check it, and
 * return it as canonical SQL in which every name is qualified.
 */
char *
sp_view_canonical_sql(RawStmt *raw, const char *source)
{
	Query	   *q = analyze_select(raw, source);
	Oid			stream;
	int			nestlevel;
	char	   *sql;

	(void) find_stream(q, &stream);
	nestlevel = sp_push_catalog_search_path();
	sql = pg_get_querydef(q, false);
	sp_pop_search_path(nestlevel);
	return sql;
}

/* OIDs of the window functions */
typedef struct WindowFuncs
{
	Oid			tumble2;
	Oid			tumble3;
	Oid			hop;
	Oid			session;
	Oid			window_end;
} WindowFuncs;

static void
lookup_window_funcs(WindowFuncs *wf)
{
	Oid			ts_iv[3] = {TIMESTAMPTZOID, INTERVALOID, INTERVALOID};
	Oid			ts_iv_ts[3] = {TIMESTAMPTZOID, INTERVALOID, TIMESTAMPTZOID};

	wf->tumble2 = streamproc_func("tumble", 2, ts_iv);
	wf->tumble3 = streamproc_func("tumble", 3, ts_iv_ts);
	wf->hop = streamproc_func("hop", 3, ts_iv);
	wf->session = streamproc_func("session", 2, ts_iv);
	wf->window_end = streamproc_func("window_end", 2, ts_iv);
}

static bool
is_window_func(Oid funcid, WindowFuncs *wf)
{
	return funcid == wf->tumble2 || funcid == wf->tumble3 ||
		funcid == wf->hop || funcid == wf->session;
}

static Const *
interval_const(Interval *iv)
{
	return makeConst(INTERVALOID, -1, InvalidOid, sizeof(Interval),
					 IntervalPGetDatum(iv), false, false);
}

static void
classify_window_key(SpViewShape *shape, int keyno, SpKey *key, WindowFuncs *wf)
{
	FuncExpr   *f;
	Node	   *size;

	if (!IsA(key->expr, FuncExpr))
		return;
	f = (FuncExpr *) key->expr;
	if (!is_window_func(f->funcid, wf))
		return;
	if (shape->window_kind != SP_WINDOW_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a continuous view can group by at most one window function")));
	shape->window_key = keyno;
	shape->window_ts = linitial(f->args);
	size = lsecond(f->args);
	if (f->funcid == wf->session)
	{
		shape->window_kind = SP_WINDOW_SESSION;
		if (!IsA(size, Const) || ((Const *) size)->constisnull)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the gap of streamproc.session() must be a constant")));
		shape->window_size = DatumGetIntervalP(((Const *) size)->constvalue);
		(void) sp_window_usecs(shape->window_size, "session gap");
	}
	else if (f->funcid == wf->hop)
	{
		Node	   *slide = lthird(f->args);

		shape->window_kind = SP_WINDOW_HOP;
		if (!IsA(size, Const) || ((Const *) size)->constisnull ||
			!IsA(slide, Const) || ((Const *) slide)->constisnull)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the size and slide of streamproc.hop() must be constants")));
		shape->window_size = DatumGetIntervalP(((Const *) size)->constvalue);
		shape->window_slide = DatumGetIntervalP(((Const *) slide)->constvalue);
		if (sp_window_usecs(shape->window_size, "window size") %
			sp_window_usecs(shape->window_slide, "window slide") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("hop window size must be a multiple of its slide")));
	}
	else
	{
		shape->window_kind = SP_WINDOW_TUMBLE;
		if (IsA(size, Const) && !((Const *) size)->constisnull)
		{
			shape->window_size = DatumGetIntervalP(((Const *) size)->constvalue);
			(void) sp_window_usecs(shape->window_size, "window size");
		}
	}
}

/*
 * A view's shape from its stored query tree, or, at creation, from its
 * canonical SQL (analyzed under search_path = pg_catalog).
 */
SpViewShape *
sp_view_shape(const char *canonical_sql, const char *tree)
{
	SpViewShape *shape = palloc0(sizeof(SpViewShape));
	int			nestlevel = sp_push_catalog_search_path();
	Query	   *q;
	List	   *aggrefs = NIL;
	List	   *used = NIL;
	ListCell   *lc;
	WindowFuncs wf;
	Index		stream_rti;
	int			i;

	if (tree != NULL)
	{
		/* a stored query refers to objects by OID: renames do not matter */
		q = (Query *) stringToNode(tree);
		AcquireRewriteLocks(q, true, false);
	}
	else
		q = analyze_select(sp_parse_select(canonical_sql), canonical_sql);
	sp_pop_search_path(nestlevel);

	/* the state table's own columns come first in the name space */
	used = list_make2(pstrdup(SP_ROWS_COLUMN), pstrdup(SP_SESSION_END_COLUMN));
	shape->query = q;
	shape->sql = pstrdup(canonical_sql);
	shape->window_key = -1;
	stream_rti = find_stream(q, &shape->stream);
	lookup_window_funcs(&wf);

	/* aggregates of the select list and HAVING */
	(void) collect_aggrefs_walker((Node *) q->targetList, &aggrefs);
	(void) collect_aggrefs_walker(q->havingQual, &aggrefs);
	if (aggrefs == NIL && q->groupClause == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a continuous view must aggregate"),
				 errdetail("Without GROUP BY or an aggregate the view would have to keep every row."),
				 errhint("Add a GROUP BY clause or an aggregate such as count(*).")));

	/* group keys */
	shape->grouped = (q->groupClause != NIL);
	if (!shape->grouped)
	{
		SpKey	   *key = palloc0(sizeof(SpKey));

		key->name = unique_name(&used, "_all");
		key->expr = (Expr *) makeBoolConst(true, false);
		key->type = BOOLOID;
		key->typmod = -1;
		shape->keys = list_make1(key);
	}
	i = 0;
	foreach(lc, q->groupClause)
	{
		SortGroupClause *sgc = lfirst_node(SortGroupClause, lc);
		TargetEntry *tle = get_sortgroupclause_tle(sgc, q->targetList);
		SpKey	   *key = palloc0(sizeof(SpKey));

		key->expr = tle->expr;
		key->type = exprType((Node *) tle->expr);
		key->typmod = exprTypmod((Node *) tle->expr);
		key->collation = exprCollation((Node *) tle->expr);
		key->sortgroupref = sgc->tleSortGroupRef;
		key->name = unique_name(&used, (!tle->resjunk && tle->resname) ?
								tle->resname : psprintf("_key%d", i + 1));
		if (!OidIsValid(GetDefaultOpClass(key->type, BTREE_AM_OID)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot group a continuous view by a value of type %s",
							format_type_be(key->type)),
					 errdetail("Group keys are stored in a btree index, and type %s has no default btree operator class.",
							   format_type_be(key->type)),
					 errhint("Group by an expression of another type, e.g. a cast to text.")));
		classify_window_key(shape, i, key, &wf);
		shape->keys = lappend(shape->keys, key);
		i++;
	}
	/* a session needs its neighbours: only a GROUP BY key can be one */
	if (func_used_walker((Node *) q->jointree, &wf.session) ||
		func_used_walker(q->havingQual, &wf.session))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("streamproc.session() can only be used as a GROUP BY key of a continuous view")));
	if (shape->window_kind == SP_WINDOW_HOP || shape->window_kind == SP_WINDOW_SESSION)
	{
		ListCell   *alc;
		Oid			funcid = shape->window_kind == SP_WINDOW_HOP ? wf.hop : wf.session;
		const char *fname = shape->window_kind == SP_WINDOW_HOP ? "hop" : "session";

		if (func_used_walker((Node *) q->jointree, &funcid))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("streamproc.%s() can only be used as a GROUP BY key of a continuous view", fname)));
		foreach(alc, aggrefs)
			if (func_used_walker((Node *) ((Aggref *) lfirst(alc))->args, &funcid))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("streamproc.%s() can only be used as a GROUP BY key of a continuous view", fname)));
	}

	/* windows over the stream's event time close as the watermark passes */
	if (shape->window_kind != SP_WINDOW_NONE && shape->window_size != NULL)
	{
		AttrNumber	et = sp_catalog_stream_event_time(shape->stream);
		Var		   *v = (Var *) shape->window_ts;

		shape->event_time_window = et != InvalidAttrNumber && IsA(v, Var) &&
			v->varno == stream_rti && v->varattno == et && v->varlevelsup == 0;
	}

	/* one state column per distinct aggregate call */
	i = 0;
	foreach(lc, aggrefs)
	{
		Aggref	   *agg = lfirst_node(Aggref, lc);
		SpAggCol   *col = palloc0(sizeof(SpAggCol));

		check_aggref(agg);
		col->aggref = agg;
		col->nargs = get_aggregate_argtypes(agg, col->argtypes);
		col->storedtype = sp_agg_stored_type(agg->aggfnoid, col->nargs, col->argtypes);
		col->collation = type_is_collatable(col->storedtype) ? agg->inputcollid : InvalidOid;
		col->name = unique_name(&used, psprintf("_agg%d", ++i));
		shape->aggs = lappend(shape->aggs, col);
	}
	return shape;
}

/* ------------------------------------------------------------------------
 * Partial plan
 * ------------------------------------------------------------------------
 */

static Aggref *
make_count_star(void)
{
	Aggref	   *agg = makeNode(Aggref);

	agg->aggfnoid = F_COUNT_;
	agg->aggtype = INT8OID;
	agg->aggstar = true;
	agg->aggkind = AGGKIND_NORMAL;
	agg->aggsplit = AGGSPLIT_SIMPLE;
	agg->location = -1;
	return agg;
}

/* min(ts) or max(ts) of a timestamptz expression */
static Aggref *
make_ts_agg(Oid aggfnoid, Expr *ts)
{
	Aggref	   *agg = makeNode(Aggref);

	agg->aggfnoid = aggfnoid;
	agg->aggtype = TIMESTAMPTZOID;
	agg->aggargtypes = list_make1_oid(TIMESTAMPTZOID);
	agg->args = list_make1(makeTargetEntry(copyObject(ts), 1, NULL, false));
	agg->aggkind = AGGKIND_NORMAL;
	agg->aggsplit = AGGSPLIT_SIMPLE;
	agg->location = -1;
	return agg;
}

static void
fix_partial_aggrefs(List *tlist)
{
	ListCell   *lc;

	foreach(lc, tlist)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);

		if (IsA(tle->expr, Aggref))
			mark_partial_aggref((Aggref *) tle->expr, AGGSPLIT_INITIAL_SERIAL);
	}
}

static FuncExpr *
tumble_call(Expr *ts, Interval *size)
{
	Oid			ts_iv[2] = {TIMESTAMPTZOID, INTERVALOID};

	return makeFuncExpr(streamproc_func("tumble", 2, ts_iv), TIMESTAMPTZOID,
						list_make2(copyObject(ts), interval_const(size)),
						InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
}

/*
 * The group key as stored: hop is kept at slide granularity, a session at
 * gap granularity (rows in one gap-long bucket are always in one session).
 */
static Expr *
stored_key_expr(SpViewShape *shape, int keyno)
{
	SpKey	   *key = list_nth(shape->keys, keyno);

	if (keyno != shape->window_key)
		return copyObject(key->expr);
	if (shape->window_kind == SP_WINDOW_HOP)
		return (Expr *) tumble_call(shape->window_ts, shape->window_slide);
	if (shape->window_kind == SP_WINDOW_SESSION)
		return (Expr *) tumble_call(shape->window_ts, shape->window_size);
	return copyObject(key->expr);
}

/*
 * End of the earliest window a stream row belongs to: once the watermark
 * reaches it, the row is late.
 *   tumble   window_end(tumble(ts, size), size)
 *   hop      window_end(tumble(ts, slide), slide)  -- its first window closes
 *   session  window_end(ts, gap)                   -- its own session closes
 */
static Expr *
row_window_end(SpViewShape *shape)
{
	Oid			ts_iv[2] = {TIMESTAMPTZOID, INTERVALOID};
	Expr	   *start;
	Interval   *len;

	switch (shape->window_kind)
	{
		case SP_WINDOW_HOP:
			start = stored_key_expr(shape, shape->window_key);
			len = shape->window_slide;
			break;
		case SP_WINDOW_SESSION:
			start = copyObject(shape->window_ts);
			len = shape->window_size;
			break;
		default:
			start = stored_key_expr(shape, shape->window_key);
			len = shape->window_size;
			break;
	}
	return (Expr *) makeFuncExpr(streamproc_func("window_end", 2, ts_iv), TIMESTAMPTZOID,
								 list_make2(start, interval_const(len)),
								 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
}

/*
 * row_window_end as numbers, for judging a whole batch by its least event
 * time (apply.c): false if it cannot be (a tumble origin that is not a
 * constant).  Each case mirrors row_window_end.
 */
bool
sp_view_late_rule(SpViewShape *shape, SpLateRule *rule)
{
	/* (classify_window_key takes only a call of a window function) */
	FuncExpr   *f = castNode(FuncExpr, ((SpKey *) list_nth(shape->keys, shape->window_key))->expr);

	rule->align_us = 0;
	rule->gap_us = 0;
	rule->origin = SP_UNIX_EPOCH;
	switch (shape->window_kind)
	{
		case SP_WINDOW_SESSION:
			rule->gap_us = sp_window_usecs(shape->window_size, "session gap");
			return true;
		case SP_WINDOW_HOP:
			/* stored_key_expr: tumble(ts, slide), from the epoch */
			rule->align_us = sp_window_usecs(shape->window_slide, "window slide");
			return true;
		case SP_WINDOW_TUMBLE:
			if (list_length(f->args) > 2)
			{
				Const	   *origin = (Const *) lthird(f->args);

				if (!IsA(origin, Const) || origin->constisnull ||
					origin->consttype != TIMESTAMPTZOID ||
					TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(origin->constvalue)))
					return false;
				rule->origin = DatumGetTimestampTz(origin->constvalue);
			}
			rule->align_us = sp_window_usecs(shape->window_size, "window size");
			return true;
		case SP_WINDOW_NONE:
			break;
	}
	return false;
}

/* row_window_end <= $1, where $1 is the watermark when the batch arrived */
static Expr *
row_closed_qual(SpViewShape *shape)
{
	Param	   *wm = makeNode(Param);

	wm->paramkind = PARAM_EXTERN;
	wm->paramid = 1;
	wm->paramtype = TIMESTAMPTZOID;
	wm->paramtypmod = -1;
	wm->paramcollid = InvalidOid;
	wm->location = -1;
	return make_opclause(OpernameGetOprid(list_make2(makeString("pg_catalog"), makeString("<=")),
										  TIMESTAMPTZOID, TIMESTAMPTZOID),
						 BOOLOID, false,
						 row_window_end(shape), (Expr *) wm,
						 InvalidOid, InvalidOid);
}

static void
add_qual(Query *q, Node *qual)
{
	if (q->jointree->quals == NULL)
		q->jointree->quals = qual;
	else
		q->jointree->quals = (Node *) makeBoolExpr(AND_EXPR,
												   list_make2(q->jointree->quals, qual), -1);
}

/*
 * The view's query, rewritten, with the stream replaced by the batch (an
 * ephemeral named relation) and joined tables read as the view's owner.
 * *stream_rti receives the batch's range table index.
 */
static Query *
batch_query(SpViewShape *shape, Oid owner, int batch_rows, Index *stream_rti)
{
	Query	   *orig = copyObject(shape->query);
	List	   *rewritten;
	Query	   *q;
	ListCell   *lc;
	Index		rti = 0;

	/* before rewriting, so that row-level security applies to the owner */
	foreach(lc, orig->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		if (rte->rtekind == RTE_RELATION && !OidIsValid(rte->checkAsUser))
			rte->checkAsUser = owner;
	}
	rewritten = QueryRewrite(orig);

	if (list_length(rewritten) != 1)
		elog(ERROR, "continuous view query rewrote to %d queries", list_length(rewritten));
	q = linitial_node(Query, rewritten);
	foreach(lc, q->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		rti++;
		if (rte->rtekind != RTE_RELATION)
			continue;
		if (rte->relid == shape->stream)
			*stream_rti = rti;
		else if (!OidIsValid(rte->checkAsUser))
			rte->checkAsUser = owner;	/* joined tables: read as the view's owner */
	}
	return q;
}

/* Turn the stream's range table entry into the batch. */
static void
stream_to_batch(Query *q, Index stream_rti, int batch_rows)
{
	RangeTblEntry *rte = rt_fetch(stream_rti, q->rtable);
	Relation	rel = table_open(rte->relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	int			a;

	rte->rtekind = RTE_NAMEDTUPLESTORE;
	rte->enrname = SP_BATCH_ENR_NAME;
	rte->enrtuples = batch_rows;
	rte->rellockmode = NoLock;
	rte->requiredPerms = 0;
	rte->checkAsUser = InvalidOid;
	rte->selectedCols = NULL;
	rte->coltypes = rte->coltypmods = rte->colcollations = NIL;
	for (a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		rte->coltypes = lappend_oid(rte->coltypes,
									att->attisdropped ? InvalidOid : att->atttypid);
		rte->coltypmods = lappend_int(rte->coltypmods,
									  att->attisdropped ? 0 : att->atttypmod);
		rte->colcollations = lappend_oid(rte->colcollations,
										 att->attisdropped ? InvalidOid : att->attcollation);
	}
	table_close(rel, AccessShareLock);
}

static PlannedStmt *
plan_batch_query(Query *q, SpViewShape *shape)
{
	int			nestlevel = sp_push_catalog_search_path();
	PlannedStmt *stmt = pg_plan_query(q, shape->sql, 0, NULL);

	sp_pop_search_path(nestlevel);
	return stmt;
}

/* ------------------------------------------------------------------------
 * Retractions
 *
 * A retraction (weight -1: a CDC delete, the old image of an update) is
 * applied like a batch of its own: the partial plan runs over the retracted
 * rows with every aggregate swapped for a weighted twin that produces the
 * same partial state, but of the rows taken away (count -n, sum -x, ...).
 * The state table's combine functions then add it in as usual.  A twin
 * keeps the original's transition type, serial form and combine function,
 * so its states combine with the stored ones; where the original has an
 * inverse transition (moving-aggregate support), the twin calls it.
 *
 *   count(*)             weighted_count(w)                 int8
 *   count(x)             weighted_count(x, w)              int8
 *   sum(int2|int4)       weighted_sum(x::int8, w)          int8
 *   sum|avg(int8)        weighted_int8_state(x, w)         int8_avg_accum[_inv]
 *   sum|avg(numeric)     weighted_numeric_state(x, w)      numeric_avg_accum, numeric_accum_inv
 *   avg(int2|int4)       weighted_int4_avg(x::int4, w)     int4_avg_accum[_inv]
 *
 * Everything else (min/max, latest/earliest, hll, ...) cannot forget a row
 * and is refused on a stream that retracts; so are session windows, whose
 * bounds are a min/max of event time.
 * ------------------------------------------------------------------------
 */

typedef struct WeightedTwin
{
	Oid			aggfnoid;		/* the original */
	const char *twin;
	Oid			argtype;		/* the twin's value argument; InvalidOid: none */
} WeightedTwin;

static const WeightedTwin weighted_twins[] = {
	{F_COUNT_, "weighted_count", InvalidOid},
	{F_COUNT_ANY, "weighted_count", ANYOID},
	{F_SUM_INT2, "weighted_sum", INT8OID},
	{F_SUM_INT4, "weighted_sum", INT8OID},
	{F_SUM_INT8, "weighted_int8_state", INT8OID},
	{F_AVG_INT8, "weighted_int8_state", INT8OID},
	{F_SUM_NUMERIC, "weighted_numeric_state", NUMERICOID},
	{F_AVG_NUMERIC, "weighted_numeric_state", NUMERICOID},
	{F_AVG_INT2, "weighted_int4_avg", INT4OID},
	{F_AVG_INT4, "weighted_int4_avg", INT4OID},
};

static const WeightedTwin *
weighted_twin(Oid aggfnoid)
{
	int			i;

	for (i = 0; i < lengthof(weighted_twins); i++)
		if (weighted_twins[i].aggfnoid == aggfnoid)
			return &weighted_twins[i];
	return NULL;
}

/*
 * Can the view take rows back?  If not, *why (when given) says what stands
 * in the way, for an errdetail.
 */
bool
sp_view_can_retract(SpViewShape *shape, char **why)
{
	ListCell   *lc;

	if (shape->window_kind == SP_WINDOW_SESSION)
	{
		if (why)
			*why = pstrdup("Session windows cannot take rows back: a session's bounds are the least and greatest event time of its rows.");
		return false;
	}
	foreach(lc, shape->aggs)
	{
		SpAggCol   *col = lfirst(lc);

		if (weighted_twin(col->aggref->aggfnoid) == NULL)
		{
			if (why)
				*why = psprintf("Aggregate %s cannot take a row back once it has seen it.",
								format_procedure(col->aggref->aggfnoid));
			return false;
		}
	}
	return true;
}

/* the weight every row of a retraction batch has */
static Const *
retraction_weight(void)
{
	return makeConst(INT4OID, -1, InvalidOid, sizeof(int32),
					 Int32GetDatum(-1), false, true);
}

/* agg(x) -> its weighted twin(x, -1), same filter */
static Aggref *
make_weighted_aggref(Aggref *orig)
{
	const WeightedTwin *t = weighted_twin(orig->aggfnoid);
	Aggref	   *agg;
	Oid			argtypes[2];
	int			nargs = 0;
	List	   *args = NIL;
	Oid			twin;
	Oid			actual = InvalidOid;

	if (t == NULL)
		elog(ERROR, "aggregate %u has no weighted twin", orig->aggfnoid);
	if (OidIsValid(t->argtype))
	{
		Expr	   *x = linitial_node(TargetEntry, orig->args)->expr;
		Oid			xtype = exprType((Node *) x);

		if (t->argtype != ANYOID && xtype != t->argtype)
			x = (Expr *) coerce_to_target_type(NULL, (Node *) x, xtype, t->argtype, -1,
											   COERCION_IMPLICIT, COERCE_IMPLICIT_CAST, -1);
		argtypes[nargs] = t->argtype;
		actual = exprType((Node *) x);
		args = lappend(args, makeTargetEntry(x, nargs + 1, NULL, false));
		nargs++;
	}
	argtypes[nargs] = INT4OID;
	args = lappend(args, makeTargetEntry((Expr *) retraction_weight(), nargs + 1, NULL, false));
	nargs++;
	twin = streamproc_func(t->twin, nargs, argtypes);

	agg = copyObject(orig);
	agg->aggfnoid = twin;
	agg->aggtype = get_func_rettype(twin);
	agg->aggtranstype = InvalidOid;
	agg->aggargtypes = NIL;
	if (OidIsValid(actual))
		agg->aggargtypes = lappend_oid(agg->aggargtypes, actual);
	agg->aggargtypes = lappend_oid(agg->aggargtypes, INT4OID);
	agg->aggdirectargs = NIL;
	agg->args = args;
	agg->aggstar = false;
	agg->aggvariadic = false;
	agg->aggorder = NIL;
	agg->aggdistinct = NIL;
	agg->aggsplit = AGGSPLIT_SIMPLE;
	return agg;
}

/*
 * The view's query over one batch, producing one row per group in the state
 * table's layout: keys..., partial states..., row count [, for sessions:
 * least and greatest event time].  For event-time windows only the rows
 * whose window is still open ($1 = watermark at arrival) take part.  With
 * retract, the batch holds retracted rows and the states are their
 * negation (see "Retractions" above).
 */
static PlannedStmt *
partial_plan(SpViewShape *shape, Oid owner, int batch_rows, bool retract,
			 bool late_qual)
{
	Index		stream_rti = 0;
	Query	   *q = batch_query(shape, owner, batch_rows, &stream_rti);
	ListCell   *lc;
	List	   *tlist = NIL;
	AttrNumber	resno = 1;
	int			keyno = 0;
	PlannedStmt *stmt;
	Agg		   *agg;
	Aggref	   *rows = make_count_star();

	if (retract && !sp_view_can_retract(shape, NULL))
		elog(ERROR, "continuous view cannot take rows back");

	/* keys..., states..., count(*) */
	foreach(lc, shape->keys)
	{
		SpKey	   *key = lfirst(lc);
		TargetEntry *tle;

		tle = makeTargetEntry(stored_key_expr(shape, keyno), resno++,
							  pstrdup(key->name), false);
		tle->ressortgroupref = key->sortgroupref;
		tlist = lappend(tlist, tle);
		keyno++;
	}
	foreach(lc, shape->aggs)
	{
		SpAggCol   *col = lfirst(lc);
		Aggref	   *a = retract ? make_weighted_aggref(col->aggref) : copyObject(col->aggref);

		tlist = lappend(tlist, makeTargetEntry((Expr *) a, resno++, pstrdup(col->name), false));
	}
	if (retract)
		rows = make_weighted_aggref(rows);
	tlist = lappend(tlist, makeTargetEntry((Expr *) rows, resno++,
										   pstrdup(SP_ROWS_COLUMN), false));
	if (shape->window_kind == SP_WINDOW_SESSION)
	{
		tlist = lappend(tlist, makeTargetEntry((Expr *) make_ts_agg(F_MIN_TIMESTAMPTZ, shape->window_ts),
											   resno++, pstrdup("_session_first"), false));
		tlist = lappend(tlist, makeTargetEntry((Expr *) make_ts_agg(F_MAX_TIMESTAMPTZ, shape->window_ts),
											   resno++, pstrdup(SP_SESSION_END_COLUMN), false));
	}
	q->targetList = tlist;
	q->havingQual = NULL;
	q->hasAggs = true;
	if (shape->event_time_window && late_qual)
	{
		BooleanTest *open = makeNode(BooleanTest);

		open->arg = row_closed_qual(shape);
		open->booltesttype = IS_NOT_TRUE;
		open->location = -1;
		add_qual(q, (Node *) open);
	}
	stream_to_batch(q, stream_rti, batch_rows);

	stmt = plan_batch_query(q, shape);
	if (!IsA(stmt->planTree, Agg))
		elog(ERROR, "unexpected plan node %d at the top of a continuous view's partial plan",
			 (int) nodeTag(stmt->planTree));
	agg = (Agg *) stmt->planTree;
	agg->aggsplit = AGGSPLIT_INITIAL_SERIAL;
	fix_partial_aggrefs(agg->plan.targetlist);
	return stmt;
}

PlannedStmt *
sp_view_partial_plan(SpViewShape *shape, Oid owner, int batch_rows)
{
	return partial_plan(shape, owner, batch_rows, false, true);
}

/*
 * The same without leaving out late rows: for a batch that has none (see
 * may_be_late in apply.c), it saves computing every row's window end.
 */
PlannedStmt *
sp_view_open_plan(SpViewShape *shape, Oid owner, int batch_rows)
{
	return partial_plan(shape, owner, batch_rows, false, false);
}

/* the partial plan for a batch of retracted rows (sp_view_can_retract) */
PlannedStmt *
sp_view_retract_plan(SpViewShape *shape, Oid owner, int batch_rows)
{
	return partial_plan(shape, owner, batch_rows, true, true);
}

/*
 * The rows of a batch that are late for an event-time view, in the layout
 * of streamproc.late_rows: (stream, view, row as jsonb, event time,
 * watermark at arrival, arrival time).  Rows the view's WHERE or joins
 * would drop anyway are not late.
 */
PlannedStmt *
sp_view_late_plan(SpViewShape *shape, Oid owner, int batch_rows, Oid view_relid)
{
	Index		stream_rti = 0;
	Query	   *q = batch_query(shape, owner, batch_rows, &stream_rti);
	Var		   *row;
	Param	   *wm = makeNode(Param);
	List	   *tlist = NIL;

	Assert(shape->event_time_window);
	row = makeWholeRowVar(rt_fetch(stream_rti, q->rtable), stream_rti, 0, false);
	wm->paramkind = PARAM_EXTERN;
	wm->paramid = 1;
	wm->paramtype = TIMESTAMPTZOID;
	wm->paramtypmod = -1;
	wm->location = -1;

	tlist = lappend(tlist, makeTargetEntry((Expr *) makeConst(REGCLASSOID, -1, InvalidOid, 4,
															  ObjectIdGetDatum(shape->stream), false, true),
										   1, "stream", false));
	tlist = lappend(tlist, makeTargetEntry((Expr *) makeConst(REGCLASSOID, -1, InvalidOid, 4,
															  ObjectIdGetDatum(view_relid), false, true),
										   2, "view", false));
	tlist = lappend(tlist, makeTargetEntry((Expr *) makeFuncExpr(F_TO_JSONB, JSONBOID, list_make1(row),
																 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL),
										   3, "row", false));
	tlist = lappend(tlist, makeTargetEntry(copyObject(shape->window_ts), 4, "event_time", false));
	tlist = lappend(tlist, makeTargetEntry((Expr *) wm, 5, "watermark", false));
	tlist = lappend(tlist, makeTargetEntry((Expr *) makeFuncExpr(F_STATEMENT_TIMESTAMP, TIMESTAMPTZOID, NIL,
																 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL),
										   6, "arrived_at", false));
	q->targetList = tlist;
	q->groupClause = NIL;
	q->havingQual = NULL;
	q->hasAggs = false;
	add_qual(q, (Node *) row_closed_qual(shape));
	stream_to_batch(q, stream_rti, batch_rows);
	return plan_batch_query(q, shape);
}

/* ------------------------------------------------------------------------
 * Read view
 * ------------------------------------------------------------------------
 */

typedef struct ReadContext
{
	SpViewShape *shape;
	Oid			finalize_oid;
} ReadContext;

static Var *
state_var(SpViewShape *shape, int attno)
{
	int			nkeys = list_length(shape->keys);

	if (attno <= nkeys)
	{
		SpKey	   *key = list_nth(shape->keys, attno - 1);

		return makeVar(1, attno, key->type, key->typmod, key->collation, 0);
	}
	else
	{
		SpAggCol   *col = list_nth(shape->aggs, attno - nkeys - 1);

		return makeVar(1, attno, col->storedtype, -1, col->collation, 0);
	}
}

static Const *
regtype_array_const(SpAggCol *col)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(col->nargs, 1));
	int			i;

	for (i = 0; i < col->nargs; i++)
		elems[i] = ObjectIdGetDatum(col->argtypes[i]);
	return makeConst(REGTYPEARRAYOID, -1, InvalidOid, -1,
					 PointerGetDatum(construct_array(elems, col->nargs, REGTYPEOID,
													 sizeof(Oid), true, TYPALIGN_INT)),
					 false, false);
}

static Node *
read_mutator(Node *node, ReadContext *ctx)
{
	ListCell   *lc;
	int			attno = 1;

	if (node == NULL)
		return NULL;
	foreach(lc, ctx->shape->keys)
	{
		SpKey	   *key = lfirst(lc);

		if (ctx->shape->grouped && equal(node, key->expr))
			return (Node *) state_var(ctx->shape, attno);
		attno++;
	}
	if (IsA(node, Aggref))
	{
		foreach(lc, ctx->shape->aggs)
		{
			SpAggCol   *col = lfirst(lc);

			if (equal(node, col->aggref))
			{
				FuncExpr   *f;
				Aggref	   *agg = col->aggref;

				f = makeFuncExpr(ctx->finalize_oid, agg->aggtype,
								 list_make4(state_var(ctx->shape, attno),
											makeConst(REGPROCEDUREOID, -1, InvalidOid, 4,
													  ObjectIdGetDatum(agg->aggfnoid), false, true),
											regtype_array_const(col),
											makeNullConst(agg->aggtype, -1, agg->aggcollid)),
								 agg->aggcollid, col->collation, COERCE_EXPLICIT_CALL);
				return (Node *) f;
			}
			attno++;
		}
		elog(ERROR, "aggregate not found in continuous view shape");
	}
	if (IsA(node, Var) && ((Var *) node)->varlevelsup == 0)
		ereport(ERROR,
				(errcode(ERRCODE_GROUPING_ERROR),
				 errmsg("column \"%s\" must appear in the GROUP BY clause of a continuous view",
						get_rte_attribute_name(rt_fetch(((Var *) node)->varno,
														ctx->shape->query->rtable),
											   ((Var *) node)->varattno)),
				 errdetail("A continuous view keeps only group keys and aggregate states.")));
	return expression_tree_mutator(node, read_mutator, ctx);
}

static char *
regtype_array_literal(SpAggCol *col)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 0; i < col->nargs; i++)
	{
		const char *t = format_type_be_qualified(col->argtypes[i]);
		const char *p;

		if (i > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfoChar(&buf, '"');
		for (p = t; *p; p++)
		{
			if (*p == '"' || *p == '\\')
				appendStringInfoChar(&buf, '\\');
			appendStringInfoChar(&buf, *p);
		}
		appendStringInfoChar(&buf, '"');
	}
	appendStringInfoChar(&buf, '}');
	return psprintf("%s::pg_catalog.regtype[]", quote_literal_cstr(buf.data));
}

/*
 * SQL of the read view over state table state_relid.  Generated and run
 * with search_path = pg_catalog, so every name in it is qualified.
 */
char *
sp_view_read_sql(SpViewShape *shape, Oid state_relid, bool emit_final,
				 Interval *retention)
{
	bool		where = false;
	StringInfoData sql;
	ReadContext ctx;
	List	   *dpcontext;
	ListCell   *lc;
	bool		first = true;
	char	   *state_name;
	Oid			finalize_args[4] = {ANYOID, REGPROCEDUREOID, REGTYPEARRAYOID, ANYELEMENTOID};
	int			nestlevel = sp_push_catalog_search_path();

	ctx.shape = shape;
	ctx.finalize_oid = streamproc_func("finalize", 4, finalize_args);
	dpcontext = deparse_context_for("s", state_relid);
	state_name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(state_relid)),
											get_rel_name(state_relid));

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	foreach(lc, shape->query->targetList)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		Node	   *expr;

		if (tle->resjunk)
			continue;
		expr = read_mutator((Node *) tle->expr, &ctx);
		appendStringInfo(&sql, "%s%s AS %s", first ? "" : ", ",
						 deparse_expression(expr, dpcontext, true, false),
						 quote_identifier(tle->resname));
		first = false;
	}

	if (shape->window_kind != SP_WINDOW_HOP)
		appendStringInfo(&sql, " FROM %s s", state_name);
	else
	{
		/* combine the slide buckets of each window */
		SpKey	   *hopkey = list_nth(shape->keys, shape->window_key);
		int			keyno = 0;

		appendStringInfoString(&sql, " FROM (SELECT ");
		foreach(lc, shape->keys)
		{
			SpKey	   *key = lfirst(lc);

			if (keyno == shape->window_key)
				appendStringInfo(&sql, "w.w AS %s, ", quote_identifier(key->name));
			else
				appendStringInfo(&sql, "st.%s, ", quote_identifier(key->name));
			keyno++;
		}
		foreach(lc, shape->aggs)
		{
			SpAggCol   *col = lfirst(lc);

			appendStringInfo(&sql, "streamproc.combine(st.%s, %s::pg_catalog.regprocedure, %s) AS %s, ",
							 quote_identifier(col->name),
							 quote_literal_cstr(format_procedure_qualified(col->aggref->aggfnoid)),
							 regtype_array_literal(col),
							 quote_identifier(col->name));
		}
		appendStringInfo(&sql, "pg_catalog.sum(st.%s)::pg_catalog.int8 AS %s FROM %s st"
						 " CROSS JOIN LATERAL streamproc.hop_windows(st.%s, %s::pg_catalog.interval, %s::pg_catalog.interval) AS w(w)"
						 " GROUP BY ",
						 SP_ROWS_COLUMN, SP_ROWS_COLUMN, state_name,
						 quote_identifier(hopkey->name),
						 quote_literal_cstr(DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(shape->window_size)))),
						 quote_literal_cstr(DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(shape->window_slide)))));
		keyno = 0;
		foreach(lc, shape->keys)
		{
			SpKey	   *key = lfirst(lc);

			if (keyno > 0)
				appendStringInfoString(&sql, ", ");
			if (keyno == shape->window_key)
				appendStringInfoString(&sql, "w.w");
			else
				appendStringInfo(&sql, "st.%s", quote_identifier(key->name));
			keyno++;
		}
		appendStringInfoString(&sql, ") s");
	}

	/* emit 'final': only windows the watermark has closed */
	if (emit_final)
	{
		SpKey	   *winkey = list_nth(shape->keys, shape->window_key);
		const char *endcol = shape->window_kind == SP_WINDOW_SESSION ?
			SP_SESSION_END_COLUMN : winkey->name;

		appendStringInfo(&sql, " WHERE streamproc.window_end(s.%s, %s::pg_catalog.interval)"
						 " <= (SELECT streamproc.watermark(%s::pg_catalog.regclass))",
						 quote_identifier(endcol),
						 quote_literal_cstr(DatumGetCString(DirectFunctionCall1(interval_out,
																				IntervalPGetDatum(shape->window_size)))),
						 quote_literal_cstr(quote_qualified_identifier(get_namespace_name(get_rel_namespace(shape->stream)),
																	   get_rel_name(shape->stream))));
	}
	where = emit_final;

	/*
	 * hop with retention: buckets expire one by one, so a window whose older
	 * buckets are gone must not be shown with the rest.
	 */
	if (shape->window_kind == SP_WINDOW_HOP && retention != NULL)
	{
		SpKey	   *winkey = list_nth(shape->keys, shape->window_key);
		Interval   *span = DatumGetIntervalP(DirectFunctionCall2(interval_pl,
																 IntervalPGetDatum(shape->window_size),
																 IntervalPGetDatum(retention)));

		appendStringInfo(&sql, " %s streamproc.window_end(s.%s, %s::pg_catalog.interval)"
						 " >= (SELECT streamproc.watermark(%s::pg_catalog.regclass))",
						 where ? "AND" : "WHERE",
						 quote_identifier(winkey->name),
						 quote_literal_cstr(DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(span)))),
						 quote_literal_cstr(quote_qualified_identifier(get_namespace_name(get_rel_namespace(shape->stream)),
																	   get_rel_name(shape->stream))));
		where = true;
	}
	if (shape->query->havingQual)
		appendStringInfo(&sql, " %s %s", where ? "AND" : "WHERE",
						 deparse_expression(read_mutator(shape->query->havingQual, &ctx),
											dpcontext, true, false));
	sp_pop_search_path(nestlevel);
	return sql.data;
}
