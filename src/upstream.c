/*
 * upstream.c — talking to the PostgreSQL server a pg source reads from:
 * connection strings (checked and masked without ever repeating a
 * password), a logical replication connection through the server's own
 * libpqwalreceiver, and the few catalog questions a source asks upstream
 * (its table's columns and replica identity, its publication, its slot).
 *
 * libpqwalreceiver is the module the server's own subscriptions use; its
 * connection runs SQL as well as replication commands, waits on the
 * process latch (so a worker stays responsive to SIGTERM), and sets the
 * session up for logical replication (empty search_path, DateStyle ISO,
 * extra_float_digits 3), so values arrive in one stable text form.
 */
#include "postgres.h"

#include "libpq-fe.h"

#include "access/tupdesc.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "nodes/value.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "upstream.h"

/* does the connection string perhaps hold a password somewhere? */
static bool
may_hold_password(const char *conninfo)
{
	char	   *lower = pstrdup(conninfo);
	char	   *p;
	bool		result;

	for (p = lower; *p; p++)
		*p = pg_ascii_tolower((unsigned char) *p);
	/* keyword=value, or a URI's user:password@ */
	result = strstr(lower, "password") != NULL || strchr(lower, '@') != NULL;
	pfree(lower);
	return result;
}

/*
 * ERROR unless libpq can parse the connection string.  libpq's message
 * quotes pieces of the string, so it is shown only when the string cannot
 * hold a password.
 */
void
sp_upstream_check_conninfo(const char *conninfo)
{
	PQconninfoOption *opts;
	char	   *err = NULL;

	opts = PQconninfoParse(conninfo, &err);
	if (opts != NULL)
	{
		PQconninfoOption *o;

		for (o = opts; o->keyword != NULL; o++)
			if (o->val != NULL && strcmp(o->keyword, "replication") == 0)
			{
				PQconninfoFree(opts);
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("conninfo must not set \"replication\""),
						 errdetail("The source opens a logical replication connection by itself.")));
			}
		PQconninfoFree(opts);
		return;
	}
	if (err == NULL || may_hold_password(conninfo))
	{
		if (err)
			PQfreemem(err);
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("invalid connection string"),
				 errdetail("libpq could not parse it (its message is not shown: the string may hold a password)."),
				 errhint("Use keyword=value pairs, such as 'host=db1 port=5432 dbname=app user=repl', or a postgresql:// URI.")));
	}
	else
	{
		char	   *msg = pstrdup(err);
		int			len = strlen(msg);

		PQfreemem(err);
		while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
			msg[--len] = '\0';
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("invalid connection string"),
				 errdetail("%s", msg),
				 errhint("Use keyword=value pairs, such as 'host=db1 port=5432 dbname=app user=repl', or a postgresql:// URI.")));
	}
}

/* a conninfo value, quoted when it needs to be */
static void
append_conninfo_value(StringInfo buf, const char *val)
{
	const char *p;
	bool		quote = val[0] == '\0';

	for (p = val; *p && !quote; p++)
		if (isspace((unsigned char) *p) || *p == '\'' || *p == '\\')
			quote = true;
	if (!quote)
	{
		appendStringInfoString(buf, val);
		return;
	}
	appendStringInfoChar(buf, '\'');
	for (p = val; *p; p++)
	{
		if (*p == '\'' || *p == '\\')
			appendStringInfoChar(buf, '\\');
		appendStringInfoChar(buf, *p);
	}
	appendStringInfoChar(buf, '\'');
}

/*
 * The connection string as keyword=value pairs, with the values of
 * secret settings (password, sslpassword: libpq's "*" options) replaced
 * by ********.  What libpq cannot parse is masked whole.
 */
char *
sp_upstream_mask_conninfo(const char *conninfo)
{
	PQconninfoOption *opts;
	PQconninfoOption *o;
	char	   *err = NULL;
	StringInfoData buf;

	opts = PQconninfoParse(conninfo, &err);
	if (opts == NULL)
	{
		if (err)
			PQfreemem(err);
		return pstrdup("********");
	}
	initStringInfo(&buf);
	for (o = opts; o->keyword != NULL; o++)
	{
		if (o->val == NULL)
			continue;
		if (buf.len > 0)
			appendStringInfoChar(&buf, ' ');
		appendStringInfo(&buf, "%s=", o->keyword);
		if (strchr(o->dispchar, '*') != NULL)
			appendStringInfoString(&buf, "********");
		else
			append_conninfo_value(&buf, o->val);
	}
	PQconninfoFree(opts);
	return buf.data;
}

/*
 * Connect with libpq and hang up, to see whether the server asked for the
 * password: a source made by a non-superuser must not ride on the trust
 * or peer authentication the server grants its own processes (the rule of
 * dblink and postgres_fdw).  Waits on the latch: SIGTERM and cancel work.
 */
