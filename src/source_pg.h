/*
 * source_pg.h — PostgreSQL logical replication sources (kind 'pg').
 */
#ifndef SP_SOURCE_PG_H
#define SP_SOURCE_PG_H

/* drop_source: stop the worker, drop the slot if the source made it */
extern void sp_pg_source_before_drop(int32 source_id);

#endif
