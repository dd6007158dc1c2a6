/*
 * upstream.h — talking to the PostgreSQL server a pg source reads from.
 */
#ifndef SP_UPSTREAM_H
#define SP_UPSTREAM_H

#include "access/xlogdefs.h"
#include "replication/walreceiver.h"

/* the upstream table as a pg source reads it (upstream.c) */
typedef struct SpUpstreamTable
{
	char	   *schema;
	char	   *table;
	Oid			relid;			/* upstream OID */
	char		replident;		/* pg_class.relreplident */
	char		relkind;
	int			natts;			/* published columns, in attnum order */
	char	  **attnames;
	bool	   *attkey;			/* in the replica identity key */
	char	   *row_filter;		/* the publication's WHERE, or NULL */
} SpUpstreamTable;

extern void sp_upstream_check_conninfo(const char *conninfo);
extern char *sp_upstream_mask_conninfo(const char *conninfo);
extern WalReceiverConn *sp_upstream_connect(const char *conninfo, const char *appname,
											 bool require_password);
extern void sp_upstream_disconnect(WalReceiverConn **conn);
extern WalRcvExecResult *sp_upstream_query(WalReceiverConn *conn, const char *sql,
										   int ncols, const Oid *types);
extern void sp_upstream_command(WalReceiverConn *conn, const char *sql);
extern void sp_upstream_parse_table(const char *source_table, char **schema, char **table);
extern SpUpstreamTable *sp_upstream_table(WalReceiverConn *conn, const char *schema,
										  const char *table, const char *publication);
extern bool sp_upstream_publication_exists(WalReceiverConn *conn, const char *publication);
extern Oid	sp_upstream_table_oid(WalReceiverConn *conn, const char *schema, const char *table);
extern bool sp_upstream_publication_via_root(WalReceiverConn *conn, const char *publication);
extern bool sp_upstream_slot(WalReceiverConn *conn, const char *slot, XLogRecPtr *confirmed,
							 char **plugin, bool *this_database);
extern bool sp_upstream_drop_slot(WalReceiverConn *conn, const char *slot, int wait_ms,
								  char **error);

#endif
