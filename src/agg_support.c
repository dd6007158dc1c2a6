/*
 * agg_support.c — combining and finalizing stored aggregate states.
 *
 * A continuous view stores, per group, the partial state of every aggregate
 * (what parallel aggregation's AGGSPLIT_INITIAL_SERIAL produces).  Merging a
 * batch into the state table and reading a view both need the aggregate's
 * support functions outside the Agg node that normally drives them:
 *
 *    stored (transvalue | bytea)  --deserialize-->  transvalue
 *    transvalue, transvalue       --combinefn--->   transvalue
 *    transvalue                   --serialize--->   stored
 *    transvalue                   --finalfn----->   result
 *
 * The rules mirror nodeAgg.c: the combination starts from the aggregate's
 * initial value; a strict combine function skips NULL inputs and adopts the
 * first non-NULL one; internal states are always (de)serialized.
 *
 * SQL-callable entry points (used by the read views):
 *   streamproc.finalize(state, agg, argtypes, NULL::result)  scalar
 *   streamproc.combine(state, agg, argtypes)                 aggregate
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "parser/parse_agg.h"
#include "parser/parse_coerce.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "agg_support.h"

/*
 * Refuse, with a clear error, an aggregate whose states cannot be stored and
 * combined.
 */
void
sp_agg_check_combinable(Oid aggfnoid, int nargs, const Oid *argtypes)
{
	HeapTuple	tup;
	Form_pg_aggregate agg;

	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggfnoid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for aggregate %u", aggfnoid);
	agg = (Form_pg_aggregate) GETSTRUCT(tup);

	if (agg->aggkind != AGGKIND_NORMAL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("ordered-set aggregate %s is not supported in a continuous view",
						format_procedure(aggfnoid)),
				 errdetail("Ordered-set and hypothetical-set aggregates need all rows of a group at once."),
				 errhint("For percentiles over a stream use the tdigest extension, e.g. tdigest_percentile(value, 100, 0.95).")));
	if (!OidIsValid(agg->aggcombinefn))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("aggregate %s has no combine function",
						format_procedure(aggfnoid)),
				 errdetail("A continuous view merges partial aggregate states batch by batch, which needs a combine function."),
				 errhint("Use an aggregate with a combine function, or define one with CREATE AGGREGATE ... (COMBINEFUNC = ...).")));
	if (agg->aggtranstype == INTERNALOID &&
		(!OidIsValid(agg->aggserialfn) || !OidIsValid(agg->aggdeserialfn)))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("aggregate %s cannot store its state",
						format_procedure(aggfnoid)),
				 errdetail("Its transition type is internal and it has no serialization and deserialization functions."),
				 errhint("Define SERIALFUNC and DESERIALFUNC for the aggregate.")));
	ReleaseSysCache(tup);
}

/* The type of the state column for a call of this aggregate. */
Oid
sp_agg_stored_type(Oid aggfnoid, int nargs, const Oid *argtypes)
{
	HeapTuple	tup;
	Oid			transtype;

	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggfnoid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for aggregate %u", aggfnoid);
	transtype = ((Form_pg_aggregate) GETSTRUCT(tup))->aggtranstype;
	ReleaseSysCache(tup);

	transtype = resolve_aggregate_transtype(aggfnoid, transtype,
											(Oid *) argtypes, nargs);
	return transtype == INTERNALOID ? BYTEAOID : transtype;
}

