/*
 * source_pg_sql.c — the SQL side of PostgreSQL sources (kind 'pg'):
 * create_pg_source, what drop_source does upstream, mask_conninfo.
 *
 * create_pg_source checks everything it can upstream before the source
 * exists (the connection, the publication, the table in it, the columns,
 * the slot), so that mistakes fail at creation rather than in a worker's
 * log.  It does not create the slot: the worker does, when it starts, with
 * the snapshot of its initial copy (source_pg.c).  Whether the slot was
 * there before decides who owns it: a slot the source creates is dropped
 * with it; a slot the user named and made is left alone.
 *
 * The connection string may hold a password: it reaches the worker, but
 * streamproc.sources shows it masked and no message repeats it.
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "replication/slot.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lwlock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "access/table.h"

#include "apply.h"
#include "catalog.h"
#include "source.h"
#include "source_batch.h"
#include "source_pg.h"
#include "upstream.h"
#include "view_compile.h"
#include "workers.h"

/* the default slot name: streamproc_<source name>, in slot characters */
static char *
default_slot_name(const char *name)
{
	StringInfoData buf;
	const char *p;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "streamproc_");
	for (p = name; *p && buf.len < NAMEDATALEN - 1; p++)
	{
		char		c = pg_ascii_tolower((unsigned char) *p);

		appendStringInfoChar(&buf, (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '_');
	}
	return buf.data;
}

/*
 * Everything create_pg_source checks upstream; returns whether the slot
 * exists already.
 */
static bool
check_upstream(const char *conninfo, const char *publication, const char *schema,
			   const char *table, Oid stream, const char *slot, bool slot_given,
			   bool snapshot)
{
	WalReceiverConn *volatile conn = NULL;
	bool		exists = false;

	conn = sp_upstream_connect(conninfo, "streamproc create_pg_source", !superuser());
	PG_TRY();
	{
		SpUpstreamTable *t;
		Relation	rel;
		TupleDesc	desc;
		int			i;
		int			j;
		int			matched = 0;
		char	   *plugin = NULL;
		bool		this_database = false;

		if (!sp_upstream_publication_exists(conn, publication))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("publication \"%s\" does not exist on the upstream server", publication),
					 errhint("Create it upstream, for example CREATE PUBLICATION %s FOR TABLE %s.",
							 quote_identifier(publication),
							 quote_qualified_identifier(schema, table))));
		t = sp_upstream_table(conn, schema, table, publication);
		/* pgoutput names a partition's changes after the partition or the root */
		if (t->relkind == 'p' && !sp_upstream_publication_via_root(conn, publication))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("table \"%s.%s\" is partitioned, and publication \"%s\" publishes the changes of its partitions under their own names",
							schema, table, publication),
					 errhint("Set the publication upstream with ALTER PUBLICATION %s SET (publish_via_partition_root = true).",
							 quote_identifier(publication))));

		rel = table_open(stream, AccessShareLock);
		desc = RelationGetDescr(rel);
		for (j = 0; j < desc->natts; j++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, j);

			if (att->attisdropped)
				continue;
			for (i = 0; i < t->natts; i++)
				if (strcmp(t->attnames[i], NameStr(att->attname)) == 0)
					matched++;
		}
		table_close(rel, AccessShareLock);
		if (matched == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("no column of stream \"%s\" is a published column of upstream table \"%s.%s\"",
							get_rel_name(stream), schema, table),
					 errdetail("Columns map by name; stream columns absent upstream are NULL.")));

		exists = sp_upstream_slot(conn, slot, NULL, &plugin, &this_database);
		if (exists && !slot_given)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("replication slot \"%s\" already exists on the upstream server", slot),
					 errhint("Drop it upstream with pg_drop_replication_slot('%s') if it is left from an earlier source, or name another slot with the slot argument.",
							 slot)));
		if (exists && snapshot)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("replication slot \"%s\" already exists on the upstream server", slot),
					 errdetail("An initial snapshot needs a slot that the source creates itself."),
					 errhint("Pass snapshot => false to read the changes from the slot's position on, or name a slot that does not exist.")));
		if (exists && (plugin == NULL || strcmp(plugin, "pgoutput") != 0))
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("replication slot \"%s\" is not a logical slot of the pgoutput plugin", slot)));
		if (exists && !this_database)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("replication slot \"%s\" belongs to another database", slot)));
	}
	PG_FINALLY();
	{
		sp_upstream_disconnect((WalReceiverConn **) &conn);
	}
	PG_END_TRY();
	return exists;
}

