/*
 * streamproc.c — module entry point.
 *
 * streamproc must be in shared_preload_libraries: its hooks and (later) its
 * background workers are set up here, once, in the postmaster.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "apply.h"
#include "guc.h"
#include "view_ddl.h"
#include "workers.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("streamproc must be loaded via shared_preload_libraries"),
				 errhint("Add streamproc to shared_preload_libraries in postgresql.conf and restart the server.")));

	sp_guc_init();
	sp_view_ddl_init();
	sp_apply_init();
	sp_workers_init();
}
