/*
 * view_ddl.h — creating and dropping continuous views.
 */
#ifndef SP_VIEW_DDL_H
#define SP_VIEW_DDL_H

#include "tcop/utility.h"

extern void sp_view_ddl_init(void);

#endif