void
sp_agg_info_init(SpAggInfo *info, Oid aggfnoid, int nargs,
				 const Oid *argtypes, Oid resulttype, Oid collation,
				 MemoryContext cxt)
{
	HeapTuple	tup;
	Form_pg_aggregate agg;
	MemoryContext old;
	Expr	   *combinefnexpr;
	Expr	   *finalfnexpr;
	Datum		textInitVal;
	bool		initIsNull;

	sp_agg_check_combinable(aggfnoid, nargs, argtypes);

	old = MemoryContextSwitchTo(cxt);
	memset(info, 0, sizeof(SpAggInfo));
	info->aggfnoid = aggfnoid;
	info->nargs = nargs;
	info->argtypes = palloc0(sizeof(Oid) * Max(nargs, 1));
	memcpy(info->argtypes, argtypes, sizeof(Oid) * nargs);
	info->resulttype = resulttype;
	info->collation = collation;

	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggfnoid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for aggregate %u", aggfnoid);
	agg = (Form_pg_aggregate) GETSTRUCT(tup);

	info->transtype = resolve_aggregate_transtype(aggfnoid, agg->aggtranstype,
												  info->argtypes, nargs);
	get_typlenbyval(info->transtype, &info->translen, &info->transbyval);
	info->internal = (info->transtype == INTERNALOID);
	info->storedtype = info->internal ? BYTEAOID : info->transtype;

	textInitVal = SysCacheGetAttr(AGGFNOID, tup, Anum_pg_aggregate_agginitval,
								  &initIsNull);
	info->initval_isnull = initIsNull;
	if (!initIsNull)
	{
		Oid			typinput,
					typioparam;

		getTypeInputInfo(info->transtype, &typinput, &typioparam);
		info->initval = OidInputFunctionCall(typinput,
											 TextDatumGetCString(textInitVal),
											 typioparam, -1);
	}

	/* combine function, with an expression for polymorphic resolution */
	fmgr_info_cxt(agg->aggcombinefn, &info->combinefn, cxt);
	info->combine_strict = info->combinefn.fn_strict;
	/* a combine function is a transition function whose input is a state */
	build_aggregate_transfn_expr(&info->transtype, 1, 0, false,
								 info->transtype, collation,
								 agg->aggcombinefn, InvalidOid,
								 &combinefnexpr, NULL);
	fmgr_info_set_expr((Node *) combinefnexpr, &info->combinefn);

	if (info->internal)
	{
		Expr	   *serialfnexpr,
				   *deserialfnexpr;

		fmgr_info_cxt(agg->aggserialfn, &info->serialfn, cxt);
		build_aggregate_serialfn_expr(agg->aggserialfn, &serialfnexpr);
		fmgr_info_set_expr((Node *) serialfnexpr, &info->serialfn);
		fmgr_info_cxt(agg->aggdeserialfn, &info->deserialfn, cxt);
		build_aggregate_deserialfn_expr(agg->aggdeserialfn, &deserialfnexpr);
		fmgr_info_set_expr((Node *) deserialfnexpr, &info->deserialfn);
	}

	if (OidIsValid(agg->aggfinalfn))
	{
		info->has_final = true;
		info->final_nargs = agg->aggfinalextra ? nargs + 1 : 1;
		fmgr_info_cxt(agg->aggfinalfn, &info->finalfn, cxt);
		info->final_strict = info->finalfn.fn_strict;
		build_aggregate_finalfn_expr(info->argtypes, info->final_nargs,
									 info->transtype, resulttype, collation,
									 agg->aggfinalfn, &finalfnexpr);
		fmgr_info_set_expr((Node *) finalfnexpr, &info->finalfn);
	}
	ReleaseSysCache(tup);
	MemoryContextSwitchTo(old);
}

SpAggCall *
sp_agg_call_create(MemoryContext parent)
{
	SpAggCall  *call = MemoryContextAllocZero(parent, sizeof(SpAggCall));
	MemoryContext old = MemoryContextSwitchTo(parent);

	call->cxt = AllocSetContextCreate(parent, "streamproc aggregate call",
									  ALLOCSET_DEFAULT_SIZES);
	call->econtext = makeNode(ExprContext);
	call->econtext->ecxt_per_tuple_memory = call->cxt;
	call->econtext->ecxt_per_query_memory = call->cxt;
	call->aggstate = makeNode(AggState);
	call->aggstate->curaggcontext = call->econtext;
	call->aggstate->tmpcontext = call->econtext;
	MemoryContextSwitchTo(old);
	return call;
}

/* stored form -> transition value, allocated in the current context */
static Datum
stored_to_trans(SpAggInfo *info, Node *context, Datum stored, bool storednull,
				bool *transnull)
{
	LOCAL_FCINFO(fcinfo, 2);
	Datum		result;

	if (!info->internal)
	{
		*transnull = storednull;
		if (storednull)
			return (Datum) 0;
		/*
		 * A detoasted copy: states read from the state table may be
		 * compressed, and combine functions may modify their first argument.
		 */
		if (info->translen == -1)
			return PointerGetDatum(PG_DETOAST_DATUM_COPY(stored));
		return datumCopy(stored, info->transbyval, info->translen);
	}
	if (storednull && info->deserialfn.fn_strict)
	{
		*transnull = true;
		return (Datum) 0;
	}
	/* deserialize functions expect what parallel query gives them: no TOAST */
	if (!storednull)
		stored = PointerGetDatum(PG_DETOAST_DATUM(stored));
	InitFunctionCallInfoData(*fcinfo, &info->deserialfn, 2, InvalidOid,
							 context, NULL);
	fcinfo->args[0].value = stored;
	fcinfo->args[0].isnull = storednull;
	fcinfo->args[1].value = PointerGetDatum(NULL);
	fcinfo->args[1].isnull = false;
	result = FunctionCallInvoke(fcinfo);
	*transnull = fcinfo->isnull;
	return result;
}

