/*
 * view_compile.h — from a continuous view's SELECT to its state table layout,
 * its per-batch partial plan and its read view.
 */
#ifndef SP_VIEW_COMPILE_H
#define SP_VIEW_COMPILE_H

#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "utils/timestamp.h"

/* name under which a batch is visible to the partial plan */
#define SP_BATCH_ENR_NAME "streamproc_batch"

typedef enum SpWindowKind
{
	SP_WINDOW_NONE,
	SP_WINDOW_TUMBLE,
	SP_WINDOW_HOP,
	SP_WINDOW_SESSION
} SpWindowKind;

/* a group key: a state table column with its grouping expression */
typedef struct SpKey
{
	char	   *name;			/* state column */
	Expr	   *expr;			/* as written in the view's GROUP BY */
	Oid			type;
	int32		typmod;
	Oid			collation;
	Index		sortgroupref;
} SpKey;

/* an aggregate call: a state table column holding its partial state */
typedef struct SpAggCol
{
	char	   *name;
	Aggref	   *aggref;
	int			nargs;
	Oid			argtypes[FUNC_MAX_ARGS];
	Oid			storedtype;
	Oid			collation;		/* of the state column */
} SpAggCol;

typedef struct SpViewShape
{
	Query	   *query;			/* analyzed canonical query (not rewritten) */
	char	   *sql;			/* canonical SQL text */
	Oid			stream;
	List	   *keys;			/* SpKey *; never empty (see _all) */
	List	   *aggs;			/* SpAggCol * */
	bool		grouped;		/* false: no GROUP BY, one implicit group */
	SpWindowKind window_kind;
	int			window_key;		/* index into keys, or -1 */
	Expr	   *window_ts;		/* the window's timestamp argument */
	Interval   *window_size;	/* constant tumble/hop size, session gap; or NULL */
	Interval   *window_slide;	/* hop slide */
	bool		event_time_window;	/* window of the stream's event time: closes
									 * with the watermark */
} SpViewShape;

#define SP_ROWS_COLUMN "_rows"
#define SP_SESSION_END_COLUMN "_session_end"

extern bool sp_is_stream(Oid relid);
extern Oid	sp_stream_server_oid(bool missing_ok);
extern char *sp_view_canonical_sql(RawStmt *raw, const char *source);
extern SpViewShape *sp_view_shape(const char *canonical_sql, const char *tree);
extern PlannedStmt *sp_view_partial_plan(SpViewShape *shape, Oid owner,
										 int batch_rows);
extern PlannedStmt *sp_view_open_plan(SpViewShape *shape, Oid owner,
									  int batch_rows);
extern bool sp_view_can_retract(SpViewShape *shape, char **why);
/* the hint of every refusal of a view that cannot take rows back */
#define SP_RETRACT_HINT "A CDC source deletes and updates rows.  Views on its stream may use count, sum and avg (of integer or numeric values) and tumbling or hopping windows"
extern PlannedStmt *sp_view_retract_plan(SpViewShape *shape, Oid owner, int batch_rows);
/*
 * When a row of an event-time view is late, as numbers: with align_us > 0,
 * when floor(ts, align_us, origin) + align_us <= watermark (tumble, hop);
 * with gap_us > 0, when ts + gap_us <= watermark (session).
 */
typedef struct SpLateRule
{
	int64		align_us;
	TimestampTz origin;
	int64		gap_us;
} SpLateRule;

extern bool sp_view_late_rule(SpViewShape *shape, SpLateRule *rule);
extern PlannedStmt *sp_view_late_plan(SpViewShape *shape, Oid owner,
									  int batch_rows, Oid view_relid);
extern char *sp_view_read_sql(SpViewShape *shape, Oid state_relid,
							  bool emit_final, Interval *retention);
extern int	sp_push_catalog_search_path(void);
extern void sp_pop_search_path(int nestlevel);
extern RawStmt *sp_parse_select(const char *sql);

#endif
