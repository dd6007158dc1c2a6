/*
 * apply.c — batch → state tables.  The only writer of state tables.
 *
 * For each continuous view of the stream, one batch costs:
 *
 *   batch (tuplestore, visible as an ephemeral named relation)
 *     │  partial plan: the view's query, Agg in AGGSPLIT_INITIAL_SERIAL
 *     ▼
 *   one row per group: keys, partial states, row count
 *     │  merge receiver, per group:
 *     │    look the keys up in the state table's unique index
 *     │    absent  → insert the partial row
 *     │    present → combine stored and partial states, update (HOT)
 *     ▼
 *   state table
 *
 * so O(rows) work in memory and O(groups) against the state table.  State
 * tables are locked in SHARE ROW EXCLUSIVE mode while merging: writers of a
 * stream serialize per view, readers are never blocked.
 *
 * Compiled views (partial plan, aggregate support functions, index scan
 * keys) are cached per backend and per stream; any relcache invalidation of
 * the stream, a state table or a relation a plan reads drops the entry,
 * which is rebuilt at the next batch.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
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

#include "agg_support.h"
#include "apply.h"
#include "catalog.h"
#include "guc.h"
#include "view_compile.h"

typedef struct CompiledView
{
	Oid			relid;
	Oid			state_relid;
	Oid			index_relid;
	int			nkeys;
	int			naggs;
	SpAggInfo  *aggs;
	PlannedStmt *plan;
	char	   *sql;
	FmgrInfo   *eqprocs;		/* per key: btree equality of the index */
	Oid		   *eqcollations;
} CompiledView;

typedef struct StreamEntry
{
	Oid			stream;			/* hash key */
	bool		valid;
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

static void
relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	StreamEntry *entry;

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
	RegisterXactCallback(xact_callback, NULL);
}

static CompiledView *
compile_view(SpViewDef *def, List **deps)
{
	CompiledView *cv = palloc0(sizeof(CompiledView));
	SpViewShape *shape = sp_view_shape(def->sql);
	Relation	state = table_open(def->state_relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(state);
	Relation	index;
	ListCell   *lc;
	int			i;

	cv->relid = def->relid;
	cv->state_relid = def->state_relid;
	cv->sql = def->sql;
	cv->nkeys = list_length(shape->keys);
	cv->naggs = list_length(shape->aggs);
	if (list_length(indexes) != 1)
		elog(ERROR, "state table \"%s\" must have exactly one index",
			 RelationGetRelationName(state));
	cv->index_relid = linitial_oid(indexes);
	cv->plan = sp_view_partial_plan(shape, state->rd_rel->relowner,
									sp_batch_size);
	elog(DEBUG2, "streamproc: partial plan of %s: %s",
		 get_rel_name(def->relid), nodeToString(cv->plan->planTree));

	index = index_open(cv->index_relid, AccessShareLock);
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
		fmgr_info(get_opcode(eqop), &cv->eqprocs[i]);
		cv->eqcollations[i] = index->rd_indcollation[i];
	}
	index_close(index, AccessShareLock);

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
		PG_TRY();
		{
			deps = list_make1_oid(stream);
			defs = sp_catalog_stream_views(stream);
			foreach(lc, defs)
				views = lappend(views, compile_view(lfirst(lc), &deps));
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(old);
			MemoryContextDelete(cxt);
			PG_RE_THROW();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);
		entry->cxt = cxt;
		entry->views = views;
		entry->deps = deps;
		/* an invalidation that arrived while compiling leaves it invalid */
		entry->valid = true;
	}
	return entry;
}

bool
sp_stream_has_views(Oid stream)
{
	return stream_entry(stream)->views != NIL;
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
} MergeReceiver;

