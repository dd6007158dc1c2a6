/*
 * stream_fdw.c — streams as foreign tables of the server "streamproc".
 *
 *   INSERT ──► ExecForeignInsert ──┐
 *   COPY FROM ──► stream_copy.c ───┴─► sp_writer_add: row into the batch
 *                                        │ (tuplestore) every
 *                                        │ streamproc.batch_size rows, and
 *                                        ▼ at the end of the statement
 *                     sp_apply_batch(): every continuous view of the stream
 *
 * Nothing is stored per row; a SELECT from a stream returns no rows.  A
 * stream without views costs nothing beyond parsing the input.
 */
#include "postgres.h"

#include "access/table.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "nodes/execnodes.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "apply.h"
#include "guc.h"
#include "stream_fdw.h"

/* the batch being filled by one INSERT or COPY */
struct SpStreamWriter
{
	Oid			stream;
	TupleDesc	desc;
	bool		has_views;
	AttrNumber	event_time_att; /* or InvalidAttrNumber */
	Tuplestorestate *rows;
	int64		nrows;
	TimestampTz max_event_time;
	TimestampTz min_event_time;
	int			batch_size;
	MemoryContext cxt;
};

static Tuplestorestate *
new_batch(SpStreamWriter *w)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);
	/* keep a batch in memory: it is bounded by batch_size rows */
	Tuplestorestate *ts = tuplestore_begin_heap(false, false, Max(work_mem, 64 * 1024));

	MemoryContextSwitchTo(old);
	return ts;
}

SpStreamWriter *
sp_writer_begin(Relation rel)
{
	SpStreamWriter *w = palloc0(sizeof(SpStreamWriter));

	w->stream = RelationGetRelid(rel);
	w->desc = RelationGetDescr(rel);
	w->has_views = sp_stream_has_views(w->stream);
	w->event_time_att = sp_stream_event_time_att(w->stream);
	w->batch_size = sp_batch_size;
	w->cxt = AllocSetContextCreate(CurrentMemoryContext, "streamproc batch",
								   ALLOCSET_DEFAULT_SIZES);
	w->max_event_time = DT_NOBEGIN;
	w->min_event_time = DT_NOEND;
	if (w->has_views)
		w->rows = new_batch(w);
	return w;
}

static void
writer_flush(SpStreamWriter *w)
{
	SpBatch		batch = {0};
	SpBatchInput input;

	if (w->nrows == 0)
		return;
	input.name = "sql";
	input.has_event_time = (w->event_time_att != InvalidAttrNumber);
	input.max_event_time = w->max_event_time;
	batch.stream = w->stream;
	batch.rows = w->rows;
	batch.nrows = w->nrows;
	batch.has_min_event_time = input.has_event_time;
	batch.min_event_time = w->min_event_time;
	batch.ninputs = 1;
	batch.inputs = &input;
	sp_apply_batch(&batch);
	if (w->has_views)
	{
		/*
		 * The next batch reuses the memory of this one: the context is not
		 * reset, so the freed tuples' chunks and blocks are taken again
		 * rather than given back to the system and faulted in anew.
		 */
		tuplestore_end(w->rows);
		w->rows = new_batch(w);
	}
	w->nrows = 0;
	w->max_event_time = DT_NOBEGIN;
	w->min_event_time = DT_NOEND;
}

void
sp_writer_add(SpStreamWriter *w, Datum *values, bool *nulls)
{
	if (w->event_time_att != InvalidAttrNumber)
	{
		int			a = w->event_time_att - 1;
		TimestampTz ts;

		if (nulls[a])
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("event-time column \"%s\" of stream \"%s\" must not be NULL",
							NameStr(TupleDescAttr(w->desc, a)->attname),
							get_rel_name(w->stream)),
					 errdetail("Every row of a stream with an event-time column needs an event time.")));
		ts = DatumGetTimestampTz(values[a]);
		if (TIMESTAMP_NOT_FINITE(ts))
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("event-time column \"%s\" of stream \"%s\" must be finite",
							NameStr(TupleDescAttr(w->desc, a)->attname),
							get_rel_name(w->stream))));
		if (ts > w->max_event_time)
			w->max_event_time = ts;
		if (ts < w->min_event_time)
			w->min_event_time = ts;
	}
	if (w->has_views)
		tuplestore_putvalues(w->rows, w->desc, values, nulls);
	if (++w->nrows >= w->batch_size)
		writer_flush(w);
}

