/*
 * raw_consume — the "limit": how fast a plain librdkafka consumer reads every
 * message of a topic, doing nothing with them but touching each payload byte.
 *
 *   raw_consume -b BROKERS -t TOPIC [-n EXPECTED_COUNT] [--timeout-ms 10000]
 *               [--eof] [-v] [-X librdkafka.property=value]...
 *
 * It asks for the topic's metadata, starts every partition at its beginning
 * with the legacy consumer API (rd_kafka_consume_start_queue onto one
 * rd_kafka_queue_new queue, read with rd_kafka_consume_batch_queue in batches
 * of up to 10000), and adds every payload up into a checksum (so no byte can
 * be skipped).  It stops when EXPECTED_COUNT messages were read, when no
 * message arrived for --timeout-ms milliseconds (default 10000), or, with
 * --eof, when every partition has reached its end.  Then it prints one line
 * to stdout:
 *
 *   messages=N bytes=B seconds=S msgs_per_sec=R
 *
 * bytes = payload bytes (keys and headers excluded).  Timing starts when the
 * first message arrives (the return of the first batch holding one), so
 * connecting, metadata and the first fetch round trip are not counted, and
 * ends when the batch holding the last message counted has been checksummed
 * (not when the idle timeout ran out); msgs_per_sec = N / S.
 *
 * -v also prints to stderr, per partition, the messages read, the first and
 * last offset read and the broker's low/high watermarks (low > 0 means the
 * broker dropped the start of the log: the mock broker keeps only ~5 MiB per
 * partition), plus the checksum.  Consumer settings: fetch.wait.max.ms=10,
 * queued.max.messages.kbytes=65536, fetch.message.max.bytes=4194304,
 * no group and no offset commits; -X sets any other property (applied last).
 *
 * Exit status: 0, or 1 if -n was given and fewer messages arrived (or on an
 * error), 2 for bad usage.
 */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#define BATCH		10000
#define POLL_MS		100

static volatile sig_atomic_t stop = 0;

static void
on_signal(int sig)
{
	(void) sig;
	stop = 1;
}

typedef struct
{
	uint64_t	count;
	int64_t		first_offset;
	int64_t		last_offset;
	int			eof;
} PartStats;

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* add the payload up 8 bytes at a time, then the tail byte by byte */
static uint64_t
checksum(const unsigned char *p, size_t len, uint64_t sum)
{
	size_t		i = 0;

	for (; i + 8 <= len; i += 8)
	{
		uint64_t	w;

		memcpy(&w, p + i, 8);
		sum += w;
	}
	for (; i < len; i++)
		sum += (uint64_t) p[i] << (8 * (i & 7));
	return sum;
}

static int
set_conf(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		errstr[512];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		fprintf(stderr, "raw_consume: %s=%s: %s\n", name, value, errstr);
		return -1;
	}
	return 0;
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: raw_consume -b BROKERS -t TOPIC [-n EXPECTED_COUNT] [--timeout-ms MS]\n"
			"                   [--eof] [-v] [-X property=value]...\n");
	exit(2);
}

static int64_t
parse_i64(const char *opt, const char *s)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < 0)
	{
		fprintf(stderr, "raw_consume: %s wants a non-negative integer, not \"%s\"\n", opt, s);
		exit(2);
	}
	return (int64_t) v;
}

