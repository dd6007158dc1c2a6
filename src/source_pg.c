/*
 * source_pg.c — a PostgreSQL source worker: change data capture from a
 * table on a PostgreSQL server (this one or another) over logical
 * replication, with the pgoutput plugin, into a stream, exactly once.
 *
 *   upstream table ──► initial copy (once) ─┐
 *   publication ──► slot ──► pgoutput ──────┴─► changes of whole upstream
 *      transactions ──► rows counted (+1) and taken back (−1), using the
 *      keyed copy streamproc.pg_source_rows ──► sp_apply_batch (apply.c)
 *      ──► COMMIT with the end LSN of the last upstream transaction in
 *      the batch (streamproc.source_offsets, partition 0)
 *      ──► only then: standby status update (flush = that LSN) upstream
 *
 * Position.  The LSN committed with the views is where the source stands:
 * every upstream transaction that ended at or before it has been applied.
 * A (re)started worker streams from its slot asking for that LSN and skips
 * any transaction that ended at or before it, so a crash anywhere neither
 * loses nor repeats anything.  The slot is told only what is committed
 * (or, while nothing of ours is pending, the upstream's position, so that
 * it does not hold WAL back for changes to other tables).
 *
 * Initial copy.  The first start creates the slot (unless the user named
 * an existing one) inside a REPEATABLE READ transaction on the replication
 * connection, with USE_SNAPSHOT, and copies the table out in that same
 * transaction, as PostgreSQL's own table synchronization does: the copy
 * holds exactly the transactions before the slot's consistent point, the
 * stream everything after.  The copy is applied in one local transaction
 * together with the first position; a worker that dies before that commit
 * starts over, dropping and re-creating its slot.
 *
 * Keyed copy.  Under the default replica identity an upstream UPDATE or
 * DELETE carries only the key of the old row, yet the views need the old
 * row to take it back.  So the source keeps what it counted, per row:
 * streamproc.pg_source_rows holds the stream columns' text values under
 * the row's replica-identity key, in the batch's transaction.  It also
 * supplies unchanged TOASTed values ('u' in pgoutput's tuple data), and it
 * is what a TRUNCATE takes back.  With REPLICA IDENTITY FULL, or without a
 * key at all, rows are keyed by their own values, with a count.  The keyed
 * copy holds what the views counted: a change that could not be applied
 * leaves that alone, so later changes stay consistent (it only notes the
 * row's values upstream, for the TOASTed values of its next change).  How
 * changes become rows is in source_pg_rows.c; this file is the replication
 * connection, the position and the worker's life (its start, runs,
 * backoff and error reports as every source worker's: source_worker.c).
 *
 * Bad input.  A change whose values the stream's column types reject, or
 * whose rows a view cannot take (a data error, found by bisecting the
 * batch), goes to streamproc.dead_letters with its LSN; the rest of the
 * batch applies.  A change is the unit: an update's retraction and
 * insertion go in together or not at all.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "executor/spi.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "replication/logicalproto.h"
#include "replication/walreceiver.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "catalog.h"
#include "source_pg.h"
#include "source_pg_rows.h"
#include "source_worker.h"
#include "upstream.h"
#include "workers.h"

/* how often the upstream hears from us at least (wal_sender_timeout is 60 s) */
#define FEEDBACK_INTERVAL_MS 10000


/* ------------------------------------------------------------------------
 * The source definition and the stream
 * ------------------------------------------------------------------------
 */

/*
 * The source's definition, or NULL if it is gone, stopped, or being
 * dropped right now (drop_source holds its row: FOR KEY SHARE SKIP LOCKED
 * then finds nothing, and the worker leaves the slot to it).
 */
static PgSource *
load_source(int32 id)
{
	PgSource   *src = NULL;

	if (sp_source_worker_lookup(id,
								"SELECT name, stream, conninfo, publication, source_table, slot,"
								"       snapshot, slot_created, batch_size,"
								"       (extract(epoch FROM batch_timeout) * 1000)::int,"
								"       (SELECT event_time_att FROM streamproc.stream_defs d WHERE d.relid = s.stream),"
								"       owner"
								"  FROM streamproc.source_defs s"
								" WHERE id = $1 AND enabled AND kind = 'pg'"
								"   FOR KEY SHARE SKIP LOCKED",
								false))
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "streamproc pg source",
												  ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);
		Datum		d;

		src = palloc0(sizeof(PgSource));
		src->cxt = cxt;
		src->id = id;
		src->name = SPI_getvalue(tup, desc, 1);
		src->stream = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		src->conninfo = SPI_getvalue(tup, desc, 3);
		src->publication = SPI_getvalue(tup, desc, 4);
		sp_upstream_parse_table(SPI_getvalue(tup, desc, 5), &src->schema, &src->table);
		src->slot = SPI_getvalue(tup, desc, 6);
		src->snapshot = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
		src->slot_created = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
		src->batch_size = DatumGetInt32(SPI_getbinval(tup, desc, 9, &isnull));
		src->batch_timeout_ms = DatumGetInt32(SPI_getbinval(tup, desc, 10, &isnull));
		d = SPI_getbinval(tup, desc, 11, &isnull);
		src->event_time_att = isnull ? InvalidAttrNumber : DatumGetInt16(d);
		src->owner_superuser = superuser_arg(DatumGetObjectId(SPI_getbinval(tup, desc, 12, &isnull)));
		src->input = psprintf("%s:0", src->name);
		src->cur_att = -1;
		src->conn_cxt = AllocSetContextCreate(cxt, "streamproc pg source connection",
											  ALLOCSET_DEFAULT_SIZES);
		src->map_cxt = AllocSetContextCreate(cxt, "streamproc pg source relation",
											 ALLOCSET_SMALL_SIZES);
		src->batch_cxt = AllocSetContextCreate(cxt, "streamproc pg source batch",
											   ALLOCSET_DEFAULT_SIZES);
		src->row_cxt = AllocSetContextCreate(cxt, "streamproc pg source row",
											 ALLOCSET_DEFAULT_SIZES);
		src->derive_cxt = AllocSetContextCreate(cxt, "streamproc pg source rows",
												ALLOCSET_DEFAULT_SIZES);
		MemoryContextSwitchTo(old);
	}
	sp_worker_xact_commit();
	return src;
}

