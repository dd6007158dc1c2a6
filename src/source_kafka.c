/*
 * source_kafka.c — a Kafka source worker: consumes its share of a topic's
 * partitions and applies them to the stream's continuous views, exactly
 * once.
 *
 * Worker i of N owns the partitions p with p % N = i.  Each batch:
 *
 *   librdkafka queue ──► up to batch_size messages (or batch_timeout)
 *     ──► decode (decode.c) ─┬─ weighted rows ──► sp_apply_batch (apply.c)
 *                            └─ bad message ──► streamproc.dead_letters
 *     ──► next offset of every partition in the batch ──► source_offsets
 *     ──► COMMIT  (views, watermark, late rows, dead letters, offsets)
 *
 * The offsets live in the same database transaction as the views' state,
 * never in Kafka, so a crash anywhere either keeps the whole batch or none
 * of it; a (re)started worker resumes from source_offsets.  Any error that
 * aborts a batch makes the worker start over from the committed offsets
 * after a backoff: nothing read but uncommitted is ever skipped.
 *
 * Bad input never stops the source: a message that cannot become a row
 * (decoder errors, a column type's input function rejecting a value, no
 * event time, too large), or a row a view cannot take (a data error such as
 * division by zero in the view's expressions, found by bisecting the batch
 * in subtransactions), becomes a dead letter in the batch's transaction.
 * A message is the unit: the two rows of a Debezium update (the old row
 * retracted, the new one inserted) are applied or set aside together.
 * Debezium's tombstones (a null value after a delete) are no rows: they
 * are only counted.
 * Errors that are not about the data (a missing table, a lock timeout, a
 * lost broker) roll the batch back and are retried.
 *
 * librdkafka's own threads never call into PostgreSQL: its error and log
 * callbacks are served on this process's thread by rd_kafka_poll().
 *
 * What every source worker does the same way is shared: its start, runs,
 * backoff and error reports (source_worker.c), and in a batch's
 * transaction the subtransactions, rows and dead letters (source_batch.c).
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "catalog.h"
#include "decode.h"
#include "guc.h"
#include "source.h"
#include "source_batch.h"
#include "source_worker.h"
#include "workers.h"

typedef struct Partition
{
	int32		id;
	int64		next_offset;	/* first offset not yet applied */
	char	   *input;			/* stream input name "<source>:<id>" */
	int64		hwm_reported;
	/* this batch */
	int64		first_offset;	/* -1: not in the batch */
	int64		last_offset;
	int64		rows;
	int64		bytes;
	int64		dead;
	bool		has_event_time;
	TimestampTz max_event_time;
} Partition;

/* a message that could not become a row, or a row a view refused */
typedef struct DeadLetter
{
	int			msg;			/* index in the batch */
	char	   *error;
} DeadLetter;

typedef struct Source
{
	int32		id;
	int32		index;
	char	   *name;
	Oid			stream;
	char	   *brokers;
	char	   *topic;
	char	   *format;
	bool		start_latest;
	int			parallelism;
	int			batch_size;
	int			batch_timeout_ms;
	List	   *option_names;
	List	   *option_values;

	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	rd_kafka_queue_t *queue;
	Partition  *parts;
	int			nparts;
	uint32		wake_next;		/* wake_fetcher: the partition to ask next */
	bool		queue_was_full; /* ... seen batch_size messages queued */
	TimestampTz last_wake;		/* ... woke it last */
	Partition **by_id;			/* topic_partitions entries, NULL if not ours */
	int			topic_partitions;
	bool		assigned;

	TupleDesc	desc;			/* the stream's, as the decoder knows it */
	SpDecoder  *decoder;
	AttrNumber	event_time_att;

	rd_kafka_message_t **msgs;	/* the batch being collected */
	int			nmsgs;

	MemoryContext cxt;			/* lives as long as the worker */
	MemoryContext batch_cxt;	/* reset per batch */
	MemoryContext row_cxt;		/* reset per message */

	SpWorkerSlot *slot;
	SpWorkerRate rate;
	TimestampTz last_metadata_check;
	TimestampTz kafka_error_recorded_at;
	char		kafka_reason[256];	/* librdkafka's last error event */
	bool		kafka_error;	/* error_cb reported trouble */
} Source;

static Source *current = NULL;

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------
 */

/* librdkafka: served by rd_kafka_poll() on this thread */
static void
on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	Source	   *src = current;
	char	   *msg;
	TimestampTz now;

	if (src == NULL)
		return;
	now = GetCurrentTimestamp();
	msg = psprintf("Kafka: %s", reason);
	/* (cut at a character boundary: it goes into messages) */
	strlcpy(src->kafka_reason, reason,
			pg_mbcliplen(reason, strlen(reason), sizeof(src->kafka_reason) - 1) + 1);
	src->kafka_error = true;
	sp_worker_report_error(src->slot, msg);
	/* the catalog copy at most every 10 seconds: errors repeat while down */
	if (!IsTransactionState() &&
		TimestampDifferenceExceeds(src->kafka_error_recorded_at, now, 10000))
	{
		src->kafka_error_recorded_at = now;
		sp_source_record_error(src->id, msg);
	}
	pfree(msg);
}

