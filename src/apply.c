/*
 * apply.c — batch → state tables.  The only writer of state tables.
 *
 * For each continuous view of the stream, one batch costs:
 *
 *   batch (tuplestore, visible as an ephemeral named relation)
 *     │  partial plan: the view's query, Agg in AGGSPLIT_INITIAL_SERIAL
 *     ▼
 *   one row per group: keys, partial states, row count
 *     │  merge receiver: the groups sorted in the index's order, then per group:
 *     │    look the keys up in the state table's unique index
 *     │    absent  → insert the partial row
 *     │    present → combine stored and partial states, update (HOT)
 *     ▼
 *   state table
 *
 * so O(rows) work in memory and O(groups) against the state table.  State
 * tables are locked in SHARE ROW EXCLUSIVE mode while merging: writers of a
 * stream serialize per view (and on the stream's watermark row); readers
 * are never blocked, VACUUM and ANALYZE of a state table wait for writers.
 * The plans run as the view's owner, in a security-restricted operation.
 *
 * Event time: the watermark when the batch arrived is the partial plan's
 * parameter $1; rows whose window it has closed are left out and written
 * to streamproc.late_rows by a second plan over the same batch.  Sessions
 * merge with the open sessions they touch (never with closed ones).  After
 * the views, the stream's watermark moves and retention deletes a bounded
 * number of windows that ended long enough ago.
 *
 * Compiled views (partial plan, aggregate support functions, index scan
 * keys) are cached per backend and per stream; any relcache invalidation of
 * the stream, a state table or a relation a plan reads drops the entry,
 * which is rebuilt at the next batch; so does any change to a function (a
 * plan may have inlined it).
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/genam.h"
#include "common/int.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "tcop/dest.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/queryenvironment.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/sortsupport.h"
#include "utils/datum.h"
#include "utils/syscache.h"
#include "utils/builtins.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "executor/spi.h"
#include "nodes/params.h"
#include "nodes/nodeFuncs.h"

#include "agg_support.h"
#include "apply.h"
#include "catalog.h"
#include "guc.h"
#include "view_compile.h"
#include "watermark.h"
#include "window.h"

/* rows deleted by retention per batch and view, at most */
#define SP_RETENTION_BATCH 10000

typedef struct CompiledView
{
	Oid			relid;
	Oid			state_relid;
	Oid			index_relid;
	int			nkeys;
	int			naggs;
	SpAggInfo  *aggs;
	PlannedStmt *plan;
	PlannedStmt *retract_plan;	/* NULL: the view cannot take rows back */
	char	   *retract_why;	/* ... and why not */
	PlannedStmt *late_plan;		/* event-time windows only */
	PlannedStmt *open_plan;		/* plan without the late-row filter, for
								 * batches that cannot hold a late row ... */
	SpLateRule	late_rule;		/* ... by this rule (see may_be_late) */
	char	   *sql;
	AttrNumber *keyattnos;		/* per index column: state table column */
	FmgrInfo   *eqprocs;		/* per index column: btree equality */
	Oid		   *eqcollations;
	SpWindowKind window_kind;
	AttrNumber	window_attno;	/* state column of the window key */
	int64		window_us;		/* tumble/hop size, session gap */
	bool		event_time_window;
	int64		retention_us;	/* < 0: keep everything */
	char	   *retention_sql;	/* bounded delete of expired windows */
	FmgrInfo	ts_lt;			/* timestamptz < (session lookups) */
	Oid			owner;			/* the plans run as the view's owner */
	char	   *name;			/* for error messages */
	Bitmapset  *columns;		/* stream columns the plans read ... */
	bool		all_columns;	/* ... or all of them */
} CompiledView;

typedef struct StreamEntry
{
	Oid			stream;			/* hash key */
	bool		valid;
	AttrNumber	event_time_att;
	MemoryContext cxt;
	List	   *views;			/* CompiledView * */
	List	   *deps;			/* relation OIDs whose invalidation matters */
} StreamEntry;

static HTAB *stream_cache = NULL;

/* contexts of invalidated entries, freed at transaction end (never mid-use) */
static List *retired_cxts = NIL;

static void
retire_entry(StreamEntry *entry)
{
	if (entry->cxt)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		retired_cxts = lappend(retired_cxts, entry->cxt);
		MemoryContextSwitchTo(old);
	}
	entry->cxt = NULL;
	entry->views = NIL;
	entry->deps = NIL;
	entry->valid = false;
}

/*
 * Invalidations that arrive while an entry is being compiled, when its
 * dependencies are not known yet: checked against them afterwards.
 */
#define SP_MAX_PENDING_INVALS 64
static bool compiling = false;
static int	n_pending_invals = 0;	/* > SP_MAX_PENDING_INVALS: overflowed */
static Oid	pending_invals[SP_MAX_PENDING_INVALS];

static void
relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	StreamEntry *entry;

	if (compiling)
	{
		if (OidIsValid(relid) && n_pending_invals < SP_MAX_PENDING_INVALS)
			pending_invals[n_pending_invals++] = relid;
		else
			n_pending_invals = SP_MAX_PENDING_INVALS + 1;
	}
	if (stream_cache == NULL)
		return;
	hash_seq_init(&status, stream_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (!entry->valid)
			continue;
		if (!OidIsValid(relid) || list_member_oid(entry->deps, relid))
			entry->valid = false;
	}
}

/* a function changed: any plan may have inlined or folded it */
static void
proc_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	relcache_callback(arg, InvalidOid);
}

static void
xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		ListCell   *lc;

		foreach(lc, retired_cxts)
			MemoryContextDelete(lfirst(lc));
		list_free(retired_cxts);
		retired_cxts = NIL;
	}
}

