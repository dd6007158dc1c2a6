/*
 * bidgen — a Nexmark-style bid generator that produces to a Kafka topic
 * (or prints the bids, for COPY benchmarks).
 *
 *   bidgen -b BROKERS -t TOPIC [-n COUNT] [-r RATE_PER_SEC] [-p PARTITIONS]
 *          [--auctions N] [--bidders N] [--start 'ISO timestamp'] [--step-ms MS]
 *          [--late-every N] [--seed N] [--first N] [--compression CODEC]
 *          [--stamp] [--stamp-log FILE] [-X librdkafka.property=value]...
 *   bidgen --print [--csv] [-n COUNT] [-r RATE_PER_SEC] [same data options]
 *
 * Each bid is one JSON object of 170-200 bytes (185 on average; 31 more with
 * --stamp), for example
 *
 *   {"auction":1513,"bidder":7697,"price":183,"channel":"channel-7922",
 *    "url":"https://www.nexmark.com/a3c9/item.htm?channel_id=1314",
 *    "date_time":"2026-11-22T10:00:00.124Z","extra":"0d"}
 *
 * (one line, no spaces), keyed by the auction id in decimal.  The values
 * follow bench/copy_bench.sh: auction = 1000 + uniform [0, --auctions)
 * (default 1000), bidder = 1000 + uniform [0, --bidders) (default 10000),
 * price = round(10^(6u) * 100) (Nexmark's distribution, in cents), channel one
 * of Google/Facebook/Baidu/Apple 60% of the time else "channel-N", extra a hex
 * string of 1 to 12 characters (the URL and extra are shorter than there, to
 * keep the JSON under 200 bytes).  Bid i draws from its own xorshift64*
 * PRNG, seeded from --seed (default 1) and i by splitmix64, so the same
 * options give the same bids in every mode (produce, --print, --csv, with or
 * without --stamp or -r).  --first N starts at bid N of that sequence:
 * `--first 1000 -n 500` sends bids 1000..1499, exactly as the end of
 * `-n 1500` would, so a topic can be filled in several runs (and skipping
 * costs nothing: no bid depends on the ones before it).
 *
 * Event time (date_time, UTC, millisecond precision) starts at --start
 * (default: now; ISO 8601 such as '2026-11-22T10:00:00Z', '2026-11-22
 * 10:00:00.5', or with an offset '+02:00'; without a zone it is UTC) and
 * advances by --step-ms per bid (default 1; fractions allowed, 0 freezes it).
 * --late-every N: bids N, 2N, 3N, ... carry an event time 60 s before their
 * turn (late data).  --stamp adds "produced_us": the wall-clock time the bid
 * was generated, in microseconds since the epoch, for freshness measurements.
 * --stamp-log FILE writes one line per delivered bid, from its delivery
 * report: "PARTITION<TAB>OFFSET<TAB>PRODUCED_US<TAB>ACKED_US", produced_us
 * being the same wall-clock time as --stamp's (taken when the bid is handed to
 * librdkafka, after any -r wait) and acked_us the wall-clock time the delivery
 * report was served (the broker had stored the bid by then; reports are
 * served at least every ms while -r waits, else every 1024 bids).  Bids whose
 * delivery failed are not written.  bench/kafka_bench.sh's freshness
 * measurement uses it to know when each message was produced and where it
 * landed.
 *
 * Producing: -p P sets each bid's partition to auction % P explicitly (the
 * topic must have at least P partitions; the mock broker keeps only ~5 MiB per
 * partition, so the spread matters); without -p librdkafka's partitioner
 * places the keys.  -r RATE produces about RATE bids per second (a token
 * bucket refilled every ~1 ms, bursts of at most 10 ms worth); without it,
 * as fast as possible.  -n COUNT (default 1000000; 0 = until SIGINT/SIGTERM).
 * Producer settings: linger.ms=5, batch.num.messages=10000,
 * compression.codec=--compression (default lz4; none, gzip, snappy, lz4, zstd),
 * queue.buffering.max.messages=1000000, queue.buffering.max.kbytes=1048576;
 * -X sets any other librdkafka property (applied last).
 *
 * At the end it flushes (up to 60 s) and reports to stderr
 *
 *   bidgen: sent=N delivered=D failed=F seconds=S msgs_per_sec=R avg_bytes=A
 *
 * sent = bids handed to librdkafka, failed = bids whose delivery report was an
 * error (or still undelivered after the flush); seconds = from the first bid to
 * the end of the flush, msgs_per_sec = delivered / seconds.  The exit status is
 * 0 only if every bid was delivered.
 *
 * --print writes the bids to stdout, one JSON object per line, instead of
 * producing; with --csv as CSV lines auction,bidder,price,channel,url,
 * date_time,extra (plus produced_us at the end with --stamp), which COPY ...
 * WITH (FORMAT csv) reads into the bids columns of bench/copy_bench.sh.
 * -r works there too (stdout is flushed whenever the generator waits).
 */