/* the brokers answer again, or messages flow: the trouble is over */
static void
kafka_recovered(Source *src)
{
	src->kafka_error = false;
	src->kafka_reason[0] = '\0';
	if (src->slot->in_error)
		sp_worker_report_error(src->slot, NULL);
}

static void
on_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	if (current == NULL)
		return;
	ereport(level <= 4 ? LOG : DEBUG1,
			(errmsg("streamproc source \"%s\": librdkafka %s: %s", current->name, fac, buf)));
}

/* ------------------------------------------------------------------------
 * The source definition and the Kafka consumer
 * ------------------------------------------------------------------------
 */

/* the source's definition, or NULL if it is gone or stopped */
static Source *
load_source(int32 id, int32 index)
{
	Source	   *src = NULL;

	if (sp_source_worker_lookup(id,
								"SELECT name, stream, brokers, topic, format, start, parallelism,"
								"       batch_size, (extract(epoch FROM batch_timeout) * 1000)::int, options,"
								"       (SELECT event_time_att FROM streamproc.stream_defs d WHERE d.relid = s.stream)"
								"  FROM streamproc.source_defs s WHERE id = $1 AND enabled AND kind = 'kafka'",
								true))
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "streamproc source",
												  ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);
		Jsonb	   *options;
		JsonbIterator *it;
		JsonbValue	v;
		JsonbIteratorToken tok;
		char	   *start;
		Datum		et;

		src = palloc0(sizeof(Source));
		src->cxt = cxt;
		src->id = id;
		src->index = index;
		src->name = SPI_getvalue(tup, desc, 1);
		src->stream = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		src->brokers = SPI_getvalue(tup, desc, 3);
		src->topic = SPI_getvalue(tup, desc, 4);
		src->format = SPI_getvalue(tup, desc, 5);
		start = SPI_getvalue(tup, desc, 6);
		src->start_latest = strcmp(start, "latest") == 0;
		src->parallelism = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
		src->batch_size = DatumGetInt32(SPI_getbinval(tup, desc, 8, &isnull));
		src->batch_timeout_ms = DatumGetInt32(SPI_getbinval(tup, desc, 9, &isnull));
		options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 10, &isnull));
		et = SPI_getbinval(tup, desc, 11, &isnull);
		src->event_time_att = isnull ? InvalidAttrNumber : DatumGetInt16(et);

		it = JsonbIteratorInit(&options->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
				src->option_names = lappend(src->option_names,
											pnstrdup(v.val.string.val, v.val.string.len));
			else if (tok == WJB_VALUE)
				src->option_values = lappend(src->option_values, sp_jsonb_scalar_text(&v));
		}
		src->msgs = palloc(sizeof(rd_kafka_message_t *) * src->batch_size);
		src->batch_cxt = AllocSetContextCreate(cxt, "streamproc source batch",
											   ALLOCSET_DEFAULT_SIZES);
		src->row_cxt = AllocSetContextCreate(cxt, "streamproc source row",
											 ALLOCSET_DEFAULT_SIZES);
		MemoryContextSwitchTo(old);
	}
	sp_worker_xact_commit();
	return src;
}

static void
conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		errstr[512];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		bool		secret = sp_option_is_secret(name);

		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Kafka option \"%s\"", name),
				 secret ? 0 : errdetail("%s", errstr)));
	}
}

static void
create_consumer(Source *src)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char		errstr[512];
	ListCell   *n;
	ListCell   *v;
	char		batch[32];
	int			problem;

	conf_set(conf, "bootstrap.servers", src->brokers);
	conf_set(conf, "client.id", psprintf("streamproc-%s", src->name));
	conf_set(conf, "enable.partition.eof", "false");
	conf_set(conf, "enable.auto.commit", "false");
	conf_set(conf, "enable.auto.offset.store", "false");
	conf_set(conf, "auto.offset.reset", "earliest");
	/*
	 * How long a fetch may wait at the broker for data to arrive: it bounds
	 * how late a message produced into an idle partition reaches us (a
	 * batch then closes batch_timeout after its first message).  20 ms
	 * keeps produce-to-view at 50k messages/s under a quarter second, at
	 * the price of 50 fetch requests a second to each broker while idle.
	 */
	conf_set(conf, "fetch.wait.max.ms", "20");
	/*
	 * Prefetch: two batches, so that the next one is waiting while one is
	 * applied, and at most 16 MB (the queue is shared by all the worker's
	 * partitions).  wake_fetcher keeps the fetcher going once it is full.
	 */
	snprintf(batch, sizeof(batch), "%d", Max(2 * src->batch_size, 1000));
	conf_set(conf, "queued.min.messages", batch);
	conf_set(conf, "queued.max.messages.kbytes", "16384");
	/*
	 * ... and what one fetch response may add on top of that (its
	 * partitions' shares, up to max.partition.fetch.bytes each, still
	 * compressed): 8 MB rather than librdkafka's 50 MB, so that memory stays
	 * bounded however many partitions the worker reads.
	 */
	conf_set(conf, "fetch.max.bytes", "8388608");
	conf_set(conf, "log.queue", "true");
	forboth(n, src->option_names, v, src->option_values)
		conf_set(conf, lfirst(n), lfirst(v));
	rd_kafka_conf_set_error_cb(conf, on_kafka_error);
	rd_kafka_conf_set_log_cb(conf, on_kafka_log);

	/* as at creation: librdkafka would crash on a bad one (a restored row) */
	if ((problem = sp_kafka_jwt_problem(conf)) != 0)
	{
		rd_kafka_conf_destroy(conf);
		sp_kafka_jwt_error(problem);
	}
	src->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (src->rk == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not create a Kafka consumer: %s", errstr)));
	rd_kafka_set_log_queue(src->rk, NULL);
	src->rkt = rd_kafka_topic_new(src->rk, src->topic, NULL);
	if (src->rkt == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not open Kafka topic \"%s\": %s", src->topic,
						rd_kafka_err2str(rd_kafka_last_error()))));
	src->queue = rd_kafka_queue_new(src->rk);
}