PG_FUNCTION_INFO_V1(sp_create_pg_source);

/*
 * streamproc.create_pg_source(name, stream, conninfo, publication,
 *     source_table, slot, snapshot)
 */
Datum
sp_create_pg_source(PG_FUNCTION_ARGS)
{
	char	   *name;
	Oid			stream;
	char	   *conninfo;
	char	   *publication;
	char	   *source_table;
	char	   *slot;
	bool		slot_given;
	bool		snapshot;
	char	   *schema;
	char	   *table;
	bool		exists;
	SpSavedUser su;

	sp_check_create_source(fcinfo, "create_pg_source", 7, 5);

	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	stream = PG_GETARG_OID(1);
	conninfo = text_to_cstring(PG_GETARG_TEXT_PP(2));
	publication = text_to_cstring(PG_GETARG_TEXT_PP(3));
	source_table = text_to_cstring(PG_GETARG_TEXT_PP(4));
	slot_given = !PG_ARGISNULL(5);
	slot = slot_given ? text_to_cstring(PG_GETARG_TEXT_PP(5)) : default_slot_name(name);
	snapshot = PG_GETARG_BOOL(6);

	sp_check_source_stream(name, stream);
	sp_upstream_check_conninfo(conninfo);
	if (publication[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("publication must not be empty")));
	sp_upstream_parse_table(source_table, &schema, &table);
	/* (PostgreSQL's rule; its message at DEBUG1, ours to the user) */
	if (slot_given && !ReplicationSlotValidateName(slot, DEBUG1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid replication slot name \"%s\"", slot),
				 errhint("Replication slot names have 1 to %d lower case letters, digits and underscores.",
						 NAMEDATALEN - 1)));

	/* deletes and updates take rows back: every view must cope */
	sp_check_stream_retractable(stream);

	/* the catalog first: no connection for a duplicate name */
	sp_catalog_enter(&su);
	SPI_connect();
	{
		Oid			types[2] = {TEXTOID, TEXTOID};
		Datum		values[2];

		values[0] = CStringGetTextDatum(name);
		values[1] = CStringGetTextDatum(slot);
		sp_spi_run("SELECT 1 FROM streamproc.source_defs WHERE name = $1", 1, types, values, NULL,
				   SPI_OK_SELECT);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("source \"%s\" already exists", name)));
		sp_spi_run("SELECT name FROM streamproc.source_defs WHERE kind = 'pg' AND slot = $2 AND conninfo IS NOT NULL",
				   2, types, values, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("replication slot \"%s\" is used by source \"%s\"", slot,
							SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
					 errhint("Name another slot with the slot argument.")));
	}
	SPI_finish();
	sp_catalog_leave(&su);

	exists = check_upstream(conninfo, publication, schema, table, stream, slot, slot_given,
							snapshot);

	sp_catalog_enter(&su);
	SPI_connect();
	{
		Oid			types[9] = {TEXTOID, OIDOID, OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		BOOLOID, BOOLOID};
		Datum		values[9];

		values[0] = CStringGetTextDatum(name);
		values[1] = ObjectIdGetDatum(stream);
		values[2] = ObjectIdGetDatum(GetUserId());
		values[3] = CStringGetTextDatum(conninfo);
		values[4] = CStringGetTextDatum(publication);
		values[5] = CStringGetTextDatum(source_table);
		values[6] = CStringGetTextDatum(slot);
		values[7] = BoolGetDatum(snapshot);
		values[8] = BoolGetDatum(!exists);
		sp_spi_run("INSERT INTO streamproc.source_defs"
				   " (name, kind, stream, owner, format, batch_size, batch_timeout,"
				   "  conninfo, publication, source_table, slot, snapshot, slot_created)"
				   " VALUES ($1, 'pg', $2, $3, 'pgoutput', 10000, '100 ms', $4, $5, $6, $7, $8, $9)",
				   9, types, values, NULL, SPI_OK_INSERT);
	}
	SPI_finish();
	sp_catalog_leave(&su);

	sp_request_kick_at_commit();
	PG_RETURN_VOID();
}

