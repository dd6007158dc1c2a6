/*
 * kafka_produce.c — streamproc.kafka_produce(): send one message to Kafka.
 *
 * Handy for tests and for users.  The producer is created in the backend on
 * first use (never in _PG_init: librdkafka's threads do not survive fork)
 * and kept for later calls to the same brokers.  Each call waits for the
 * delivery report, so an error is reported by the call that caused it.
 * librdkafka's own threads never call elog: its log callback is off and the
 * delivery report runs in this backend, inside rd_kafka_poll().
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

/* delivery outcome of one message */
typedef struct Delivery
{
	bool		done;
	rd_kafka_resp_err_t err;
	int32		partition;
	int64		offset;
} Delivery;

static rd_kafka_t *producer = NULL;
static char *producer_brokers = NULL;

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	Delivery   *d = (Delivery *) msg->_private;

	d->done = true;
	d->err = msg->err;
	d->partition = msg->partition;
	d->offset = msg->offset;
}

static rd_kafka_t *
get_producer(const char *brokers)
{
	rd_kafka_conf_t *conf;
	char		errstr[512];

	if (producer != NULL && strcmp(producer_brokers, brokers) == 0)
		return producer;
	if (producer != NULL)
	{
		rd_kafka_flush(producer, 1000);
		rd_kafka_destroy(producer);
		producer = NULL;
		pfree(producer_brokers);
	}

	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "message.timeout.ms", "10000", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "linger.ms", "0", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Kafka producer setting: %s", errstr)));
	}
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (producer == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not create a Kafka producer: %s", errstr)));
	producer_brokers = MemoryContextStrdup(TopMemoryContext, brokers);
	return producer;
}

PG_FUNCTION_INFO_V1(sp_kafka_produce);

/*
 * streamproc.kafka_produce(brokers text, topic text, value text,
 *                          key text, partition int) RETURNS bigint
 * Returns the offset of the message.
 */
Datum
sp_kafka_produce(PG_FUNCTION_ARGS)
{
	char	   *brokers;
	char	   *topic;
	text	   *value = PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2);
	text	   *key = PG_ARGISNULL(3) ? NULL : PG_GETARG_TEXT_PP(3);
	int32		partition = PG_ARGISNULL(4) ? RD_KAFKA_PARTITION_UA : PG_GETARG_INT32(4);
	rd_kafka_t *rk;
	Delivery	d = {false, RD_KAFKA_RESP_ERR_NO_ERROR, -1, -1};
	rd_kafka_resp_err_t err;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("brokers and topic must not be NULL")));
	if (!PG_ARGISNULL(4) && partition < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("partition must not be negative")));
	brokers = text_to_cstring(PG_GETARG_TEXT_PP(0));
	topic = text_to_cstring(PG_GETARG_TEXT_PP(1));
	rk = get_producer(brokers);

	err = rd_kafka_producev(rk,
							RD_KAFKA_V_TOPIC(topic),
							RD_KAFKA_V_PARTITION(partition),
							RD_KAFKA_V_VALUE(value ? VARDATA_ANY(value) : NULL,
											 value ? VARSIZE_ANY_EXHDR(value) : 0),
							RD_KAFKA_V_KEY(key ? VARDATA_ANY(key) : NULL,
										   key ? VARSIZE_ANY_EXHDR(key) : 0),
							RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
							RD_KAFKA_V_OPAQUE(&d),
							RD_KAFKA_V_END);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_EXCEPTION),
				 errmsg("could not produce to Kafka topic \"%s\": %s", topic, rd_kafka_err2str(err))));

	/* wait for the delivery report, interruptibly */
	while (!d.done)
	{
		PG_TRY();
		{
			CHECK_FOR_INTERRUPTS();
		}
		PG_CATCH();
		{
			/* the report must not land in a stack frame that is gone */
			rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
			while (!d.done)
				rd_kafka_poll(rk, 100);
			PG_RE_THROW();
		}
		PG_END_TRY();
		rd_kafka_poll(rk, 50);
	}
	if (d.err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_EXCEPTION),
				 errmsg("could not produce to Kafka topic \"%s\": %s", topic, rd_kafka_err2str(d.err)),
				 errhint("Check that the brokers \"%s\" are reachable and the topic exists.", brokers)));
	PG_RETURN_INT64(d.offset);
}