static void
drop_batch_messages(Source *src)
{
	int			i;

	for (i = 0; i < src->nmsgs; i++)
		rd_kafka_message_destroy(src->msgs[i]);
	src->nmsgs = 0;
}

/* stop consuming: fetched but unapplied messages are thrown away */
static void
unassign(Source *src)
{
	int			i;

	drop_batch_messages(src);
	if (!src->assigned)
		return;
	for (i = 0; i < src->nparts; i++)
		rd_kafka_consume_stop(src->rkt, src->parts[i].id);
	rd_kafka_queue_destroy(src->queue);
	src->queue = rd_kafka_queue_new(src->rk);
	src->assigned = false;
}

/*
 * Ask the brokers for the topic: its partition count, and whether each of
 * this worker's partitions has a leader.  Returns the request's error;
 * *topic_err receives the topic's.  Never raises one.
 */
static rd_kafka_resp_err_t
topic_metadata(Source *src, int timeout_ms, int *count, bool *ours_led,
			   rd_kafka_resp_err_t *topic_err)
{
	const struct rd_kafka_metadata *md;
	const struct rd_kafka_metadata_topic *t;
	rd_kafka_resp_err_t err;
	int			i;
	int			j;

	err = rd_kafka_metadata(src->rk, 0, src->rkt, &md, timeout_ms);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		return err;
	*topic_err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
	*count = 0;
	*ours_led = false;
	if (*topic_err == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		t = &md->topics[0];
		*count = t->partition_cnt;
		*ours_led = true;
		for (i = 0; i < src->nparts && *ours_led; i++)
		{
			*ours_led = false;
			for (j = 0; j < t->partition_cnt; j++)
				if (t->partitions[j].id == src->parts[i].id)
					*ours_led = t->partitions[j].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
						t->partitions[j].leader >= 0;
		}
	}
	rd_kafka_metadata_destroy(md);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* the topic's partition count, or an error */
static int
topic_partition_count(Source *src, int timeout_ms)
{
	int			count;
	bool		ours_led;
	rd_kafka_resp_err_t terr;
	rd_kafka_resp_err_t err = topic_metadata(src, timeout_ms, &count, &ours_led, &terr);

	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		/*
		 * What librdkafka last said of the brokers (a refused connection,
		 * a failed SASL or SSL handshake; it says a repeated error once)
		 * says more than the request's own error: its error events are
		 * served now.
		 */
		rd_kafka_poll(src->rk, 0);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not get metadata of Kafka topic \"%s\" from brokers %s: %s%s%s",
						src->topic, src->brokers, rd_kafka_err2str(err),
						src->kafka_reason[0] ? "; the brokers' last error: " : "", src->kafka_reason),
				 errhint("The source retries by itself; check that the brokers are reachable.")));
	}
	if (terr != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("Kafka topic \"%s\" is not available: %s", src->topic, rd_kafka_err2str(terr)),
				 errhint("Create the topic, or check its name; the source retries by itself.")));
	return count;
}

/*
 * Take this worker's partitions, from the committed offsets.  A partition
 * never consumed before starts at the beginning ('earliest') or the end
 * ('latest') as of now, and that position is committed at once, so a
 * restart does not move it.
 */