/*
 * The stream's row type and its columns' input functions, for the
 * connection (src->desc NULL: not yet read on it); ERROR if the stream
 * changed since.
 */
static void
prepare_stream(PgSource *src, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext old;
	int			i;

	if (src->desc != NULL)
	{
		if (equalTupleDescs(src->desc, desc))
			return;
		/* changes already read are in the old layout: start over */
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("stream \"%s\" was altered; source \"%s\" starts over from its committed position",
						RelationGetRelationName(rel), src->name)));
	}
	old = MemoryContextSwitchTo(src->conn_cxt);
	src->desc = CreateTupleDescCopy(desc);
	src->in_funcs = palloc0(sizeof(FmgrInfo) * Max(desc->natts, 1));
	src->in_ioparams = palloc0(sizeof(Oid) * Max(desc->natts, 1));
	src->in_kinds = palloc0(sizeof(SpInputKind) * Max(desc->natts, 1));
	src->row_values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	src->row_nulls = palloc(sizeof(bool) * Max(desc->natts, 1));
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Oid			func;

		if (att->attisdropped)
			continue;
		getTypeInputInfo(att->atttypid, &func, &src->in_ioparams[i]);
		fmgr_info_cxt(func, &src->in_funcs[i], src->conn_cxt);
		src->in_kinds[i] = sp_input_kind(att->atttypid, att->atttypmod);
	}
	MemoryContextSwitchTo(old);
}

/*
 * At every connection, as committed: how the keyed copy is keyed, the
 * position if there is one, and the stream's layout.
 */
static void
load_stream(PgSource *src)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(src->id)};
	bool		isnull;
	char	   *identity;
	Relation	rel;

	if (!sp_source_worker_lookup(src->id, "SELECT row_identity FROM streamproc.source_defs WHERE id = $1",
								 true))
		elog(ERROR, "could not read streamproc.source_defs");
	identity = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	src->identity = identity ? MemoryContextStrdup(src->cxt, identity) : NULL;
	src->identity_dirty = false;
	if (SPI_execute_with_args("SELECT next_offset, coalesce(high_watermark, next_offset)"
							  "  FROM streamproc.source_offsets WHERE source = $1 AND partition = 0",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.source_offsets");
	src->have_position = SPI_processed == 1;
	if (src->have_position)
	{
		src->committed = (XLogRecPtr) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
																  SPI_tuptable->tupdesc, 1, &isnull));
		src->hw_reported = (XLogRecPtr) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
																	SPI_tuptable->tupdesc, 2, &isnull));
	}
	rel = table_open(src->stream, AccessShareLock);
	prepare_stream(src, rel);
	table_close(rel, AccessShareLock);
	sp_worker_xact_commit();
}

/* ------------------------------------------------------------------------
 * Relations and changes
 * ------------------------------------------------------------------------
 */

/* build the column map (in src->map_cxt, made anew for each relation) */
static void
set_map(PgSource *src, Oid remoteid, const char *relname, int natts, char **attnames, bool *key,
		char replident)
{
	RelMap	   *m = &src->map;
	MemoryContext old;
	int			i;
	int			j;

	MemoryContextReset(src->map_cxt);
	old = MemoryContextSwitchTo(src->map_cxt);
	m->valid = true;
	m->remoteid = remoteid;
	m->relname = relname ? pstrdup(relname) : NULL;
	m->natts = natts;
	m->attnames = palloc0(sizeof(char *) * Max(natts, 1));
	m->stream_att = palloc(sizeof(int) * Max(natts, 1));
	m->key = palloc0(sizeof(bool) * Max(natts, 1));
	for (i = 0; i < natts; i++)
	{
		m->attnames[i] = pstrdup(attnames[i]);
		m->key[i] = key[i];
		m->stream_att[i] = -1;
		for (j = 0; j < src->desc->natts; j++)
		{
			Form_pg_attribute att = TupleDescAttr(src->desc, j);

			if (!att->attisdropped && strcmp(NameStr(att->attname), attnames[i]) == 0)
				m->stream_att[i] = j;
		}
	}
	m->identity = sp_pg_identity(natts, attnames, key, replident);
	m->by_values = strcmp(m->identity, "values") == 0;
	MemoryContextSwitchTo(old);
}

