/*
 * stream_fdw.c — streams as foreign tables of the server "streamproc".
 *
 *   INSERT / COPY ──► ExecForeignInsert: row into the batch (tuplestore)
 *                        │ every streamproc.batch_size rows, and at the end
 *                        ▼ of the statement
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

/* the batch being filled by one INSERT or COPY */
typedef struct StreamWriter
{
	Oid			stream;
	bool		has_views;
	AttrNumber	event_time_att; /* or InvalidAttrNumber */
	Tuplestorestate *rows;
	int64		nrows;
	TimestampTz max_event_time;
	int			batch_size;
	MemoryContext cxt;
} StreamWriter;

static Tuplestorestate *
new_batch(StreamWriter *w)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);
	/* keep a batch in memory: it is bounded by batch_size rows */
	Tuplestorestate *ts = tuplestore_begin_heap(false, false, Max(work_mem, 64 * 1024));

	MemoryContextSwitchTo(old);
	return ts;
}

static StreamWriter *
writer_begin(ResultRelInfo *rinfo)
{
	StreamWriter *w = palloc0(sizeof(StreamWriter));

	w->stream = RelationGetRelid(rinfo->ri_RelationDesc);
	w->has_views = sp_stream_has_views(w->stream);
	w->event_time_att = sp_stream_event_time_att(w->stream);
	w->batch_size = sp_batch_size;
	w->cxt = AllocSetContextCreate(CurrentMemoryContext, "streamproc batch",
								   ALLOCSET_DEFAULT_SIZES);
	w->max_event_time = DT_NOBEGIN;
	if (w->has_views)
		w->rows = new_batch(w);
	return w;
}

static void
writer_flush(StreamWriter *w)
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
	batch.ninputs = 1;
	batch.inputs = &input;
	sp_apply_batch(&batch);
	if (w->has_views)
	{
		tuplestore_end(w->rows);
		MemoryContextReset(w->cxt);
		w->rows = new_batch(w);
	}
	w->nrows = 0;
	w->max_event_time = DT_NOBEGIN;
}

static TupleTableSlot *
writer_add(StreamWriter *w, TupleTableSlot *slot)
{
	if (w->event_time_att != InvalidAttrNumber)
	{
		bool		isnull;
		TimestampTz ts = DatumGetTimestampTz(slot_getattr(slot, w->event_time_att, &isnull));

		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("event-time column \"%s\" of stream \"%s\" must not be NULL",
							NameStr(TupleDescAttr(slot->tts_tupleDescriptor, w->event_time_att - 1)->attname),
							get_rel_name(w->stream)),
					 errdetail("Every row of a stream with an event-time column needs an event time.")));
		if (TIMESTAMP_NOT_FINITE(ts))
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("event-time column \"%s\" of stream \"%s\" must be finite",
							NameStr(TupleDescAttr(slot->tts_tupleDescriptor, w->event_time_att - 1)->attname),
							get_rel_name(w->stream))));
		if (ts > w->max_event_time)
			w->max_event_time = ts;
	}
	if (w->has_views)
		tuplestore_puttupleslot(w->rows, slot);
	if (++w->nrows >= w->batch_size)
		writer_flush(w);
	return slot;
}

static void
writer_end(StreamWriter *w)
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
	rinfo->ri_FdwState = writer_begin(rinfo);
}

static TupleTableSlot *
stream_insert(EState *estate, ResultRelInfo *rinfo, TupleTableSlot *slot,
			  TupleTableSlot *planSlot)
{
	return writer_add((StreamWriter *) rinfo->ri_FdwState, slot);
}

static void
stream_end_modify(EState *estate, ResultRelInfo *rinfo)
{
	writer_end((StreamWriter *) rinfo->ri_FdwState);
	rinfo->ri_FdwState = NULL;
}

static void
stream_begin_insert(ModifyTableState *mtstate, ResultRelInfo *rinfo)
{
	rinfo->ri_FdwState = writer_begin(rinfo);
}

static void
stream_end_insert(EState *estate, ResultRelInfo *rinfo)
{
	writer_end((StreamWriter *) rinfo->ri_FdwState);
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
