/*
 * source_pg_rows.c — how a PostgreSQL source turns upstream changes into
 * weighted rows for the engine, with the keyed copy of what it counted.
 *
 *   changes of whole upstream transactions (source_pg.c)
 *     ──► keys: the replica identity key's values, or the row's own values
 *     ──► the keyed copy (streamproc.pg_source_rows), as far as needed
 *     ──► derive: per change, rows to take back (−1) and to count (+1),
 *         converted by the stream's input functions; the copy follows
 *     ──► sp_apply_batch; a data error is pinned on a change by bisection,
 *         the change set aside, the rest derived again
 *     ──► the copy and the dead letters written in the same transaction
 *
 * See source_pg.c for why the keyed copy exists and what it holds.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "replication/logicalproto.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "apply.h"
#include "catalog.h"
#include "source_batch.h"
#include "source_pg_rows.h"

/* ------------------------------------------------------------------------
 * Keys and values: upstream text values, stream columns
 * ------------------------------------------------------------------------
 */

/* "values", or "key:" and the key columns, as a keyed copy is keyed */
char *
sp_pg_identity(int natts, char **attnames, bool *key, char replident)
{
	StringInfoData buf;
	int			i;
	bool		any = false;

	if (replident == 'f')
		return pstrdup("values");
	initStringInfo(&buf);
	appendStringInfoString(&buf, "key:");
	for (i = 0; i < natts; i++)
		if (key[i])
		{
			appendStringInfo(&buf, "%s%s", any ? "," : "", quote_identifier(attnames[i]));
			any = true;
		}
	if (!any)
		return pstrdup("values");
	return buf.data;
}

/* a key from its parts: unambiguous, digested when long */
static void
key_part(StringInfo buf, const char *v)
{
	if (v == NULL)
		appendStringInfoString(buf, "N|");
	else
		appendStringInfo(buf, "%zu:%s|", strlen(v), v);
}

static char *
key_finish(StringInfo buf)
{
	pg_cryptohash_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *out;
	ResourceOwner saved = (ResourceOwner) -1;

	/*
	 * The key outlives the buffer (1 kB at least): kept in the batch, a
	 * buffer per key would hold ~1 kB for every change.
	 */
	if (buf->len <= KEY_MAX)
	{
		out = pstrdup(buf->data);
		pfree(buf->data);
		return out;
	}
	/* (the digest context belongs to a resource owner, also between transactions) */
	if (CurrentResourceOwner == NULL)
	{
		static ResourceOwner owner = NULL;

		if (owner == NULL)
			owner = ResourceOwnerCreate(NULL, "streamproc pg source keys");
		saved = CurrentResourceOwner;
		CurrentResourceOwner = owner;
	}
	ctx = pg_cryptohash_create(PG_SHA256);
	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) buf->data, buf->len) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute a SHA-256 digest");
	pg_cryptohash_free(ctx);
	pfree(buf->data);
	if (saved != (ResourceOwner) -1)
		CurrentResourceOwner = saved;
	out = palloc(PG_SHA256_DIGEST_LENGTH * 2 + 2);
	out[0] = '#';
	out[1 + hex_encode((char *) digest, PG_SHA256_DIGEST_LENGTH, out + 1)] = '\0';
	return out;
}

/* the key of a row keyed by its values (its stream columns) */
char *
sp_pg_values_key(PgSource *src, char **vals, bool *unchanged)
{
	StringInfoData buf;
	int			j;

	initStringInfo(&buf);
	for (j = 0; j < src->desc->natts; j++)
	{
		if (unchanged && unchanged[j])
		{
			pfree(buf.data);
			return NULL;
		}
		key_part(&buf, vals[j]);
	}
	return key_finish(&buf);
}

/* the key of an upstream tuple under the map's replica identity key */
char *
sp_pg_tuple_key(RelMap *m, char **upvals, char *upstatus)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < m->natts; i++)
	{
		if (!m->key[i])
			continue;
		if (upstatus[i] == LOGICALREP_COLUMN_UNCHANGED)
		{
			pfree(buf.data);
			return NULL;
		}
		key_part(&buf, upstatus[i] == LOGICALREP_COLUMN_NULL ? NULL : upvals[i]);
	}
	return key_finish(&buf);
}