static void
merge_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static bool
merge_receive(TupleTableSlot *slot, DestReceiver *self)
{
	MergeReceiver *r = (MergeReceiver *) self;
	CompiledView *v = r->view;
	int			nkeys = v->nkeys;
	int			rowscol = nkeys + v->naggs;
	TupleTableSlot *out = r->out;
	bool		found;
	int			i;
	MemoryContext oldcxt;

	/* the index scan allocates lazily; keep that out of the executor's memory */
	oldcxt = MemoryContextSwitchTo(r->cxt);
	slot_getallattrs(slot);
	for (i = 0; i < nkeys; i++)
	{
		if (slot->tts_isnull[i])
			ScanKeyEntryInitialize(&r->skeys[i], SK_ISNULL | SK_SEARCHNULL,
								   i + 1, InvalidStrategy, InvalidOid,
								   InvalidOid, InvalidOid, (Datum) 0);
		else
			ScanKeyEntryInitializeWithInfo(&r->skeys[i], 0, i + 1,
										   BTEqualStrategyNumber, InvalidOid,
										   v->eqcollations[i], &v->eqprocs[i],
										   slot->tts_values[i]);
	}
	index_rescan(r->scan, r->skeys, nkeys, NULL, 0);
	found = index_getnext_slot(r->scan, ForwardScanDirection, r->found);

	MemoryContextReset(r->call->cxt);
	ExecClearTuple(out);
	if (!found)
	{
		memcpy(out->tts_values, slot->tts_values, sizeof(Datum) * (rowscol + 1));
		memcpy(out->tts_isnull, slot->tts_isnull, sizeof(bool) * (rowscol + 1));
		ExecStoreVirtualTuple(out);
		simple_table_tuple_insert(r->rel, out);
		ExecInsertIndexTuples(r->rri, out, r->estate, false, false, NULL, NIL);
	}
	else
	{
		TupleTableSlot *old = r->found;
		bool		update_indexes;

		slot_getallattrs(old);
		memcpy(out->tts_values, old->tts_values, sizeof(Datum) * nkeys);
		memcpy(out->tts_isnull, old->tts_isnull, sizeof(bool) * nkeys);
		for (i = nkeys; i < rowscol; i++)
		{
			Datum		vals[2] = {old->tts_values[i], slot->tts_values[i]};
			bool		nulls[2] = {old->tts_isnull[i], slot->tts_isnull[i]};

			out->tts_values[i] = sp_agg_combine_stored(&v->aggs[i - nkeys], r->call,
													   vals, nulls, 2,
													   &out->tts_isnull[i]);
		}
		out->tts_values[rowscol] = Int64GetDatum(DatumGetInt64(old->tts_values[rowscol]) +
												 DatumGetInt64(slot->tts_values[rowscol]));
		out->tts_isnull[rowscol] = false;
		ExecStoreVirtualTuple(out);
		simple_table_tuple_update(r->rel, &old->tts_tid, out,
								  r->estate->es_snapshot, &update_indexes);
		/* update = false: the unchanged-index hint would need a range table */
		if (update_indexes)
			ExecInsertIndexTuples(r->rri, out, r->estate, false, false, NULL, NIL);
	}
	MemoryContextSwitchTo(oldcxt);
	return true;
}

static void
merge_shutdown(DestReceiver *self)
{
}

static void
merge_destroy(DestReceiver *self)
{
}

static void
apply_view(CompiledView *v, Oid stream, Tuplestorestate *rows, int64 nrows)
{
	MergeReceiver r;
	QueryEnvironment *env;
	EphemeralNamedRelation enr;
	QueryDesc  *qd;
	ListCell   *lc;

	memset(&r, 0, sizeof(r));
	r.pub.receiveSlot = merge_receive;
	r.pub.rStartup = merge_startup;
	r.pub.rShutdown = merge_shutdown;
	r.pub.rDestroy = merge_destroy;
	r.pub.mydest = DestNone;
	r.view = v;
	r.cxt = CurrentMemoryContext;

	/* a view dropped since its compilation is simply gone */
	r.rel = try_relation_open(v->state_relid, ShareRowExclusiveLock);
	if (r.rel == NULL)
		return;
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

	/* relations the partial plan reads (the plan itself takes no locks) */
	foreach(lc, v->plan->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		if (rte->rtekind == RTE_RELATION)
			LockRelationOid(rte->relid, rte->rellockmode);
	}

	env = create_queryEnv();
	enr = palloc0(sizeof(EphemeralNamedRelationData));
	enr->md.name = SP_BATCH_ENR_NAME;
	enr->md.reliddesc = stream;
	enr->md.enrtype = ENR_NAMED_TUPLESTORE;
	enr->md.enrtuples = nrows;
	enr->reldata = rows;
	register_ENR(env, enr);

	qd = CreateQueryDesc(v->plan, v->sql, GetActiveSnapshot(), InvalidSnapshot,
						 (DestReceiver *) &r, NULL, env, 0);
	elog(DEBUG3, "streamproc: applying %lld rows to %s", (long long) nrows,
		 get_rel_name(v->relid));
	ExecutorStart(qd, 0);
	ExecutorRun(qd, ForwardScanDirection, 0, true);
	ExecutorFinish(qd);
	ExecutorEnd(qd);
	FreeQueryDesc(qd);

	index_endscan(r.scan);
	ExecDropSingleTupleTableSlot(r.found);
	ExecDropSingleTupleTableSlot(r.out);
	MemoryContextDelete(r.call->cxt);
	ExecCloseIndices(r.rri);
	FreeExecutorState(r.estate);
	index_close(r.index, NoLock);
	table_close(r.rel, NoLock);
}

/*
 * Apply a batch of stream rows to every continuous view of the stream, in
 * the current transaction.
 */
void
sp_apply_batch(Oid stream, Tuplestorestate *rows, int64 nrows)
{
	StreamEntry *entry;
	ListCell   *lc;
	bool		pushed = false;
	MemoryContext cxt;
	MemoryContext old;

	if (nrows == 0)
		return;
	entry = stream_entry(stream);
	if (entry->views == NIL)
		return;
	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}
	cxt = AllocSetContextCreate(CurrentMemoryContext, "streamproc apply",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	foreach(lc, entry->views)
	{
		apply_view(lfirst(lc), stream, rows, nrows);
		MemoryContextReset(cxt);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	/* the next batch must see this one's state rows */
	CommandCounterIncrement();
	if (pushed)
		PopActiveSnapshot();
}