#define _DEFAULT_SOURCE			/* timegm */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#define LATE_US			(60 * INT64_C(1000000))
#define FLUSH_TIMEOUT_MS 60000
#define MAX_LINE		512

static volatile sig_atomic_t stop = 0;

static void
on_signal(int sig)
{
	(void) sig;
	stop = 1;
}

/* ------------------------------------------------------------------ PRNG */

/* output i (from 0) of splitmix64 started at x: any one of them in O(1) */
static uint64_t
splitmix64_at(uint64_t x, uint64_t i)
{
	uint64_t	z = x + (i + 1) * UINT64_C(0x9E3779B97F4A7C15);

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* xorshift64* */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

/* uniform in [0, n) (the modulo bias is irrelevant for these n) */
static uint64_t
rnd_below(uint64_t *s, uint64_t n)
{
	return (rnd(s) >> 11) % n;
}

/* uniform in [0, 1) */
static double
rnd_unit(uint64_t *s)
{
	return (double) (rnd(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* ------------------------------------------------------------------ bids */

typedef struct
{
	uint64_t	auction;
	uint64_t	bidder;
	uint64_t	price;
	const char *channel;		/* a hot channel, or NULL: "channel-N" */
	unsigned	channel_id;
	char		url_path[5];	/* "https://www.nexmark.com/<path>/item.htm?..." */
	unsigned	url_channel;
	int64_t		event_us;		/* event time, microseconds since the epoch */
	char		extra[16];
} Bid;

typedef struct
{
	uint64_t	auctions;
	uint64_t	bidders;
	int64_t		start_us;
	int64_t		step_us;
	uint64_t	late_every;
} GenOpts;

static const char hot_channels[4][9] = {"Google", "Facebook", "Baidu", "Apple"};
static const char hexdigits[] = "0123456789abcdef";

static void
hex_fill(char *dst, int len, uint64_t *s)
{
	uint64_t	r = 0;
	int			i;

	for (i = 0; i < len; i++)
	{
		if (i % 16 == 0)
			r = rnd(s);
		dst[i] = hexdigits[r & 15];
		r >>= 4;
	}
	dst[len] = '\0';
}

/*
 * Bid number i (0-based).  Its draws come from a xorshift64* state of its
 * own, output i of splitmix64 started at base (itself derived from --seed),
 * so a bid depends only on the seed, i and the options that shape it, and no
 * bid has to be made to make a later one.
 */
static void
gen_bid(uint64_t base, uint64_t i, const GenOpts *o, Bid *b)
{
	uint64_t	state = splitmix64_at(base, i);
	uint64_t   *s = &state;
	double		u;

	if (state == 0)
		state = 1;				/* xorshift's one bad state */
	b->auction = 1000 + rnd_below(s, o->auctions);
	b->bidder = 1000 + rnd_below(s, o->bidders);
	u = rnd_unit(s);
	b->price = (uint64_t) llround(pow(10.0, u * 6.0) * 100.0);
	u = rnd_unit(s);
	b->channel = u < 0.6 ? hot_channels[rnd_below(s, 4)] : NULL;
	b->channel_id = (unsigned) rnd_below(s, 10000);
	hex_fill(b->url_path, 4, s);
	b->url_channel = (unsigned) rnd_below(s, 10000);
	hex_fill(b->extra, 1 + (int) (i % 12), s);
	b->event_us = o->start_us + (int64_t) i * o->step_us;
	if (o->late_every > 0 && (i + 1) % o->late_every == 0)
		b->event_us -= LATE_US;
}

/* a tiny appender: formatting by hand is several times faster than snprintf */
typedef struct
{
	char	   *p;
} Out;

static void
put_str(Out *o, const char *s)
{
	while (*s)
		*o->p++ = *s++;
}

static void
put_u64(Out *o, uint64_t v)
{
	char		tmp[24];
	int			n = 0;

	do
	{
		tmp[n++] = (char) ('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n > 0)
		*o->p++ = tmp[--n];
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ"; the part up to the seconds is cached */
static void
put_time(Out *o, int64_t us)
{
	static int64_t cached_sec = INT64_MIN;
	static char cached[32];
	int64_t		sec = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
	int			ms = (int) ((us - sec * 1000000) / 1000);

	if (sec != cached_sec)
	{
		time_t		t = (time_t) sec;
		struct tm	tm;

		gmtime_r(&t, &tm);
		strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
		cached_sec = sec;
	}
	put_str(o, cached);
	*o->p++ = '.';
	*o->p++ = (char) ('0' + ms / 100);
	*o->p++ = (char) ('0' + ms / 10 % 10);
	*o->p++ = (char) ('0' + ms % 10);
	*o->p++ = 'Z';
}

static void
put_channel(Out *o, const Bid *b)
{
	if (b->channel)
		put_str(o, b->channel);
	else
	{
		put_str(o, "channel-");
		put_u64(o, b->channel_id);
	}
}

static void
put_url(Out *o, const Bid *b)
{
	put_str(o, "https://www.nexmark.com/");
	put_str(o, b->url_path);
	put_str(o, "/item.htm?channel_id=");
	put_u64(o, b->url_channel);
}

/* JSON object, no newline; returns its length.  stamp_us < 0: no produced_us */
static size_t
format_json(char *buf, const Bid *b, int64_t stamp_us)
{
	Out			o = {buf};

	put_str(&o, "{\"auction\":");
	put_u64(&o, b->auction);
	put_str(&o, ",\"bidder\":");
	put_u64(&o, b->bidder);
	put_str(&o, ",\"price\":");
	put_u64(&o, b->price);
	put_str(&o, ",\"channel\":\"");
	put_channel(&o, b);
	put_str(&o, "\",\"url\":\"");
	put_url(&o, b);
	put_str(&o, "\",\"date_time\":\"");
	put_time(&o, b->event_us);
	put_str(&o, "\",\"extra\":\"");
	put_str(&o, b->extra);
	*o.p++ = '"';
	if (stamp_us >= 0)
	{
		put_str(&o, ",\"produced_us\":");
		put_u64(&o, (uint64_t) stamp_us);
	}
	*o.p++ = '}';
	return (size_t) (o.p - buf);
}

/* CSV line, no newline (no field ever needs quoting) */
static size_t
format_csv(char *buf, const Bid *b, int64_t stamp_us)
{
	Out			o = {buf};

	put_u64(&o, b->auction);
	*o.p++ = ',';
	put_u64(&o, b->bidder);
	*o.p++ = ',';
	put_u64(&o, b->price);
	*o.p++ = ',';
	put_channel(&o, b);
	*o.p++ = ',';
	put_url(&o, b);
	*o.p++ = ',';
	put_time(&o, b->event_us);
	*o.p++ = ',';
	put_str(&o, b->extra);
	if (stamp_us >= 0)
	{
		*o.p++ = ',';
		put_u64(&o, (uint64_t) stamp_us);
	}
	return (size_t) (o.p - buf);
}

/* ------------------------------------------------------------------ time */

static int64_t
clock_us(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

	nanosleep(&ts, NULL);
}

/*
 * ISO 8601 / PostgreSQL style: YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|(+|-)HH[[:]MM]].
 * No zone means UTC.  Returns 0 and sets *us, or -1.
 */
static int
parse_iso(const char *s, int64_t *us)
{
	struct tm	tm;
	int			y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
	int64_t		frac = 0, scale = 100000;
	time_t		t;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
		return -1;
	s += n;
	if (*s == 'T' || *s == 't' || *s == ' ')
	{
		s++;
		if (sscanf(s, "%2d:%2d%n", &h, &mi, &n) != 2)
			return -1;
		s += n;
		if (*s == ':')
		{
			s++;
			if (sscanf(s, "%2d%n", &sec, &n) != 1)
				return -1;
			s += n;
			if (*s == '.' || *s == ',')
			{
				for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10)
					frac += scale > 0 ? (*s - '0') * scale : 0;
			}
		}
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	*us = (int64_t) t * 1000000 + frac;

	while (*s == ' ')
		s++;
	if (*s == 'Z' || *s == 'z')
		s++;
	else if (*s == '+' || *s == '-')
	{
		int			sign = *s == '-' ? -1 : 1;
		int			oh = 0, om = 0;

		s++;
		if (sscanf(s, "%2d%n", &oh, &n) != 1)
			return -1;
		s += n;
		if (*s == ':')
			s++;
		if (*s >= '0' && *s <= '9')
		{
			if (sscanf(s, "%2d%n", &om, &n) != 1)
				return -1;
			s += n;
		}
		/* local = UTC + offset, so UTC = local - offset */
		*us -= sign * ((int64_t) oh * 3600 + om * 60) * 1000000;
	}
	return *s == '\0' ? 0 : -1;
}

/* --------------------------------------------------------- rate limiting */

typedef struct
{
	double		rate;			/* per second; 0 = unlimited */
	double		tokens;
	double		burst;
	int64_t		last_us;
} Bucket;

static void
bucket_init(Bucket *tb, double rate)
{
	tb->rate = rate;
	tb->burst = rate / 100.0 > 1.0 ? rate / 100.0 : 1.0;	/* 10 ms worth */
	tb->tokens = 1.0;
	tb->last_us = clock_us(CLOCK_MONOTONIC);
}

/* true if one more bid may go now; otherwise the caller waits ~1 ms */
static int
bucket_take(Bucket *tb)
{
	if (tb->rate <= 0)
		return 1;
	if (tb->tokens < 1.0)
	{
		int64_t		now = clock_us(CLOCK_MONOTONIC);

		tb->tokens += (double) (now - tb->last_us) * tb->rate / 1e6;
		tb->last_us = now;
		if (tb->tokens > tb->burst)
			tb->tokens = tb->burst;
		if (tb->tokens < 1.0)
			return 0;
	}
	tb->tokens -= 1.0;
	return 1;
}

/* ------------------------------------------------------------------ Kafka */

typedef struct
{
	uint64_t	delivered;
	uint64_t	failed;
	rd_kafka_resp_err_t first_err;
	int			fatal;
	FILE	   *stamp_log;		/* --stamp-log, or NULL */
	int			log_failed;
} Stats;

static void
dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	Stats	   *st = opaque;

	(void) rk;
	if (m->err)
	{
		if (st->failed++ == 0)
		{
			st->first_err = m->err;
			fprintf(stderr, "bidgen: delivery failed: %s\n", rd_kafka_err2str(m->err));
		}
	}
	else
	{
		st->delivered++;
		/* delivery reports are served on the thread that calls rd_kafka_poll: ours */
		if (st->stamp_log &&
			fprintf(st->stamp_log, "%" PRId32 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\n",
					m->partition, (int64_t) m->offset, (int64_t) (intptr_t) m->_private,
					clock_us(CLOCK_REALTIME)) < 0)
			st->log_failed = 1;
	}
}

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	Stats	   *st = opaque;

	(void) rk;
	fprintf(stderr, "bidgen: kafka error: %s: %s\n",
			rd_kafka_err2name((rd_kafka_resp_err_t) err), reason);
	if (err == RD_KAFKA_RESP_ERR__FATAL)
		st->fatal = 1;
}

static int
set_conf(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		errstr[512];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		fprintf(stderr, "bidgen: %s=%s: %s\n", name, value, errstr);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ main */

static void
usage(void)
{
	fprintf(stderr,
			"usage: bidgen -b BROKERS -t TOPIC [-n COUNT] [-r RATE_PER_SEC] [-p PARTITIONS]\n"
			"              [--auctions N] [--bidders N] [--start ISO] [--step-ms MS]\n"
			"              [--late-every N] [--seed N] [--first N] [--compression CODEC]\n"
			"              [--stamp] [--stamp-log FILE] [-X property=value]...\n"
			"       bidgen --print [--csv] [-n COUNT] [-r RATE_PER_SEC] [data options]\n");
	exit(2);
}

static uint64_t
parse_u64(const char *opt, const char *s, int allow_zero)
{
	char	   *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end != '\0' || *s == '-' || (!allow_zero && v == 0))
	{
		fprintf(stderr, "bidgen: %s wants a %s integer, not \"%s\"\n",
				opt, allow_zero ? "non-negative" : "positive", s);
		exit(2);
	}
	return (uint64_t) v;
}

static double
parse_double(const char *opt, const char *s)
{
	char	   *end;
	double		v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !(v >= 0) || isinf(v))
	{
		fprintf(stderr, "bidgen: %s wants a non-negative number, not \"%s\"\n", opt, s);
		exit(2);
	}
	return v;
}

enum
{
	OPT_AUCTIONS = 256, OPT_BIDDERS, OPT_START, OPT_STEP, OPT_LATE, OPT_SEED,
	OPT_COMPRESSION, OPT_PRINT, OPT_CSV, OPT_STAMP, OPT_STAMP_LOG, OPT_FIRST
};

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"brokers", required_argument, NULL, 'b'},
		{"topic", required_argument, NULL, 't'},
		{"count", required_argument, NULL, 'n'},
		{"rate", required_argument, NULL, 'r'},
		{"partitions", required_argument, NULL, 'p'},
		{"auctions", required_argument, NULL, OPT_AUCTIONS},
		{"bidders", required_argument, NULL, OPT_BIDDERS},
		{"start", required_argument, NULL, OPT_START},
		{"step-ms", required_argument, NULL, OPT_STEP},
		{"late-every", required_argument, NULL, OPT_LATE},
		{"seed", required_argument, NULL, OPT_SEED},
		{"compression", required_argument, NULL, OPT_COMPRESSION},
		{"print", no_argument, NULL, OPT_PRINT},
		{"csv", no_argument, NULL, OPT_CSV},
		{"stamp", no_argument, NULL, OPT_STAMP},
		{"stamp-log", required_argument, NULL, OPT_STAMP_LOG},
		{"first", required_argument, NULL, OPT_FIRST},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	const char *brokers = NULL;
	const char *topic = NULL;
	const char *compression = "lz4";
	const char *stamp_log = NULL;
	const char *xprops[64];
	int			nxprops = 0;
	uint64_t	count = 1000000;
	double		rate = 0;
	int			partitions = 0;
	uint64_t	seed = 1;
	uint64_t	base;
	uint64_t	first = 0;
	int			print = 0, csv = 0, stamp = 0;
	GenOpts		g = {1000, 10000, INT64_MIN, 1000, 0};
	size_t		(*format) (char *buf, const Bid *b, int64_t stamp_us);
	Bucket		tb;
	Stats		st;
	rd_kafka_t *rk = NULL;
	rd_kafka_topic_t *rkt = NULL;
	char		buf[MAX_LINE];
	uint64_t	i;
	uint64_t	sent = 0, bytes = 0, undelivered = 0;
	int64_t		t0, t1;
	double		secs;
	int			opt;
	int			failed_hard = 0;

	while ((opt = getopt_long(argc, argv, "b:t:n:r:p:X:h", longopts, NULL)) != -1)
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
				count = parse_u64("-n", optarg, 1);
				break;
			case 'r':
				rate = parse_double("-r", optarg);
				break;
			case 'p':
				partitions = (int) parse_u64("-p", optarg, 0);
				break;
			case 'X':
				if (nxprops == (int) (sizeof(xprops) / sizeof(xprops[0])) || !strchr(optarg, '='))
					usage();
				xprops[nxprops++] = optarg;
				break;
			case OPT_AUCTIONS:
				g.auctions = parse_u64("--auctions", optarg, 0);
				break;
			case OPT_BIDDERS:
				g.bidders = parse_u64("--bidders", optarg, 0);
				break;
			case OPT_START:
				if (parse_iso(optarg, &g.start_us) != 0)
				{
					fprintf(stderr, "bidgen: --start: cannot read \"%s\" (want e.g. 2026-11-22T10:00:00Z)\n", optarg);
					return 2;
				}
				break;
			case OPT_STEP:
				g.step_us = llround(parse_double("--step-ms", optarg) * 1000.0);
				break;
			case OPT_LATE:
				g.late_every = parse_u64("--late-every", optarg, 0);
				break;
			case OPT_SEED:
				seed = parse_u64("--seed", optarg, 1);
				break;
			case OPT_COMPRESSION:
				compression = optarg;
				break;
			case OPT_PRINT:
				print = 1;
				break;
			case OPT_CSV:
				csv = 1;
				break;
			case OPT_STAMP:
				stamp = 1;
				break;
			case OPT_STAMP_LOG:
				stamp_log = optarg;
				break;
			case OPT_FIRST:
				first = parse_u64("--first", optarg, 1);
				break;
			default:
				usage();
		}
	}
	if (optind != argc || (csv && !print) || (!print && (!brokers || !topic)) ||
		(stamp_log && print))
		usage();
	if (g.start_us == INT64_MIN)
		g.start_us = clock_us(CLOCK_REALTIME) / 1000 * 1000;	/* now, whole ms */
	base = splitmix64_at(seed, 0);
	format = csv ? format_csv : format_json;
	memset(&st, 0, sizeof(st));
	if (stamp_log)
	{
		static char lbuf[1 << 20];

		st.stamp_log = fopen(stamp_log, "w");
		if (st.stamp_log == NULL)
		{
			fprintf(stderr, "bidgen: --stamp-log %s: %s\n", stamp_log, strerror(errno));
			return 1;
		}
		setvbuf(st.stamp_log, lbuf, _IOFBF, sizeof(lbuf));
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	if (!print)
	{
		rd_kafka_conf_t *conf = rd_kafka_conf_new();
		char		errstr[512];
		const rd_kafka_metadata_t *md;
		rd_kafka_resp_err_t err;
		int			k;

		if (set_conf(conf, "bootstrap.servers", brokers) ||
			set_conf(conf, "linger.ms", "5") ||
			set_conf(conf, "batch.num.messages", "10000") ||
			set_conf(conf, "compression.codec", compression) ||
			set_conf(conf, "queue.buffering.max.messages", "1000000") ||
			set_conf(conf, "queue.buffering.max.kbytes", "1048576"))
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
		rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
		rd_kafka_conf_set_error_cb(conf, error_cb);
		rd_kafka_conf_set_opaque(conf, &st);
		rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
		if (rk == NULL)
		{
			fprintf(stderr, "bidgen: %s\n", errstr);
			return 1;
		}
		rkt = rd_kafka_topic_new(rk, topic, NULL);

		/* metadata first: the broker is there, and the topic has the partitions */
		err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
		if (err)
		{
			fprintf(stderr, "bidgen: metadata for %s from %s: %s\n", topic, brokers, rd_kafka_err2str(err));
			return 1;
		}
		if (md->topic_cnt != 1 || md->topics[0].err)
		{
			fprintf(stderr, "bidgen: topic %s: %s\n", topic,
					md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "not in metadata");
			if (partitions > 0)
				return 1;
		}
		else if (md->topics[0].partition_cnt < partitions)
		{
			fprintf(stderr, "bidgen: topic %s has %d partitions, -p %d wants more\n",
					topic, md->topics[0].partition_cnt, partitions);
			return 1;
		}
		rd_kafka_metadata_destroy(md);
	}
	else
	{
		static char obuf[1 << 20];

		setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
	}

	bucket_init(&tb, rate);
	t0 = clock_us(CLOCK_MONOTONIC);
	for (i = first; (count == 0 || i - first < count) && !stop && !st.fatal; i++)
	{
		Bid			b;
		size_t		len;
		int64_t		now_us;

		gen_bid(base, i, &g, &b);
		while (!bucket_take(&tb) && !stop)
		{
			if (print)
			{
				fflush(stdout);
				sleep_us(1000);
			}
			else
				rd_kafka_poll(rk, 1);
		}
		if (stop)
			break;
		now_us = stamp || stamp_log ? clock_us(CLOCK_REALTIME) : -1;
		len = format(buf, &b, stamp ? now_us : -1);

		if (print)
		{
			buf[len++] = '\n';
			if (fwrite(buf, 1, len, stdout) != len)
			{
				fprintf(stderr, "bidgen: write: %s\n", strerror(errno));
				failed_hard = 1;
				break;
			}
		}
		else
		{
			char		key[24];
			Out			ko = {key};
			int32_t		part = partitions > 0 ? (int32_t) (b.auction % (uint64_t) partitions)
				: RD_KAFKA_PARTITION_UA;

			put_u64(&ko, b.auction);
			/* the opaque carries the produce time to the delivery report */
			while (rd_kafka_produce(rkt, part, RD_KAFKA_MSG_F_COPY, buf, len,
									key, (size_t) (ko.p - key), (void *) (intptr_t) now_us) == -1)
			{
				rd_kafka_resp_err_t err = rd_kafka_last_error();

				if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
				{
					fprintf(stderr, "bidgen: produce: %s\n", rd_kafka_err2str(err));
					failed_hard = 1;
					break;
				}
				rd_kafka_poll(rk, 5);	/* local queue full: let it drain */
			}
			if (failed_hard)
				break;
			if (i % 1024 == 0)
				rd_kafka_poll(rk, 0);	/* serve delivery reports */
		}
		sent++;
		bytes += len;
	}

	if (print)
	{
		if (fflush(stdout) != 0)
		{
			fprintf(stderr, "bidgen: write: %s\n", strerror(errno));
			failed_hard = 1;
		}
		t1 = clock_us(CLOCK_MONOTONIC);
		secs = (double) (t1 - t0) / 1e6;
		fprintf(stderr, "bidgen: printed=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f msgs_per_sec=%.0f avg_bytes=%.1f\n",
				sent, bytes, secs, secs > 0 ? (double) sent / secs : 0.0,
				sent ? (double) bytes / (double) sent : 0.0);
		return failed_hard ? 1 : 0;
	}

	rd_kafka_flush(rk, FLUSH_TIMEOUT_MS);
	rd_kafka_poll(rk, 0);
	t1 = clock_us(CLOCK_MONOTONIC);
	if (st.delivered + st.failed < sent)
	{
		undelivered = sent - st.delivered - st.failed;
		fprintf(stderr, "bidgen: %" PRIu64 " bids still undelivered after %d s\n",
				undelivered, FLUSH_TIMEOUT_MS / 1000);
	}
	if (st.stamp_log && (fclose(st.stamp_log) != 0 || st.log_failed))
	{
		fprintf(stderr, "bidgen: --stamp-log %s: write failed\n", stamp_log);
		failed_hard = 1;
	}
	st.stamp_log = NULL;
	secs = (double) (t1 - t0) / 1e6;
	fprintf(stderr, "bidgen: sent=%" PRIu64 " delivered=%" PRIu64 " failed=%" PRIu64
			" seconds=%.3f msgs_per_sec=%.0f avg_bytes=%.1f\n",
			sent, st.delivered, st.failed + undelivered, secs,
			secs > 0 ? (double) st.delivered / secs : 0.0,
			sent ? (double) bytes / (double) sent : 0.0);

	rd_kafka_topic_destroy(rkt);
	/* undelivered messages would make rd_kafka_destroy wait for their timeout */
	if (undelivered == 0)
		rd_kafka_destroy(rk);
	return (failed_hard || st.fatal || st.failed > 0 || undelivered > 0 || st.delivered != sent) ? 1 : 0;
}