/* the pid of the source's worker, or 0 */
static pid_t
worker_pid(int32 source_id)
{
	pid_t		pid = 0;
	int			i;

	if (sp_shared == NULL)
		return 0;
	LWLockAcquire(sp_shared->lock, LW_SHARED);
	for (i = 0; i < sp_shared->nslots; i++)
	{
		SpWorkerSlot *w = &sp_shared->workers[i];

		if (w->pid != 0 && w->dboid == MyDatabaseId && w->source_id == source_id)
			pid = w->pid;
	}
	LWLockRelease(sp_shared->lock);
	return pid;
}

/*
 * Before drop_source deletes a pg source: stop its worker (the caller
 * holds the source's row, so the supervisor cannot start another one that
 * gets anywhere) and drop the slot upstream if the source created it.
 * That cannot be undone, so like DROP SUBSCRIPTION it refuses to run in a
 * transaction block.  A slot that cannot be dropped (the upstream is
 * down) is left with a warning saying how to drop it.
 */
void
sp_pg_source_before_drop(int32 source_id)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(source_id)};
	char	   *name;
	char	   *conninfo;
	char	   *slot;
	bool		slot_created;
	bool		isnull;
	pid_t		pid;
	TimestampTz start;
	WalReceiverConn *volatile conn = NULL;
	char	   *volatile error = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	SpSubxact	sx;

	SPI_connect();
	sp_spi_run("SELECT name, conninfo, slot, slot_created FROM streamproc.source_defs"
			   " WHERE id = $1 AND kind = 'pg'",
			   1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		SPI_finish();
		return;
	}
	slot_created = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	name = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	conninfo = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	slot = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3));
	SPI_finish();
	if (!slot_created)
		return;					/* the user's slot stays */

	PreventInTransactionBlock(true, "streamproc.drop_source() of a pg source");

	/*
	 * The worker lets go of the slot: it is told to stop until it has, and
	 * the slot dropped once its walsender has gone too (a worker that
	 * loaded the source just before this one took the row is caught on a
	 * later round).  An upstream that cannot be reached does not keep the
	 * source.
	 */
	start = GetCurrentTimestamp();
	sp_subxact_begin(&sx, cxt);
	PG_TRY();
	{
		bool		dropped = false;

		conn = sp_upstream_connect(conninfo, "streamproc drop_source", false);
		while (!dropped)
		{
			char	   *err = NULL;

			if ((pid = worker_pid(source_id)) != 0)
				(void) kill(pid, SIGTERM);
			else if (sp_upstream_drop_slot(conn, slot, 0, &err))
				dropped = true;
			if (!dropped && TimestampDifferenceExceeds(start, GetCurrentTimestamp(), 15000))
			{
				error = MemoryContextStrdup(cxt, err ? err : "the source's worker did not stop");
				break;
			}
			if (!dropped)
			{
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 50L, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}
		}
		sp_upstream_disconnect((WalReceiverConn **) &conn);
		sp_subxact_end(&sx, true);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		sp_subxact_end(&sx, false);
		error = edata->message;
		if (conn != NULL)
			sp_upstream_disconnect((WalReceiverConn **) &conn);
	}
	PG_END_TRY();
	if (error != NULL)
		ereport(WARNING,
				(errmsg("could not drop replication slot \"%s\" of source \"%s\" on the upstream server: %s",
						slot, name, error),
				 errhint("Drop it there with SELECT pg_drop_replication_slot('%s'); until then the upstream server keeps WAL for it.",
						 slot)));
}

PG_FUNCTION_INFO_V1(sp_mask_conninfo);

/* streamproc.mask_conninfo(text): the password replaced by ******** */
Datum
sp_mask_conninfo(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(sp_upstream_mask_conninfo(text_to_cstring(PG_GETARG_TEXT_PP(0)))));
}