void
sp_apply_init(void)
{
	CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, proc_callback, (Datum) 0);
	RegisterXactCallback(xact_callback, NULL);
}

/* The state table must still be what the view's plans write. */
static void
check_state_layout(Relation state, SpViewShape *shape, Oid view_relid)
{
	TupleDesc	desc = RelationGetDescr(state);
	List	   *expected = NIL;		/* column types: keys, states, _rows [, _session_end] */
	ListCell   *lc;
	bool		ok;
	int			i = 0;

	foreach(lc, shape->keys)
		expected = lappend_oid(expected, ((SpKey *) lfirst(lc))->type);
	foreach(lc, shape->aggs)
		expected = lappend_oid(expected, ((SpAggCol *) lfirst(lc))->storedtype);
	expected = lappend_oid(expected, INT8OID);
	if (shape->window_kind == SP_WINDOW_SESSION)
		expected = lappend_oid(expected, TIMESTAMPTZOID);

	ok = desc->natts == list_length(expected) && state->rd_rel->relkind == RELKIND_RELATION;
	foreach(lc, expected)
	{
		if (!ok)
			break;
		ok = TupleDescAttr(desc, i)->atttypid == lfirst_oid(lc) &&
			!TupleDescAttr(desc, i)->attisdropped;
		i++;
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the state table of continuous view \"%s\" has been altered",
						get_rel_name(view_relid)),
				 errhint("Drop the continuous view and create it again.")));
}

/* Its index must be the unique btree on the keys that merges search. */
static void
check_state_index(Relation index, SpViewShape *shape, Oid view_relid)
{
	Form_pg_index ix = index->rd_index;
	int			nkeys = list_length(shape->keys);
	bool		ok;
	bool		seen[INDEX_MAX_KEYS + 1] = {false};
	int			i;

	ok = ix->indisunique && index->rd_rel->relam == BTREE_AM_OID &&
		ix->indnkeyatts == nkeys && ix->indnatts == nkeys &&
		heap_attisnull(index->rd_indextuple, Anum_pg_index_indexprs, NULL) &&
		heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL);
	for (i = 0; ok && i < nkeys; i++)
	{
		AttrNumber	a = ix->indkey.values[i];

		ok = a >= 1 && a <= nkeys && !seen[a];
		if (ok)
			seen[a] = true;
	}
	/* session lookups scan the sessions of one key by start: start last */
	if (ok && shape->window_kind == SP_WINDOW_SESSION)
		ok = ix->indkey.values[nkeys - 1] == shape->window_key + 1;
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the state table of continuous view \"%s\" has been altered",
						get_rel_name(view_relid)),
				 errhint("Drop the continuous view and create it again.")));
}

/*
 * The stream columns the view's plans read; a COPY need not convert the
 * others if they cannot fail (see stream_copy.c).  Parse analysis marked
 * them in selectedCols of the stream's range table entries (a subquery's
 * references from below included); a whole-row or system column counts as
 * all.  The late-row plan keeps whole rows.
 */
static void
set_view_columns(CompiledView *cv, SpViewShape *shape)
{
	ListCell   *lc;

	cv->columns = NULL;
	cv->all_columns = cv->late_plan != NULL;
	foreach(lc, shape->query->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
		int			x = -1;

		if (rte->rtekind != RTE_RELATION || rte->relid != shape->stream)
			continue;
		while ((x = bms_next_member(rte->selectedCols, x)) >= 0)
		{
			AttrNumber	att = x + FirstLowInvalidHeapAttributeNumber;

			if (att <= 0)
				cv->all_columns = true;
			else
				cv->columns = bms_add_member(cv->columns, att);
		}
	}
}

/*
 * Can a row of a batch whose least event time is min be late at wm?  Not if
 * min is at or after the start of the window (tumble) or slide (hop) that
 * holds wm: every row's first window then ends after wm; nor, for
 * sessions, if min + gap > wm.  Whatever cannot be computed: look.
 */
static bool
may_be_late(CompiledView *v, TimestampTz wm, bool has_min, TimestampTz min)
{
	SpLateRule *rule = &v->late_rule;
	TimestampTz bound;

	if (v->open_plan == NULL || !has_min || TIMESTAMP_NOT_FINITE(min))
		return true;
	if (rule->align_us > 0)
		return !sp_window_floor_checked(wm, rule->align_us, rule->origin, &bound) ||
			min < bound;
	return TIMESTAMP_NOT_FINITE(wm) || pg_sub_s64_overflow(wm, rule->gap_us - 1, &bound) ||
		min < bound;
}

/*
 * Compile a view as its owner: the owner's rights resolve the names of its
 * query, and the tables it joins are read with them (like a view's).
 */