enum
{
	OPT_TIMEOUT = 256, OPT_EOF
};

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"brokers", required_argument, NULL, 'b'},
		{"topic", required_argument, NULL, 't'},
		{"count", required_argument, NULL, 'n'},
		{"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
		{"eof", no_argument, NULL, OPT_EOF},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	const char *brokers = NULL;
	const char *topic = NULL;
	const char *xprops[64];
	int			nxprops = 0;
	int64_t		expected = 0;
	int64_t		timeout_ms = 10000;
	int			stop_at_eof = 0;
	int			verbose = 0;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	rd_kafka_queue_t *rkqu;
	const rd_kafka_metadata_t *md;
	rd_kafka_resp_err_t err;
	rd_kafka_message_t **msgs;
	PartStats  *ps;
	char		errstr[512];
	int32_t		nparts, p;
	int			neof = 0;
	uint64_t	count = 0, bytes = 0, sum = 0, errors = 0;
	int64_t		t_first = -1, t_last = -1, t_idle;
	double		secs;
	int			opt, k, status = 0;

	while ((opt = getopt_long(argc, argv, "b:t:n:vX:h", longopts, NULL)) != -1)
	{
		switch (opt)
		{
			case 'b':
				brokers = optarg;
				break;
			case 't':
				topic = optarg;
				break;
			case 'n':
				expected = parse_i64("-n", optarg);
				break;
			case OPT_TIMEOUT:
				timeout_ms = parse_i64("--timeout-ms", optarg);
				break;
			case OPT_EOF:
				stop_at_eof = 1;
				break;
			case 'v':
				verbose = 1;
				break;
			case 'X':
				if (nxprops == (int) (sizeof(xprops) / sizeof(xprops[0])) || !strchr(optarg, '='))
					usage();
				xprops[nxprops++] = optarg;
				break;
			default:
				usage();
		}
	}
	if (optind != argc || !brokers || !topic)
		usage();

	conf = rd_kafka_conf_new();
	if (set_conf(conf, "bootstrap.servers", brokers) ||
		set_conf(conf, "fetch.wait.max.ms", "10") ||
		set_conf(conf, "queued.max.messages.kbytes", "65536") ||
		set_conf(conf, "fetch.message.max.bytes", "4194304") ||
		set_conf(conf, "enable.auto.commit", "false") ||
		set_conf(conf, "enable.auto.offset.store", "false") ||
		set_conf(conf, "enable.partition.eof", stop_at_eof ? "true" : "false"))
		return 2;
	for (k = 0; k < nxprops; k++)
	{
		char		name[256];
		const char *eq = strchr(xprops[k], '=');
		size_t		len = (size_t) (eq - xprops[k]);

		if (len >= sizeof(name))
			usage();
		memcpy(name, xprops[k], len);
		name[len] = '\0';
		if (set_conf(conf, name, eq + 1))
			return 2;
	}
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		fprintf(stderr, "raw_consume: %s\n", errstr);
		return 1;
	}
	rkt = rd_kafka_topic_new(rk, topic, NULL);

	err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
	if (err)
	{
		fprintf(stderr, "raw_consume: metadata for %s from %s: %s\n", topic, brokers, rd_kafka_err2str(err));
		return 1;
	}
	if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt < 1)
	{
		fprintf(stderr, "raw_consume: topic %s: %s\n", topic,
				md->topic_cnt == 1 && md->topics[0].err ? rd_kafka_err2str(md->topics[0].err) : "no partitions");
		return 1;
	}
	nparts = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);

	ps = calloc((size_t) nparts, sizeof(PartStats));
	msgs = malloc(BATCH * sizeof(*msgs));
	if (!ps || !msgs)
	{
		fprintf(stderr, "raw_consume: out of memory\n");
		return 1;
	}
	rkqu = rd_kafka_queue_new(rk);
	for (p = 0; p < nparts; p++)
	{
		ps[p].first_offset = -1;
		ps[p].last_offset = -1;
		if (rd_kafka_consume_start_queue(rkt, p, RD_KAFKA_OFFSET_BEGINNING, rkqu) == -1)
		{
			fprintf(stderr, "raw_consume: start partition %d: %s\n",
					(int) p, rd_kafka_err2str(rd_kafka_last_error()));
			return 1;
		}
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	t_idle = mono_us();
	while (!stop)
	{
		ssize_t		n = rd_kafka_consume_batch_queue(rkqu, POLL_MS, msgs, BATCH);
		int64_t		now = mono_us();
		ssize_t		j;
		uint64_t	before = count;

		if (n < 0)
		{
			fprintf(stderr, "raw_consume: consume: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
			status = 1;
			break;
		}
		for (j = 0; j < n; j++)
		{
			rd_kafka_message_t *m = msgs[j];

			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			{
				if (m->partition >= 0 && m->partition < nparts && !ps[m->partition].eof)
				{
					ps[m->partition].eof = 1;
					neof++;
				}
			}
			else if (m->err)
			{
				if (errors++ < 10)
					fprintf(stderr, "raw_consume: partition %d: %s\n",
							(int) m->partition, rd_kafka_message_errstr(m));
			}
			else
			{
				count++;
				bytes += m->len;
				sum = checksum(m->payload, m->len, sum);
				if (m->partition >= 0 && m->partition < nparts)
				{
					PartStats  *s = &ps[m->partition];

					if (s->first_offset < 0)
						s->first_offset = m->offset;
					s->last_offset = m->offset;
					s->count++;
					if (s->eof)
					{
						s->eof = 0; /* more arrived after its end */
						neof--;
					}
				}
			}
			rd_kafka_message_destroy(m);
		}
		if (count > before)
		{
			if (t_first < 0)
				t_first = now;
			t_last = mono_us(); /* this batch's bytes are all touched now */
			t_idle = now;
		}
		if (expected > 0 && count >= (uint64_t) expected)
			break;
		if (stop_at_eof && neof == nparts)
			break;
		if (now - t_idle >= timeout_ms * 1000)
		{
			if (expected > 0)
				fprintf(stderr, "raw_consume: no message for %" PRId64 " ms; stopping\n", timeout_ms);
			break;
		}
	}

	secs = t_first >= 0 ? (double) (t_last - t_first) / 1e6 : 0.0;
	printf("messages=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f msgs_per_sec=%.0f\n",
		   count, bytes, secs, secs > 0 ? (double) count / secs : 0.0);
	fflush(stdout);

	if (verbose)
	{
		for (p = 0; p < nparts; p++)
		{
			int64_t		lo = -1, hi = -1;

			rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 5000);
			fprintf(stderr, "partition %3d: messages=%" PRIu64 " offsets=%" PRId64 "..%" PRId64
					" watermarks=%" PRId64 "..%" PRId64 "\n",
					(int) p, ps[p].count, ps[p].first_offset, ps[p].last_offset, lo, hi);
		}
		fprintf(stderr, "checksum=%016" PRIx64 " errors=%" PRIu64 "\n", sum, errors);
	}
	if (expected > 0 && count < (uint64_t) expected)
		status = 1;

	for (p = 0; p < nparts; p++)
		rd_kafka_consume_stop(rkt, p);
	rd_kafka_queue_destroy(rkqu);
	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);
	free(msgs);
	free(ps);
	return status;
}