/* an upstream tuple's values in stream layout (copied into the batch) */
char **
sp_pg_stream_values(PgSource *src, RelMap *m, char **upvals, char *upstatus, bool **unchanged)
{
	int			natts = src->desc->natts;
	char	  **vals = palloc0(sizeof(char *) * Max(natts, 1));
	int			i;

	*unchanged = NULL;
	for (i = 0; i < m->natts; i++)
	{
		int			j = m->stream_att[i];

		if (j < 0)
			continue;
		if (upstatus[i] == LOGICALREP_COLUMN_UNCHANGED)
		{
			if (*unchanged == NULL)
				*unchanged = palloc0(sizeof(bool) * natts);
			(*unchanged)[j] = true;
		}
		else if (upstatus[i] != LOGICALREP_COLUMN_NULL)
			vals[j] = pstrdup(upvals[i]);
	}
	return vals;
}

/* ------------------------------------------------------------------------
 * The keyed copy (streamproc.pg_source_rows)
 * ------------------------------------------------------------------------
 */

static Entry *
entry(PgSource *src, const char *key)
{
	Entry	   *e;
	bool		found;
	char		k[KEY_SIZE];

	memset(k, 0, sizeof(k));
	strlcpy(k, key, sizeof(k));
	e = hash_search(src->entries, k, HASH_ENTER, &found);
	if (!found)
	{
		e->orig_vals = e->vals = NULL;
		e->orig_n = e->n = 0;
		e->orig_latest = e->latest = NULL;
	}
	return e;
}

/* a stored text[] as stream-layout values (in the batch context) */
static char **
vals_from_array(PgSource *src, Datum d)
{
	ArrayType  *a = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			j;
	char	  **vals = palloc0(sizeof(char *) * Max(src->desc->natts, 1));

	deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (j = 0; j < n && j < src->desc->natts; j++)
		if (!nulls[j])
			vals[j] = TextDatumGetCString(elems[j]);
	return vals;
}

/*
 * Load what the batch's changes need from the keyed copy: the rows under
 * their keys, or all of them when a TRUNCATE or a re-key is among them.
 */