static CompiledView *
compile_view(SpViewDef *def, List **deps)
{
	CompiledView *cv;
	Relation	state = try_relation_open(def->state_relid, AccessShareLock);
	List	   *indexes;
	SpViewShape *shape;
	Relation	index;
	ListCell   *lc;
	int			i;
	char	   *state_name;
	SpSavedUser su;

	/* dropped since the catalog was read */
	if (state == NULL)
		return NULL;
	cv = palloc0(sizeof(CompiledView));
	indexes = RelationGetIndexList(state);
	/* the view's owner: the owner of its read view */
	cv->owner = sp_rel_owner(def->relid);
	/* planning may run the owner's functions (constant folding) */
	sp_become_user(cv->owner, SECURITY_RESTRICTED_OPERATION, &su);
	shape = sp_view_shape(def->sql, def->tree);
	check_state_layout(state, shape, def->relid);
	/*
	 * The batch is read without a permission check of its own: the owner
	 * must still be allowed to read what the view reads, columns included.
	 */
	if (!ExecCheckRTPerms(shape->query->rtable, false))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the owner of continuous view \"%s\" may no longer read what the view reads",
						get_rel_name(def->relid)),
				 errdetail("The view reads stream \"%s\".", get_rel_name(shape->stream)),
				 errhint("Grant SELECT to the view's owner again, or drop the view.")));

	cv->relid = def->relid;
	cv->name = get_rel_name(def->relid);
	cv->state_relid = def->state_relid;
	cv->sql = def->sql;
	cv->nkeys = list_length(shape->keys);
	cv->naggs = list_length(shape->aggs);
	cv->window_kind = shape->window_kind;
	cv->event_time_window = shape->event_time_window;
	cv->window_attno = shape->window_key + 1;
	if (shape->window_size)
		cv->window_us = sp_window_usecs(shape->window_size, "window size");
	if (list_length(indexes) != 1)
		elog(ERROR, "state table \"%s\" must have exactly one index",
			 RelationGetRelationName(state));
	cv->index_relid = linitial_oid(indexes);
	cv->plan = sp_view_partial_plan(shape, cv->owner, sp_batch_size);
	elog(DEBUG2, "streamproc: partial plan of %s: %s",
		 get_rel_name(def->relid), nodeToString(cv->plan->planTree));
	if (sp_view_can_retract(shape, &cv->retract_why))
		cv->retract_plan = sp_view_retract_plan(shape, cv->owner, sp_batch_size);
	if (shape->event_time_window)
	{
		cv->late_plan = sp_view_late_plan(shape, cv->owner, sp_batch_size,
										  def->relid);
		if (sp_view_late_rule(shape, &cv->late_rule))
			cv->open_plan = sp_view_open_plan(shape, cv->owner, sp_batch_size);
	}
	set_view_columns(cv, shape);

	index = index_open(cv->index_relid, AccessShareLock);
	check_state_index(index, shape, def->relid);
	cv->keyattnos = palloc0(sizeof(AttrNumber) * cv->nkeys);
	cv->eqprocs = palloc0(sizeof(FmgrInfo) * cv->nkeys);
	cv->eqcollations = palloc0(sizeof(Oid) * cv->nkeys);
	for (i = 0; i < cv->nkeys; i++)
	{
		Oid			opfamily = index->rd_opfamily[i];
		Oid			opcintype = index->rd_opcintype[i];
		Oid			eqop = get_opfamily_member(opfamily, opcintype, opcintype,
											   BTEqualStrategyNumber);

		if (!OidIsValid(eqop))
			elog(ERROR, "no equality operator in operator family %u", opfamily);
		cv->keyattnos[i] = index->rd_index->indkey.values[i];
		fmgr_info(get_opcode(eqop), &cv->eqprocs[i]);
		cv->eqcollations[i] = index->rd_indcollation[i];
	}
	index_close(index, AccessShareLock);
	fmgr_info(F_TIMESTAMPTZ_LT, &cv->ts_lt);

	cv->retention_us = -1;
	state_name = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(state)),
											RelationGetRelationName(state));
	if (def->retention && shape->event_time_window)
	{
		cv->retention_us = sp_window_usecs(def->retention, "retention");
		cv->retention_sql =
			psprintf("DELETE FROM %s WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
					 "SELECT ctid FROM %s WHERE %s OPERATOR(pg_catalog.<) $1 LIMIT %d))",
					 state_name, state_name,
					 quote_identifier(shape->window_kind == SP_WINDOW_SESSION ?
									  SP_SESSION_END_COLUMN :
									  ((SpKey *) list_nth(shape->keys, shape->window_key))->name),
					 SP_RETENTION_BATCH);
	}

	cv->aggs = palloc0(sizeof(SpAggInfo) * Max(cv->naggs, 1));
	i = 0;
	foreach(lc, shape->aggs)
	{
		SpAggCol   *col = lfirst(lc);

		sp_agg_info_init(&cv->aggs[i++], col->aggref->aggfnoid, col->nargs,
						 col->argtypes, col->aggref->aggtype,
						 col->aggref->inputcollid, CurrentMemoryContext);
	}
	*deps = lappend_oid(*deps, def->state_relid);
	*deps = lappend_oid(*deps, def->relid);
	*deps = list_concat(*deps, cv->plan->relationOids);
	sp_catalog_leave(&su);
	table_close(state, AccessShareLock);
	return cv;
}

static StreamEntry *
stream_entry(Oid stream)
{
	StreamEntry *entry;
	bool		found;

	if (stream_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(StreamEntry);
		stream_cache = hash_create("streamproc streams", 16, &ctl,
								   HASH_ELEM | HASH_BLOBS);
	}
	entry = hash_search(stream_cache, &stream, HASH_ENTER, &found);
	if (!found)
	{
		entry->cxt = NULL;
		entry->views = NIL;
		entry->deps = NIL;
		entry->valid = false;
	}
	if (!entry->valid)
	{
		MemoryContext cxt;
		MemoryContext old;
		List	   *defs;
		List	   *views = NIL;
		List	   *deps = NIL;
		ListCell   *lc;

		retire_entry(entry);
		cxt = AllocSetContextCreate(TopMemoryContext, "streamproc stream views",
									ALLOCSET_DEFAULT_SIZES);
		old = MemoryContextSwitchTo(cxt);
		compiling = true;
		n_pending_invals = 0;
		PG_TRY();
		{
			entry->event_time_att = sp_catalog_stream_event_time(stream);
			deps = list_make1_oid(stream);
			defs = sp_catalog_stream_views(stream);
			foreach(lc, defs)
			{
				CompiledView *cv = compile_view(lfirst(lc), &deps);

				if (cv == NULL)
					continue;
				views = lappend(views, cv);
			}
		}
		PG_CATCH();
		{
			compiling = false;
			MemoryContextSwitchTo(old);
			MemoryContextDelete(cxt);
			PG_RE_THROW();
		}
		PG_END_TRY();
		compiling = false;
		MemoryContextSwitchTo(old);
		entry->cxt = cxt;
		entry->views = views;
		entry->deps = deps;
		entry->valid = true;
		/* something it depends on changed while it was being compiled */
		if (n_pending_invals > SP_MAX_PENDING_INVALS)
			entry->valid = false;
		else
		{
			int			i;

			for (i = 0; i < n_pending_invals; i++)
				if (list_member_oid(deps, pending_invals[i]))
					entry->valid = false;
		}
	}
	return entry;
}