/* transition value -> stored form */
static Datum
trans_to_stored(SpAggInfo *info, Node *context, Datum trans, bool transnull,
				bool *isnull)
{
	LOCAL_FCINFO(fcinfo, 1);
	Datum		result;

	if (!info->internal || (transnull && info->serialfn.fn_strict))
	{
		*isnull = transnull;
		return trans;
	}
	InitFunctionCallInfoData(*fcinfo, &info->serialfn, 1, InvalidOid,
							 context, NULL);
	fcinfo->args[0].value = trans;
	fcinfo->args[0].isnull = transnull;
	result = FunctionCallInvoke(fcinfo);
	*isnull = fcinfo->isnull;
	return result;
}

/*
 * trans := combine(trans, input), following nodeAgg's rules for strict
 * combine functions.  Byref results are copied into aggcxt.
 */
static Datum
combine_into(SpAggInfo *info, Node *context, MemoryContext aggcxt,
			 Datum trans, bool *transnull, Datum input, bool inputnull)
{
	LOCAL_FCINFO(fcinfo, 2);
	Datum		result;

	if (info->combine_strict)
	{
		if (inputnull)
			return trans;
		if (*transnull)
		{
			MemoryContext old = MemoryContextSwitchTo(aggcxt);

			result = datumCopy(input, info->transbyval, info->translen);
			MemoryContextSwitchTo(old);
			*transnull = false;
			return result;
		}
	}
	InitFunctionCallInfoData(*fcinfo, &info->combinefn, 2, info->collation,
							 context, NULL);
	fcinfo->args[0].value = trans;
	fcinfo->args[0].isnull = *transnull;
	fcinfo->args[1].value = input;
	fcinfo->args[1].isnull = inputnull;
	result = FunctionCallInvoke(fcinfo);
	*transnull = fcinfo->isnull;

	if (!info->transbyval && !info->internal &&
		DatumGetPointer(result) != DatumGetPointer(trans))
	{
		MemoryContext old = MemoryContextSwitchTo(aggcxt);

		/* as nodeAgg: keep the new value, free the one it replaced */
		if (!fcinfo->isnull)
			result = datumCopy(result, false, info->translen);
		if (!fcinfo->args[0].isnull)
			pfree(DatumGetPointer(trans));
		MemoryContextSwitchTo(old);
	}
	return result;
}

Datum
sp_agg_combine_stored(SpAggInfo *info, SpAggCall *call,
					  const Datum *values, const bool *nulls, int n,
					  bool *isnull)
{
	MemoryContext old = MemoryContextSwitchTo(call->cxt);
	Node	   *context = (Node *) call->aggstate;
	Datum		trans;
	bool		transnull;
	Datum		result;
	int			i;

	transnull = info->initval_isnull;
	trans = transnull ? (Datum) 0 :
		datumCopy(info->initval, info->transbyval, info->translen);

	for (i = 0; i < n; i++)
	{
		bool		innull;
		Datum		in = stored_to_trans(info, context, values[i], nulls[i],
										 &innull);

		trans = combine_into(info, context, call->cxt, trans, &transnull,
							 in, innull);
	}
	result = trans_to_stored(info, context, trans, transnull, isnull);
	MemoryContextSwitchTo(old);
	return result;
}

static Datum
finalize_trans(SpAggInfo *info, Node *context, Datum trans, bool transnull,
			   bool *isnull)
{
	LOCAL_FCINFO(fcinfo, FUNC_MAX_ARGS);
	int			i;
	Datum		result;

	if (!info->has_final)
	{
		*isnull = transnull;
		return trans;
	}
	if (transnull && info->final_strict)
	{
		*isnull = true;
		return (Datum) 0;
	}
	InitFunctionCallInfoData(*fcinfo, &info->finalfn, info->final_nargs,
							 info->collation, context, NULL);
	fcinfo->args[0].value = trans;
	fcinfo->args[0].isnull = transnull;
	for (i = 1; i < info->final_nargs; i++)
	{
		fcinfo->args[i].value = (Datum) 0;
		fcinfo->args[i].isnull = true;
	}
	result = FunctionCallInvoke(fcinfo);
	*isnull = fcinfo->isnull;
	return result;
}