static void
prefetch(PgSource *src, Change *changes, int n)
{
	HASHCTL		ctl;
	bool		all = false;
	ArrayBuildState *keys = NULL;
	int			i;
	uint64		r;
	MemoryContext old = MemoryContextSwitchTo(src->batch_cxt);

	ctl.keysize = KEY_SIZE;
	ctl.entrysize = sizeof(Entry);
	ctl.hcxt = src->batch_cxt;
	src->entries = hash_create("streamproc pg source rows", Max(n * 2, 64), &ctl,
							   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (i = 0; i < n; i++)
	{
		if (changes[i].kind == 'T' || changes[i].kind == 'K')
			all = true;
		if (changes[i].key)
			keys = accumArrayResult(keys, CStringGetTextDatum(changes[i].key), false,
									TEXTOID, src->batch_cxt);
		if (changes[i].oldkey)
			keys = accumArrayResult(keys, CStringGetTextDatum(changes[i].oldkey), false,
									TEXTOID, src->batch_cxt);
	}
	src->all_loaded = all;
	if (keys == NULL && !all)
	{
		MemoryContextSwitchTo(old);
		return;
	}

	SPI_connect();
	{
		Oid			types[2] = {INT4OID, TEXTARRAYOID};
		Datum		values[2];

		values[0] = Int32GetDatum(src->id);
		values[1] = keys ? makeArrayResult(keys, src->batch_cxt) : (Datum) 0;
		if (SPI_execute_with_args(all
								  ? "SELECT key, vals, n, latest FROM streamproc.pg_source_rows WHERE source = $1"
								  : "SELECT key, vals, n, latest FROM streamproc.pg_source_rows"
								  " WHERE source = $1 AND key = ANY ($2)",
								  all ? 1 : 2, types, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.pg_source_rows");
	}
	MemoryContextSwitchTo(src->batch_cxt);
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *key = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		Entry	   *e = entry(src, key);

		char	  **vals = vals_from_array(src, SPI_getbinval(tup, desc, 2, &isnull));
		bool		no_latest;
		Datum		latest = SPI_getbinval(tup, desc, 4, &no_latest);

		e->orig_n = e->n = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		/* n = 0: not counted, vals are the row's values upstream */
		if (e->n > 0)
		{
			e->orig_vals = e->vals = vals;
			e->orig_latest = e->latest = no_latest ? NULL : vals_from_array(src, latest);
		}
		else
			e->orig_latest = e->latest = vals;
	}
	SPI_finish();
	MemoryContextSwitchTo(old);
}

/* the text[] literal of stream-layout values */
static char *
vals_literal(PgSource *src, char **vals)
{
	static FmgrInfo array_out;
	int			natts = src->desc->natts;
	Datum	   *elems = palloc(sizeof(Datum) * Max(natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(natts, 1));
	int			dims[1];
	int			lbs[1] = {1};
	int			j;

	for (j = 0; j < natts; j++)
	{
		nulls[j] = vals[j] == NULL;
		elems[j] = nulls[j] ? (Datum) 0 : CStringGetTextDatum(vals[j]);
	}
	dims[0] = natts;
	/* looked up once: array_out keeps its element type's output function */
	if (!OidIsValid(array_out.fn_oid))
		fmgr_info_cxt(F_ARRAY_OUT, &array_out, TopMemoryContext);
	return OutputFunctionCall(&array_out,
							  PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
																 TEXTOID, -1, false, TYPALIGN_INT)));
}

/* write what the applied changes did to the keyed copy */
static void
write_entries(PgSource *src)
{
	static SPIPlanPtr del_plan = NULL;
	static SPIPlanPtr put_plan = NULL;
	HASH_SEQ_STATUS seq;
	Entry	   *e;
	ArrayBuildState *dels = NULL;
	ArrayBuildState *keys = NULL;
	ArrayBuildState *vals = NULL;
	ArrayBuildState *ns = NULL;
	ArrayBuildState *latests = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	hash_seq_init(&seq, src->entries);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		bool		counted = e->n > 0;

		if (e->n == e->orig_n && e->vals == e->orig_vals && e->latest == e->orig_latest)
			continue;
		if (!counted && e->latest == NULL)
		{
			if (e->orig_n > 0 || e->orig_latest != NULL)
				dels = accumArrayResult(dels, CStringGetTextDatum(e->key), false, TEXTOID, cxt);
			continue;
		}
		keys = accumArrayResult(keys, CStringGetTextDatum(e->key), false, TEXTOID, cxt);
		vals = accumArrayResult(vals, CStringGetTextDatum(vals_literal(src, counted ? e->vals : e->latest)),
								false, TEXTOID, cxt);
		ns = accumArrayResult(ns, Int32GetDatum(Max(e->n, 0)), false, INT4OID, cxt);
		latests = accumArrayResult(latests,
								   counted && e->latest ? CStringGetTextDatum(vals_literal(src, e->latest)) : (Datum) 0,
								   !(counted && e->latest), TEXTOID, cxt);
	}
	if (dels == NULL && keys == NULL)
		return;

	if (del_plan == NULL)
	{
		del_plan = SPI_prepare("DELETE FROM streamproc.pg_source_rows WHERE source = $1 AND key = ANY ($2)",
							   2, (Oid[]) {INT4OID, TEXTARRAYOID});
		if (del_plan == NULL || SPI_keepplan(del_plan) != 0)
			elog(ERROR, "could not prepare the keyed copy's delete");
	}
	if (put_plan == NULL)
	{
		/* (multi-argument unnest is syntax: it takes no schema) */
		put_plan = SPI_prepare("INSERT INTO streamproc.pg_source_rows (source, key, vals, n, latest)"
							   " SELECT $1, k, v::pg_catalog.text[], c, l::pg_catalog.text[]"
							   "   FROM unnest($2::pg_catalog.text[], $3::pg_catalog.text[],"
							   "               $4::pg_catalog.int4[], $5::pg_catalog.text[]) AS u(k, v, c, l)"
							   " ON CONFLICT (source, key) DO UPDATE"
							   "   SET vals = excluded.vals, n = excluded.n, latest = excluded.latest",
							   5, (Oid[]) {INT4OID, TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID});
		if (put_plan == NULL || SPI_keepplan(put_plan) != 0)
			elog(ERROR, "could not prepare the keyed copy's upsert");
	}
	if (dels != NULL)
	{
		Datum		values[2];

		values[0] = Int32GetDatum(src->id);
		values[1] = makeArrayResult(dels, cxt);
		if (SPI_execute_plan(del_plan, values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not write streamproc.pg_source_rows");
	}
	if (keys != NULL)
	{
		Datum		values[5];
		int			rc;

		values[0] = Int32GetDatum(src->id);
		values[1] = makeArrayResult(keys, cxt);
		values[2] = makeArrayResult(vals, cxt);
		values[3] = makeArrayResult(ns, cxt);
		values[4] = makeArrayResult(latests, cxt);
		rc = SPI_execute_plan(put_plan, values, NULL, false, 0);

		if (rc != SPI_OK_INSERT)
			elog(ERROR, "could not write streamproc.pg_source_rows (%d)", rc);
	}
}

/* ------------------------------------------------------------------------
 * From changes to weighted rows
 * ------------------------------------------------------------------------
 */

/* stream-layout text values as a row of the stream */
static HeapTuple
make_tuple(PgSource *src, char **vals)
{
	int			natts = src->desc->natts;
	Datum	   *values = src->row_values;
	bool	   *nulls = src->row_nulls;
	int			j;

	for (j = 0; j < natts; j++)
	{
		Form_pg_attribute att = TupleDescAttr(src->desc, j);

		values[j] = (Datum) 0;
		nulls[j] = vals[j] == NULL;
		if (att->attisdropped)
		{
			nulls[j] = true;
			continue;
		}
		src->cur_att = j;
		if (vals[j] == NULL || !sp_input_direct(src->in_kinds[j], vals[j], &values[j]))
			values[j] = InputFunctionCall(&src->in_funcs[j], vals[j], src->in_ioparams[j],
										  att->atttypmod);
	}
	src->cur_att = -1;
	return heap_form_tuple(src->desc, values, nulls);
}

static void
add_row(Derived *d, HeapTuple tup, int weight, int change)
{
	if (d->nrows == d->cap)
	{
		d->cap = Max(d->cap * 2, 1024);
		if (d->tuples == NULL)
		{
			d->tuples = palloc(sizeof(HeapTuple) * d->cap);
			d->weights = palloc(sizeof(int) * d->cap);
			d->change = palloc(sizeof(int) * d->cap);
		}
		else
		{
			d->tuples = repalloc(d->tuples, sizeof(HeapTuple) * d->cap);
			d->weights = repalloc(d->weights, sizeof(int) * d->cap);
			d->change = repalloc(d->change, sizeof(int) * d->cap);
		}
	}
	d->tuples[d->nrows] = tup;
	d->weights[d->nrows] = weight;
	d->change[d->nrows] = change;
	d->nrows++;
}

/* the least event time of the rows, for a row taken back */
static void
note_taken_back(PgSource *src, Derived *d, HeapTuple tup)
{
	bool		isnull;
	TimestampTz t;

	if (src->event_time_att == InvalidAttrNumber)
		return;
	/* counted rows passed check_event_time: never NULL nor infinite */
	t = DatumGetTimestampTz(heap_getattr(tup, src->event_time_att, src->desc, &isnull));
	if (!d->has_min_event_time || t < d->min_event_time)
	{
		d->has_min_event_time = true;
		d->min_event_time = t;
	}
}

/* take a row counted under e back k times (of its e->n) */
static void
take_back(PgSource *src, Derived *d, Entry *e, HeapTuple tup, int k, int change)
{
	int			i;

	note_taken_back(src, d, tup);
	for (i = 0; i < k; i++)
		add_row(d, tup, -1, change);
	e->n -= k;
}

/*
 * Check the event time of a row to be counted, and take it into the
 * derived rows' least and greatest; an error text or NULL.
 */
static char *
check_event_time(PgSource *src, HeapTuple tup, Derived *d)
{
	bool		isnull;
	Datum		v;
	TimestampTz t;
	char	   *error;

	if (src->event_time_att == InvalidAttrNumber)
		return NULL;
	v = heap_getattr(tup, src->event_time_att, src->desc, &isnull);
	if ((error = sp_event_time_error(src->desc, src->event_time_att, v, isnull)) != NULL)
		return error;
	t = DatumGetTimestampTz(v);
	if (!d->has_event_time || t > d->max_event_time)
	{
		d->has_event_time = true;
		d->max_event_time = t;
	}
	if (!d->has_min_event_time || t < d->min_event_time)
	{
		d->has_min_event_time = true;
		d->min_event_time = t;
	}
	return NULL;
}

/* re-key every counted row (a 'K' change); not a data error if impossible */
static void
rekey(PgSource *src, Change *c)
{
	HASH_SEQ_STATUS seq;
	Entry	   *e;
	List	   *moved = NIL;
	ListCell   *lc;
	int			k;

	if (c->rekey_missing)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("source \"%s\" cannot follow the new replica identity of upstream table \"%s.%s\"",
						src->name, src->schema, src->table),
				 errdetail("Its rows are now identified by column \"%s\", which stream \"%s\" does not have.",
						   c->rekey_missing, get_rel_name(src->stream)),
				 errhint("Drop and re-create the source (it copies the table anew), or restore the replica identity.")));
	Assert(src->all_loaded);
	hash_seq_init(&seq, src->entries);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->n > 0)
			moved = lappend(moved, e);
		else
			e->latest = NULL;	/* not counted: nothing to carry over */
	}
	/* take every row out, then put it back under its new key */
	foreach(lc, moved)
	{
		Entry	   *from = lfirst(lc);
		Entry	   *copy = palloc(sizeof(Entry));

		*copy = *from;
		from->n = 0;
		from->latest = NULL;
		lfirst(lc) = copy;
	}
	foreach(lc, moved)
	{
		Entry	   *from = lfirst(lc);
		char	   *key;
		Entry	   *to;

		if (c->by_values)
			key = sp_pg_values_key(src, from->vals, NULL);
		else
		{
			StringInfoData buf;

			initStringInfo(&buf);
			for (k = 0; k < c->rekey_nkeys; k++)
				key_part(&buf, from->vals[c->rekey_atts[k]]);
			key = key_finish(&buf);
		}
		to = entry(src, key);
		to->vals = from->vals;
		to->n += from->n;
		to->latest = from->latest;
	}
}

