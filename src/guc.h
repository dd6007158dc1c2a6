/*
 * guc.h — streamproc.* settings.
 */
#ifndef SP_GUC_H
#define SP_GUC_H

extern int	sp_batch_size;
extern int	sp_max_message_size;

extern void sp_guc_init(void);

#endif