void
sp_writer_end(SpStreamWriter *w)
{
	if (w == NULL)
		return;
	writer_flush(w);
	if (w->has_views)
		tuplestore_end(w->rows);
	MemoryContextDelete(w->cxt);
}

/* ------------------------------------------------------------------------
 * Scan: a stream holds no rows
 * ------------------------------------------------------------------------
 */

static void
stream_rel_size(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	baserel->rows = 0;
}

static void
stream_paths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	add_path(baserel, (Path *) create_foreignscan_path(root, baserel, NULL,
													   baserel->rows, 0, 0,
													   NIL, NULL, NULL, NIL));
}

static ForeignScan *
stream_plan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
			ForeignPath *best_path, List *tlist, List *scan_clauses,
			Plan *outer_plan)
{
	scan_clauses = extract_actual_clauses(scan_clauses, false);
	return make_foreignscan(tlist, scan_clauses, baserel->relid, NIL, NIL,
							NIL, NIL, outer_plan);
}

static void
stream_begin_scan(ForeignScanState *node, int eflags)
{
}

static TupleTableSlot *
stream_iterate(ForeignScanState *node)
{
	return ExecClearTuple(node->ss.ss_ScanTupleSlot);
}

static void
stream_rescan(ForeignScanState *node)
{
}

static void
stream_end_scan(ForeignScanState *node)
{
}

/* ------------------------------------------------------------------------
 * INSERT and COPY
 * ------------------------------------------------------------------------
 */

static int
stream_updatable(Relation rel)
{
	return (1 << CMD_INSERT);
}

static void
stream_begin_modify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
					List *fdw_private, int subplan_index, int eflags)
{
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	rinfo->ri_FdwState = sp_writer_begin(rinfo->ri_RelationDesc);
}

static TupleTableSlot *
stream_insert(EState *estate, ResultRelInfo *rinfo, TupleTableSlot *slot,
			  TupleTableSlot *planSlot)
{
	slot_getallattrs(slot);
	sp_writer_add((SpStreamWriter *) rinfo->ri_FdwState, slot->tts_values, slot->tts_isnull);
	return slot;
}

static void
stream_end_modify(EState *estate, ResultRelInfo *rinfo)
{
	sp_writer_end((SpStreamWriter *) rinfo->ri_FdwState);
	rinfo->ri_FdwState = NULL;
}

static void
stream_begin_insert(ModifyTableState *mtstate, ResultRelInfo *rinfo)
{
	rinfo->ri_FdwState = sp_writer_begin(rinfo->ri_RelationDesc);
}

static void
stream_end_insert(EState *estate, ResultRelInfo *rinfo)
{
	sp_writer_end((SpStreamWriter *) rinfo->ri_FdwState);
	rinfo->ri_FdwState = NULL;
}

PG_FUNCTION_INFO_V1(sp_stream_fdw_handler);

Datum
sp_stream_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	routine->GetForeignRelSize = stream_rel_size;
	routine->GetForeignPaths = stream_paths;
	routine->GetForeignPlan = stream_plan;
	routine->BeginForeignScan = stream_begin_scan;
	routine->IterateForeignScan = stream_iterate;
	routine->ReScanForeignScan = stream_rescan;
	routine->EndForeignScan = stream_end_scan;

	routine->IsForeignRelUpdatable = stream_updatable;
	routine->BeginForeignModify = stream_begin_modify;
	routine->ExecForeignInsert = stream_insert;
	routine->EndForeignModify = stream_end_modify;
	routine->BeginForeignInsert = stream_begin_insert;
	routine->EndForeignInsert = stream_end_insert;
	PG_RETURN_POINTER(routine);
}