bool
sp_stream_has_views(Oid stream)
{
	return stream_entry(stream)->views != NIL;
}

AttrNumber
sp_stream_event_time_att(Oid stream)
{
	return stream_entry(stream)->event_time_att;
}

Bitmapset *
sp_stream_view_columns(Oid stream, bool *all)
{
	StreamEntry *entry = stream_entry(stream);
	Bitmapset  *columns = NULL;
	ListCell   *lc;

	*all = false;
	foreach(lc, entry->views)
	{
		CompiledView *cv = lfirst(lc);

		*all |= cv->all_columns;
		columns = bms_add_members(columns, cv->columns);
	}
	return columns;
}

/* ------------------------------------------------------------------------
 * Merging partial rows into a state table
 * ------------------------------------------------------------------------
 */

typedef struct MergeReceiver
{
	DestReceiver pub;
	CompiledView *view;
	Relation	rel;
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData *skeys;
	SnapshotData dirty;
	TupleTableSlot *found;
	TupleTableSlot *out;
	EState	   *estate;
	ResultRelInfo *rri;
	SpAggCall  *call;
	MemoryContext cxt;			/* outlives the partial plan's executor */
	bool		retract;		/* the partials are of retracted rows */
	bool		wm_valid;		/* watermark when the batch arrived */
	TimestampTz wm;
	TupleDesc	partial_desc;	/* partial rows, merged afterwards */
	/* the partial groups, merged in index order */
	struct SortedPartial *sorted;
	int			nsorted;
	int			maxsorted;
	SortSupport sortkeys;		/* per index column */
} MergeReceiver;

/*
 * A partial group awaiting its merge: the tuple, and its key values in
 * index column order (pointing into the tuple).
 */
typedef struct SortedPartial
{
	MinimalTuple tuple;
	Datum	   *keys;
	bool	   *nulls;
} SortedPartial;

static void
merge_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	MergeReceiver *r = (MergeReceiver *) self;
	MemoryContext old = MemoryContextSwitchTo(r->cxt);

	r->partial_desc = CreateTupleDescCopy(typeinfo);
	MemoryContextSwitchTo(old);
}

/* Equality scan keys on the index columns [0, n) from a partial row. */
static void
set_key_scankeys(MergeReceiver *r, TupleTableSlot *slot, int n)
{
	CompiledView *v = r->view;
	int			i;

	for (i = 0; i < n; i++)
	{
		int			col = v->keyattnos[i] - 1;

		if (slot->tts_isnull[col])
			ScanKeyEntryInitialize(&r->skeys[i], SK_ISNULL | SK_SEARCHNULL,
								   i + 1, InvalidStrategy, InvalidOid,
								   InvalidOid, InvalidOid, (Datum) 0);
		else
			ScanKeyEntryInitializeWithInfo(&r->skeys[i], 0, i + 1,
										   BTEqualStrategyNumber, InvalidOid,
										   v->eqcollations[i], &v->eqprocs[i],
										   slot->tts_values[col]);
	}
}

/*
 * out's states := combine(a's, b's), in the order a, b (out may be b).
 * The results live in the receiver's per-group memory.
 */
static void
combine_states(MergeReceiver *r, TupleTableSlot *a, TupleTableSlot *b,
			   TupleTableSlot *out)
{
	CompiledView *v = r->view;
	int			i;

	for (i = v->nkeys; i < v->nkeys + v->naggs; i++)
	{
		Datum		vals[2] = {a->tts_values[i], b->tts_values[i]};
		bool		nulls[2] = {a->tts_isnull[i], b->tts_isnull[i]};

		out->tts_values[i] = sp_agg_combine_stored(&v->aggs[i - v->nkeys], r->call,
												   vals, nulls, 2,
												   &out->tts_isnull[i]);
	}
}

static void
insert_state(MergeReceiver *r, TupleTableSlot *out)
{
	ExecStoreVirtualTuple(out);
	simple_table_tuple_insert(r->rel, out);
	ExecInsertIndexTuples(r->rri, out, r->estate, false, false, NULL, NIL);
}

/* the state row at tid becomes out (HOT when no indexed column changed) */
static void
update_state(MergeReceiver *r, ItemPointer tid, TupleTableSlot *out)
{
	bool		update_indexes;

	ExecStoreVirtualTuple(out);
	simple_table_tuple_update(r->rel, tid, out, r->estate->es_snapshot, &update_indexes);
	/* update = false: the unchanged-index hint would need a range table */
	if (update_indexes)
		ExecInsertIndexTuples(r->rri, out, r->estate, false, false, NULL, NIL);
}