static void
check_password_used(const char *conninfo)
{
	const char *keys[] = {"dbname", "replication", "fallback_application_name", NULL};
	const char *vals[] = {conninfo, "database", "streamproc", NULL};
	PGconn	   *conn = PQconnectStartParams(keys, vals, true);
	PostgresPollingStatusType status = PGRES_POLLING_WRITING;
	bool		used;

	if (conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	while (PQstatus(conn) != CONNECTION_BAD && status != PGRES_POLLING_OK &&
		   status != PGRES_POLLING_FAILED)
	{
		int			io = status == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
		int			rc = WaitLatchOrSocket(MyLatch, WL_EXIT_ON_PM_DEATH | WL_LATCH_SET | io,
										   PQsocket(conn), 0, PG_WAIT_EXTENSION);

		if (rc & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			if (INTERRUPTS_PENDING_CONDITION())
			{
				PQfinish(conn);
				CHECK_FOR_INTERRUPTS();
			}
		}
		if (rc & io)
			status = PQconnectPoll(conn);
	}
	if (PQstatus(conn) != CONNECTION_OK)
	{
		char	   *msg = pchomp(PQerrorMessage(conn));

		PQfinish(conn);
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to the upstream server: %s", msg)));
	}
	used = PQconnectionUsedPassword(conn);
	PQfinish(conn);
	if (!used)
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("the upstream server did not ask for a password"),
				 errdetail("A source of a user who is not a superuser must authenticate with a password."),
				 errhint("Put the password in the connection string, and have the upstream server require it (pg_hba.conf).")));
}

/*
 * A logical replication connection (replication=database) to the
 * upstream server.  ERROR if it cannot be made; libpq's messages name the
 * host and the user, never the password.  require_password: for sources
 * of non-superusers.
 */
WalReceiverConn *
sp_upstream_connect(const char *conninfo, const char *appname, bool require_password)
{
	WalReceiverConn *conn;
	char	   *err = NULL;

	sp_upstream_check_conninfo(conninfo);
	if (require_password)
		check_password_used(conninfo);
	if (WalReceiverFunctions == NULL)
		load_file("libpqwalreceiver", false);
	conn = walrcv_connect(conninfo, true, appname, &err);
	if (conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to the upstream server: %s", err ? err : "?")));
	return conn;
}

void
sp_upstream_disconnect(WalReceiverConn **conn)
{
	if (*conn == NULL)
		return;
	walrcv_disconnect(*conn);
	*conn = NULL;
}

/* run a query upstream; ERROR unless it returns rows */
WalRcvExecResult *
sp_upstream_query(WalReceiverConn *conn, const char *sql, int ncols, const Oid *types)
{
	WalRcvExecResult *res = walrcv_exec(conn, sql, ncols, types);

	if (res->status != WALRCV_OK_TUPLES)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_EXCEPTION),
				 errmsg("a query on the upstream server failed: %s",
						res->err ? res->err : "unexpected result")));
	return res;
}

/* run a command upstream; ERROR if it fails */
void
sp_upstream_command(WalReceiverConn *conn, const char *sql)
{
	WalRcvExecResult *res = walrcv_exec(conn, sql, 0, NULL);

	if (res->status != WALRCV_OK_COMMAND && res->status != WALRCV_OK_TUPLES)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_EXCEPTION),
				 errmsg("a command on the upstream server failed: %s",
						res->err ? res->err : "unexpected result")));
	walrcv_clear_result(res);
}

/* the next row of a result into slot; false after the last */
static bool
next_row(WalRcvExecResult *res, TupleTableSlot *slot)
{
	return tuplestore_gettupleslot(res->tuplestore, true, false, slot);
}

/*
 * Run a query upstream: false if it returned no row, else true with the
 * first column of its first row (of a type passed by value, not NULL) in
 * *value, if asked for.
 */
static bool
query_value(WalReceiverConn *conn, const char *sql, Oid type, Datum *value)
{
	WalRcvExecResult *res = sp_upstream_query(conn, sql, 1, &type);
	TupleTableSlot *slot = MakeSingleTupleTableSlot(res->tupledesc, &TTSOpsMinimalTuple);
	bool		found = next_row(res, slot);
	bool		isnull;

	if (found && value != NULL)
		*value = slot_getattr(slot, 1, &isnull);
	ExecDropSingleTupleTableSlot(slot);
	walrcv_clear_result(res);
	return found;
}

/*
 * 'schema.table' (or 'table', in public) with SQL's identifier rules:
 * unquoted names fold to lower case.
 */