static void
assign(Source *src)
{
	int			count = topic_partition_count(src, 10000);
	int			i;
	int			n = 0;
	Oid			types[4] = {INT4OID, INT4OID, INT8OID, INT8OID};
	MemoryContext old;
	StringInfoData list;

	old = MemoryContextSwitchTo(src->cxt);
	if (src->parts)
	{
		pfree(src->parts);
		pfree(src->by_id);
	}
	src->parts = palloc0(sizeof(Partition) * Max(count, 1));
	src->by_id = palloc0(sizeof(Partition *) * Max(count, 1));
	for (i = 0; i < count; i++)
	{
		if (i % src->parallelism != src->index)
			continue;
		src->parts[n].id = i;
		src->parts[n].input = psprintf("%s:%d", src->name, i);
		src->parts[n].next_offset = -1;
		src->parts[n].hwm_reported = -1;
		n++;
	}
	src->nparts = n;
	src->topic_partitions = count;
	for (i = 0; i < n; i++)
		src->by_id[src->parts[i].id] = &src->parts[i];
	MemoryContextSwitchTo(old);

	sp_worker_xact_begin();
	for (i = 0; i < src->nparts; i++)
	{
		Partition  *p = &src->parts[i];
		Datum		values[4];
		bool		isnull;
		int64		lo;
		int64		hi;
		rd_kafka_resp_err_t err;

		values[0] = Int32GetDatum(src->id);
		values[1] = Int32GetDatum(p->id);
		if (SPI_execute_with_args("SELECT next_offset FROM streamproc.source_offsets"
								  " WHERE source = $1 AND partition = $2",
								  2, types, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.source_offsets");
		if (SPI_processed == 1)
			p->next_offset = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 1, &isnull));
		err = rd_kafka_query_watermark_offsets(src->rk, src->topic, p->id, &lo, &hi, 10000);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not get the offsets of partition %d of Kafka topic \"%s\": %s",
							p->id, src->topic, rd_kafka_err2str(err))));
		if (p->next_offset < 0)
		{
			p->next_offset = src->start_latest ? hi : lo;
			values[2] = Int64GetDatum(p->next_offset);
			values[3] = Int64GetDatum(hi);
			if (SPI_execute_with_args("INSERT INTO streamproc.source_offsets"
									  " (source, partition, next_offset, high_watermark)"
									  " VALUES ($1, $2, $3, $4)",
									  4, types, values, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not write streamproc.source_offsets");
		}
		/*
		 * A partition with messages still to read holds the stream's
		 * watermark back until it has delivered them (or has been silent
		 * for idle_timeout), so that other partitions cannot make them late.
		 */
		if (src->event_time_att != InvalidAttrNumber && hi > p->next_offset)
		{
			Oid			t[2] = {OIDOID, TEXTOID};
			Datum		v[2];

			v[0] = ObjectIdGetDatum(src->stream);
			v[1] = CStringGetTextDatum(p->input);
			if (SPI_execute_with_args("INSERT INTO streamproc.stream_inputs (stream, input, max_event_time, last_seen)"
									  " VALUES ($1, $2, '-infinity', pg_catalog.now())"
									  " ON CONFLICT (stream, input) DO NOTHING",
									  2, t, v, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not write streamproc.stream_inputs");
		}
	}
	sp_worker_xact_commit();

	initStringInfo(&list);
	for (i = 0; i < src->nparts; i++)
	{
		Partition  *p = &src->parts[i];

		if (rd_kafka_consume_start_queue(src->rkt, p->id, p->next_offset, src->queue) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not start consuming partition %d of Kafka topic \"%s\": %s",
							p->id, src->topic, rd_kafka_err2str(rd_kafka_last_error()))));
		appendStringInfo(&list, "%s%d@" INT64_FORMAT, i ? ", " : "", p->id, p->next_offset);
	}
	src->assigned = true;
	ereport(LOG,
			(errmsg("streamproc source \"%s\" consuming topic \"%s\" partitions %s",
					src->name, src->topic, src->nparts ? list.data : "(none)")));
	pfree(list.data);
}

static Partition *
find_partition(Source *src, int32 id)
{
	if (id < 0 || id >= src->topic_partitions)
		return NULL;
	return src->by_id[id];
}

/* ------------------------------------------------------------------------
 * One batch
 * ------------------------------------------------------------------------
 */

/* the stream's row type, and a decoder for it; rebuilt after ALTER */
static void
prepare_decoder(Source *src, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext old;

	if (src->desc != NULL && equalTupleDescs(src->desc, desc))
		return;
	old = MemoryContextSwitchTo(src->cxt);
	src->desc = CreateTupleDescCopy(desc);
	src->decoder = sp_decoder_create(src->format, src->desc, src->cxt);
	MemoryContextSwitchTo(old);
}

static void
add_dead_letter(List **dead, int msg, const char *error)
{
	DeadLetter *d = palloc(sizeof(DeadLetter));

	d->msg = msg;
	d->error = pstrdup(error);
	*dead = lappend(*dead, d);
}

/* the rows decoded from a batch's messages, in message order */
typedef struct Rows
{
	HeapTuple  *tuples;
	int8	   *weights;		/* +1 or -1 */
	int		   *msg;			/* the message each row came from */
	int			n;
	TimestampTz min_event_time; /* the least of the rows; DT_NOEND: none */
} Rows;

/*
 * Decode messages [from, nmsgs) into rows, in a subtransaction so that an
 * input function's error only costs its message.  Returns the index of the
 * message that raised an error, or nmsgs when all were done.
 */