/* a LogicalRepTupleData as arrays of text values and statuses */
static void
tuple_arrays(LogicalRepTupleData *t, int natts, char ***vals, char **status)
{
	int			i;

	if (t->ncols != natts)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("pgoutput sent a row of %d columns for a table of %d", t->ncols, natts)));
	*vals = palloc(sizeof(char *) * Max(natts, 1));
	*status = t->colstatus;
	for (i = 0; i < natts; i++)
	{
		if (t->colstatus[i] == LOGICALREP_COLUMN_BINARY)
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("pgoutput sent a binary value, which was not asked for")));
		(*vals)[i] = t->colstatus[i] == LOGICALREP_COLUMN_TEXT ? t->colvalues[i].data : NULL;
	}
}

static Change *
new_change(PgSource *src, char kind, XLogRecPtr lsn)
{
	Change	   *c;

	if (src->nchanges == src->cap)
	{
		int			cap = Max(src->cap * 2, 1024);

		if (src->changes == NULL)
			src->changes = MemoryContextAlloc(src->batch_cxt, sizeof(Change) * cap);
		else
			src->changes = repalloc(src->changes, sizeof(Change) * cap);
		src->cap = cap;
	}
	c = &src->changes[src->nchanges++];
	memset(c, 0, sizeof(Change));
	c->kind = kind;
	c->lsn = lsn;
	c->by_values = src->map.by_values;
	return c;
}

/*
 * Before a change under the map's identity joins the batch: if the keyed
 * copy is keyed otherwise, a re-key goes first.
 */
static void
check_identity(PgSource *src, XLogRecPtr lsn)
{
	RelMap	   *m = &src->map;
	MemoryContext old;
	Change	   *c;
	int			i;

	if (src->identity != NULL && strcmp(src->identity, m->identity) == 0)
		return;
	old = MemoryContextSwitchTo(src->cxt);
	if (src->identity != NULL)
	{
		MemoryContextSwitchTo(src->batch_cxt);
		c = new_change(src, 'K', lsn);
		if (!m->by_values)
		{
			c->rekey_atts = palloc(sizeof(int) * Max(m->natts, 1));
			for (i = 0; i < m->natts; i++)
			{
				if (!m->key[i])
					continue;
				if (m->stream_att[i] < 0)
					c->rekey_missing = pstrdup(m->attnames[i]);
				c->rekey_atts[c->rekey_nkeys++] = m->stream_att[i];
			}
		}
		MemoryContextSwitchTo(src->cxt);
		ereport(LOG,
				(errmsg("streamproc source \"%s\": the replica identity of \"%s.%s\" is now %s (was %s); re-keying its rows",
						src->name, src->schema, src->table, m->identity, src->identity)));
		pfree(src->identity);
	}
	src->identity = pstrdup(m->identity);
	src->identity_dirty = true;
	MemoryContextSwitchTo(old);
}

/* ------------------------------------------------------------------------
 * The position
 * ------------------------------------------------------------------------
 */

/* the position and counters, in the batch's transaction */
static void
write_position(PgSource *src, XLogRecPtr lsn, Totals *t, bool first)
{
	Oid			types[8] = {INT4OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID, INT8OID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	XLogRecPtr	hw = Max(src->wal_end, lsn);
	SpSavedUser su;

	values[0] = Int32GetDatum(src->id);
	values[1] = Int64GetDatum((int64) lsn);
	values[2] = Int64GetDatum((int64) hw);
	values[3] = Int64GetDatum(t->rows);
	values[4] = Int64GetDatum(t->bytes);
	values[5] = Int64GetDatum(t->dead);
	values[6] = TimestampTzGetDatum(t->max_event_time);
	if (!t->has_event_time)
		nulls[6] = 'n';
	values[7] = Int64GetDatum((int64) src->committed);

	sp_catalog_enter(&su);
	SPI_connect();
	if (first)
	{
		sp_spi_run("INSERT INTO streamproc.source_offsets"
				   " (source, partition, next_offset, high_watermark, rows_in, bytes_in,"
				   "  dead_letters, max_event_time, last_message_at)"
				   " VALUES ($1, 0, $2, $3, $4, $5, $6, $7, pg_catalog.now())",
				   7, types, values, nulls, SPI_OK_INSERT);
	}
	else
	{
		sp_spi_run("UPDATE streamproc.source_offsets"
				   "   SET next_offset = $2, high_watermark = $3,"
				   "       rows_in = rows_in + $4, bytes_in = bytes_in + $5,"
				   "       dead_letters = dead_letters + $6,"
				   "       max_event_time = GREATEST(max_event_time, $7),"
				   "       last_message_at = pg_catalog.now()"
				   " WHERE source = $1 AND partition = 0 AND next_offset = $8",
				   8, types, values, nulls, SPI_OK_UPDATE);
		if (SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("the committed position of source \"%s\" moved", src->name),
					 errdetail("Another process applied changes of the source, or the source was dropped.")));
	}
	if (src->identity_dirty)
	{
		Oid			t2[2] = {INT4OID, TEXTOID};
		Datum		v2[2];

		v2[0] = Int32GetDatum(src->id);
		v2[1] = CStringGetTextDatum(src->identity);
		sp_spi_run("UPDATE streamproc.source_defs SET row_identity = $2 WHERE id = $1",
				   2, t2, v2, NULL, SPI_OK_UPDATE);
	}
	SPI_finish();
	sp_catalog_leave(&su);
	src->hw_reported = hw;
}