/*
 * The new row of an update, its unchanged TOASTed values taken from what
 * the source has of the old row; NULL (and why) if it does not have them.
 */
static char **
fill_unchanged(PgSource *src, Change *c, Entry *old, char **error)
{
	char	  **from = old->latest ? old->latest : old->n > 0 ? old->vals : NULL;
	char	  **vals = palloc(sizeof(char *) * src->desc->natts);
	int			j;

	for (j = 0; j < src->desc->natts; j++)
	{
		vals[j] = c->vals[j];
		if (!c->unchanged[j])
			continue;
		if (from == NULL)
		{
			*error = psprintf("the value of column \"%s\" did not change and is not sent (TOASTed), and the source does not have it",
							  NameStr(TupleDescAttr(src->desc, j)->attname));
			return NULL;
		}
		vals[j] = from[j];
	}
	return vals;
}

/*
 * A change that was set aside leaves what is counted alone; but the row's
 * values upstream are kept, for the unchanged TOASTed values of its next
 * change.  (Keyed rows only: rows keyed by values come with their old
 * values.)
 */
static void
remember_set_aside(PgSource *src, Change *c)
{
	Entry	   *old;
	char	  **vals = c->vals;
	char	   *error;

	if (c->by_values || (c->kind != 'I' && c->kind != 'U') || c->key == NULL)
		return;
	old = entry(src, c->oldkey ? c->oldkey : c->key);
	if (c->unchanged && (vals = fill_unchanged(src, c, old, &error)) == NULL)
		return;
	entry(src, c->key)->latest = vals;
}