/* One group of a tumble/hop/plain view: insert it, or combine it in. */
static void
merge_group(MergeReceiver *r, TupleTableSlot *slot)
{
	CompiledView *v = r->view;
	int			nkeys = v->nkeys;
	int			rowscol = nkeys + v->naggs;
	TupleTableSlot *out = r->out;
	bool		found;

	set_key_scankeys(r, slot, nkeys);
	index_rescan(r->scan, r->skeys, nkeys, NULL, 0);
	found = index_getnext_slot(r->scan, ForwardScanDirection, r->found);

	MemoryContextReset(r->call->cxt);
	ExecClearTuple(out);
	if (!found)
	{
		memcpy(out->tts_values, slot->tts_values, sizeof(Datum) * (rowscol + 1));
		memcpy(out->tts_isnull, slot->tts_isnull, sizeof(bool) * (rowscol + 1));
		insert_state(r, out);
	}
	else
	{
		TupleTableSlot *old = r->found;
		int64		rows;

		slot_getallattrs(old);
		memcpy(out->tts_values, old->tts_values, sizeof(Datum) * nkeys);
		memcpy(out->tts_isnull, old->tts_isnull, sizeof(bool) * nkeys);
		rows = DatumGetInt64(old->tts_values[rowscol]) + DatumGetInt64(slot->tts_values[rowscol]);
		if (rows == 0)
		{
			/* every row of the group was taken back: the group is gone */
			simple_table_tuple_delete(r->rel, &old->tts_tid, r->estate->es_snapshot);
			return;
		}
		/*
		 * A retraction's partial comes first: the combine functions of sum
		 * and avg over int8 and numeric ignore a second state whose count
		 * is not positive, but take it as the first.
		 */
		if (r->retract)
			combine_states(r, slot, old, out);
		else
			combine_states(r, old, slot, out);
		out->tts_values[rowscol] = Int64GetDatum(rows);
		out->tts_isnull[rowscol] = false;
		update_state(r, &old->tts_tid, out);
	}
}

/*
 * One partial session (rows of one gap-long bucket, so certainly one
 * session): absorb every open session of the same keys that lies within the
 * gap and write the merged session.  Closed sessions are never merged into;
 * they end further back, so the backward scan stops.
 *
 *   existing:   [s1]      [s2 ....]        [s3]
 *   partial:                   (p)--gap--)
 *   result:     [s1]      [s2 ...p.......]  [s3]   (s3 absorbed too if within gap)
 *
 * The merged session is written over the absorbed session that started
 * first (the others are deleted): in the common case, a session that goes
 * on, its start and so its index entry stay the same and the update is HOT.
 */
static void
merge_session(MergeReceiver *r, TupleTableSlot *p)
{
	CompiledView *v = r->view;
	int			nkeys = v->nkeys;
	int			naggs = v->naggs;
	int			rowscol = nkeys + naggs;
	int			startcol = v->window_attno - 1;
	TupleTableSlot *out = r->out;
	TimestampTz pstart = DatumGetTimestampTz(p->tts_values[rowscol + 1]);
	TimestampTz pend = DatumGetTimestampTz(p->tts_values[rowscol + 2]);
	int64		rows = DatumGetInt64(p->tts_values[rowscol]);
	bool		absorbed = false;
	ItemPointerData first;		/* the absorbed session that started first */

	ExecClearTuple(out);
	memcpy(out->tts_values, p->tts_values, sizeof(Datum) * rowscol);
	memcpy(out->tts_isnull, p->tts_isnull, sizeof(bool) * rowscol);

	/* other keys equal, session start < end of partial + gap; newest first */
	set_key_scankeys(r, p, nkeys - 1);
	ScanKeyEntryInitializeWithInfo(&r->skeys[nkeys - 1], 0, nkeys,
								   BTLessStrategyNumber, InvalidOid, InvalidOid,
								   &v->ts_lt, TimestampTzGetDatum(pend + v->window_us));
	index_rescan(r->scan, r->skeys, nkeys, NULL, 0);
	while (index_getnext_slot(r->scan, BackwardScanDirection, r->found))
	{
		TupleTableSlot *s = r->found;
		TimestampTz sstart;
		TimestampTz send;

		slot_getallattrs(s);
		sstart = DatumGetTimestampTz(s->tts_values[startcol]);
		send = DatumGetTimestampTz(s->tts_values[rowscol + 1]);
		if (send + v->window_us <= pstart)
			break;				/* ends more than a gap before: no overlap */
		if (r->wm_valid && send + v->window_us <= r->wm)
			break;				/* closed, and so is everything before it */
		combine_states(r, s, out, out);
		rows += DatumGetInt64(s->tts_values[rowscol]);
		pstart = Min(pstart, sstart);
		pend = Max(pend, send);
		/* the scan goes back in time: the one found before started later */
		if (absorbed)
			simple_table_tuple_delete(r->rel, &first, r->estate->es_snapshot);
		first = s->tts_tid;
		absorbed = true;
	}
	out->tts_values[startcol] = TimestampTzGetDatum(pstart);
	out->tts_isnull[startcol] = false;
	out->tts_values[rowscol] = Int64GetDatum(rows);
	out->tts_isnull[rowscol] = false;
	out->tts_values[rowscol + 1] = TimestampTzGetDatum(pend);
	out->tts_isnull[rowscol + 1] = false;
	if (absorbed)
		update_state(r, &first, out);
	else
		insert_state(r, out);
	MemoryContextReset(r->call->cxt);
}

/*
 * The partial plan's groups come out of a hash table in no order; merged in
 * the order of the state table's index, consecutive lookups and inserts
 * land on the same or the next leaf page instead of anywhere in the index.
 */