/* ------------------------------------------------------------------------
 * Talking back to the upstream
 * ------------------------------------------------------------------------
 */

/* nothing of ours read and not yet committed (nor an upstream transaction begun) */
static bool
nothing_pending(PgSource *src)
{
	return !src->in_txn && src->nchanges == 0;
}

/*
 * Standby status update: write = flush = apply = what is committed here,
 * or, while nothing of ours is pending, the upstream position last heard
 * (there is nothing for us before it).
 */
static void
send_feedback(PgSource *src, bool reply_requested)
{
	StringInfoData buf;
	XLogRecPtr	pos = src->committed;

	if (nothing_pending(src) && src->idle_lsn > pos)
		pos = src->idle_lsn;
	pos = Max(pos, src->confirmed);
	initStringInfo(&buf);
	pq_sendbyte(&buf, 'r');
	pq_sendint64(&buf, pos);	/* write */
	pq_sendint64(&buf, pos);	/* flush */
	pq_sendint64(&buf, pos);	/* apply */
	pq_sendint64(&buf, GetCurrentTimestamp());
	pq_sendbyte(&buf, reply_requested ? 1 : 0);
	walrcv_send(src->conn, buf.data, buf.len);
	pfree(buf.data);
	src->confirmed = pos;
	src->last_feedback = GetCurrentTimestamp();
}

/* ------------------------------------------------------------------------
 * One batch of streamed changes
 * ------------------------------------------------------------------------
 */

static void
reset_batch(PgSource *src)
{
	MemoryContextReset(src->batch_cxt);
	MemoryContextReset(src->derive_cxt);
	src->changes = NULL;
	src->nchanges = 0;
	src->cap = 0;
	src->entries = NULL;
	src->batch_end = InvalidXLogRecPtr;
	src->batch_started = 0;
}

static void
apply_batch(PgSource *src)
{
	Relation	rel;
	Totals		totals = {0};

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "applying a batch");

	rel = table_open(src->stream, AccessShareLock);
	prepare_stream(src, rel);
	table_close(rel, NoLock);

	MemoryContextSwitchTo(src->batch_cxt);
	sp_pg_apply_changes(src, src->changes, src->nchanges, &totals, true);
	write_position(src, src->batch_end, &totals, false);

	MemoryContextSwitchTo(TopMemoryContext);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	/* committed: now, and only now, the upstream may forget it */
	src->committed = src->batch_end;
	src->identity_dirty = false;
	src->wslot->rows_total += totals.rows + totals.dead;
	reset_batch(src);
	send_feedback(src, false);
}

/* ------------------------------------------------------------------------
 * pgoutput messages
 * ------------------------------------------------------------------------
 */

static bool
is_source_table(PgSource *src, LogicalRepRelId relid)
{
	return src->map.valid && src->map.remoteid == relid;
}

static void
handle_relation(PgSource *src, StringInfo s)
{
	LogicalRepRelation *rel = logicalrep_read_rel(s);
	bool	   *key;
	int			i;

	bool		by_name = strcmp(rel->nspname, src->schema) == 0 && strcmp(rel->relname, src->table) == 0;
	bool		by_oid = OidIsValid(src->table_relid) && rel->remoteid == src->table_relid;

	/* another table of the publication, unless ours was renamed */
	if (!by_name && !by_oid)
		return;
	if (!by_name && (!src->map.valid || src->map.remoteid != rel->remoteid ||
					 src->map.relname == NULL || strcmp(src->map.relname, rel->relname) != 0))
		ereport(LOG,
				(errmsg("streamproc source \"%s\": upstream table \"%s.%s\" is now called \"%s.%s\"",
						src->name, src->schema, src->table, rel->nspname, rel->relname),
				 errhint("The source follows it while it runs, but starts again only with the table under its first name.")));
	src->table_relid = rel->remoteid;	/* (also a table made anew under the name) */
	key = palloc0(sizeof(bool) * Max(rel->natts, 1));
	for (i = 0; i < rel->natts; i++)
		key[i] = bms_is_member(i, rel->attkeys);
	set_map(src, rel->remoteid, rel->relname, rel->natts, rel->attnames, key, rel->replident);
}

