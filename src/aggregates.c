/*
 * aggregates.c — combinable aggregates that streams need and PostgreSQL
 * lacks; the aggregates themselves are declared in the install script.
 *
 *   latest(value anyelement, ts timestamptz)    value at the greatest ts
 *   earliest(value anyelement, ts timestamptz)  value at the least ts
 *
 * The state is (ts, value) kept in the aggregate context.  Rows with a NULL
 * ts are ignored; on equal ts the value seen first is kept.  The serial form
 * carries the value's type and its binary (send/recv) representation:
 *
 *   int64 ts | oid type | bool valnull | value bytes
 */
#include "postgres.h"

#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

typedef struct PickState
{
	TimestampTz ts;
	Oid			type;
	int16		typlen;
	bool		typbyval;
	bool		valnull;
	Datum		value;
} PickState;

static PickState *
pick_new(MemoryContext cxt, Oid type)
{
	PickState  *st = MemoryContextAllocZero(cxt, sizeof(PickState));

	st->type = type;
	get_typlenbyval(type, &st->typlen, &st->typbyval);
	st->valnull = true;
	return st;
}

static void
pick_set(PickState *st, MemoryContext cxt, TimestampTz ts, Datum value,
		 bool valnull)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);

	if (!st->valnull && !st->typbyval)
		pfree(DatumGetPointer(st->value));
	st->ts = ts;
	st->valnull = valnull;
	st->value = valnull ? (Datum) 0 : datumCopy(value, st->typbyval, st->typlen);
	MemoryContextSwitchTo(old);
}

/* does a row at ts replace the current pick? */
static inline bool
pick_wins(bool latest, TimestampTz ts, TimestampTz current)
{
	return latest ? ts > current : ts < current;
}

static Datum
pick_transfn(FunctionCallInfo fcinfo, bool latest)
{
	MemoryContext aggcxt;
	PickState  *st;
	TimestampTz ts;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "aggregate function called in non-aggregate context");
	st = PG_ARGISNULL(0) ? NULL : (PickState *) PG_GETARG_POINTER(0);
	if (PG_ARGISNULL(2))
	{
		if (st == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(st);
	}
	ts = PG_GETARG_TIMESTAMPTZ(2);
	if (st == NULL)
	{
		st = pick_new(aggcxt, get_fn_expr_argtype(fcinfo->flinfo, 1));
		pick_set(st, aggcxt, ts, PG_GETARG_DATUM(1), PG_ARGISNULL(1));
	}
	else if (pick_wins(latest, ts, st->ts))
		pick_set(st, aggcxt, ts, PG_GETARG_DATUM(1), PG_ARGISNULL(1));
	PG_RETURN_POINTER(st);
}

static Datum
pick_combinefn(FunctionCallInfo fcinfo, bool latest)
{
	MemoryContext aggcxt;
	PickState  *s1;
	PickState  *s2;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "aggregate function called in non-aggregate context");
	s1 = PG_ARGISNULL(0) ? NULL : (PickState *) PG_GETARG_POINTER(0);
	s2 = PG_ARGISNULL(1) ? NULL : (PickState *) PG_GETARG_POINTER(1);
	if (s2 == NULL)
	{
		if (s1 == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s1);
	}
	if (s1 != NULL && s1->type != s2->type)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("cannot combine states of %s and %s",
						format_type_be(s1->type), format_type_be(s2->type))));
	if (s1 == NULL)
	{
		s1 = pick_new(aggcxt, s2->type);
		pick_set(s1, aggcxt, s2->ts, s2->value, s2->valnull);
	}
	else if (pick_wins(latest, s2->ts, s1->ts))
		pick_set(s1, aggcxt, s2->ts, s2->value, s2->valnull);
	PG_RETURN_POINTER(s1);
}

PG_FUNCTION_INFO_V1(sp_latest_transfn);
Datum
sp_latest_transfn(PG_FUNCTION_ARGS)
{
	return pick_transfn(fcinfo, true);
}

PG_FUNCTION_INFO_V1(sp_earliest_transfn);
Datum
sp_earliest_transfn(PG_FUNCTION_ARGS)
{
	return pick_transfn(fcinfo, false);
}

PG_FUNCTION_INFO_V1(sp_latest_combinefn);
Datum
sp_latest_combinefn(PG_FUNCTION_ARGS)
{
	return pick_combinefn(fcinfo, true);
}

PG_FUNCTION_INFO_V1(sp_earliest_combinefn);
Datum
sp_earliest_combinefn(PG_FUNCTION_ARGS)
{
	return pick_combinefn(fcinfo, false);
}

PG_FUNCTION_INFO_V1(sp_pick_serialize);
Datum
sp_pick_serialize(PG_FUNCTION_ARGS)
{
	PickState  *st;
	StringInfoData buf;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "aggregate function called in non-aggregate context");
	st = (PickState *) PG_GETARG_POINTER(0);
	pq_begintypsend(&buf);
	pq_sendint64(&buf, st->ts);
	pq_sendint32(&buf, st->type);
	pq_sendbyte(&buf, st->valnull ? 1 : 0);
	if (!st->valnull)
	{
		Oid			sendfn;
		bool		isvarlena;
		bytea	   *bytes;

		getTypeBinaryOutputInfo(st->type, &sendfn, &isvarlena);
		bytes = OidSendFunctionCall(sendfn, st->value);
		pq_sendbytes(&buf, VARDATA(bytes), VARSIZE(bytes) - VARHDRSZ);
	}
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(sp_pick_deserialize);
Datum
sp_pick_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *in;
	StringInfoData buf;
	PickState  *st;
	TimestampTz ts;
	Oid			type;
	bool		valnull;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "aggregate function called in non-aggregate context");
	in = PG_GETARG_BYTEA_PP(0);
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, VARDATA_ANY(in), VARSIZE_ANY_EXHDR(in));
	ts = pq_getmsgint64(&buf);
	type = pq_getmsgint(&buf, 4);
	valnull = pq_getmsgbyte(&buf) != 0;

	st = pick_new(CurrentMemoryContext, type);
	st->ts = ts;
	st->valnull = valnull;
	if (!valnull)
	{
		Oid			recvfn;
		Oid			ioparam;
		StringInfoData vbuf;

		getTypeBinaryInputInfo(type, &recvfn, &ioparam);
		initStringInfo(&vbuf);
		appendBinaryStringInfo(&vbuf, buf.data + buf.cursor, buf.len - buf.cursor);
		st->value = OidReceiveFunctionCall(recvfn, &vbuf, ioparam, -1);
	}
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(sp_pick_finalfn);
Datum
sp_pick_finalfn(PG_FUNCTION_ARGS)
{
	PickState  *st = PG_ARGISNULL(0) ? NULL : (PickState *) PG_GETARG_POINTER(0);

	if (st == NULL || st->valnull)
		PG_RETURN_NULL();
	/* a state read back from storage carries its own idea of its type */
	if (st->type != get_fn_expr_argtype(fcinfo->flinfo, 1))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("state holds a value of type %s, not %s",
						format_type_be(st->type),
						format_type_be(get_fn_expr_argtype(fcinfo->flinfo, 1)))));
	PG_RETURN_DATUM(st->value);
}
