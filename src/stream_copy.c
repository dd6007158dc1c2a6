/*
 * stream_copy.c — COPY ... FROM into a stream, without the executor.
 *
 *   COPY bids FROM STDIN / 'file' / PROGRAM        (text or csv)
 *     │ PostgreSQL's own reader: BeginCopyFrom, NextCopyFromRawFields
 *     │   (lines, quoting, escapes, encoding, HEADER)
 *     ▼
 *   raw fields ──► converters: integers, text and ISO timestamptz parsed
 *     │            directly, anything else through its input function;
 *     │            text that no view of the stream reads is not converted
 *     ▼
 *   sp_writer_add (stream_fdw.c): the batch, applied every batch_size rows
 *
 * COPY into an ordinary foreign table goes row by row through the executor
 * (a slot, ExecForeignInsert) after every value went through fmgr; for a
 * stream, whose rows only pass through, that was most of the cost of a
 * load.  The statement is checked as PostgreSQL 15's DoCopy checks it
 * (file and program roles, INSERT on the columns, row-level security,
 * read-only transactions; check_copy_from mirrors it) and read the same way
 * (copy_rows mirrors NextCopyFrom's text path): errors carry COPY's own
 * context ("COPY bids, line 3, column price: ...") and
 * pg_stat_progress_copy counts the rows.  A new major version of
 * PostgreSQL means reading both against it again.
 *
 * What this path does not do is left to PostgreSQL: a WHERE clause to
 * DoCopy, and to CopyFrom on the same reader the binary format, FREEZE,
 * triggers on the stream, column defaults or generated columns, a stream
 * attached as a partition.
 *
 * The statement does not go on down the ProcessUtility hook chain: modules
 * that watch utility statements (pg_stat_statements, pgaudit) see COPY
 * into a stream only if they come after streamproc in
 * shared_preload_libraries.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/sysattr.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "commands/copyfrom_internal.h"
#include "commands/progress.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_relation.h"
#include "pgstat.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"

#include "apply.h"
#include "decode.h"
#include "stream_copy.h"
#include "stream_fdw.h"
#include "view_compile.h"

/* rows converted between resets of the per-row memory */
#define SP_COPY_ROWS_PER_RESET 256

/* DoCopy's checks of COPY ... FROM for a relation: ERROR unless allowed */
static void
check_copy_from(ParseState *pstate, CopyStmt *stmt, Relation rel)
{
	ParseNamespaceItem *nsitem;
	RangeTblEntry *rte;
	ListCell   *lc;

	if (stmt->filename != NULL)
	{
		if (stmt->is_program)
		{
			if (!has_privs_of_role(GetUserId(), ROLE_PG_EXECUTE_SERVER_PROGRAM))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("must be superuser or have privileges of the pg_execute_server_program role to COPY to or from an external program"),
						 errhint("Anyone can COPY to stdout or from stdin. "
								 "psql's \\copy command also works for anyone.")));
		}
		else if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be superuser or have privileges of the pg_read_server_files role to COPY from a file"),
					 errhint("Anyone can COPY to stdout or from stdin. "
							 "psql's \\copy command also works for anyone.")));
	}

	nsitem = addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock,
										   NULL, false, false);
	rte = nsitem->p_rte;
	rte->requiredPerms = ACL_INSERT;
	foreach(lc, CopyGetAttnums(RelationGetDescr(rel), rel, stmt->attlist))
		rte->insertedCols = bms_add_member(rte->insertedCols,
										   lfirst_int(lc) - FirstLowInvalidHeapAttributeNumber);
	ExecCheckRTPerms(pstate->p_rtable, true);

	if (check_enable_rls(RelationGetRelid(rel), InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("COPY FROM not supported with row-level security"),
				 errhint("Use INSERT statements instead.")));

	if (XactReadOnly && !rel->rd_islocaltemp)
		PreventCommandIfReadOnly("COPY FROM");
}

/* Can the rows of this COPY go straight to the stream's batches? */
static bool
direct_copy(CopyFromState cstate, Relation rel)
{
	/* (a WHERE clause never gets here: see sp_copy_into_stream) */
	return !cstate->opts.binary && !cstate->opts.freeze && cstate->num_defaults == 0 &&
		rel->trigdesc == NULL && RelationGetDescr(rel)->constr == NULL &&
		!rel->rd_rel->relispartition;	/* CopyFrom checks the bound */
}