/* one change to our table, into the batch */
static void
handle_change(PgSource *src, char action, StringInfo s, XLogRecPtr lsn, int bytes)
{
	LogicalRepTupleData newtup;
	LogicalRepTupleData oldtup;
	bool		has_old = false;
	LogicalRepRelId relid;
	RelMap	   *m = &src->map;
	char	  **upvals;
	char	   *upstatus;
	Change	   *c;
	MemoryContext old;

	switch (action)
	{
		case 'I':
			relid = logicalrep_read_insert(s, &newtup);
			break;
		case 'U':
			relid = logicalrep_read_update(s, &has_old, &oldtup, &newtup);
			break;
		case 'D':
			relid = logicalrep_read_delete(s, &oldtup);
			has_old = true;
			break;
		default:
			elog(ERROR, "unexpected change %c", action);
			return;
	}
	if (src->skip_txn || !is_source_table(src, relid))
		return;

	old = MemoryContextSwitchTo(src->batch_cxt);
	check_identity(src, lsn);
	c = new_change(src, action, lsn);
	c->bytes = bytes;
	if (action != 'D')
	{
		tuple_arrays(&newtup, m->natts, &upvals, &upstatus);
		c->vals = sp_pg_stream_values(src, m, upvals, upstatus, &c->unchanged);
		if (!m->by_values)
			c->key = sp_pg_tuple_key(m, upvals, upstatus);
	}
	if (has_old)
	{
		char	  **oldvals;
		bool	   *oldunchanged;

		tuple_arrays(&oldtup, m->natts, &upvals, &upstatus);
		if (m->by_values)
		{
			oldvals = sp_pg_stream_values(src, m, upvals, upstatus, &oldunchanged);
			c->oldkey = sp_pg_values_key(src, oldvals, oldunchanged);
			/* the new row's unchanged values are in the old one */
			if (c->vals && c->unchanged && oldunchanged == NULL)
			{
				int			j;

				for (j = 0; j < src->desc->natts; j++)
					if (c->unchanged[j])
						c->vals[j] = oldvals[j] ? pstrdup(oldvals[j]) : NULL;
				c->unchanged = NULL;
			}
		}
		else
			c->oldkey = sp_pg_tuple_key(m, upvals, upstatus);
	}
	if (m->by_values && c->vals)
		c->key = sp_pg_values_key(src, c->vals, c->unchanged);
	if (action == 'U' && c->oldkey && c->key && strcmp(c->oldkey, c->key) == 0 && !m->by_values)
		c->oldkey = NULL;
	MemoryContextSwitchTo(old);
}

static void
handle_truncate(PgSource *src, StringInfo s, XLogRecPtr lsn, int bytes)
{
	bool		cascade;
	bool		restart_seqs;
	List	   *relids = logicalrep_read_truncate(s, &cascade, &restart_seqs);
	ListCell   *lc;

	if (src->skip_txn)
		return;
	foreach(lc, relids)
	{
		if (is_source_table(src, lfirst_oid(lc)))
		{
			MemoryContext old = MemoryContextSwitchTo(src->batch_cxt);
			Change	   *c;

			check_identity(src, lsn);
			c = new_change(src, 'T', lsn);
			c->bytes = bytes;
			MemoryContextSwitchTo(old);
		}
	}
}

/* a pgoutput message (the payload of an XLogData message) */
static void
handle_pgoutput(PgSource *src, StringInfo s, XLogRecPtr lsn)
{
	int			bytes = s->len;
	char		action = pq_getmsgbyte(s);

	switch (action)
	{
		case 'B':
			{
				LogicalRepBeginData begin;

				logicalrep_read_begin(s, &begin);
				src->in_txn = true;
				/* ended at or before the committed position: applied already */
				src->skip_txn = begin.final_lsn < src->committed;
				break;
			}
		case 'C':
			{
				LogicalRepCommitData commit;

				logicalrep_read_commit(s, &commit);
				src->in_txn = false;
				/* (final_lsn < end_lsn: at or before committed, skip_txn is set) */
				if (src->skip_txn)
				{
					src->skip_txn = false;
					break;
				}
				if (src->nchanges == 0)
				{
					/* nothing for us in it: it moves only the idle position */
					src->idle_lsn = Max(src->idle_lsn, commit.end_lsn);
					break;
				}
				src->batch_end = commit.end_lsn;
				if (src->batch_started == 0)
					src->batch_started = GetCurrentTimestamp();
				break;
			}
		case 'R':
			handle_relation(src, s);
			break;
		case 'I':
		case 'U':
		case 'D':
			if (!src->in_txn)
				ereport(ERROR,
						(errcode(ERRCODE_PROTOCOL_VIOLATION),
						 errmsg("pgoutput sent a change outside a transaction")));
			handle_change(src, action, s, lsn, bytes);
			break;
		case 'T':
			handle_truncate(src, s, lsn, bytes);
			break;
		case 'Y':				/* type */
		case 'O':				/* origin */
		case 'M':				/* logical decoding message */
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("unexpected pgoutput message type \"%c\"", action)));
	}
}

/* one message of the replication stream */
static void
handle_message(PgSource *src, char *buf, int len)
{
	StringInfoData s;
	char		type;

	s.data = buf;
	s.len = len;
	s.cursor = 0;
	s.maxlen = -1;
	type = pq_getmsgbyte(&s);
	if (type == 'w')
	{
		XLogRecPtr	start = pq_getmsgint64(&s);
		XLogRecPtr	end = pq_getmsgint64(&s);

		(void) pq_getmsgint64(&s);	/* send time */
		src->wal_end = Max(src->wal_end, Max(start, end));
		handle_pgoutput(src, &s, start);
	}
	else if (type == 'k')
	{
		XLogRecPtr	end = pq_getmsgint64(&s);
		bool		reply;

		(void) pq_getmsgint64(&s);	/* send time */
		reply = pq_getmsgbyte(&s);
		src->wal_end = Max(src->wal_end, end);
		/* everything before it has been sent: if none of it is pending... */
		if (nothing_pending(src))
			src->idle_lsn = Max(src->idle_lsn, end);
		if (reply)
			send_feedback(src, false);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("unexpected replication message type \"%c\"", type)));
}