void
sp_upstream_parse_table(const char *source_table, char **schema, char **table)
{
	List	   *names = NIL;
	char	   *copy = pstrdup(source_table);

	if (!SplitIdentifierString(copy, '.', &names) || names == NIL ||
		list_length(names) > 2 || strlen(llast(names)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid source_table \"%s\"", source_table),
				 errhint("Name the upstream table as 'schema.table'.")));
	if (list_length(names) == 2)
	{
		*schema = pstrdup(linitial(names));
		*table = pstrdup(lsecond(names));
	}
	else
	{
		*schema = pstrdup("public");
		*table = pstrdup(linitial(names));
	}
}

bool
sp_upstream_publication_exists(WalReceiverConn *conn, const char *publication)
{
	return query_value(conn,
					   psprintf("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = %s",
								quote_literal_cstr(publication)),
					   INT4OID, NULL);
}

/* the OID of a table upstream, or InvalidOid */
Oid
sp_upstream_table_oid(WalReceiverConn *conn, const char *schema, const char *table)
{
	Datum		relid;

	if (!query_value(conn,
					 psprintf("SELECT c.oid FROM pg_catalog.pg_class c"
							  "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
							  " WHERE n.nspname = %s AND c.relname = %s",
							  quote_literal_cstr(schema), quote_literal_cstr(table)),
					 OIDOID, &relid))
		return InvalidOid;
	return DatumGetObjectId(relid);
}

/* the publication's publish_via_partition_root (false before PostgreSQL 13) */
bool
sp_upstream_publication_via_root(WalReceiverConn *conn, const char *publication)
{
	Datum		via_root;

	return walrcv_server_version(conn) >= 130000 &&
		query_value(conn,
					psprintf("SELECT pubviaroot FROM pg_catalog.pg_publication WHERE pubname = %s",
							 quote_literal_cstr(publication)),
					BOOLOID, &via_root) &&
		DatumGetBool(via_root);
}

/*
 * The upstream table: its published columns in attnum order (those of the
 * publication's column list, if it has one; never generated ones), which
 * of them make its replica identity key, and the publication's row filter.
 * This is what pgoutput's Relation message says of it, and what an initial
 * copy must select.  ERROR if the table does not exist or is not in the
 * publication.
 */
SpUpstreamTable *
sp_upstream_table(WalReceiverConn *conn, const char *schema, const char *table,
				  const char *publication)
{
	SpUpstreamTable *t = palloc0(sizeof(SpUpstreamTable));
	int			version = walrcv_server_version(conn);
	WalRcvExecResult *res;
	TupleTableSlot *slot;
	bool		isnull;
	char	   *columns = NULL; /* the publication's column list, as a name[] literal */
	int			n;

	t->schema = pstrdup(schema);
	t->table = pstrdup(table);

	{
		Oid			types[3] = {OIDOID, CHAROID, CHAROID};

		res = sp_upstream_query(conn,
								psprintf("SELECT c.oid, c.relreplident, c.relkind"
										 "  FROM pg_catalog.pg_class c"
										 "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
										 " WHERE n.nspname = %s AND c.relname = %s",
										 quote_literal_cstr(schema), quote_literal_cstr(table)),
								3, types);
		slot = MakeSingleTupleTableSlot(res->tupledesc, &TTSOpsMinimalTuple);
		if (!next_row(res, slot))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("table \"%s.%s\" does not exist on the upstream server", schema, table)));
		t->relid = DatumGetObjectId(slot_getattr(slot, 1, &isnull));
		t->replident = DatumGetChar(slot_getattr(slot, 2, &isnull));
		t->relkind = DatumGetChar(slot_getattr(slot, 3, &isnull));
		if (t->relkind != 'r' && t->relkind != 'p')
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s.%s\" is not a table on the upstream server", schema, table)));
		ExecDropSingleTupleTableSlot(slot);
		walrcv_clear_result(res);
	}

	{
		Oid			types[2] = {TEXTOID, TEXTOID};

		/* (column lists and row filters came with PostgreSQL 15) */
		res = sp_upstream_query(conn,
								psprintf("SELECT %s FROM pg_catalog.pg_publication_tables"
										 " WHERE pubname = %s AND schemaname = %s AND tablename = %s",
										 version >= 150000 ? "attnames::pg_catalog.text, rowfilter"
										 : "NULL::pg_catalog.text, NULL::pg_catalog.text",
										 quote_literal_cstr(publication), quote_literal_cstr(schema),
										 quote_literal_cstr(table)),
								2, types);
		slot = MakeSingleTupleTableSlot(res->tupledesc, &TTSOpsMinimalTuple);
		if (!next_row(res, slot) && t->relkind == 'p')
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("partitioned table \"%s.%s\" is not in publication \"%s\" under its own name",
							schema, table, publication),
					 errhint("Publish it with publish_via_partition_root = true, so that the changes of its partitions carry its name.")));
		if (TupIsNull(slot))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("table \"%s.%s\" is not in publication \"%s\"", schema, table, publication),
					 errhint("Add it upstream with ALTER PUBLICATION %s ADD TABLE %s.",
							 quote_identifier(publication),
							 quote_qualified_identifier(schema, table))));
		{
			Datum		d = slot_getattr(slot, 1, &isnull);

			if (!isnull)
				columns = TextDatumGetCString(d);
			d = slot_getattr(slot, 2, &isnull);
			if (!isnull)
				t->row_filter = TextDatumGetCString(d);
		}
		ExecDropSingleTupleTableSlot(slot);
		walrcv_clear_result(res);
	}

	{
		Oid			types[2] = {TEXTOID, BOOLOID};

		res = sp_upstream_query(conn,
								psprintf("SELECT a.attname, coalesce(a.attnum = ANY (i.indkey), false)"
										 "  FROM pg_catalog.pg_attribute a"
										 "  LEFT JOIN pg_catalog.pg_index i"
										 "         ON i.indexrelid = pg_catalog.pg_get_replica_identity_index(%u)"
										 " WHERE a.attrelid = %u AND a.attnum > 0 AND NOT a.attisdropped%s%s"
										 " ORDER BY a.attnum",
										 t->relid, t->relid,
										 version >= 120000 ? " AND a.attgenerated = ''" : "",
										 columns == NULL ? ""
										 : psprintf(" AND a.attname = ANY (%s::pg_catalog.name[])",
													quote_literal_cstr(columns))),
								2, types);
		n = tuplestore_tuple_count(res->tuplestore);
		t->attnames = palloc0(sizeof(char *) * Max(n, 1));
		t->attkey = palloc0(sizeof(bool) * Max(n, 1));
		slot = MakeSingleTupleTableSlot(res->tupledesc, &TTSOpsMinimalTuple);
		for (; next_row(res, slot); t->natts++)
		{
			t->attnames[t->natts] = TextDatumGetCString(slot_getattr(slot, 1, &isnull));
			t->attkey[t->natts] = DatumGetBool(slot_getattr(slot, 2, &isnull)) || t->replident == 'f';
		}
		ExecDropSingleTupleTableSlot(slot);
		walrcv_clear_result(res);
	}
	return t;
}

