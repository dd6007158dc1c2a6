/*
 * retract.c — transition functions of the weighted twins of count, sum and
 * avg, which turn retracted rows (weight -1) into partial states that the
 * original aggregates' combine functions add to the stored ones.  See
 * "Retractions" in view_compile.c for which twin stands in for what; the
 * aggregates themselves are declared in the install script.
 *
 * A weight is applied by calling the original transition function w times
 * (w > 0) or its inverse |w| times (w < 0); a NULL weight counts as +1.
 * The inverses are PostgreSQL's own moving-aggregate inverse transitions,
 * called with our fcinfo's aggregate context so that they update the state
 * in place, exactly as in a window aggregate (numeric is different: see
 * sp_weighted_numeric_trans).
 */
#include "postgres.h"

#include "common/int.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "port/pg_bswap.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(sp_weighted_count_trans);
PG_FUNCTION_INFO_V1(sp_weighted_sum_trans);
PG_FUNCTION_INFO_V1(sp_weighted_int8_trans);
PG_FUNCTION_INFO_V1(sp_weighted_numeric_trans);
PG_FUNCTION_INFO_V1(sp_weighted_numeric_serialize);
PG_FUNCTION_INFO_V1(sp_weighted_numeric_deserialize);
PG_FUNCTION_INFO_V1(sp_weighted_numeric_final);
PG_FUNCTION_INFO_V1(sp_weighted_int4_avg_trans);

static int32
weight_arg(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? 1 : PG_GETARG_INT32(argno);
}

/* weighted_count([x,] w): state + w, when x (if given) is not NULL */
Datum
sp_weighted_count_trans(PG_FUNCTION_ARGS)
{
	int64		state = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0);
	int			wno = PG_NARGS() - 1;

	if (PG_NARGS() == 3 && PG_ARGISNULL(1))
		PG_RETURN_INT64(state);
	if (pg_add_s64_overflow(state, weight_arg(fcinfo, wno), &state))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	PG_RETURN_INT64(state);
}

/* weighted_sum(x int8, w): state + x * w; NULL until a non-NULL x */
Datum
sp_weighted_sum_trans(PG_FUNCTION_ARGS)
{
	int64		state;
	int64		term;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_INT64(PG_GETARG_INT64(0));
	}
	state = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0);
	if (pg_mul_s64_overflow(PG_GETARG_INT64(1), weight_arg(fcinfo, 2), &term) ||
		pg_add_s64_overflow(state, term, &state))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	PG_RETURN_INT64(state);
}

/*
 * Call a transition function fn(state, x) with the caller's aggregate
 * context.  *isnull receives whether the new state is NULL.
 */
static Datum
call_trans(PGFunction fn, FunctionCallInfo outer, Datum state, bool statenull,
		   Datum x, bool xnull, bool *isnull)
{
	LOCAL_FCINFO(inner, 2);
	Datum		result;

	InitFunctionCallInfoData(*inner, outer->flinfo, 2, InvalidOid, outer->context, NULL);
	inner->args[0].value = state;
	inner->args[0].isnull = statenull;
	inner->args[1].value = x;
	inner->args[1].isnull = xnull;
	result = fn(inner);
	*isnull = inner->isnull;
	return result;
}

/*
 * Apply weight w of value x (argument 1; weight is argument 2) with the
 * transition function fwd and its inverse inv.  A state the inverse is to
 * start from is first created by fwd with a NULL value (which adds
 * nothing), since the inverses refuse a NULL state.
 */
static Datum
weighted_trans(FunctionCallInfo fcinfo, PGFunction fwd, PGFunction inv, bool fwd_strict)
{
	Datum		state = PG_GETARG_DATUM(0);
	bool		statenull = PG_ARGISNULL(0);
	int32		w = weight_arg(fcinfo, 2);
	int32		i;

	if (PG_ARGISNULL(1))
	{
		if (statenull)
			PG_RETURN_NULL();
		PG_RETURN_DATUM(state);
	}
	if (statenull && (w < 0 || fwd_strict))
	{
		if (fwd_strict)
			elog(ERROR, "weighted aggregate over a strict transition function needs an initial state");
		state = call_trans(fwd, fcinfo, state, true, (Datum) 0, true, &statenull);
	}
	for (i = 0; i < Abs(w); i++)
	{
		state = call_trans(w > 0 ? fwd : inv, fcinfo, state, statenull,
						   PG_GETARG_DATUM(1), false, &statenull);
		if (statenull)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("could not take a value back out of an aggregate state"),
					 errhint("Cast the column to numeric in the view, or avoid values of varying scale.")));
	}
	PG_RETURN_DATUM(state);
}

/* sum(int8), avg(int8): int8_avg_accum / int8_avg_accum_inv */
Datum
sp_weighted_int8_trans(PG_FUNCTION_ARGS)
{
	return weighted_trans(fcinfo, int8_avg_accum, int8_avg_accum_inv, false);
}