static int
decode_messages(Source *src, int from, Rows *rows, List **dead)
{
	MemoryContext batch_cxt = src->batch_cxt;
	SpSubxact	sx;
	volatile int i = from;
	int			natts = src->desc->natts;
	Datum	   *values[SP_DECODE_MAX_ROWS];
	bool	   *nulls[SP_DECODE_MAX_ROWS];
	int			weights[SP_DECODE_MAX_ROWS];
	int			r;

	for (r = 0; r < SP_DECODE_MAX_ROWS; r++)
	{
		values[r] = MemoryContextAlloc(batch_cxt, sizeof(Datum) * natts);
		nulls[r] = MemoryContextAlloc(batch_cxt, sizeof(bool) * natts);
	}

	sp_subxact_begin(&sx, batch_cxt);
	MemoryContextSwitchTo(src->row_cxt);
	PG_TRY();
	{
		for (; i < src->nmsgs; i++)
		{
			rd_kafka_message_t *m = src->msgs[i];
			Partition  *p = find_partition(src, m->partition);
			char	   *error = NULL;
			int			n = 0;
			bool		has_time = false;
			TimestampTz max_time = 0;
			TimestampTz min_time = 0;

			MemoryContextReset(src->row_cxt);
			if (m->payload != NULL && m->len > (size_t) sp_max_message_size)
				error = psprintf("message of %zu bytes is larger than streamproc.max_message_size (%d bytes)",
								 m->len, sp_max_message_size);
			else
				n = sp_decode_changes(src->decoder, m->payload, m->len, values, nulls,
									  weights, &error);
			/* every row, retracted or not, is event time seen */
			for (r = 0; r < n && error == NULL && src->event_time_att != InvalidAttrNumber; r++)
			{
				int			a = src->event_time_att - 1;

				error = sp_event_time_error(src->desc, src->event_time_att, values[r][a], nulls[r][a]);
				if (error == NULL)
				{
					TimestampTz ts = DatumGetTimestampTz(values[r][a]);

					max_time = (!has_time || ts > max_time) ? ts : max_time;
					min_time = (!has_time || ts < min_time) ? ts : min_time;
					has_time = true;
				}
			}
			if (error != NULL)
			{
				MemoryContextSwitchTo(batch_cxt);
				add_dead_letter(dead, i, error);
				p->dead++;
				MemoryContextSwitchTo(src->row_cxt);
				continue;
			}
			if (has_time && min_time < rows->min_event_time)
				rows->min_event_time = min_time;
			if (has_time && (!p->has_event_time || max_time > p->max_event_time))
			{
				p->has_event_time = true;
				p->max_event_time = max_time;
			}
			MemoryContextSwitchTo(batch_cxt);
			for (r = 0; r < n; r++)
			{
				rows->tuples[rows->n] = heap_form_tuple(src->desc, values[r], nulls[r]);
				rows->weights[rows->n] = weights[r];
				rows->msg[rows->n] = i;
				rows->n++;
			}
			p->rows++;
			MemoryContextSwitchTo(src->row_cxt);
		}
		MemoryContextSwitchTo(batch_cxt);
		sp_subxact_end(&sx, true);
	}
	PG_CATCH();
	{
		ErrorData  *edata = sp_subxact_catch(&sx);
		const char *col = sp_decoder_column(src->decoder);

		add_dead_letter(dead, i, sp_column_error_text(col, edata));
		find_partition(src, src->msgs[i]->partition)->dead++;
		return i;
	}
	PG_END_TRY();
	return src->nmsgs;
}

static void
apply_rows(Source *src, Rows *rows, int from, int to, bool with_inputs)
{
	SpBatch		batch = {0};
	SpBatchInput *inputs = palloc(sizeof(SpBatchInput) * Max(src->nparts, 1));
	int			i;

	batch.stream = src->stream;
	batch.inputs = inputs;
	/* the batch's least event time bounds any part of it from below */
	batch.has_min_event_time = src->event_time_att != InvalidAttrNumber;
	batch.min_event_time = rows->min_event_time;
	for (i = from; i < to; i++)
		sp_batch_add(&batch, rows->tuples[i], rows->weights[i]);
	if (with_inputs)
	{
		for (i = 0; i < src->nparts; i++)
		{
			Partition  *p = &src->parts[i];

			if (p->first_offset < 0)
				continue;
			inputs[batch.ninputs].name = p->input;
			inputs[batch.ninputs].has_event_time = src->event_time_att != InvalidAttrNumber;
			inputs[batch.ninputs].max_event_time = p->has_event_time ? p->max_event_time : DT_NOBEGIN;
			batch.ninputs++;
		}
	}
	sp_apply_batch(&batch);
	sp_batch_end(&batch);
}

/*
 * The partitions' latest event times again, without the messages the views
 * sent to the dead letters: like a message that could not be decoded, one
 * that no view took does not move the watermark.
 */
static void
forget_dead_event_times(Source *src, Rows *rows, List *dead)
{
	bool	   *is_dead;
	ListCell   *lc;
	int			r;

	if (src->event_time_att == InvalidAttrNumber)
		return;
	is_dead = palloc0(sizeof(bool) * src->nmsgs);
	foreach(lc, dead)
		is_dead[((DeadLetter *) lfirst(lc))->msg] = true;
	for (r = 0; r < src->nparts; r++)
		src->parts[r].has_event_time = false;
	for (r = 0; r < rows->n; r++)
	{
		Partition  *p;
		bool		isnull;
		TimestampTz ts;

		if (is_dead[rows->msg[r]])
			continue;
		p = find_partition(src, src->msgs[rows->msg[r]]->partition);
		ts = DatumGetTimestampTz(heap_getattr(rows->tuples[r], src->event_time_att,
											  src->desc, &isnull));
		if (!p->has_event_time || ts > p->max_event_time)
		{
			p->has_event_time = true;
			p->max_event_time = ts;
		}
	}
	pfree(is_dead);
}

/*
 * Apply rows [from, to) in a subtransaction.  A data error in a view sends
 * the failing messages to the dead letters: halves are tried until the
 * messages at fault are found, one by one.  Halves end at message
 * boundaries, so that the rows of a message go together.
 */