/*
 * Does the slot exist upstream?  If so, where it stands, its plugin, and
 * whether it belongs to the database connected to.
 */
bool
sp_upstream_slot(WalReceiverConn *conn, const char *slot, XLogRecPtr *confirmed,
				 char **plugin, bool *this_database)
{
	Oid			types[3] = {TEXTOID, BOOLOID, LSNOID};
	WalRcvExecResult *res;
	TupleTableSlot *ts;
	bool		found;
	bool		isnull;

	res = sp_upstream_query(conn,
							psprintf("SELECT plugin::pg_catalog.text,"
									 "       coalesce(database = pg_catalog.current_database(), false),"
									 "       confirmed_flush_lsn"
									 "  FROM pg_catalog.pg_replication_slots WHERE slot_name = %s",
									 quote_literal_cstr(slot)),
							3, types);
	ts = MakeSingleTupleTableSlot(res->tupledesc, &TTSOpsMinimalTuple);
	found = next_row(res, ts);
	if (found)
	{
		Datum		d;

		d = slot_getattr(ts, 1, &isnull);
		if (plugin)
			*plugin = isnull ? NULL : TextDatumGetCString(d);
		d = slot_getattr(ts, 2, &isnull);
		if (this_database)
			*this_database = DatumGetBool(d);
		d = slot_getattr(ts, 3, &isnull);
		if (confirmed)
			*confirmed = isnull ? InvalidXLogRecPtr : DatumGetLSN(d);
	}
	ExecDropSingleTupleTableSlot(ts);
	walrcv_clear_result(res);
	return found;
}

/*
 * Drop a replication slot upstream, waiting up to wait_ms for a process
 * still holding it (a walsender whose client just went away) to let go.
 * A slot that is already gone counts as dropped.  On failure, returns
 * false with the server's message.
 */
bool
sp_upstream_drop_slot(WalReceiverConn *conn, const char *slot, int wait_ms, char **error)
{
	TimestampTz start = GetCurrentTimestamp();

	for (;;)
	{
		WalRcvExecResult *res = walrcv_exec(conn,
											psprintf("DROP_REPLICATION_SLOT \"%s\"", slot),
											0, NULL);

		if (res->status == WALRCV_OK_COMMAND)
		{
			walrcv_clear_result(res);
			return true;
		}
		if (res->sqlstate == ERRCODE_UNDEFINED_OBJECT)
		{
			walrcv_clear_result(res);
			return true;
		}
		if (res->sqlstate != ERRCODE_OBJECT_IN_USE ||
			TimestampDifferenceExceeds(start, GetCurrentTimestamp(), wait_ms))
		{
			*error = pstrdup(res->err ? res->err : "unexpected result");
			walrcv_clear_result(res);
			return false;
		}
		walrcv_clear_result(res);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}