/*
 * sum(numeric), avg(numeric).  numeric_accum_inv cannot start from an empty
 * state (it zeroes the sums when the count reaches zero), so the twin
 * accumulates the negated values with numeric_avg_accum, keeps the net
 * count of rows itself, and writes that count into the serial form, whose
 * first field is the count (int64, network order; checked on every use
 * against the count the state holds).  NaN and infinities are refused:
 * their counts are kept apart, at the end of the serial form.
 */
typedef struct WeightedNumeric
{
	Datum		inner;			/* numeric_avg_accum's state, or 0 */
	int64		accumulated;	/* rows accumulated into inner */
	int64		net;			/* rows added minus rows taken back */
} WeightedNumeric;

static Datum
call_fn1(PGFunction fn, FunctionCallInfo outer, Datum arg, bool *isnull)
{
	LOCAL_FCINFO(inner, 1);
	Datum		result;

	InitFunctionCallInfoData(*inner, outer->flinfo, 1, InvalidOid, outer->context, NULL);
	inner->args[0].value = arg;
	inner->args[0].isnull = false;
	result = fn(inner);
	*isnull = inner->isnull;
	return result;
}

Datum
sp_weighted_numeric_trans(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	WeightedNumeric *st;
	Numeric		x;
	int32		w = weight_arg(fcinfo, 2);
	Datum		value;
	bool		isnull;
	int32		i;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "aggregate function called in non-aggregate context");
	st = PG_ARGISNULL(0) ? NULL : (WeightedNumeric *) PG_GETARG_POINTER(0);
	if (PG_ARGISNULL(1))
	{
		if (st == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(st);
	}
	x = PG_GETARG_NUMERIC(1);
	if (numeric_is_nan(x) || numeric_is_inf(x))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot take NaN or infinity back out of a numeric sum or average")));
	if (st == NULL)
		st = MemoryContextAllocZero(aggcxt, sizeof(WeightedNumeric));
	value = w < 0 ? DirectFunctionCall1(numeric_uminus, NumericGetDatum(x)) : NumericGetDatum(x);
	for (i = 0; i < Abs(w); i++)
	{
		st->inner = call_trans(numeric_avg_accum, fcinfo, st->inner, st->inner == (Datum) 0,
							   value, false, &isnull);
		st->accumulated++;
		st->net += w > 0 ? 1 : -1;
	}
	PG_RETURN_POINTER(st);
}

Datum
sp_weighted_numeric_serialize(PG_FUNCTION_ARGS)
{
	WeightedNumeric *st = (WeightedNumeric *) PG_GETARG_POINTER(0);
	bytea	   *out;
	uint64		n;
	bool		isnull;

	out = DatumGetByteaPCopy(call_fn1(numeric_avg_serialize, fcinfo, st->inner, &isnull));
	if (VARSIZE(out) < VARHDRSZ + sizeof(uint64))
		elog(ERROR, "unexpected serial form of a numeric aggregate state");
	memcpy(&n, VARDATA(out), sizeof(n));
	if ((int64) pg_ntoh64(n) != st->accumulated)
		elog(ERROR, "unexpected serial form of a numeric aggregate state: count %lld, expected %lld",
			 (long long) (int64) pg_ntoh64(n), (long long) st->accumulated);
	n = pg_hton64((uint64) st->net);
	memcpy(VARDATA(out), &n, sizeof(n));
	PG_RETURN_BYTEA_P(out);
}

Datum
sp_weighted_numeric_deserialize(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	WeightedNumeric *st;
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	uint64		n;
	bool		isnull;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "aggregate function called in non-aggregate context");
	if (VARSIZE_ANY_EXHDR(in) < sizeof(uint64))
		elog(ERROR, "unexpected serial form of a numeric aggregate state");
	st = MemoryContextAllocZero(aggcxt, sizeof(WeightedNumeric));
	memcpy(&n, VARDATA_ANY(in), sizeof(n));
	st->net = st->accumulated = (int64) pg_ntoh64(n);
	st->inner = call_trans(numeric_avg_deserialize, fcinfo, PointerGetDatum(in), false,
						   (Datum) 0, true, &isnull);
	PG_RETURN_POINTER(st);
}

/* the net sum (never used by streamproc, which reads partial states only) */
Datum
sp_weighted_numeric_final(PG_FUNCTION_ARGS)
{
	WeightedNumeric *st = PG_ARGISNULL(0) ? NULL : (WeightedNumeric *) PG_GETARG_POINTER(0);
	bool		isnull;
	Datum		sum;

	if (st == NULL || st->inner == (Datum) 0 || st->net == 0)
		PG_RETURN_NULL();
	sum = call_fn1(numeric_sum, fcinfo, st->inner, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(sum);
}

/* avg(int2), avg(int4): int4_avg_accum / int4_avg_accum_inv over {count, sum} */
Datum
sp_weighted_int4_avg_trans(PG_FUNCTION_ARGS)
{
	return weighted_trans(fcinfo, int4_avg_accum, int4_avg_accum_inv, true);
}