static bool
merge_receive(TupleTableSlot *slot, DestReceiver *self)
{
	MergeReceiver *r = (MergeReceiver *) self;
	MemoryContext oldcxt = MemoryContextSwitchTo(r->cxt);

	{
		CompiledView *v = r->view;
		SortedPartial *p;
		int			i;

		if (r->nsorted == r->maxsorted)
		{
			r->maxsorted = Max(r->maxsorted * 2, 1024);
			r->sorted = r->sorted ? repalloc_huge(r->sorted, sizeof(SortedPartial) * r->maxsorted)
				: palloc_extended(sizeof(SortedPartial) * r->maxsorted, MCXT_ALLOC_HUGE);
		}
		p = &r->sorted[r->nsorted++];
		p->tuple = ExecCopySlotMinimalTuple(slot);
		p->keys = palloc(sizeof(Datum) * v->nkeys);
		p->nulls = palloc(sizeof(bool) * v->nkeys);
		slot_getallattrs(slot);
		for (i = 0; i < v->nkeys; i++)
		{
			int			col = v->keyattnos[i] - 1;

			p->nulls[i] = slot->tts_isnull[col];
			p->keys[i] = slot->tts_isnull[col] ? (Datum) 0 :
				datumCopy(slot->tts_values[col],
						  TupleDescAttr(slot->tts_tupleDescriptor, col)->attbyval,
						  TupleDescAttr(slot->tts_tupleDescriptor, col)->attlen);
		}
	}
	MemoryContextSwitchTo(oldcxt);
	return true;
}

static int
compare_partials(const void *a, const void *b, void *arg)
{
	const SortedPartial *pa = a;
	const SortedPartial *pb = b;
	MergeReceiver *r = arg;
	int			i;

	for (i = 0; i < r->view->nkeys; i++)
	{
		int			c = ApplySortComparator(pa->keys[i], pa->nulls[i],
											pb->keys[i], pb->nulls[i],
											&r->sortkeys[i]);

		if (c != 0)
			return c;
	}
	return 0;
}

/*
 * Merge the buffered partial groups, in index order.  Sessions: each merge
 * may absorb what the previous one wrote, so it must see it.
 */
static void
merge_sorted(MergeReceiver *r)
{
	TupleTableSlot *p;
	int			i;

	if (r->nsorted == 0)
		return;
	if (r->sortkeys == NULL)
	{
		r->sortkeys = palloc0(sizeof(SortSupportData) * r->view->nkeys);
		for (i = 0; i < r->view->nkeys; i++)
		{
			r->sortkeys[i].ssup_cxt = r->cxt;
			r->sortkeys[i].ssup_collation = r->index->rd_indcollation[i];
			r->sortkeys[i].ssup_nulls_first = false;
			r->sortkeys[i].ssup_attno = i + 1;
			PrepareSortSupportFromIndexRel(r->index, BTLessStrategyNumber,
										   &r->sortkeys[i]);
		}
	}
	qsort_arg(r->sorted, r->nsorted, sizeof(SortedPartial), compare_partials, r);
	p = MakeSingleTupleTableSlot(r->partial_desc, &TTSOpsMinimalTuple);
	for (i = 0; i < r->nsorted; i++)
	{
		ExecStoreMinimalTuple(r->sorted[i].tuple, p, false);
		slot_getallattrs(p);
		if (r->view->window_kind == SP_WINDOW_SESSION)
		{
			merge_session(r, p);
			CommandCounterIncrement();
		}
		else
			merge_group(r, p);
	}
	ExecDropSingleTupleTableSlot(p);
}

static void
merge_shutdown(DestReceiver *self)
{
}

static void
merge_destroy(DestReceiver *self)
{
}

/* Late rows go to streamproc.late_rows as they are. */
typedef struct LateReceiver
{
	DestReceiver pub;
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	int64		n;
	MemoryContext cxt;			/* outlives the late plan's executor */
} LateReceiver;

static void
late_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static bool
late_receive(TupleTableSlot *slot, DestReceiver *self)
{
	LateReceiver *r = (LateReceiver *) self;

	MemoryContext old = MemoryContextSwitchTo(r->cxt);

	if (r->rel == NULL)
	{
		r->rel = table_open(get_relname_relid("late_rows", sp_catalog_schema()),
							RowExclusiveLock);
		/* users may index late_rows */
		r->estate = CreateExecutorState();
		r->rri = makeNode(ResultRelInfo);
		InitResultRelInfo(r->rri, r->rel, 1, NULL, 0);
		ExecOpenIndices(r->rri, false);
	}
	simple_table_tuple_insert(r->rel, slot);
	if (r->rri->ri_NumIndices > 0)
		ExecInsertIndexTuples(r->rri, slot, r->estate, false, false, NULL, NIL);
	r->n++;
	MemoryContextSwitchTo(old);
	return true;
}

static void
run_plan(PlannedStmt *plan, const char *sql, DestReceiver *dest,
		 QueryEnvironment *env, ParamListInfo params)
{
	QueryDesc  *qd = CreateQueryDesc(plan, sql, GetActiveSnapshot(), InvalidSnapshot,
									 dest, params, env, 0);

	ExecutorStart(qd, 0);
	ExecutorRun(qd, ForwardScanDirection, 0, true);
	ExecutorFinish(qd);
	ExecutorEnd(qd);
	FreeQueryDesc(qd);
}

static void
view_error_context(void *arg)
{
	CompiledView *v = arg;

	if (v->name)
		errcontext("applying a batch to continuous view \"%s\"", v->name);
}

/*
 * Apply rows (retract = false) or retractions (retract = true) of a batch
 * to one view.
 */