/*
 * Turn change i into rows.  The values are converted first (an input
 * function's error leaves the keyed copy untouched: the caller sets the
 * change aside); only then does the copy change.  Returns an error text
 * for a row that cannot be counted, else NULL.
 */
static char *
derive_one(PgSource *src, Change *changes, int i, Derived *d)
{
	Change	   *c = &changes[i];
	Entry	   *old = NULL;
	Entry	   *new = NULL;
	char	  **vals = c->vals;
	HeapTuple	add = NULL;
	HeapTuple	retract_old = NULL;
	HeapTuple	retract_new = NULL;
	char	   *error;

	switch (c->kind)
	{
		case 'K':
			rekey(src, c);
			return NULL;

		case 'T':
			{
				HASH_SEQ_STATUS seq;
				Entry	   *e;
				List	   *rows = NIL;
				ListCell   *lc;

				/* every row converted first, then the copy emptied */
				hash_seq_init(&seq, src->entries);
				while ((e = hash_seq_search(&seq)) != NULL)
					if (e->n > 0 || e->latest != NULL)
						rows = lappend(rows, e);
				foreach(lc, rows)
				{
					Entry	   *e2 = lfirst(lc);
					HeapTuple	tup;
					int			k;

					if (e2->n <= 0)
						continue;
					tup = make_tuple(src, e2->vals);
					note_taken_back(src, d, tup);
					for (k = 0; k < e2->n; k++)
						add_row(d, tup, -1, i);
				}
				foreach(lc, rows)
				{
					((Entry *) lfirst(lc))->n = 0;
					((Entry *) lfirst(lc))->latest = NULL;
				}
				return NULL;
			}

		case 'D':
			if (c->oldkey == NULL)
				return "the deleted row's key is unknown";
			old = entry(src, c->oldkey);
			if (old->n > 0)
				take_back(src, d, old, make_tuple(src, old->vals), c->by_values ? 1 : old->n, i);
			if (!c->by_values)
				old->latest = NULL;
			return NULL;

		case 'I':
		case 'U':
			if (c->key == NULL)
				return c->kind == 'I' ? "the row's key is unknown"
					: "the updated row's key is unknown (a TOASTed key column that did not change)";
			if (c->kind == 'U')
			{
				if (c->by_values && c->oldkey == NULL)
					return "the updated row's old values are missing";
				old = entry(src, c->oldkey ? c->oldkey : c->key);
				/* TOASTed values that did not change: from the copy */
				if (c->unchanged)
				{
					vals = fill_unchanged(src, c, old, &error);
					if (vals == NULL)
						return error;
				}
				if (old->n > 0)
					retract_old = make_tuple(src, old->vals);
			}
			new = entry(src, c->key);
			/* keyed: a row already held under the new key is replaced */
			if (!c->by_values && new != old && new->n > 0)
				retract_new = make_tuple(src, new->vals);
			add = make_tuple(src, vals);
			error = check_event_time(src, add, d);
			if (error)
				return error;

			/* all converted: now the rows and the copy */
			if (retract_old)
				take_back(src, d, old, retract_old, c->by_values ? 1 : old->n, i);
			if (retract_new)
				take_back(src, d, new, retract_new, new->n, i);
			add_row(d, add, 1, i);
			new->vals = vals;
			new->n = c->by_values ? Max(new->n, 0) + 1 : 1;
			new->latest = NULL;
			if (old && old != new && !c->by_values)
				old->latest = NULL;
			return NULL;
	}
	elog(ERROR, "unexpected change kind %c", c->kind);
	return NULL;
}