static void
apply_or_bisect(Source *src, Rows *rows, int from, int to, bool with_inputs,
				List **dead)
{
	SpSubxact	sx;
	ErrorData  *edata = NULL;

	sp_subxact_begin(&sx, CurrentMemoryContext);
	PG_TRY();
	{
		apply_rows(src, rows, from, to, with_inputs);
		sp_subxact_end(&sx, true);
	}
	PG_CATCH();
	{
		edata = sp_subxact_catch(&sx);
	}
	PG_END_TRY();

	if (edata == NULL)
		return;
	if (to == from)
		ReThrowError(edata);	/* not a row's fault */
	if (rows->msg[from] == rows->msg[to - 1])
	{
		int			msg = rows->msg[from];
		Partition  *p = find_partition(src, src->msgs[msg]->partition);

		add_dead_letter(dead, msg, sp_error_text(edata));
		p->dead++;
		p->rows--;
		if (with_inputs)
		{
			forget_dead_event_times(src, rows, *dead);
			apply_or_bisect(src, rows, from, from, true, dead);
		}
		return;
	}
	{
		int			mid = from + (to - from) / 2;

		/* a message boundary near the middle: there is one, two messages at least */
		while (mid > from && rows->msg[mid] == rows->msg[mid - 1])
			mid--;
		if (mid == from)
			while (rows->msg[mid] == rows->msg[from])
				mid++;
		apply_or_bisect(src, rows, from, mid, false, dead);
		apply_or_bisect(src, rows, mid, to, false, dead);
		if (with_inputs)
		{
			forget_dead_event_times(src, rows, *dead);
			apply_or_bisect(src, rows, to, to, true, dead);
		}
	}
}

static void
write_dead_letters(Source *src, List *dead)
{
	ListCell   *lc;

	foreach(lc, dead)
	{
		DeadLetter *d = lfirst(lc);
		rd_kafka_message_t *m = src->msgs[d->msg];
		SpDeadLetter letter = {0};

		letter.topic = src->topic;
		letter.partition = m->partition;
		letter.offset = m->offset;
		letter.key = m->key;
		letter.key_len = m->key_len;
		letter.payload = m->payload;
		letter.payload_len = m->len;
		letter.error = d->error;
		sp_write_dead_letter(src->name, &letter);
	}
}

static void
write_offsets(Source *src)
{
	static SPIPlanPtr plan = NULL;
	int			i;

	if (plan == NULL)
	{
		plan = SPI_prepare("UPDATE streamproc.source_offsets"
						   "   SET next_offset = $3, high_watermark = GREATEST($4, $3),"
						   "       rows_in = rows_in + $5, bytes_in = bytes_in + $6,"
						   "       dead_letters = dead_letters + $7,"
						   "       max_event_time = GREATEST(max_event_time, $8),"
						   "       last_message_at = pg_catalog.now()"
						   " WHERE source = $1 AND partition = $2 AND next_offset <= $9",
						   9, (Oid[]) {INT4OID, INT4OID, INT8OID, INT8OID, INT8OID,
						   INT8OID, INT8OID, TIMESTAMPTZOID, INT8OID});
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the offset update");
	}
	for (i = 0; i < src->nparts; i++)
	{
		Partition  *p = &src->parts[i];
		Datum		values[9];
		char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
		int64		lo = -1;
		int64		hi = -1;

		if (p->first_offset < 0)
			continue;
		rd_kafka_get_watermark_offsets(src->rk, src->topic, p->id, &lo, &hi);
		values[0] = Int32GetDatum(src->id);
		values[1] = Int32GetDatum(p->id);
		values[2] = Int64GetDatum(p->last_offset + 1);
		values[3] = Int64GetDatum(hi);
		values[4] = Int64GetDatum(p->rows);
		values[5] = Int64GetDatum(p->bytes);
		values[6] = Int64GetDatum(p->dead);
		values[7] = TimestampTzGetDatum(p->max_event_time);
		if (!p->has_event_time)
			nulls[7] = 'n';
		values[8] = Int64GetDatum(p->first_offset);
		if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not write streamproc.source_offsets");
		if (SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("the committed position of partition %d of source \"%s\" moved",
							p->id, src->name),
					 errdetail("Another process applied the partition, or the source was dropped.")));
		p->hwm_reported = Max(hi, p->last_offset + 1);
	}
}

/*
 * Apply the collected messages and commit them with their offsets.
 */