/* ------------------------------------------------------------------------
 * The initial copy
 * ------------------------------------------------------------------------
 */

/*
 * The copy's data for PostgreSQL's own COPY parser, as its table
 * synchronization reads it: the CopyData messages of the replication
 * connection, waiting on the latch.  0: the copy is over.
 */
static WalReceiverConn *copy_conn;	/* NULL once the copy is over */
static char *copy_buf;			/* what is left of the last message */
static int	copy_left;
static int64 copy_bytes;		/* the copy's bytes so far */

static int
read_copy_data(void *outbuf, int minread, int maxread)
{
	int			nread = 0;

	while (nread < minread && copy_conn != NULL)
	{
		int			n;

		if (copy_left == 0)
		{
			pgsocket	fd = PGINVALID_SOCKET;
			int			len = walrcv_receive(copy_conn, &copy_buf, &fd);

			CHECK_FOR_INTERRUPTS();
			if (len < 0)
				copy_conn = NULL;
			else if (len == 0)
			{
				(void) WaitLatchOrSocket(MyLatch, WL_SOCKET_READABLE | WL_LATCH_SET | WL_EXIT_ON_PM_DEATH,
										 fd, -1L, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
			}
			copy_left = Max(len, 0);
			copy_bytes += copy_left;
			continue;
		}
		n = Min(copy_left, maxread - nread);
		memcpy((char *) outbuf + nread, copy_buf, n);
		copy_buf += n;
		copy_left -= n;
		nread += n;
	}
	return nread;
}

/*
 * Create the slot with a snapshot and copy the table out in it; apply the
 * copy and the first position in the caller's local transaction.  (That
 * transaction has no XID while the slot is created, so creating it on this
 * very server does not wait for us.)
 */
static void
initial_copy(PgSource *src)
{
	XLogRecPtr	consistent;
	SpUpstreamTable *t;
	StringInfoData cmd;
	WalRcvExecResult *res;
	CopyFromState cstate;
	char	  **fields;
	int			nfields;
	int		   *cols;			/* selected column -> upstream column */
	int			ncols = 0;
	int			i;
	Totals		totals = {0};
	Relation	rel;
	char	  **upvals;
	char	   *status;
	int64		rows_before = src->wslot->rows_total;

	pgstat_report_activity(STATE_RUNNING, "creating the replication slot");
	sp_upstream_command(src->conn, "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ");
	(void) walrcv_create_slot(src->conn, src->slot, false, false, CRS_USE_SNAPSHOT, &consistent);
	ereport(LOG,
			(errmsg("streamproc source \"%s\": created replication slot \"%s\" at %X/%X; copying \"%s.%s\"",
					src->name, src->slot, LSN_FORMAT_ARGS(consistent), src->schema, src->table)));

	t = sp_upstream_table(src->conn, src->schema, src->table, src->publication);
	set_map(src, t->relid, NULL, t->natts, t->attnames, t->attkey, t->replident);

	/* the columns the stream or the key needs, in attnum order */
	cols = palloc(sizeof(int) * Max(t->natts, 1));
	initStringInfo(&cmd);
	appendStringInfoString(&cmd, "COPY (SELECT ");
	for (i = 0; i < t->natts; i++)
	{
		if (src->map.stream_att[i] < 0 && !(src->map.key[i] && !src->map.by_values))
			continue;
		appendStringInfo(&cmd, "%s%s", ncols ? ", " : "", quote_identifier(t->attnames[i]));
		cols[ncols++] = i;
	}
	if (ncols == 0)
		appendStringInfoString(&cmd, "NULL");
	appendStringInfo(&cmd, " FROM %s", quote_qualified_identifier(t->schema, t->table));
	if (t->row_filter)
		appendStringInfo(&cmd, " WHERE %s", t->row_filter);
	appendStringInfoString(&cmd, ") TO STDOUT");

	pgstat_report_activity(STATE_RUNNING, "copying the table");
	res = walrcv_exec(src->conn, cmd.data, 0, NULL);
	if (res->status != WALRCV_OK_COPY_OUT)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_EXCEPTION),
				 errmsg("could not copy table \"%s.%s\" from the upstream server: %s",
						src->schema, src->table, res->err ? res->err : "unexpected result")));
	walrcv_clear_result(res);

	rel = table_open(src->stream, AccessShareLock);
	prepare_stream(src, rel);
	check_identity(src, consistent);
	reset_batch(src);

	/* (COPY only splits lines into fields: the stream's input functions convert) */
	MemoryContextSwitchTo(src->conn_cxt);
	upvals = palloc(sizeof(char *) * Max(t->natts, 1));
	status = palloc(Max(t->natts, 1));
	copy_conn = src->conn;
	copy_left = 0;
	copy_bytes = 0;
	cstate = BeginCopyFrom(NULL, rel, NULL, NULL, false, read_copy_data, NIL, NIL);
	MemoryContextSwitchTo(src->batch_cxt);
	while (NextCopyFromRawFields(cstate, &fields, &nfields))
	{
		Change	   *c;

		if (nfields != Max(ncols, 1))
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("the upstream's copy has %d columns, not %d", nfields, ncols)));
		for (i = 0; i < t->natts; i++)
		{
			upvals[i] = NULL;
			status[i] = LOGICALREP_COLUMN_NULL;
		}
		for (i = 0; i < ncols; i++)
		{
			upvals[cols[i]] = fields[i];
			status[cols[i]] = fields[i] ? LOGICALREP_COLUMN_TEXT : LOGICALREP_COLUMN_NULL;
		}
		c = new_change(src, 'I', consistent);
		c->vals = sp_pg_stream_values(src, &src->map, upvals, status, &c->unchanged);
		c->key = src->map.by_values ? sp_pg_values_key(src, c->vals, NULL)
			: sp_pg_tuple_key(&src->map, upvals, status);

		if (src->nchanges >= src->batch_size)
		{
			sp_pg_apply_changes(src, src->changes, src->nchanges, &totals, false);
			reset_batch(src);
			src->wslot->rows_total = rows_before + totals.rows + totals.dead;
		}
	}
	EndCopyFrom(cstate);
	table_close(rel, NoLock);
	if (src->nchanges > 0)
		sp_pg_apply_changes(src, src->changes, src->nchanges, &totals, false);
	totals.bytes += copy_bytes;
	/* the copy's event time, once it is all in */
	sp_pg_apply_progress(src, totals.has_event_time, totals.max_event_time);
	src->wal_end = consistent;
	write_position(src, consistent, &totals, true);
	MemoryContextSwitchTo(TopMemoryContext);
	reset_batch(src);
	sp_upstream_command(src->conn, "COMMIT");
	src->committed = consistent;
	src->wslot->rows_total = rows_before + totals.rows + totals.dead;
	ereport(LOG,
			(errmsg("streamproc source \"%s\": copied " INT64_FORMAT " rows of \"%s.%s\" (" INT64_FORMAT " set aside)",
					src->name, totals.rows, src->schema, src->table, totals.dead)));
}

