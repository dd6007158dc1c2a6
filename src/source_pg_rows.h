/*
 * source_pg_rows.h — the parts of a PostgreSQL source worker (source_pg.c)
 * that turn upstream changes into weighted rows (source_pg_rows.c).
 */
#ifndef SP_SOURCE_PG_ROWS_H
#define SP_SOURCE_PG_ROWS_H

#include "access/tupdesc.h"
#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "replication/walreceiver.h"
#include "utils/hsearch.h"

#include "decode.h"
#include "source_worker.h"
#include "workers.h"

/* keys longer than this are replaced by a digest */
#define KEY_MAX 256
#define KEY_SIZE (KEY_MAX + 2)

/*
 * How the upstream table's columns map onto the stream, from pgoutput's
 * Relation message or, for the initial copy, the upstream catalog.
 */
typedef struct RelMap
{
	bool		valid;
	Oid			remoteid;
	int			natts;			/* upstream columns */
	char	  **attnames;
	int		   *stream_att;		/* upstream column -> stream column (0-based), or -1 */
	bool	   *key;			/* in the replica identity key */
	bool		by_values;		/* rows keyed by their values (FULL, or no key) */
	char	   *identity;		/* "values", or "key:a,b" */
	char	   *relname;		/* as pgoutput last named it */
} RelMap;

/* one upstream change to the source table */
typedef struct Change
{
	char		kind;			/* 'I', 'U', 'D', 'T'; 'K': re-key the copy */
	bool		by_values;		/* keyed by values when it was read */
	XLogRecPtr	lsn;
	char	  **vals;			/* the new row in stream layout (NULL: SQL NULL) */
	bool	   *unchanged;		/* per stream column: TOASTed, unchanged; or NULL */
	char	   *key;			/* the new row's key; NULL: unknown */
	char	   *oldkey;			/* the old row's (U, D); NULL: the same as key */
	int		   *rekey_atts;		/* 'K' to a key: stream column of each key column */
	int			rekey_nkeys;
	char	   *rekey_missing;	/* 'K': a key column the stream lacks */
	int			bytes;
} Change;

/*
 * What the source has counted for one upstream row (pg_source_rows), and
 * the row's latest values upstream when its last change was set aside
 * (they fill in unchanged TOASTed values of the next one).
 */
typedef struct Entry
{
	char		key[KEY_SIZE];
	char	  **orig_vals;		/* as stored */
	int			orig_n;
	char	  **orig_latest;
	char	  **vals;			/* as this derivation leaves it: counted n times */
	int			n;
	char	  **latest;			/* upstream values, when not those counted */
} Entry;

/* the rows a batch's changes turn into */
typedef struct Derived
{
	HeapTuple  *tuples;
	int		   *weights;
	int		   *change;			/* index of the change each row comes from */
	int			nrows;
	int			cap;
	bool		has_event_time;
	TimestampTz max_event_time; /* of the rows counted */
	bool		has_min_event_time;
	TimestampTz min_event_time; /* of the rows counted or taken back */
} Derived;

typedef struct PgSource
{
	int32		id;
	char	   *name;
	Oid			stream;
	char	   *conninfo;
	char	   *publication;
	char	   *schema;			/* the upstream table */
	char	   *table;
	char	   *slot;
	bool		snapshot;
	bool		slot_created;
	bool		owner_superuser;	/* else the upstream must ask for a password */
	char	   *identity;		/* how the keyed copy is keyed; NULL: not yet */
	bool		identity_dirty;
	int			batch_size;
	int			batch_timeout_ms;
	char	   *input;			/* stream input name "<source>:0" */

	/* the stream, as read at the connection (in conn_cxt) */
	TupleDesc	desc;
	FmgrInfo   *in_funcs;
	Oid		   *in_ioparams;
	SpInputKind *in_kinds;		/* converted without fmgr, or not */
	Datum	   *row_values;		/* make_tuple's: one row at a time */
	bool	   *row_nulls;
	AttrNumber	event_time_att;
	int			cur_att;		/* column being converted, for errors; -1 */

	WalReceiverConn *conn;
	Oid			table_relid;	/* upstream OID of the table, when known */
	RelMap		map;

	/* positions */
	bool		have_position;
	XLogRecPtr	committed;		/* stored with the views */
	XLogRecPtr	confirmed;		/* sent upstream as flushed */
	XLogRecPtr	idle_lsn;		/* upstream position while nothing is pending */
	XLogRecPtr	wal_end;		/* upstream WAL end, last heard */
	XLogRecPtr	hw_reported;

	/* the batch being collected: whole upstream transactions */
	Change	   *changes;
	int			nchanges;
	int			cap;
	bool		in_txn;
	bool		skip_txn;
	XLogRecPtr	batch_end;		/* end LSN of the last transaction in the batch */
	TimestampTz batch_started;

	/* the keyed copy, as far as the batch needs it */
	HTAB	   *entries;
	bool		all_loaded;

	MemoryContext cxt;			/* lives as long as the worker */
	MemoryContext conn_cxt;		/* reset per connection */
	MemoryContext map_cxt;		/* reset per relation (RelMap) */
	MemoryContext batch_cxt;	/* reset per batch */
	MemoryContext row_cxt;		/* reset per message */
	MemoryContext derive_cxt;	/* reset per derivation */

	SpWorkerSlot *wslot;
	SpWorkerRate rate;
	TimestampTz last_feedback;
} PgSource;

/* per-batch totals, for source_offsets */
typedef struct Totals
{
	int64		rows;
	int64		dead;
	int64		bytes;
	bool		has_event_time;
	TimestampTz max_event_time;
} Totals;

/* source_pg_rows.c */
extern char *sp_pg_identity(int natts, char **attnames, bool *key, char replident);
extern char *sp_pg_values_key(PgSource *src, char **vals, bool *unchanged);
extern char *sp_pg_tuple_key(RelMap *m, char **upvals, char *upstatus);
extern char **sp_pg_stream_values(PgSource *src, RelMap *m, char **upvals, char *upstatus,
								  bool **unchanged);
extern void sp_pg_apply_changes(PgSource *src, Change *changes, int n, Totals *totals,
								bool with_inputs);
extern void sp_pg_apply_progress(PgSource *src, bool has_event_time, TimestampTz max_event_time);

#endif