/*
 * All changes not set aside, into rows, from the keyed copy as stored.  A
 * change whose values cannot be converted is set aside (dead[i]) here.
 */
static void
derive(PgSource *src, Change *changes, int n, char **dead, Derived *d)
{
	HASH_SEQ_STATUS seq;
	Entry	   *e;
	SpSubxact	sx;
	volatile int i = 0;

	MemoryContextReset(src->derive_cxt);
	memset(d, 0, sizeof(Derived));
	hash_seq_init(&seq, src->entries);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		e->vals = e->orig_vals;
		e->n = e->orig_n;
		e->latest = e->orig_latest;
	}

	while (i < n)
	{
		sp_subxact_begin(&sx, src->derive_cxt);
		PG_TRY();
		{
			for (; i < n; i++)
			{
				int			before = d->nrows;
				char	   *error;

				if (dead[i] != NULL)
				{
					remember_set_aside(src, &changes[i]);
					continue;
				}
				error = derive_one(src, changes, i, d);
				if (error != NULL)
				{
					d->nrows = before;
					dead[i] = MemoryContextStrdup(src->batch_cxt, error);
					remember_set_aside(src, &changes[i]);
				}
			}
			sp_subxact_end(&sx, true);
		}
		PG_CATCH();
		{
			int			att = src->cur_att;
			ErrorData  *edata = sp_subxact_catch(&sx);

			src->cur_att = -1;
			/* its rows so far go; the copy was not touched yet */
			while (d->nrows > 0 && d->change[d->nrows - 1] == i)
				d->nrows--;
			MemoryContextSwitchTo(src->batch_cxt);
			dead[i] = sp_column_error_text(att >= 0 ? NameStr(TupleDescAttr(src->desc, att)->attname) : NULL,
										   edata);
			MemoryContextSwitchTo(src->derive_cxt);
			remember_set_aside(src, &changes[i]);
			i++;
		}
		PG_END_TRY();
	}
}