Datum
sp_agg_finalize_stored(SpAggInfo *info, SpAggCall *call, Datum stored,
					   bool storednull, bool *isnull)
{
	MemoryContext old = MemoryContextSwitchTo(call->cxt);
	Node	   *context = (Node *) call->aggstate;
	bool		transnull;
	Datum		trans;
	Datum		result;

	trans = stored_to_trans(info, context, stored, storednull, &transnull);
	result = finalize_trans(info, context, trans, transnull, isnull);
	MemoryContextSwitchTo(old);
	return result;
}

/* ------------------------------------------------------------------------
 * SQL-callable functions
 * ------------------------------------------------------------------------
 */

/* Decode the (agg regprocedure, argtypes regtype[]) pair of a call. */
static int
decode_argtypes(ArrayType *arr, Oid **argtypes)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;

	deconstruct_array(arr, REGTYPEOID, sizeof(Oid), true, TYPALIGN_INT,
					  &elems, &nulls, &n);
	*argtypes = palloc(sizeof(Oid) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument types must not contain NULL")));
		(*argtypes)[i] = DatumGetObjectId(elems[i]);
	}
	return n;
}

/*
 * The (agg, argtypes) pair of a finalize/combine call comes from SQL, so
 * anyone can pass anything: check that agg is an aggregate taking argtypes
 * and return its result type for them.
 */
static Oid
checked_result_type(Oid aggfnoid, int nargs, const Oid *argtypes)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(aggfnoid));
	Form_pg_proc proc;
	Oid			result;
	int			i;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", aggfnoid)));
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (proc->prokind != PROKIND_AGGREGATE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is not an aggregate", format_procedure(aggfnoid))));
	if (proc->pronargs != nargs)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("aggregate %s takes %d arguments, not %d",
						format_procedure(aggfnoid), proc->pronargs, nargs)));
	for (i = 0; i < nargs; i++)
	{
		Oid			declared = proc->proargtypes.values[i];

		if (get_typtype(argtypes[i]) == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("type with OID %u does not exist", argtypes[i])));
		if (declared != argtypes[i] && declared != ANYOID && !IsPolymorphicType(declared))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("aggregate %s does not take %s as argument %d",
							format_procedure(aggfnoid), format_type_be(argtypes[i]), i + 1)));
	}
	result = enforce_generic_type_consistency(argtypes, proc->proargtypes.values,
											  nargs, proc->prorettype, false);
	ReleaseSysCache(tup);
	return result;
}

/* An aggregate's support functions, set up once per call site. */
typedef struct CallSite
{
	Oid			aggfnoid;
	int			nargs;
	Oid			argtypes[FUNC_MAX_ARGS];
	Oid			outtype;		/* finalize: result; combine: state */
	MemoryContext cxt;
	SpAggInfo	info;
	SpAggCall  *call;
} CallSite;

/* Are the agg and argtypes arguments of this streamproc.combine() call constants? */
static bool
combine_args_constant(FunctionCallInfo fcinfo)
{
	Aggref	   *aggref = AggGetAggref(fcinfo);

	return aggref != NULL && list_length(aggref->args) == 3 &&
		IsA(lsecond_node(TargetEntry, aggref->args)->expr, Const) &&
		IsA(lthird_node(TargetEntry, aggref->args)->expr, Const);
}

/*
 * The call site's aggregate info, (re)built when the call's arguments
 * differ from the cached ones.  outtype is what the call produces: checked
 * against the aggregate's result (finalize) or stored state type (combine).
 */
