# streamproc — PGXS build.  Sources are picked up by wildcard so a new file
# under src/ needs no Makefile change (the pg_cron way).
EXTENSION   = streamproc
MODULE_big  = streamproc
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA        = $(sort $(wildcard streamproc--*.sql))
PGFILEDESC  = "streamproc - stream processing with continuous views"

# pg_regress: one file per feature under sql/, run on a temporary instance
# preloaded with streamproc (make installcheck; see test/run).
REGRESS      = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
TEST_OUTDIR ?= $(CURDIR)/test/output
REGRESS_OPTS = --temp-config=$(srcdir)/test/streamproc.conf \
               --temp-instance=$(TEST_OUTDIR)/tmp_instance \
               --outputdir=$(TEST_OUTDIR) --load-extension=streamproc

PG_CPPFLAGS = -I$(srcdir)/src -I$(includedir)
PG_CFLAGS   = -Wall -Werror
SHLIB_LINK  = -lrdkafka
# libpq: parsing and masking the connection strings of pg sources
SHLIB_LINK_INTERNAL = $(libpq)

PG_CONFIG ?= $(shell test -x /usr/lib/postgresql/15/bin/pg_config && echo /usr/lib/postgresql/15/bin/pg_config || echo pg_config)
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The mock Kafka cluster the tests consume from and produce to.
MOCK_KAFKA = test/kafka/mock_kafka
all: $(MOCK_KAFKA)
$(MOCK_KAFKA): test/kafka/mock_kafka.c
	$(CC) $(CFLAGS) -Wall -Werror -o $@ $< -lrdkafka

# Kafka benchmark helpers: a Nexmark-style bid producer and a bare consumer.
BIDGEN      = bench/kafka/bidgen
RAW_CONSUME = bench/kafka/raw_consume
all: $(BIDGEN) $(RAW_CONSUME)
$(BIDGEN): bench/kafka/bidgen.c
	$(CC) $(CFLAGS) -Wall -Werror -o $@ $< -lrdkafka -lm
$(RAW_CONSUME): bench/kafka/raw_consume.c
	$(CC) $(CFLAGS) -Wall -Werror -o $@ $< -lrdkafka
EXTRA_CLEAN = $(MOCK_KAFKA) $(BIDGEN) $(RAW_CONSUME)

# PGXS tracks no header dependencies (without --enable-depend): rebuild
# every object when any of our headers changes.
$(OBJS): $(wildcard src/*.h)