/*
 * No committed position yet: make the slot (and copy the table), or take
 * the position of the slot the user named.  One local transaction: the
 * first position commits with the copy.
 */
static void
start_position(PgSource *src)
{
	XLogRecPtr	confirmed = InvalidXLogRecPtr;
	char	   *plugin = NULL;
	bool		exists;
	Totals		totals = {0};

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(src->conn_cxt);
	exists = sp_upstream_slot(src->conn, src->slot, &confirmed, &plugin, NULL);
	if (src->slot_created && src->snapshot)
	{
		if (exists)
		{
			char	   *error = NULL;

			/* ours, from a copy that did not commit: start over */
			ereport(LOG,
					(errmsg("streamproc source \"%s\": dropping replication slot \"%s\" left by an unfinished copy",
							src->name, src->slot)));
			if (!sp_upstream_drop_slot(src->conn, src->slot, 60000, &error))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_IN_USE),
						 errmsg("could not drop replication slot \"%s\" on the upstream server: %s",
								src->slot, error)));
		}
		initial_copy(src);
		goto done;
	}

	if (!exists && src->slot_created)
	{
		(void) walrcv_create_slot(src->conn, src->slot, false, false, CRS_NOEXPORT_SNAPSHOT, &confirmed);
		ereport(LOG,
				(errmsg("streamproc source \"%s\": created replication slot \"%s\" at %X/%X",
						src->name, src->slot, LSN_FORMAT_ARGS(confirmed))));
	}
	else if (!exists)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("replication slot \"%s\" does not exist on the upstream server", src->slot),
				 errhint("Create it upstream with pg_create_logical_replication_slot('%s', 'pgoutput'), or drop and re-create the source.",
						 src->slot)));
	else if (plugin == NULL || strcmp(plugin, "pgoutput") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("replication slot \"%s\" does not use the pgoutput plugin", src->slot)));

	src->wal_end = confirmed;
	write_position(src, confirmed, &totals, true);
	src->committed = confirmed;

done:
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	src->have_position = true;
	src->identity_dirty = false;
}

/* ------------------------------------------------------------------------
 * The stream
 * ------------------------------------------------------------------------
 */

