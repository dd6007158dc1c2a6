/*
 * agg_support.h — calling an aggregate's combine / serialize / deserialize /
 * final functions outside a plan node.
 */
#ifndef SP_AGG_SUPPORT_H
#define SP_AGG_SUPPORT_H

#include "fmgr.h"
#include "nodes/execnodes.h"

/*
 * Everything needed to combine and finalize the stored states of one
 * aggregate call.  A state is stored as the transition value itself, or as
 * bytea (the serial form) when the transition type is internal.
 */
typedef struct SpAggInfo
{
	Oid			aggfnoid;
	int			nargs;
	Oid		   *argtypes;		/* actual input types of the call */
	Oid			resulttype;
	Oid			collation;		/* input collation of the call */

	Oid			transtype;		/* resolved */
	int16		translen;
	bool		transbyval;
	bool		internal;		/* transtype is internal: stored serialized */
	Oid			storedtype;		/* type of the state column */

	Datum		initval;
	bool		initval_isnull;

	FmgrInfo	combinefn;
	bool		combine_strict;
	FmgrInfo	serialfn;
	FmgrInfo	deserialfn;
	bool		has_final;
	FmgrInfo	finalfn;
	bool		final_strict;
	int			final_nargs;
} SpAggInfo;

/*
 * A minimal aggregate call context: support functions insist on running
 * inside an aggregate (AggCheckCallContext) and allocate their states in its
 * memory.  Outside a plan node we provide one whose aggregate memory is a
 * context of ours.
 */
typedef struct SpAggCall
{
	AggState   *aggstate;
	ExprContext *econtext;
	MemoryContext cxt;
} SpAggCall;

extern void sp_agg_info_init(SpAggInfo *info, Oid aggfnoid, int nargs,
							 const Oid *argtypes, Oid resulttype,
							 Oid collation, MemoryContext cxt);
extern void sp_agg_check_combinable(Oid aggfnoid, int nargs,
									const Oid *argtypes);
extern Oid	sp_agg_stored_type(Oid aggfnoid, int nargs, const Oid *argtypes);

extern SpAggCall *sp_agg_call_create(MemoryContext parent);

/* Merge stored states into one stored state; runs in call->cxt. */
extern Datum sp_agg_combine_stored(SpAggInfo *info, SpAggCall *call,
								   const Datum *values, const bool *nulls,
								   int n, bool *isnull);
/* Final value of a stored state; the result is allocated in call->cxt. */
extern Datum sp_agg_finalize_stored(SpAggInfo *info, SpAggCall *call,
									Datum stored, bool storednull,
									bool *isnull);

#endif