static void
apply_messages(Source *src)
{
	Rows		rows;
	List	   *dead = NIL;
	int			i;
	int			from;
	Relation	rel;
	SpSavedUser su;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "applying a batch");
	MemoryContextReset(src->batch_cxt);
	MemoryContextSwitchTo(src->batch_cxt);

	rel = table_open(src->stream, AccessShareLock);
	prepare_decoder(src, rel);
	table_close(rel, NoLock);

	for (i = 0; i < src->nparts; i++)
	{
		Partition  *p = &src->parts[i];

		p->first_offset = -1;
		p->rows = p->bytes = p->dead = 0;
		p->has_event_time = false;
	}
	for (i = 0; i < src->nmsgs; i++)
	{
		rd_kafka_message_t *m = src->msgs[i];
		Partition  *p = find_partition(src, m->partition);

		if (p == NULL)
			elog(ERROR, "message from partition %d, which this worker does not own", m->partition);
		if (p->first_offset < 0)
			p->first_offset = m->offset;
		p->last_offset = m->offset;
		p->bytes += m->len;
	}

	rows.n = 0;
	rows.min_event_time = DT_NOEND;
	rows.tuples = palloc(sizeof(HeapTuple) * src->nmsgs * SP_DECODE_MAX_ROWS);
	rows.weights = palloc(sizeof(int8) * src->nmsgs * SP_DECODE_MAX_ROWS);
	rows.msg = palloc(sizeof(int) * src->nmsgs * SP_DECODE_MAX_ROWS);
	for (from = 0; from < src->nmsgs;)
	{
		int			stopped = decode_messages(src, from, &rows, &dead);

		from = stopped < src->nmsgs ? stopped + 1 : stopped;
	}

	apply_or_bisect(src, &rows, 0, rows.n, true, &dead);

	sp_catalog_enter(&su);
	SPI_connect();
	if (dead != NIL)
		write_dead_letters(src, dead);
	write_offsets(src);
	SPI_finish();
	sp_catalog_leave(&su);

	MemoryContextSwitchTo(TopMemoryContext);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	/* committed: this is where the partitions now stand */
	for (i = 0; i < src->nparts; i++)
		if (src->parts[i].first_offset >= 0)
			src->parts[i].next_offset = src->parts[i].last_offset + 1;
	src->slot->rows_total += src->nmsgs;
	drop_batch_messages(src);
	/* messages flow: whatever went wrong before is over */
	kafka_recovered(src);
}

/* ------------------------------------------------------------------------
 * The consume loop
 * ------------------------------------------------------------------------
 */

/*
 * An error event for a partition: transient ones are only reported (the
 * consumer retries by itself); others end this assignment.
 */
static void
consumer_error(Source *src, rd_kafka_message_t *m)
{
	rd_kafka_resp_err_t err = m->err;
	char	   *msg = psprintf("Kafka partition %d of topic \"%s\": %s",
							   m->partition, src->topic, rd_kafka_message_errstr(m));

	rd_kafka_message_destroy(m);
	if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
		return;
	src->kafka_error = true;
	if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
		err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT || err == RD_KAFKA_RESP_ERR__TIMED_OUT ||
		err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
		err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
	{
		sp_worker_report_error(src->slot, msg);
		return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_EXCEPTION),
			 errmsg("%s", msg)));
}

/*
 * Wake the fetcher when the prefetch queue runs low.
 *
 * librdkafka (before 2.2's fetch.queue.backoff.ms) stops fetching a
 * partition while the consumer's queue holds queued.min.messages or
 * queued.max.messages.kbytes, and its broker thread then sleeps until the
 * next I/O or op on that broker, up to a second, even after we have drained
 * the queue.  A consumer slower than its broker would spend most of that
 * second idle.  Any request to the broker ends the sleep: a watermark query
 * for one of our partitions is cheap.  We
 * ask only when the queue holds less than a batch, i.e. the next batch
 * would otherwise wait for the fetcher, and rotate over the partitions so
 * that each partition leader's broker thread gets woken in turn.
 */
static void
wake_fetcher(Source *src)
{
	Partition  *p;
	int64		lo;
	int64		hi;
	TimestampTz now;

	if (!src->assigned || src->nparts == 0)
		return;
	if (rd_kafka_queue_length(src->queue) >= (size_t) src->batch_size)
	{
		src->queue_was_full = true;
		return;
	}
	/*
	 * The queue was full (the fetcher may be asleep), or a tenth of a second
	 * has passed (the byte limit may have stopped it, which the message
	 * count does not show).  Not at every call: each request queues behind
	 * the fetches on the broker connection.
	 */
	now = GetCurrentTimestamp();
	if (!src->queue_was_full && !TimestampDifferenceExceeds(src->last_wake, now, 100))
		return;
	src->queue_was_full = false;
	src->last_wake = now;
	p = &src->parts[src->wake_next++ % src->nparts];
	/*
	 * Timeout 0: the request is sent (and wakes the broker thread), but not
	 * waited for: the broker answers requests of a connection in order,
	 * after a fetch that may wait up to fetch.wait.max.ms for data.
	 */
	(void) rd_kafka_query_watermark_offsets(src->rk, src->topic, p->id, &lo, &hi, 0);
}

/*
 * Take one message (or error event) into the batch; false if it was an
 * error event, which is handled here.
 */
static bool
take_message(Source *src, rd_kafka_message_t *m)
{
	if (m->err)
	{
		consumer_error(src, m);
		return false;
	}
	src->msgs[src->nmsgs++] = m;
	return true;
}

/*
 * Collect up to batch_size messages: wait (up to 100 ms at a time) for the
 * first, then take whatever else has arrived until batch_timeout after the
 * first one.  A message is thus in a committed batch about batch_timeout
 * plus the time to apply after it reached us, whatever the input rate.
 */