/* rows [0, to) into a batch for the engine */
static void
apply_rows(PgSource *src, Derived *d, int to, bool with_inputs)
{
	SpBatch		batch = {0};
	SpBatchInput input;
	int			r;

	batch.stream = src->stream;
	for (r = 0; r < to; r++)
		sp_batch_add(&batch, d->tuples[r], d->weights[r]);
	/*
	 * The least event time of the rows, added or taken back (both can be
	 * late), of the whole derivation (a bound for any prefix): a batch with
	 * none behind the watermark's open windows skips looking for late rows.
	 */
	batch.has_min_event_time = d->has_min_event_time;
	batch.min_event_time = d->min_event_time;
	if (with_inputs)
	{
		input.name = src->input;
		input.has_event_time = src->event_time_att != InvalidAttrNumber;
		input.max_event_time = d->has_event_time ? d->max_event_time : DT_NOBEGIN;
		batch.inputs = &input;
		batch.ninputs = 1;
	}
	sp_apply_batch(&batch);
	sp_batch_end(&batch);
}

/*
 * The event-time progress of rows applied without it (the chunks of an
 * initial copy, which comes in no particular order of event time: it
 * must not close windows on its own later rows).
 */
void
sp_pg_apply_progress(PgSource *src, bool has_event_time, TimestampTz max_event_time)
{
	Derived		none = {0};

	none.has_event_time = has_event_time;
	none.max_event_time = max_event_time;
	apply_rows(src, &none, 0, true);
}

/*
 * Apply rows [0, to) in a subtransaction, kept (keep) or rolled back (a
 * probe).  Returns the data error it raised, or NULL; other errors go up.
 */
static ErrorData *
try_apply(PgSource *src, Derived *d, int to, bool with_inputs, bool keep)
{
	SpSubxact	sx;
	ErrorData  *edata = NULL;

	sp_subxact_begin(&sx, CurrentMemoryContext);
	PG_TRY();
	{
		apply_rows(src, d, to, with_inputs);
		sp_subxact_end(&sx, keep);
	}
	PG_CATCH();
	{
		edata = sp_subxact_catch(&sx);
	}
	PG_END_TRY();
	return edata;
}

