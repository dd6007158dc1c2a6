/*
 * mock_kafka — a Kafka cluster for tests, from librdkafka's mock cluster.
 *
 * It speaks the real Kafka protocol on loopback ports, so the extension and
 * kcat talk to it exactly as to a real broker.  Usage:
 *
 *   mock_kafka [-b brokers] [-t topic:partitions]...
 *
 * prints one line, the bootstrap address ("127.0.0.1:PORT,..."), then reads
 * commands from standard input until it closes (or SIGTERM/SIGINT):
 *
 *   topic NAME PARTITIONS     create a topic
 *   down BROKER_ID            take a broker down (connections refused)
 *   up BROKER_ID              bring it back
 *
 * Each answers "ok" or "error: ..." on standard output.  Data lives only
 * while the process runs, and each partition keeps only a few MiB.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t stop = 0;

static void
on_signal(int sig)
{
	(void) sig;
	stop = 1;
}

static int
create_topic(rd_kafka_mock_cluster_t *mc, const char *spec)
{
	char		name[512];
	int			partitions = 1;
	const char *colon = strrchr(spec, ':');
	size_t		len = colon ? (size_t) (colon - spec) : strlen(spec);

	if (len == 0 || len >= sizeof(name))
		return -1;
	memcpy(name, spec, len);
	name[len] = '\0';
	if (colon)
		partitions = atoi(colon + 1);
	if (partitions < 1)
		return -1;
	return rd_kafka_mock_topic_create(mc, name, partitions, 1) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

int
main(int argc, char **argv)
{
	char		errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;
	int			brokers = 1;
	int			opt;
	char		line[1024];

	while ((opt = getopt(argc, argv, "b:t:")) != -1)
	{
		if (opt == 'b')
			brokers = atoi(optarg);
		else if (opt != 't')
		{
			fprintf(stderr, "usage: mock_kafka [-b brokers] [-t topic:partitions]...\n");
			return 2;
		}
	}

	/* the mock cluster lives inside a client instance */
	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		fprintf(stderr, "mock_kafka: %s\n", errstr);
		return 1;
	}
	mc = rd_kafka_mock_cluster_new(rk, brokers < 1 ? 1 : brokers);
	if (mc == NULL)
	{
		fprintf(stderr, "mock_kafka: could not create the mock cluster\n");
		return 1;
	}

	optind = 1;
	while ((opt = getopt(argc, argv, "b:t:")) != -1)
		if (opt == 't' && create_topic(mc, optarg) != 0)
		{
			fprintf(stderr, "mock_kafka: bad topic \"%s\" (want name:partitions)\n", optarg);
			return 2;
		}

	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);

	while (!stop && fgets(line, sizeof(line), stdin) != NULL)
	{
		char		cmd[32];
		char		arg[512];
		int			n;
		int			id;

		n = sscanf(line, "%31s %511s %d", cmd, arg, &id);
		if (n >= 1 && strcmp(cmd, "topic") == 0 && n == 3)
		{
			char		spec[600];

			snprintf(spec, sizeof(spec), "%s:%d", arg, id);
			puts(create_topic(mc, spec) == 0 ? "ok" : "error: could not create topic");
		}
		else if (n == 2 && (strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0))
		{
			rd_kafka_resp_err_t err = strcmp(cmd, "down") == 0 ?
				rd_kafka_mock_broker_set_down(mc, atoi(arg)) :
				rd_kafka_mock_broker_set_up(mc, atoi(arg));

			puts(err == RD_KAFKA_RESP_ERR_NO_ERROR ? "ok" : "error: no such broker");
		}
		else if (n >= 1)
			puts("error: commands are: topic NAME PARTITIONS | down ID | up ID");
		fflush(stdout);
	}
	/* stdin closed (EOF) and no signal: keep serving until one arrives */
	while (!stop && feof(stdin) && getenv("MOCK_KAFKA_EXIT_ON_EOF") == NULL)
		pause();

	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