static void
collect_batch(Source *src)
{
	TimestampTz first = 0;

	while (src->nmsgs == 0)
	{
		rd_kafka_message_t *m = rd_kafka_consume_queue(src->queue, 100);

		CHECK_FOR_INTERRUPTS();
		rd_kafka_poll(src->rk, 0);
		if (m == NULL)
			return;				/* nothing within 100 ms: tick and come back */
		if (take_message(src, m))
			first = GetCurrentTimestamp();
	}
	for (;;)
	{
		long		left = src->batch_timeout_ms -
			(long) ((GetCurrentTimestamp() - first) / 1000);
		ssize_t		got;
		ssize_t		i;
		rd_kafka_message_t **got_msgs = src->msgs + src->nmsgs;

		if (src->nmsgs >= src->batch_size)
			break;
		if (rd_kafka_queue_length(src->queue) >= (size_t) src->batch_size)
			src->queue_was_full = true;
		/* what is queued already, then (if time is left) what arrives */
		got = rd_kafka_consume_batch_queue(src->queue, (int) Max(Min(left, 200), 0),
										   got_msgs, src->batch_size - src->nmsgs);
		if (got < 0)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_EXCEPTION),
					 errmsg("could not consume from Kafka topic \"%s\": %s",
							src->topic, rd_kafka_err2str(rd_kafka_last_error()))));
		/* take_message appends at msgs[nmsgs]: move each one down in turn */
		for (i = 0; i < got; i++)
			(void) take_message(src, got_msgs[i]);
		CHECK_FOR_INTERRUPTS();
		rd_kafka_poll(src->rk, 0);
		if (got > 0)
			wake_fetcher(src);
		if (left <= 0)
			break;
	}
}

/* once a second: rates, high watermarks, health, new partitions */
static void
tick(Source *src)
{
	TimestampTz now = GetCurrentTimestamp();
	int			i;
	bool		in_xact = false;

	if (!sp_worker_rate_tick(&src->rate, src->slot, now))
		return;

	/* lag for streamproc.source_partitions while no batch writes it */
	for (i = 0; i < src->nparts; i++)
	{
		Oid			types[3] = {INT4OID, INT4OID, INT8OID};
		Datum		values[3];
		int64		lo = -1;
		int64		hi = -1;

		rd_kafka_get_watermark_offsets(src->rk, src->topic, src->parts[i].id, &lo, &hi);
		if (hi < 0 || hi == src->parts[i].hwm_reported)
			continue;
		if (!in_xact)
			sp_worker_xact_begin();
		in_xact = true;
		values[0] = Int32GetDatum(src->id);
		values[1] = Int32GetDatum(src->parts[i].id);
		values[2] = Int64GetDatum(hi);
		SPI_execute_with_args("UPDATE streamproc.source_offsets SET high_watermark = $3"
							  " WHERE source = $1 AND partition = $2",
							  3, types, values, NULL, false, 0);
		src->parts[i].hwm_reported = hi;
	}
	if (in_xact)
		sp_worker_xact_commit();

	/*
	 * After broker trouble: healthy again once the brokers answer for the
	 * topic and every partition of this worker has a leader.  A metadata
	 * request waits no longer than it is told to; a watermark query would
	 * not do here, since librdkafka (before 2.3) retries it for as long as
	 * the partition's broker is down, and the worker would hang, deaf to
	 * stop_source and to shutdown.
	 */
	if (src->kafka_error)
	{
		int			count;
		bool		ours_led;
		rd_kafka_resp_err_t terr;

		if (topic_metadata(src, 500, &count, &ours_led, &terr) == RD_KAFKA_RESP_ERR_NO_ERROR &&
			terr == RD_KAFKA_RESP_ERR_NO_ERROR && ours_led)
			kafka_recovered(src);
	}

	/* partitions added to the topic */
	if (TimestampDifferenceExceeds(src->last_metadata_check, now, 10000))
	{
		MemoryContext cxt = CurrentMemoryContext;
		volatile int count = -1;

		src->last_metadata_check = now;
		PG_TRY();
		{
			count = topic_partition_count(src, 1000);
		}
		PG_CATCH();
		{
			/* unreachable brokers: the consumer's own errors report it */
			MemoryContextSwitchTo(cxt);
			FlushErrorState();
		}
		PG_END_TRY();
		if (count >= 0 && count != src->topic_partitions)
		{
			ereport(LOG,
					(errmsg("streamproc source \"%s\": topic \"%s\" now has %d partitions",
							src->name, src->topic, count)));
			unassign(src);
			assign(src);
		}
	}
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* consume and apply until an error */
static void
consume(void *arg)
{
	Source	   *src = arg;

	if (src->rk == NULL)
		create_consumer(src);
	if (!src->assigned)
		assign(src);
	if (!src->kafka_error)
		sp_worker_report_error(src->slot, NULL);

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		rd_kafka_poll(src->rk, 0);
		collect_batch(src);
		if (src->nmsgs > 0)
			apply_messages(src);
		tick(src);
	}
}

/* after an error: start over from the committed offsets */
static void
start_over(void *arg)
{
	Source	   *src = arg;

	if (src->rk != NULL)
		unassign(src);
}

void
sp_kafka_source_main(Datum arg)
{
	SpSourceWorkerArgs args = sp_source_worker_start();
	Source	   *src = load_source(args.source_id, args.worker_index);

	if (src == NULL)
		proc_exit(0);
	src->slot = sp_source_worker_claim(src->name, src->id, src->index, true);
	current = src;
	sp_source_worker_loop(src->id, src->slot, src->cxt, consume, start_over, src);
}