/* Read every row of cstate into the stream; how many there were. */
static uint64
copy_rows(CopyFromState cstate, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			natts = desc->natts;
	int			nfields = list_length(cstate->attnumlist);
	Datum	   *values = palloc(sizeof(Datum) * natts);
	bool	   *nulls = palloc(sizeof(bool) * natts);
	int		   *attnums = palloc(sizeof(int) * Max(nfields, 1));
	SpInputKind *kinds = palloc(sizeof(SpInputKind) * Max(nfields, 1));
	bool	   *unread = palloc(sizeof(bool) * Max(nfields, 1));
	MemoryContext row_cxt = AllocSetContextCreate(CurrentMemoryContext,
												  "streamproc COPY row",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	SpStreamWriter *w = sp_writer_begin(rel);
	ErrorContextCallback errcb;
	uint64		processed = 0;
	ListCell   *lc;
	int			i;
	bool		all_read;
	Bitmapset  *read = sp_stream_view_columns(RelationGetRelid(rel), &all_read);

	i = 0;
	foreach(lc, cstate->attnumlist)
	{
		int			m = lfirst_int(lc) - 1;

		attnums[i] = m;
		kinds[i] = sp_input_kind(TupleDescAttr(desc, m)->atttypid,
								 TupleDescAttr(desc, m)->atttypmod);
		/*
		 * text cannot be invalid once the reader has checked its encoding:
		 * what no view reads (the batch is all views see) need not be made
		 */
		unread[i] = kinds[i] == SP_INPUT_TEXT && !all_read && !bms_is_member(m + 1, read);
		i++;
	}

	errcb.callback = CopyFromErrorCallback;
	errcb.arg = (void *) cstate;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	old = MemoryContextSwitchTo(row_cxt);
	for (;;)
	{
		char	  **fields;
		int			fldct;

		CHECK_FOR_INTERRUPTS();
		if (processed % SP_COPY_ROWS_PER_RESET == 0)
			MemoryContextReset(row_cxt);
		if (!NextCopyFromRawFields(cstate, &fields, &fldct))
			break;
		if (nfields > 0 && fldct > nfields)
			ereport(ERROR,
					(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
					 errmsg("extra data after last expected column")));

		memset(values, 0, sizeof(Datum) * natts);
		memset(nulls, true, sizeof(bool) * natts);
		for (i = 0; i < nfields; i++)
		{
			int			m = attnums[i];
			Form_pg_attribute att = TupleDescAttr(desc, m);
			char	   *str;

			if (i >= fldct)
				ereport(ERROR,
						(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
						 errmsg("missing data for column \"%s\"", NameStr(att->attname))));
			if (unread[i])
				continue;
			str = fields[i];
			if (cstate->opts.csv_mode)
			{
				if (str == NULL && cstate->opts.force_notnull_flags[m])
					str = cstate->opts.null_print;
				else if (str != NULL && cstate->opts.force_null_flags[m] &&
						 strcmp(str, cstate->opts.null_print) == 0)
					str = NULL;
			}

			cstate->cur_attname = NameStr(att->attname);
			cstate->cur_attval = str;
			if (str == NULL)
			{
				/* as NextCopyFrom: a domain's input function checks NULL */
				if (kinds[i] == SP_INPUT_CALL)
					values[m] = InputFunctionCall(&cstate->in_functions[m], NULL,
												  cstate->typioparams[m],
												  att->atttypmod);
			}
			else
			{
				if (!sp_input_direct(kinds[i], str, &values[m]))
					values[m] = InputFunctionCall(&cstate->in_functions[m], str,
												  cstate->typioparams[m],
												  att->atttypmod);
				nulls[m] = false;
			}
			cstate->cur_attname = NULL;
			cstate->cur_attval = NULL;
		}

		sp_writer_add(w, values, nulls);
		pgstat_progress_update_param(PROGRESS_COPY_TUPLES_PROCESSED, ++processed);
	}
	MemoryContextSwitchTo(old);
	/* past the last line: the last batch's errors are no line's (as CopyFrom) */
	error_context_stack = errcb.previous;
	sp_writer_end(w);
	MemoryContextDelete(row_cxt);
	return processed;
}

bool
sp_copy_into_stream(PlannedStmt *pstmt, const char *queryString,
					QueryEnvironment *queryEnv, QueryCompletion *qc)
{
	CopyStmt   *stmt = (CopyStmt *) pstmt->utilityStmt;
	ParseState *pstate;
	Relation	rel;
	CopyFromState cstate;
	Oid			relid;
	uint64		processed;

	Assert(IsA(stmt, CopyStmt));
	if (!stmt->is_from || stmt->relation == NULL || stmt->whereClause != NULL)
		return false;
	/*
	 * Locked as DoCopy locks it (the lock is what keeps it a stream); a
	 * name that is no stream, or nothing, is PostgreSQL's to handle.
	 */
	relid = RangeVarGetRelid(stmt->relation, RowExclusiveLock, true);
	if (!OidIsValid(relid) || !sp_is_stream(relid))
		return false;

	/* what ProcessUtility checks before DoCopy */
	PreventCommandIfParallelMode("COPY");
	PreventCommandDuringRecovery("COPY");

	pstate = make_parsestate(NULL);
	pstate->p_sourcetext = queryString;
	pstate->p_queryEnv = queryEnv;

	rel = table_open(relid, NoLock);
	check_copy_from(pstate, stmt, rel);

	cstate = BeginCopyFrom(pstate, rel, NULL, stmt->filename, stmt->is_program,
						   NULL, stmt->attlist, stmt->options);
	if (direct_copy(cstate, rel))
		processed = copy_rows(cstate, rel);
	else
		processed = CopyFrom(cstate);
	EndCopyFrom(cstate);
	table_close(rel, NoLock);
	free_parsestate(pstate);

	if (qc)
		SetQueryCompletion(qc, CMDTAG_COPY, processed);
	return true;
}