static void
apply_view(CompiledView *v, SpBatch *batch, bool retract, bool wm_valid,
		   TimestampTz wm)
{
	Oid			stream = batch->stream;
	Tuplestorestate *store = retract ? batch->retractions : batch->rows;
	int64		nrows = retract ? batch->nretractions : batch->nrows;
	MergeReceiver r;
	QueryEnvironment *env;
	EphemeralNamedRelation enr;
	ParamListInfo params;
	SpSavedUser su;
	int64		late_rows = 0;
	bool		late_possible;
	PlannedStmt *plan;
	ErrorContextCallback errcb;

	if (retract && v->retract_plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous view \"%s\" cannot take rows back", v->name),
				 errdetail_internal("%s", v->retract_why),
				 errhint("%s.", SP_RETRACT_HINT)));
	/* a view dropped since its compilation is simply gone */
	memset(&r, 0, sizeof(r));
	r.rel = try_relation_open(v->state_relid, ShareRowExclusiveLock);
	if (r.rel == NULL)
		return;
	errcb.callback = view_error_context;
	errcb.arg = v;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	env = create_queryEnv();
	enr = palloc0(sizeof(EphemeralNamedRelationData));
	enr->md.name = SP_BATCH_ENR_NAME;
	enr->md.reliddesc = stream;
	enr->md.enrtype = ENR_NAMED_TUPLESTORE;
	enr->md.enrtuples = nrows;
	enr->reldata = store;
	register_ENR(env, enr);

	params = makeParamList(1);
	params->numParams = 1;
	params->params[0].ptype = TIMESTAMPTZOID;
	params->params[0].pflags = PARAM_FLAG_CONST;
	params->params[0].isnull = !wm_valid;
	params->params[0].value = wm_valid ? TimestampTzGetDatum(wm) : (Datum) 0;

	/* the view's expressions run as its owner, never as the writer */
	sp_become_user(v->owner, SECURITY_RESTRICTED_OPERATION, &su);
	late_possible = v->late_plan && wm_valid &&
		may_be_late(v, wm, batch->has_min_event_time, batch->min_event_time);
	if (late_possible)
	{
		LateReceiver late;

		memset(&late, 0, sizeof(late));
		late.pub.receiveSlot = late_receive;
		late.pub.rStartup = late_startup;
		late.pub.rShutdown = merge_shutdown;
		late.pub.rDestroy = merge_destroy;
		late.pub.mydest = DestNone;
		late.cxt = CurrentMemoryContext;
		run_plan(v->late_plan, v->sql, (DestReceiver *) &late, env, params);
		late_rows = late.n;
		if (late.rel)
		{
			ExecCloseIndices(late.rri);
			FreeExecutorState(late.estate);
			table_close(late.rel, NoLock);
		}
	}

	r.pub.receiveSlot = merge_receive;
	r.pub.rStartup = merge_startup;
	r.pub.rShutdown = merge_shutdown;
	r.pub.rDestroy = merge_destroy;
	r.pub.mydest = DestNone;
	r.view = v;
	r.cxt = CurrentMemoryContext;
	r.retract = retract;
	r.wm_valid = wm_valid;
	r.wm = wm;
	r.index = index_open(v->index_relid, RowExclusiveLock);
	r.estate = CreateExecutorState();
	r.estate->es_snapshot = GetActiveSnapshot();
	r.estate->es_output_cid = GetCurrentCommandId(true);
	r.rri = makeNode(ResultRelInfo);
	InitResultRelInfo(r.rri, r.rel, 1, NULL, 0);
	ExecOpenIndices(r.rri, false);
	InitDirtySnapshot(r.dirty);
	r.scan = index_beginscan(r.rel, r.index, &r.dirty, v->nkeys, 0);
	r.skeys = palloc0(sizeof(ScanKeyData) * v->nkeys);
	r.found = table_slot_create(r.rel, NULL);
	r.out = MakeSingleTupleTableSlot(RelationGetDescr(r.rel), &TTSOpsVirtual);
	r.call = sp_agg_call_create(CurrentMemoryContext);

	if (retract)
		plan = v->retract_plan;
	else if (!late_possible && v->open_plan)
		plan = v->open_plan;
	else
		plan = v->plan;
	run_plan(plan, v->sql, (DestReceiver *) &r, env, params);
	merge_sorted(&r);

	/* combine functions of session merges ran as the owner too */
	sp_catalog_leave(&su);
	if (late_rows > 0)
		sp_catalog_add_late_rows(v->relid, late_rows);

	index_endscan(r.scan);
	ExecDropSingleTupleTableSlot(r.found);
	ExecDropSingleTupleTableSlot(r.out);
	MemoryContextDelete(r.call->cxt);
	ExecCloseIndices(r.rri);
	FreeExecutorState(r.estate);
	index_close(r.index, NoLock);
	table_close(r.rel, NoLock);
	error_context_stack = errcb.previous;
}