/* once a second: rates, lag, feedback */
static void
tick(PgSource *src)
{
	TimestampTz now = GetCurrentTimestamp();
	XLogRecPtr	hw;

	if (!sp_worker_rate_tick(&src->rate, src->wslot, now))
		return;

	/*
	 * Lag: the upstream's WAL end minus what is committed here; nothing
	 * while nothing of ours is pending (the rest is other tables' WAL).
	 */
	if (nothing_pending(src))
		hw = src->committed;
	else
		hw = Max(src->wal_end, src->committed);
	if (hw != src->hw_reported)
	{
		Oid			types[2] = {INT4OID, INT8OID};
		Datum		values[2];

		sp_worker_xact_begin();
		values[0] = Int32GetDatum(src->id);
		values[1] = Int64GetDatum((int64) hw);
		sp_spi_run("UPDATE streamproc.source_offsets SET high_watermark = $2"
				   " WHERE source = $1 AND partition = 0",
				   2, types, values, NULL, SPI_OK_UPDATE);
		sp_worker_xact_commit();
		src->hw_reported = hw;
	}
	if (TimestampDifferenceExceeds(src->last_feedback, now, FEEDBACK_INTERVAL_MS) ||
		(src->idle_lsn > src->confirmed && nothing_pending(src)))
		send_feedback(src, false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* is the batch ready to be applied? */
static bool
batch_due(PgSource *src)
{
	if (src->in_txn || src->nchanges == 0)
		return false;
	if (src->nchanges >= src->batch_size)
		return true;
	return TimestampDifferenceExceeds(src->batch_started, GetCurrentTimestamp(),
									  src->batch_timeout_ms);
}

static void
stream(PgSource *src)
{
	WalRcvStreamOptions options;

	memset(&options, 0, sizeof(options));
	options.logical = true;
	options.slotname = src->slot;
	options.startpoint = src->committed;
	options.proto.logical.proto_version = LOGICALREP_PROTO_VERSION_NUM;
	options.proto.logical.publication_names = list_make1(makeString(src->publication));
	options.proto.logical.binary = false;
	options.proto.logical.streaming = false;
	options.proto.logical.twophase = false;
	if (!walrcv_startstreaming(src->conn, &options))
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_EXCEPTION),
				 errmsg("the upstream server did not start streaming")));
	sp_worker_report_error(src->wslot, NULL);
	src->confirmed = src->committed;
	src->idle_lsn = src->committed;
	src->in_txn = false;
	src->skip_txn = false;
	src->batch_started = 0;
	ereport(LOG,
			(errmsg("streamproc source \"%s\" streaming \"%s.%s\" from slot \"%s\" at %X/%X",
					src->name, src->schema, src->table, src->slot, LSN_FORMAT_ARGS(src->committed))));
	pgstat_report_activity(STATE_IDLE, NULL);

	for (;;)
	{
		pgsocket	fd = PGINVALID_SOCKET;
		int			len;
		long		wait_ms = 1000;
		int			got = 0;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		for (;;)
		{
			char	   *buf;

			len = walrcv_receive(src->conn, &buf, &fd);
			if (len <= 0)
				break;
			MemoryContextReset(src->row_cxt);
			MemoryContextSwitchTo(src->row_cxt);
			handle_message(src, buf, len);
			MemoryContextSwitchTo(TopMemoryContext);
			got++;
			if (batch_due(src))
				apply_batch(src);
			if (got % 1000 == 0)
			{
				CHECK_FOR_INTERRUPTS();
				tick(src);
			}
		}
		if (len < 0)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_EXCEPTION),
					 errmsg("the upstream server ended the replication stream")));
		if (batch_due(src))
			apply_batch(src);
		tick(src);

		if (!src->in_txn && src->nchanges > 0)
		{
			long		left = src->batch_timeout_ms -
				(long) ((GetCurrentTimestamp() - src->batch_started) / 1000);

			wait_ms = Max(Min(left, wait_ms), 1);
		}
		(void) WaitLatchOrSocket(MyLatch,
								 WL_SOCKET_READABLE | WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 fd, wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * The table (by name: its OID tells a rename from another table) and, when
 * resuming, the slot: say so plainly if either is gone.
 */
static void
check_upstream(PgSource *src)
{
	bool		exists = true;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	MemoryContextSwitchTo(src->conn_cxt);
	src->table_relid = sp_upstream_table_oid(src->conn, src->schema, src->table);
	if (src->have_position)
		exists = sp_upstream_slot(src->conn, src->slot, NULL, NULL, NULL);
	CommitTransactionCommand();
	if (!OidIsValid(src->table_relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table \"%s.%s\" does not exist on the upstream server", src->schema, src->table),
				 errhint("If it was renamed, rename it back, or drop and re-create the source.")));
	if (!exists)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("replication slot \"%s\" does not exist on the upstream server", src->slot),
				 errdetail("The source resumes from its slot; the source retries until the slot is back."),
				 errhint("Create it upstream with pg_create_logical_replication_slot('%s', 'pgoutput') to go on from now, or drop and re-create the source to copy the table anew.",
						 src->slot)));
}

/* connect, find where we stand, stream (until an error) */
static void
run(void *arg)
{
	PgSource   *src = arg;

	MemoryContextReset(src->conn_cxt);
	MemoryContextSwitchTo(src->conn_cxt);
	src->desc = NULL;
	src->map.valid = false;
	reset_batch(src);
	load_stream(src);
	MemoryContextSwitchTo(src->conn_cxt);

	pgstat_report_activity(STATE_RUNNING, "connecting to the upstream server");
	src->conn = sp_upstream_connect(src->conninfo, src->name, !src->owner_superuser);
	check_upstream(src);
	if (!src->have_position)
		start_position(src);
	MemoryContextSwitchTo(src->conn_cxt);
	stream(src);
}

/* after an error: start over from the committed position, on a new connection */
static void
start_over(void *arg)
{
	PgSource   *src = arg;
	WalReceiverConn *conn = src->conn;

	/* gone whether or not closing it fails */
	src->conn = NULL;
	reset_batch(src);
	sp_upstream_disconnect(&conn);
}

void
sp_pg_source_main(Datum arg)
{
	SpSourceWorkerArgs args = sp_source_worker_start();
	PgSource   *src = load_source(args.source_id);

	if (src == NULL)
		proc_exit(0);
	/* one worker per source: index 0 */
	src->wslot = sp_source_worker_claim(src->name, src->id, 0, false);
	sp_source_worker_loop(src->id, src->wslot, src->cxt, run, start_over, src);
}