static CallSite *
call_site(FunctionCallInfo fcinfo, bool finalize)
{
	CallSite   *site = (CallSite *) fcinfo->flinfo->fn_extra;
	int			aggarg = finalize ? 1 : 2;
	Oid			aggfnoid;
	Oid		   *argtypes;
	int			nargs;
	Oid			outtype;
	Oid			resulttype;
	Oid			statetype = get_fn_expr_argtype(fcinfo->flinfo, finalize ? 0 : 1);

	if (PG_ARGISNULL(aggarg) || PG_ARGISNULL(aggarg + 1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("aggregate and argument types must not be NULL")));
	/* one aggregate per call site: states of different groups share its info */
	if (!(finalize ? (get_fn_expr_arg_stable(fcinfo->flinfo, aggarg) &&
					  get_fn_expr_arg_stable(fcinfo->flinfo, aggarg + 1)) :
		  combine_args_constant(fcinfo)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the aggregate and argument types of streamproc.%s must be constants",
						finalize ? "finalize" : "combine")));
	aggfnoid = PG_GETARG_OID(aggarg);
	nargs = decode_argtypes(PG_GETARG_ARRAYTYPE_P(aggarg + 1), &argtypes);
	outtype = finalize ? get_fn_expr_argtype(fcinfo->flinfo, 3) : statetype;

	if (site != NULL && site->aggfnoid == aggfnoid && site->nargs == nargs &&
		site->outtype == outtype &&
		memcmp(site->argtypes, argtypes, sizeof(Oid) * nargs) == 0)
		return site;

	if (nargs > FUNC_MAX_ARGS)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_ARGUMENTS),
				 errmsg("too many argument types")));
	resulttype = checked_result_type(aggfnoid, nargs, argtypes);
	if (finalize && resulttype != outtype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("aggregate %s returns %s, not %s", format_procedure(aggfnoid),
						format_type_be(resulttype), format_type_be(outtype))));

	if (site != NULL)
		MemoryContextDelete(site->cxt);
	else
		site = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CallSite));
	site->cxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "streamproc aggregate call site",
									  ALLOCSET_SMALL_SIZES);
	sp_agg_info_init(&site->info, aggfnoid, nargs, argtypes, resulttype,
					 PG_GET_COLLATION(), site->cxt);
	if (statetype != site->info.storedtype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("state of type %s does not match aggregate %s",
						format_type_be(statetype), format_procedure(aggfnoid)),
				 errdetail("The aggregate stores states of type %s.",
						   format_type_be(site->info.storedtype))));
	site->call = sp_agg_call_create(site->cxt);
	site->aggfnoid = aggfnoid;
	site->nargs = nargs;
	memcpy(site->argtypes, argtypes, sizeof(Oid) * nargs);
	site->outtype = outtype;
	fcinfo->flinfo->fn_extra = site;
	return site;
}

PG_FUNCTION_INFO_V1(sp_finalize);

/*
 * streamproc.finalize(state "any", agg regprocedure, argtypes regtype[],
 *                     result anyelement) RETURNS anyelement
 */
Datum
sp_finalize(PG_FUNCTION_ARGS)
{
	CallSite   *site = call_site(fcinfo, true);
	Datum		result;
	bool		isnull;
	int16		typlen;
	bool		typbyval;

	MemoryContextReset(site->call->cxt);
	result = sp_agg_finalize_stored(&site->info, site->call,
									PG_GETARG_DATUM(0), PG_ARGISNULL(0),
									&isnull);
	if (isnull)
		PG_RETURN_NULL();
	get_typlenbyval(site->info.resulttype, &typlen, &typbyval);
	PG_RETURN_DATUM(datumCopy(result, typbyval, typlen));
}

/* Transition state of streamproc.combine(): one trans value of one aggregate. */
typedef struct CombineState
{
	SpAggInfo  *info;
	Datum		trans;
	bool		transnull;
} CombineState;

PG_FUNCTION_INFO_V1(sp_combine_sfunc);

/*
 * combine_sfunc(internal, state anyelement, agg regprocedure,
 *               argtypes regtype[]) RETURNS internal
 *
 * Runs inside the real Agg node of the read view's query, whose aggregate
 * context is handed on to the wrapped support functions.
 */
Datum
sp_combine_sfunc(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	CombineState *st;
	bool		innull;
	Datum		in;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "streamproc.combine called in non-aggregate context");

	st = PG_ARGISNULL(0) ? NULL : (CombineState *) PG_GETARG_POINTER(0);
	if (st == NULL)
	{
		CallSite   *site = call_site(fcinfo, false);

		st = MemoryContextAllocZero(aggcxt, sizeof(CombineState));
		st->info = &site->info;
		st->transnull = st->info->initval_isnull;
		if (!st->transnull)
		{
			MemoryContext old = MemoryContextSwitchTo(aggcxt);

			st->trans = datumCopy(st->info->initval, st->info->transbyval,
								  st->info->translen);
			MemoryContextSwitchTo(old);
		}
	}

	in = stored_to_trans(st->info, fcinfo->context, PG_GETARG_DATUM(1),
						 PG_ARGISNULL(1), &innull);
	st->trans = combine_into(st->info, fcinfo->context, aggcxt, st->trans,
							 &st->transnull, in, innull);
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(sp_combine_ffunc);

/* combine_ffunc(internal, anyelement, regprocedure, regtype[]) */
Datum
sp_combine_ffunc(PG_FUNCTION_ARGS)
{
	CombineState *st;
	Datum		result;
	bool		isnull;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (CombineState *) PG_GETARG_POINTER(0);
	result = trans_to_stored(st->info, fcinfo->context, st->trans,
							 st->transnull, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}
