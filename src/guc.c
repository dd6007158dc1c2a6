/*
 * guc.c — streamproc.* settings.  The prefix is reserved, so a misspelled
 * streamproc.* setting is an error rather than a silent placeholder.
 */
#include "postgres.h"

#include "utils/guc.h"

#include "guc.h"

int			sp_batch_size = 10000;
int			sp_max_message_size = 1024 * 1024;

void
sp_guc_init(void)
{
	DefineCustomIntVariable("streamproc.batch_size",
							"Rows per micro-batch when INSERT or COPY writes to a stream.",
							"Each batch is aggregated in memory and merged into the state "
							"tables of the stream's continuous views; a larger batch means "
							"fewer state-table updates and more memory.",
							&sp_batch_size,
							10000, 1, 10000000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("streamproc.max_message_size",
							"Largest message a source turns into a row.",
							"A larger message goes to streamproc.dead_letters.",
							&sp_max_message_size,
							1024 * 1024, 1, 512 * 1024 * 1024,
							PGC_SIGHUP, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("streamproc");
}