/* Delete a bounded number of windows that ended before wm − retention. */
static void
apply_retention(CompiledView *v, TimestampTz wm)
{
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		values[1];

	SpSavedUser su;

	values[0] = TimestampTzGetDatum(wm - v->retention_us - v->window_us);
	/* the state table's owner: the catalog's; nothing of the view's runs */
	sp_become_user(sp_catalog_owner(), SECURITY_RESTRICTED_OPERATION, &su);
	SPI_connect();
	if (SPI_execute_with_args(v->retention_sql, 1, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "retention of continuous view %u failed", v->relid);
	SPI_finish();
	sp_catalog_leave(&su);
}

/*
 * The stream's compiled views, with every relation they write or read
 * locked.  Taking a lock processes pending invalidations: if one hit the
 * entry (DROP VIEW, ALTER of a joined table, ...), compile again, lock
 * again, until what is locked is what will run.  (Plan caches do the same.)
 */
static StreamEntry *
locked_stream_entry(Oid stream, bool state_tables)
{
	int			attempt;

	for (attempt = 1;; attempt++)
	{
		StreamEntry *entry = stream_entry(stream);
		ListCell   *lc;

		foreach(lc, entry->views)
		{
			CompiledView *v = lfirst(lc);
			ListCell   *rc;

			if (state_tables)
				LockRelationOid(v->state_relid, ShareRowExclusiveLock);
			foreach(rc, v->plan->rtable)
			{
				RangeTblEntry *rte = lfirst_node(RangeTblEntry, rc);

				if (rte->rtekind == RTE_RELATION)
					LockRelationOid(rte->relid, rte->rellockmode);
			}
		}
		/*
		 * Valid, or compiled with everything it uses already locked: then
		 * only unrelated invalidations (counted conservatively) can have
		 * marked it, and it is current.
		 */
		if (entry->valid || attempt >= 3)
			return entry;
	}
}

/*
 * A process that applies batches allocates and frees the same few
 * megabytes per batch: the batch, the partial plans' hash tables, the
 * merges.  glibc's defaults hand large blocks back to the kernel on free
 * (mmap above a threshold, heap trimming above another) so that every
 * batch faulted its memory in anew, which made up to half of a batch's
 * time on a virtual machine.  Once per process, memory freed by a batch is
 * kept for the next: blocks up to 32 MB come from the heap and the heap
 * keeps up to 64 MB of free space.  What is kept is bounded by the biggest
 * batch the process applied, not by how many.  A source worker calls this
 * as it starts, so that librdkafka's fetch and decompression buffers (in
 * its broker threads) are kept too.
 */
void
sp_keep_batch_memory(void)
{
#ifdef __GLIBC__
	static bool done = false;

	if (done)
		return;
	done = true;
	(void) mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	(void) mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
#endif
}

/*
 * Apply a batch of stream rows to every continuous view of the stream, then
 * move the stream's watermark, all in the current transaction.
 */
void
sp_apply_batch(SpBatch *batch)
{
	StreamEntry *entry;
	ListCell   *lc;
	bool		pushed = false;
	MemoryContext cxt;
	MemoryContext old;
	TimestampTz wm = 0;
	bool		wm_valid;

	if (batch->nrows == 0 && batch->nretractions == 0 && batch->ninputs == 0)
		return;
	sp_keep_batch_memory();
	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}
	cxt = AllocSetContextCreate(CurrentMemoryContext, "streamproc apply",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);

	/*
	 * Lock order, the same whether or not the views are compiled yet: the
	 * relations the views read (compiling takes them too), the stream's
	 * watermark row, the state tables.
	 */
	(void) locked_stream_entry(batch->stream, false);
	wm_valid = sp_watermark_get(batch->stream, &wm);
	entry = locked_stream_entry(batch->stream, true);
	/* rows first, then retractions: both add up, in either order */
	if (batch->rows != NULL && batch->nrows > 0)
	{
		foreach(lc, entry->views)
		{
			apply_view(lfirst(lc), batch, false, wm_valid, wm);
			MemoryContextReset(cxt);
		}
	}
	if (batch->retractions != NULL && batch->nretractions > 0)
	{
		/* the state rows the first pass wrote must be visible */
		CommandCounterIncrement();
		foreach(lc, entry->views)
		{
			apply_view(lfirst(lc), batch, true, wm_valid, wm);
			MemoryContextReset(cxt);
		}
	}

	/* without an event-time column the watermark follows arrival time */
	wm_valid = false;
	if (batch->ninputs > 0)
	{
		const char **names = palloc(sizeof(char *) * batch->ninputs);
		TimestampTz *maxes = palloc(sizeof(TimestampTz) * batch->ninputs);
		int			i;

		for (i = 0; i < batch->ninputs; i++)
		{
			names[i] = batch->inputs[i].name;
			maxes[i] = batch->inputs[i].has_event_time ? batch->inputs[i].max_event_time :
				GetCurrentStatementStartTimestamp();
		}
		wm_valid = sp_watermark_observe(batch->stream, batch->ninputs, names, maxes, &wm);
	}
	if (wm_valid)
	{
		foreach(lc, entry->views)
		{
			CompiledView *v = lfirst(lc);

			if (v->retention_us >= 0 && !TIMESTAMP_NOT_FINITE(wm) &&
				SearchSysCacheExists1(RELOID, ObjectIdGetDatum(v->state_relid)))
				apply_retention(v, wm);
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);

	/* the next batch must see this one's state rows */
	CommandCounterIncrement();
	if (pushed)
		PopActiveSnapshot();
}

/*
 * Can every view of the stream take rows back (a CDC source is being
 * created)?  Raises the error naming the first that cannot.  The stream's
 * lock, the one create_view takes, is held until the caller commits: no
 * view appears meanwhile, and writers to the stream (INSERT, COPY, other
 * sources' batches) wait for that commit too.
 */
void
sp_check_stream_retractable(Oid stream)
{
	StreamEntry *entry;
	ListCell   *lc;

	/* create_view takes this lock: no view appears before the caller commits */
	LockRelationOid(stream, ShareRowExclusiveLock);
	entry = stream_entry(stream);

	foreach(lc, entry->views)
	{
		CompiledView *v = lfirst(lc);

		if (v->retract_plan == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("continuous view \"%s\" on stream \"%s\" cannot take rows back",
							v->name, get_rel_name(stream)),
					 errdetail_internal("%s", v->retract_why),
					 errhint("%s; drop or change the view first.", SP_RETRACT_HINT)));
	}
}