/* the change's values as JSON, for its dead letter */
static char *
change_payload(PgSource *src, Change *c, const char *oldkey)
{
	StringInfoData buf;
	int			j;
	const char *op = c->kind == 'I' ? "insert" : c->kind == 'U' ? "update"
		: c->kind == 'D' ? "delete" : c->kind == 'T' ? "truncate" : "rekey";

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"op\": \"%s\", \"table\": ", op);
	escape_json(&buf, quote_qualified_identifier(src->schema, src->table));
	if (c->vals)
	{
		appendStringInfoString(&buf, ", \"row\": {");
		for (j = 0; j < src->desc->natts; j++)
		{
			Form_pg_attribute att = TupleDescAttr(src->desc, j);

			if (att->attisdropped)
				continue;
			appendStringInfoString(&buf, j ? ", " : "");
			escape_json(&buf, NameStr(att->attname));
			appendStringInfoString(&buf, ": ");
			if (c->unchanged && c->unchanged[j])
				appendStringInfoString(&buf, "\"(unchanged TOASTed value)\"");
			else if (c->vals[j] == NULL)
				appendStringInfoString(&buf, "null");
			else
				escape_json(&buf, c->vals[j]);
		}
		appendStringInfoChar(&buf, '}');
	}
	if (oldkey)
	{
		appendStringInfoString(&buf, ", \"old_key\": ");
		escape_json(&buf, oldkey);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

static void
write_dead_letters(PgSource *src, Change *changes, int n, char **dead)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		Change	   *c = &changes[i];
		SpDeadLetter letter = {0};
		const char *key = c->key ? c->key : c->oldkey;
		char	   *payload;

		if (dead[i] == NULL)
			continue;
		payload = change_payload(src, c, c->oldkey);
		letter.lsn = c->lsn;
		letter.key = key;
		letter.key_len = key ? strlen(key) : 0;
		letter.payload = payload;
		letter.payload_len = strlen(payload);
		letter.error = dead[i];
		sp_write_dead_letter(src->name, &letter);
	}
}

/*
 * Apply changes (whole upstream transactions, or a chunk of the initial
 * copy) in the current transaction: rows into the views, the keyed copy,
 * dead letters.
 *
 * A data error in a view is pinned on one change by bisecting over
 * prefixes of the changes (each probe a subtransaction that is rolled
 * back); that change is set aside and the rest derived again, since
 * what later changes take back depends on it.  Each round sets one more
 * change aside, so this ends.
 */
void
sp_pg_apply_changes(PgSource *src, Change *changes, int n, Totals *totals, bool with_inputs)
{
	char	  **dead = MemoryContextAllocZero(src->batch_cxt, sizeof(char *) * Max(n, 1));
	Derived		d;
	SpSavedUser su;
	int			i;
	MemoryContext caller = CurrentMemoryContext;

	sp_catalog_enter(&su);
	prefetch(src, changes, n);
	sp_catalog_leave(&su);

	for (;;)
	{
		ErrorData  *edata;
		int		   *ends;			/* row end of each change with rows */
		int		   *which;
		int			m = 0;
		int			lo;
		int			hi;

		derive(src, changes, n, dead, &d);
		MemoryContextSwitchTo(src->derive_cxt);
		edata = try_apply(src, &d, d.nrows, with_inputs, true);
		if (edata == NULL)
			break;
		if (with_inputs && try_apply(src, &d, d.nrows, false, false) == NULL)
			ReThrowError(edata);	/* not a row's fault */

		ends = palloc(sizeof(int) * Max(d.nrows, 1));
		which = palloc(sizeof(int) * Max(d.nrows, 1));
		for (i = 0; i < d.nrows; i++)
		{
			if (m > 0 && which[m - 1] == d.change[i])
				ends[m - 1] = i + 1;
			else
			{
				which[m] = d.change[i];
				ends[m] = i + 1;
				m++;
			}
		}
		if (m == 0)
			ReThrowError(edata);
		/* the first m' changes apply, the first hi do not */
		lo = 0;
		hi = m;
		while (hi - lo > 1)
		{
			int			mid = lo + (hi - lo) / 2;
			ErrorData  *e = try_apply(src, &d, ends[mid - 1], false, false);

			if (e != NULL)
			{
				hi = mid;
				edata = e;
			}
			else
				lo = mid;
		}
		dead[which[hi - 1]] = MemoryContextStrdup(src->batch_cxt, sp_error_text(edata));
	}

	for (i = 0; i < n; i++)
	{
		totals->bytes += changes[i].bytes;
		if (dead[i] != NULL)
			totals->dead++;
		else if (changes[i].kind != 'K')
			totals->rows++;
	}
	if (d.has_event_time && (!totals->has_event_time || d.max_event_time > totals->max_event_time))
	{
		totals->has_event_time = true;
		totals->max_event_time = d.max_event_time;
	}

	sp_catalog_enter(&su);
	SPI_connect();
	write_entries(src);
	if (totals->dead > 0)
		write_dead_letters(src, changes, n, dead);
	SPI_finish();
	sp_catalog_leave(&su);
	MemoryContextSwitchTo(caller);
}
