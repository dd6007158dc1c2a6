#!/usr/bin/env bash
# bench/kafka_bench.sh — how fast a streamproc Kafka source turns a topic into
# an up-to-date continuous view, against how fast a bare librdkafka consumer
# can merely read the same topic (the "limit").
#
#   1. starts the mock Kafka cluster (test/kafka/mock_kafka) with a topic of
#      16 partitions and preloads BENCH_EVENTS Nexmark-style JSON bids into it
#      with bench/kafka/bidgen (-p 16, lz4) before anything is timed;
#   2. raw:  bench/kafka/raw_consume reads the whole topic (its own clock:
#      first message to last), BENCH_RUNS times;
#   3. streamproc: a throw-away PostgreSQL cluster, stream `bids` (event time
#      date_time) with one continuous view q7 (Nexmark q7's aggregate: per
#      auction and 10-second tumbling window, count/max/sum of price); a Kafka
#      source on the topic is created and timed from its creation until
#      rows_in + dead_letters in streamproc.sources reaches BENCH_EVENTS
#      (polled every 50 ms over one psql session), BENCH_RUNS times per
#      parallelism, each on a freshly created stream/view/source; every run is
#      checked (sum of count = events, dead letters = 0, no late rows, and the
#      whole view equals a plain GROUP BY over the same bids); two diagnostic
#      lines follow: the source into a stream with no view, and the q7 source
#      with librdkafka's prefetch limits lifted (BENCH_TUNED_OPTIONS);
#   4. if perf works, one more untimed run of the main line and of the
#      lifted-limits line under `perf record -g` (source worker and mock broker);
#   5. writes bench/results/kafka.md and removes everything it started.
#
# Usage: bench/kafka_bench.sh          (knobs: see bench/README.md)
#
# Nothing is built unless BENCH_BUILD=1: `make` builds the tools and the
# extension, `make install` installs the extension; this script only checks
# that both were done.  Run it as root (initdb/postgres then run as the
# postgres user, like demo/run) or as a user who can run initdb.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

EVENTS=${BENCH_EVENTS:-1000000}
RUNS=${BENCH_RUNS:-3}
PARALLELISM=${BENCH_PARALLELISM:-1 2}
PARALLELISM=${PARALLELISM//,/ }
NOVIEW=${BENCH_NOVIEW:-1}
BATCH_SIZE=${BENCH_BATCH_SIZE:-10000}
SOURCE_OPTIONS=${BENCH_SOURCE_OPTIONS:-}
# Diagnostic line: the same source with librdkafka's prefetch limits out of the
# way (the whole topic may be prefetched into memory), to separate what the
# consumer configuration costs from what the engine costs.  Empty: skipped.
TUNED_OPTIONS=${BENCH_TUNED_OPTIONS-'{"queued.min.messages": "10000000", "queued.max.messages.kbytes": "2097151"}'}
PARTITIONS=${BENCH_PARTITIONS:-16}
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-300}
PERF_MODE=${BENCH_PERF:-auto}
OUT=${BENCH_OUT:-$here/results/kafka.md}
KEEP=${BENCH_KEEP:-0}
EXTRA_CONF=${BENCH_PG_CONF:-}
BUILD=${BENCH_BUILD:-0}
START_TS=2026-11-22T10:00:00Z           # event time of the first bid (fixed: same bids every time)
POLL_S=0.05
if [[ -z ${PG_CONFIG:-} ]]; then
    if [[ -x /usr/lib/postgresql/15/bin/pg_config ]]; then
        PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
    else
        PG_CONFIG=pg_config
    fi
fi

die() { echo "kafka_bench: $*" >&2; exit 1; }
log() { echo "kafka_bench: $*" >&2; }

[[ $EVENTS =~ ^[1-9][0-9]*$ ]]      || die "BENCH_EVENTS must be a positive integer (got '$EVENTS')"
[[ $RUNS =~ ^[1-9][0-9]*$ ]]        || die "BENCH_RUNS must be a positive integer (got '$RUNS')"
[[ $BATCH_SIZE =~ ^[1-9][0-9]*$ ]]  || die "BENCH_BATCH_SIZE must be a positive integer (got '$BATCH_SIZE')"
[[ $PARTITIONS =~ ^[1-9][0-9]*$ ]]  || die "BENCH_PARTITIONS must be a positive integer (got '$PARTITIONS')"
[[ $RUN_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUN_TIMEOUT must be a number of seconds (got '$RUN_TIMEOUT')"
[[ -n ${PARALLELISM// /} ]]         || die "BENCH_PARALLELISM is empty"
for p in $PARALLELISM; do
    [[ $p =~ ^[1-9][0-9]*$ ]] || die "BENCH_PARALLELISM must list positive integers (got '$p')"
done
case $PERF_MODE in auto|0|1) ;; *) die "BENCH_PERF must be auto, 0 or 1 (got '$PERF_MODE')";; esac
(( BASH_VERSINFO[0] >= 5 )) || die "needs bash 5 (EPOCHREALTIME)"

MOCK=$repo/test/kafka/mock_kafka
BIDGEN=$repo/bench/kafka/bidgen
RAW=$repo/bench/kafka/raw_consume

# ---------------------------------------------------------------- prerequisites
if [[ $BUILD == 1 ]]; then
    log "BENCH_BUILD=1: make && make install"
    make -s -C "$repo" -j"$(nproc)" PG_CONFIG="$PG_CONFIG"
    make -s -C "$repo" install PG_CONFIG="$PG_CONFIG" >/dev/null
fi
PGBIN=$("$PG_CONFIG" --bindir) || die "cannot run $PG_CONFIG (install postgresql-server-dev-15 or set PG_CONFIG)"
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
SHAREDIR=$("$PG_CONFIG" --sharedir)
for tool in initdb pg_ctl psql; do
    [[ -x $PGBIN/$tool ]] || die "$PGBIN/$tool not found"
done
if [[ ! -f $PKGLIBDIR/streamproc.so || ! -f $SHAREDIR/extension/streamproc.control ]]; then
    die "streamproc is not installed in $PKGLIBDIR: run  make PG_CONFIG=$PG_CONFIG && make install PG_CONFIG=$PG_CONFIG  (or BENCH_BUILD=1 $0)"
fi
if [[ -f $repo/streamproc.so ]] && ! cmp -s "$repo/streamproc.so" "$PKGLIBDIR/streamproc.so"; then
    log "warning: $PKGLIBDIR/streamproc.so differs from the build in $repo (forgot make install?)"
fi
for tool in "$MOCK" "$BIDGEN" "$RAW"; do
    [[ -x $tool ]] || die "${tool#"$repo"/} is not built: run  make PG_CONFIG=$PG_CONFIG  in $repo (or BENCH_BUILD=1 $0)"
    [[ $tool.c -nt $tool ]] && log "warning: ${tool#"$repo"/}.c is newer than ${tool#"$repo"/} (run make)"
done
for tool in awk sort getconf; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

PERF=0
if [[ $PERF_MODE != 0 ]]; then
    if command -v perf >/dev/null && perf stat -e task-clock -o /dev/null -- true >/dev/null 2>&1; then
        PERF=1
    elif [[ $PERF_MODE == 1 ]]; then
        die "BENCH_PERF=1 but perf does not work here (apt-get install linux-perf; perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null))"
    else
        log "perf not available or not permitted: no profile (BENCH_PERF=0 silences this)"
    fi
fi

if [[ $EUID -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user (install postgresql-15)"
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

# ---------------------------------------------------------------- cleanup
WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/spkbench.XXXXXX")
chmod 755 "$WORK"
[[ $EUID -eq 0 ]] && chown postgres: "$WORK"
DATA=$WORK/data
SERVER_LOG=$WORK/server.log
STARTED=0
MOCK_PID=
PSQL_PID=
PERF_PIDS=()

# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${PERF_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${PERF_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ -n $PSQL_PID ]]; then
        [[ -n ${PSQL_IN:-} ]] && { exec {PSQL_IN}>&-; } 2>/dev/null
        kill "$PSQL_PID" 2>/dev/null || true
        wait "$PSQL_PID" 2>/dev/null || true
    fi
    if [[ $STARTED == 1 ]]; then
        as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            as_pg "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [[ -n $MOCK_PID ]]; then
        kill "$MOCK_PID" 2>/dev/null || true
        wait "$MOCK_PID" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 && -f $SERVER_LOG ]]; then
        echo "kafka_bench: last lines of the server log:" >&2
        tail -n 20 "$SERVER_LOG" >&2 || true
    fi
    if [[ $KEEP == 1 ]]; then
        echo "kafka_bench: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
CLK_TCK=$(getconf CLK_TCK)
now_us() { local t=$EPOCHREALTIME; echo "${t/[.,]/}"; }
# CPU time (utime + stime, all threads) of a process so far, in clock ticks
proc_ticks() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    echo $(( ${12} + ${13} ))
}
# busy (non-idle, non-iowait) ticks of the whole machine so far
sys_busy_ticks() {
    local _cpu u n s _idle _iowait irq sirq st _rest
    read -r _cpu u n s _idle _iowait irq sirq st _rest </proc/stat
    echo $(( u + n + s + irq + sirq + st ))
}
# integer with thousands separators
commas() { printf '%s' "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'; }
# median and max of numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maxof()  { sort -g | tail -n 1; }
fdiv()   { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (b == 0) print "n/a"; else printf f, a / b }'; }
# a fixed-point sleep without forking: read with a timeout on a pipe nobody writes to
exec {SLEEP_FD}<> <(:)
nap() { read -r -t "$1" -u "$SLEEP_FD" _ || true; }

# ---------------------------------------------------------------- broker + data
log "starting the mock Kafka cluster (topic bids, $PARTITIONS partitions)"
"$MOCK" -t "bids:$PARTITIONS" >"$WORK/mock.out" 2>"$WORK/mock.err" </dev/null &
MOCK_PID=$!
for _ in $(seq 100); do [[ -s $WORK/mock.out ]] && break; sleep 0.1; done
BROKERS=$(head -n 1 "$WORK/mock.out")
[[ $BROKERS == *:* ]] || die "the mock Kafka cluster did not start: $(cat "$WORK/mock.err")"

log "preloading $(commas "$EVENTS") bids (bidgen -p $PARTITIONS, lz4)"
GEN_ARGS=(-n "$EVENTS" --start "$START_TS")
"$BIDGEN" -b "$BROKERS" -t bids -p "$PARTITIONS" "${GEN_ARGS[@]}" 2>"$WORK/bidgen.log" ||
    die "bidgen failed: $(cat "$WORK/bidgen.log")"
GEN_LINE=$(grep '^bidgen:' "$WORK/bidgen.log" | tail -n 1)
log "  $GEN_LINE"
[[ $GEN_LINE == *"delivered=$EVENTS "* ]] || die "bidgen did not deliver every bid: $GEN_LINE"

# Untimed first read (doubles as a warm-up): every bid must still be in the
# topic — the mock broker keeps only ~5 MiB per partition and drops the
# oldest data beyond that.
"$RAW" -b "$BROKERS" -t bids -n "$EVENTS" -v >"$WORK/raw_verify.out" 2>"$WORK/raw_verify.err" || true
kept=$(awk '/^partition/ { split($0, a, "watermarks="); split(a[2], w, "\\.\\."); if (w[1] != 0) bad++; hi += w[2] }
            END { print (bad ? "dropped" : hi) }' "$WORK/raw_verify.err")
if [[ $kept != "$EVENTS" ]]; then
    grep '^partition' "$WORK/raw_verify.err" >&2 || cat "$WORK/raw_verify.err" >&2
    die "the topic does not hold all $EVENTS bids ($kept): the mock broker keeps only ~5 MiB per partition; lower BENCH_EVENTS or raise BENCH_PARTITIONS"
fi
TOPIC_BYTES=$(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' "$WORK/raw_verify.out")

# The expected view, computed from the same bids (bidgen --print is
# deterministic), is loaded into the database further down.
"$BIDGEN" --print "${GEN_ARGS[@]}" >"$WORK/bids.json" 2>/dev/null || die "bidgen --print failed"
[[ $(wc -l <"$WORK/bids.json") -eq $EVENTS ]] || die "bidgen --print wrote the wrong number of bids"
chmod 644 "$WORK/bids.json"

# ---------------------------------------------------------------- (a) raw consume
declare -A EPS WALL STARTUP WCPU MCPU BUSY CHECK WAL RAWWALL
VARIANTS=()
RAWV="raw_consume"
VARIANTS+=("$RAWV")
ERRORS=()
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

for run in $(seq "$RUNS"); do
    m0=$(proc_ticks "$MOCK_PID"); b0=$(sys_busy_ticks)
    t0=$(now_us)
    "$RAW" -b "$BROKERS" -t bids -n "$EVENTS" >"$WORK/raw.out" 2>"$WORK/raw.err" || true
    t1=$(now_us)
    m1=$(proc_ticks "$MOCK_PID"); b1=$(sys_busy_ticks)
    line=$(cat "$WORK/raw.out")
    msgs=$(sed -n 's/.*messages=\([0-9]*\).*/\1/p' <<<"$line")
    secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$line")
    k="$RAWV|$run"
    WALL[$k]=$(fdiv "$((t1 - t0))" 1000000 %.3f)
    MCPU[$k]=$(fdiv "$((m1 - m0))" "$CLK_TCK")
    BUSY[$k]=$(fdiv "$(( (b1 - b0) * 1000000 / CLK_TCK ))" "$((t1 - t0))")
    if [[ $msgs == "$EVENTS" ]]; then
        EPS[$k]=$(fdiv "$EVENTS" "$secs" %.0f)
        RAWWALL[$k]=$(fdiv "$EVENTS" "${WALL[$k]}" %.0f)
        CHECK[$k]="OK: $msgs messages, $(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' <<<"$line") bytes"
    else
        EPS[$k]=
        CHECK[$k]="FAILED: $line $(tail -n 2 "$WORK/raw.err" | tr '\n' ' ')"
        ERRORS+=("raw_consume run $run: ${CHECK[$k]}")
    fi
    log "raw_consume run $run: $line"
done

# ---------------------------------------------------------------- cluster
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=${BENCH_PORT:-}
if [[ -z $PORT ]]; then
    for p in $(seq 54430 54530); do
        if ! port_in_use "$p"; then PORT=$p; break; fi
    done
    [[ -n $PORT ]] || die "no free port in 54430-54530 (set BENCH_PORT)"
fi
log "initdb in $DATA (port $PORT)"
as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C -N >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
SETTINGS="shared_buffers=1GB, max_wal_size=4GB, checkpoint_timeout=30min, autovacuum=off, synchronous_commit=off, fsync=on"
cat >>"$DATA/postgresql.conf" <<EOF

# ---- kafka_bench.sh ----
listen_addresses = ''
port = $PORT
unix_socket_directories = '$WORK'
shared_preload_libraries = 'streamproc'
max_worker_processes = 32
timezone = 'UTC'
shared_buffers = 1GB
max_wal_size = 4GB
checkpoint_timeout = 30min
log_checkpoints = off
# every run starts on a fresh stream/view and drops it afterwards
autovacuum = off
# A batch's view changes and its Kafka offsets commit in one transaction, so
# an asynchronous commit lost in a crash rolls both back together and the
# source re-reads those messages from Kafka: nothing is lost or counted twice.
# fsync stays on (no risk of a corrupt cluster).
synchronous_commit = off
fsync = on
$EXTRA_CONF
EOF
[[ $EUID -eq 0 ]] && chown postgres: "$DATA/postgresql.conf"
as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$SERVER_LOG" -w -t 120 start >/dev/null ||
    die "the server did not start (see $SERVER_LOG)"
STARTED=1

PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -U postgres)
"${PSQL[@]}" -d postgres -c 'CREATE DATABASE bench' >/dev/null
PSQL+=(-d bench)
PG_VERSION=$("${PSQL[@]}" -At -c 'SHOW server_version')

log "loading the expected aggregate (plain GROUP BY over the same bids)"
"${PSQL[@]}" -v json="$WORK/bids.json" >/dev/null <<'SQL'
CREATE EXTENSION streamproc;
CREATE UNLOGGED TABLE produced (j jsonb);
COPY produced FROM :'json' WITH (FORMAT csv, QUOTE e'\x01', DELIMITER e'\x02');
CREATE TABLE expected AS
SELECT (j->>'auction')::bigint AS auction,
       streamproc.tumble((j->>'date_time')::timestamptz, '10 seconds') AS w,
       count(*) AS count, max((j->>'price')::bigint) AS max, sum((j->>'price')::bigint) AS sum
  FROM produced GROUP BY 1, 2;
DROP TABLE produced;
VACUUM ANALYZE expected;
SQL
rm -f "$WORK/bids.json"
read -r EXP_GROUPS EXP_SUM < <("${PSQL[@]}" -At -F' ' -c 'SELECT count(*), sum(sum) FROM expected')

# One psql session for the whole benchmark (a coprocess): creating the source
# and every poll go through it, so no connection start-up is measured.
PSQL_ERR=$WORK/psql_session.err
: >"$PSQL_ERR"
# Without ON_ERROR_STOP: an error is reported on stderr and the session goes on.
coproc PSQL_CO { "$PGBIN/psql" -X -q -At -F'|' -h "$WORK" -p "$PORT" -U postgres -d bench 2>>"$PSQL_ERR"; }
PSQL_PID=$PSQL_CO_PID
PSQL_IN=${PSQL_CO[1]}
PSQL_OUT=${PSQL_CO[0]}
SQL_OUT=()
SQL_ERR=
# sql 'statements;' — output lines in SQL_OUT; returns 1 if psql reported an
# error (text in SQL_ERR); dies if the session is gone.
sql() {
    local line before after
    before=$(stat -c %s "$PSQL_ERR")
    # the lone ';' ends a statement given without one (psql ignores an empty one)
    printf '%s\n;\n\\echo __kafka_bench_end__\n' "$1" >&"$PSQL_IN" || die "the psql session is gone: $(tail -n 5 "$PSQL_ERR")"
    SQL_OUT=()
    while :; do
        IFS= read -r -t 600 line <&"$PSQL_OUT" || die "the psql session is gone or hung: $(tail -n 5 "$PSQL_ERR")"
        [[ $line == __kafka_bench_end__ ]] && break
        SQL_OUT+=("$line")
    done
    after=$(stat -c %s "$PSQL_ERR")
    if (( after > before )); then
        SQL_ERR=$(tail -c +"$((before + 1))" "$PSQL_ERR")
        return 1
    fi
    SQL_ERR=
    return 0
}
sql 'SET client_min_messages = warning;' || die "psql: $SQL_ERR"

STREAM_SQL="SELECT streamproc.create_stream('bids', 'auction bigint, bidder bigint, price bigint, channel text, url text, date_time timestamptz, extra text', event_time => 'date_time');"
VIEW_SQL="SELECT streamproc.create_view('q7', \$\$SELECT auction, streamproc.tumble(date_time, '10 seconds') AS w, count(*), max(price), sum(price) FROM bids GROUP BY 1, 2\$\$);"

# drop the source (its workers stop) and the stream with its views
teardown() {
    sql "SELECT streamproc.drop_source('src') FROM streamproc.source_defs WHERE name = 'src';
         SELECT streamproc.drop_stream('bids', cascade => true) WHERE to_regclass('bids') IS NOT NULL;" ||
        die "teardown failed: $SQL_ERR"
    # wait for the old workers to be gone, so they cannot take CPU from the next run
    for _ in $(seq 200); do
        sql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'streamproc source'" || die "$SQL_ERR"
        [[ ${SQL_OUT[0]} == 0 ]] && return 0
        nap 0.05
    done
    die "the source workers did not stop after drop_source"
}

# run_stream VARIANT_NAME PARALLELISM WITH_VIEW(0/1) OPTIONS_JSON RUN [PROFILE_TAG]
# With a PROFILE_TAG the source worker(s) and the mock broker run under
# perf record -g while the run lasts ($WORK/perf_TAG_{worker,mock}.data).
run_stream() {
    local v=$1 par=$2 with_view=$3 opts=$4 run=$5 ptag=${6:-}
    local k="$v|$run" t0 t1 tfirst="" ndone=0 got dead pids="" m0 m1 b0 b1 w_ticks=0 p wal0 wal1 chk
    teardown
    sql "$STREAM_SQL" || die "create_stream: $SQL_ERR"
    if [[ $with_view == 1 ]]; then sql "$VIEW_SQL" || die "create_view: $SQL_ERR"; fi
    sql "CHECKPOINT; SELECT pg_current_wal_insert_lsn();" || die "$SQL_ERR"
    wal0=${SQL_OUT[0]}
    m0=$(proc_ticks "$MOCK_PID"); b0=$(sys_busy_ticks)

    t0=$(now_us)
    # shellcheck disable=SC2016  # '$opts' is inside a double-quoted string: it expands
    if ! sql "SELECT streamproc.create_kafka_source('src', 'bids', '$BROKERS', 'bids', format => 'json',
                  parallelism => $par, batch_size => $BATCH_SIZE${opts:+, options => '$opts'});"; then
        CHECK[$k]="FAILED: create_kafka_source: $SQL_ERR"; ERRORS+=("$v run $run: ${CHECK[$k]}")
        return
    fi
    while :; do
        sql "SELECT rows_in, dead_letters FROM streamproc.sources WHERE name = 'src';" || die "poll: $SQL_ERR"
        t1=$(now_us)
        IFS='|' read -r got dead <<<"${SQL_OUT[0]:-0|0}"
        ndone=$((got + dead))
        (( ndone >= EVENTS )) && break
        [[ -z $tfirst ]] && (( ndone > 0 )) && tfirst=$t1
        if [[ -n $ptag && -z $pids ]]; then
            sql "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type = 'streamproc source'" || die "$SQL_ERR"
            if [[ -n ${SQL_OUT[0]} ]]; then
                pids=${SQL_OUT[0]}
                perf record -g -N -q -o "$WORK/perf_${ptag}_worker.data" -p "$pids" >"$WORK/perf_${ptag}_worker.log" 2>&1 &
                PERF_PIDS+=($!)
                perf record -g -N -q -o "$WORK/perf_${ptag}_mock.data" -p "$MOCK_PID" >"$WORK/perf_${ptag}_mock.log" 2>&1 &
                PERF_PIDS+=($!)
            fi
        fi
        if (( t1 - t0 > RUN_TIMEOUT * 1000000 )); then
            sql "SELECT state, lag, last_error FROM streamproc.sources WHERE name = 'src'" || true
            CHECK[$k]="FAILED: timeout after ${RUN_TIMEOUT}s at $ndone of $EVENTS events (${SQL_OUT[0]:-})"
            ERRORS+=("$v run $run: ${CHECK[$k]}")
            return
        fi
        nap "$POLL_S"
    done
    # CPU of the workers (fresh processes: all their CPU time is this run's)
    sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'streamproc source'" || die "$SQL_ERR"
    for p in "${SQL_OUT[@]}"; do w_ticks=$(( w_ticks + $(proc_ticks "$p") )); done
    m1=$(proc_ticks "$MOCK_PID"); b1=$(sys_busy_ticks)
    if [[ -n $ptag ]]; then
        for p in "${PERF_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
        for p in "${PERF_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
        PERF_PIDS=()
    fi
    [[ -n $tfirst ]] || tfirst=$t1

    WALL[$k]=$(fdiv "$((t1 - t0))" 1000000 %.3f)
    EPS[$k]=$(fdiv "$EVENTS" "${WALL[$k]}" %.0f)
    STARTUP[$k]=$(fdiv "$((tfirst - t0))" 1000000 %.2f)
    WCPU[$k]=$(fdiv "$w_ticks" "$CLK_TCK")
    MCPU[$k]=$(fdiv "$((m1 - m0))" "$CLK_TCK")
    BUSY[$k]=$(fdiv "$(( (b1 - b0) * 1000000 / CLK_TCK ))" "$((t1 - t0))")

    # checks (untimed)
    if [[ $with_view == 1 ]]; then
        sql "SELECT s.rows_in, s.dead_letters, v.late_rows, (SELECT sum(count) FROM q7), (SELECT sum(sum) FROM q7),
                    (SELECT count(*) FROM q7),
                    (SELECT count(*) FROM (SELECT auction, w, count, max, sum FROM q7 EXCEPT ALL TABLE expected) a)
                  + (SELECT count(*) FROM (TABLE expected EXCEPT ALL SELECT auction, w, count, max, sum FROM q7) b),
                    pg_current_wal_insert_lsn()
               FROM streamproc.sources s, streamproc.views v WHERE s.name = 'src' AND v.name = 'q7'::regclass" ||
            die "check: $SQL_ERR"
        IFS='|' read -r got dead late n tot groups diff wal1 <<<"${SQL_OUT[0]}"
        chk="rows_in $got, dead_letters $dead, late $late, sum(count) $n, sum(sum) $tot, $groups groups, $diff differ from GROUP BY"
        if [[ $n == "$EVENTS" && $dead == 0 && $late == 0 && $tot == "$EXP_SUM" && $groups == "$EXP_GROUPS" && $diff == 0 ]]; then
            CHECK[$k]="OK: $chk"
        else
            CHECK[$k]="MISMATCH: $chk (expected sum(count) $EVENTS, sum(sum) $EXP_SUM, $EXP_GROUPS groups)"
            ERRORS+=("$v run $run: ${CHECK[$k]}")
        fi
    else
        sql "SELECT rows_in, dead_letters, pg_current_wal_insert_lsn() FROM streamproc.sources WHERE name = 'src'" ||
            die "check: $SQL_ERR"
        IFS='|' read -r got dead wal1 <<<"${SQL_OUT[0]}"
        if [[ $got == "$EVENTS" && $dead == 0 ]]; then
            CHECK[$k]="OK: rows_in $got, dead_letters $dead"
        else
            CHECK[$k]="MISMATCH: rows_in $got, dead_letters $dead"
            ERRORS+=("$v run $run: ${CHECK[$k]}")
        fi
    fi
    sql "SELECT pg_wal_lsn_diff('$wal1', '$wal0')" || die "$SQL_ERR"
    WAL[$k]=$(fdiv "${SQL_OUT[0]}" 1048576 %.0f)
    log "$v run $run: ${WALL[$k]} s, $(commas "${EPS[$k]}") events/s (first rows after ${STARTUP[$k]} s; worker CPU ${WCPU[$k]} s, broker CPU ${MCPU[$k]} s); ${CHECK[$k]%%:*}"
    teardown
}

# ---------------------------------------------------------------- (b) streamproc
FIRST_PAR=${PARALLELISM%% *}
SPECS=()      # label|parallelism|with view|options
for par in $PARALLELISM; do
    SPECS+=("streamproc q7, parallelism $par|$par|1|$SOURCE_OPTIONS")
done
[[ $NOVIEW == 1 ]] &&
    SPECS+=("diagnostic: streamproc, no view, parallelism $FIRST_PAR|$FIRST_PAR|0|$SOURCE_OPTIONS")
[[ -n $TUNED_OPTIONS ]] &&
    SPECS+=("diagnostic: streamproc q7, parallelism $FIRST_PAR, unbounded prefetch (options below)|$FIRST_PAR|1|$TUNED_OPTIONS")
for spec in "${SPECS[@]}"; do
    IFS='|' read -r v par with_view opts <<<"$spec"
    VARIANTS+=("$v")
    for run in $(seq "$RUNS"); do run_stream "$v" "$par" "$with_view" "$opts" "$run"; done
done

# Profiles: one more (untimed) run of the main line, and of the unbounded-prefetch line.
PROFILES=()   # label|tag
if [[ $PERF == 1 ]]; then
    v="streamproc q7, parallelism $FIRST_PAR (profiled, untimed)"
    log "one more run of parallelism $FIRST_PAR under perf record -g (worker and broker)"
    run_stream "$v" "$FIRST_PAR" 1 "$SOURCE_OPTIONS" 1 main
    PROFILES+=("$v|main")
    if [[ -n $TUNED_OPTIONS ]]; then
        v="streamproc q7, parallelism $FIRST_PAR, unbounded prefetch (profiled, untimed)"
        log "and of the unbounded-prefetch line"
        run_stream "$v" "$FIRST_PAR" 1 "$TUNED_OPTIONS" 1 tuned
        PROFILES+=("$v|tuned")
    fi
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
perf_top() {  # perf.data file, how many: top symbols by self time
    perf report -i "$1" --no-children -F overhead,dso,sym --stdio -g none 2>/dev/null |
        awk -v n="$2" 'c < n && !/^#/ && NF >= 4 && $1 ~ /%$/ {
            sym = ""; for (i = 4; i <= NF; i++) sym = sym (i > 4 ? " " : "") $i
            gsub(/\|/, "\\|", sym); printf "| %s | %s | `%s` |\n", $1, $2, sym; c++ }'
}
perf_threads() {  # perf.data file: share of samples per thread name
    perf report -i "$1" --no-children -F overhead,comm --stdio -g none 2>/dev/null |
        awk '!/^#/ && NF >= 2 && $1 ~ /%$/ { t = $2; for (i = 3; i <= NF; i++) t = t " " $i; printf "%s`%s` %s", sep, t, $1; sep = ", " }
             END { print "" }'
}
perf_children() {  # perf.data file, how many: top resolved symbols by inclusive time
    perf report -i "$1" --children -F overhead_children,overhead,dso,sym --stdio -g none 2>/dev/null |
        awk -v n="$2" 'c < n && !/^#/ && NF >= 5 && $1 ~ /%$/ && $2 ~ /%$/ {
            sym = ""; for (i = 5; i <= NF; i++) sym = sym (i > 5 ? " " : "") $i
            if (sym ~ /^(0x)?[0-9a-f]+$/ || $3 == "[unknown]") next
            gsub(/\|/, "\\|", sym); printf "| %s | %s | %s | `%s` |\n", $1, $2, $3, sym; c++ }'
}

stat_of() {  # variant, array name -> "median best"
    local v=$1 r vals=()
    local -n arr=$2
    for r in $(seq "$RUNS"); do [[ -n ${arr["$v|$r"]:-} && ${arr["$v|$r"]} != n/a ]] && vals+=("${arr["$v|$r"]}"); done
    if [[ ${#vals[@]} -eq 0 ]]; then echo "n/a n/a"; return; fi
    echo "$(printf '%s\n' "${vals[@]}" | median) $(printf '%s\n' "${vals[@]}" | maxof)"
}
checks_of() {
    local v=$1 r ok=0
    for r in $(seq "$RUNS"); do [[ ${CHECK["$v|$r"]:-} == OK* ]] && ok=$((ok + 1)); done
    if [[ $ok == "$RUNS" ]]; then echo "OK ($ok/$RUNS runs)"; else echo "**FAILED** ($ok/$RUNS runs OK)"; fi
}

read -r RAW_MED _ < <(stat_of "$RAWV" EPS)
COMMIT=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$repo" status --porcelain -- src sql streamproc--0.1.sql Makefile 2>/dev/null) ]]; then
    COMMIT+=" (+ uncommitted changes in src/sql)"
fi
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
RDKAFKA=$(dpkg-query -W -f '${Version}' librdkafka1 2>/dev/null || echo unknown)
CMD="bench/kafka_bench.sh"
for var in BENCH_EVENTS BENCH_RUNS BENCH_PARALLELISM BENCH_NOVIEW BENCH_BATCH_SIZE BENCH_SOURCE_OPTIONS BENCH_TUNED_OPTIONS BENCH_PARTITIONS BENCH_PG_CONF BENCH_PERF BENCH_RUN_TIMEOUT; do
    [[ -n ${!var:-} ]] && CMD="$var=$(printf '%q' "${!var}") $CMD"
done
AVG_BYTES=$(fdiv "$TOPIC_BYTES" "$EVENTS" %.0f)

mkdir -p "$(dirname "$OUT")"
{
    echo "# Kafka source throughput: streamproc vs a bare librdkafka consumer"
    echo
    echo "Generated by \`bench/kafka_bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); command: \`$CMD\`"
    echo
    echo "- host: $(nproc) cores (\`nproc\`), $CPU_MODEL, $MEM RAM; load average before / after: $LOAD_START / $LOAD_END"
    echo "- PostgreSQL $PG_VERSION; streamproc at git $COMMIT; librdkafka $RDKAFKA"
    echo "- data: N = $(commas "$EVENTS") Nexmark-style JSON bids (bench/kafka/bidgen, ~$AVG_BYTES bytes each, $(commas "$TOPIC_BYTES") bytes in all), produced with lz4 into one topic of $PARTITIONS partitions (\`-p $PARTITIONS\`: partition = auction % $PARTITIONS) of the mock Kafka cluster (test/kafka/mock_kafka, librdkafka's mock broker, on loopback, same machine) before anything is timed; event time from $START_TS, 1 ms per bid"
    echo "- raw_consume: bench/kafka/raw_consume reads every partition from the beginning; events/s by its own clock (first message received to last message checksummed; connecting and the first fetch are not counted)"
    # shellcheck disable=SC2016
    echo "- streamproc: stream \`bids(auction bigint, bidder bigint, price bigint, channel text, url text, date_time timestamptz, extra text)\`, event_time date_time; view \`q7\` = \`SELECT auction, streamproc.tumble(date_time, '10 seconds') AS w, count(*), max(price), sum(price) FROM bids GROUP BY 1, 2\`; \`create_kafka_source('src', 'bids', <brokers>, 'bids', format => 'json', parallelism => P, batch_size => $BATCH_SIZE${SOURCE_OPTIONS:+, options => '$SOURCE_OPTIONS'})\` (batch_timeout 100 ms); timed from just before \`create_kafka_source\` until \`rows_in + dead_letters\` in \`streamproc.sources\` reaches N, polled every 50 ms over one psql session (so the end is known to within ~50 ms); events/s = N / that time. It includes the worker's start, its Kafka connection and first fetch (\"first rows\" below: creation until the first batch was committed)"
    echo "- $RUNS runs of each variant, in the order of the table; every streamproc run on a freshly created stream, view and source (drop_source + drop_stream cascade), \`CHECKPOINT\` (untimed) before each"
    echo "- cluster: $SETTINGS${EXTRA_CONF:+, $EXTRA_CONF}. synchronous_commit=off because a batch's view changes and its Kafka offsets commit in one transaction: a commit lost in a crash rolls both back and the source re-reads those messages, so it costs no data and no double counting; fsync stays on"
    echo
    echo "| variant | events/s median | events/s best | ratio to raw consume (median) | check |"
    echo "| --- | ---: | ---: | ---: | --- |"
    for v in "${VARIANTS[@]}"; do
        read -r med best < <(stat_of "$v" EPS)
        ratio=$(fdiv "$med" "$RAW_MED" %.3f)
        [[ $v == "$RAWV" ]] && ratio=1
        [[ $ratio != n/a && $v != "$RAWV" ]] && ratio="$ratio (1 / $(fdiv "$RAW_MED" "$med" %.0f))"
        printf '| %s | %s | %s | %s | %s |\n' "$v" "$(commas "${med%.*}")" "$(commas "${best%.*}")" "$ratio" "$(checks_of "$v")"
    done
    echo
    echo "Per run. CPU s = CPU time (user + system) used during the run by the source worker(s) and by the mock broker (all its threads); busy cores = CPU time of the whole machine / wall time (out of $(nproc))."
    echo
    echo "| variant | run | seconds | events/s | first rows (s) | worker CPU s | broker CPU s | busy cores | WAL MB | check |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for v in "${VARIANTS[@]}" "${PROFILES[@]%|*}"; do
        for run in $(seq "$RUNS"); do
            k="$v|$run"
            [[ -n ${CHECK[$k]:-} ]] || continue
            if [[ $v == "$RAWV" ]]; then
                printf '| %s | %s | %s | %s | — | — | %s | %s | — | %s; process wall time %s s (%s events/s) |\n' "$v" "$run" \
                    "$(fdiv "$EVENTS" "${EPS[$k]:-0}" %.3f)" "$(commas "${EPS[$k]:-0}")" "${MCPU[$k]}" "${BUSY[$k]}" \
                    "${CHECK[$k]}" "${WALL[$k]}" "$(commas "${RAWWALL[$k]:-0}")"
            else
                printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$v" "$run" "${WALL[$k]:-}" \
                    "$(commas "${EPS[$k]:-}")" "${STARTUP[$k]:-}" "${WCPU[$k]:-}" "${MCPU[$k]:-}" "${BUSY[$k]:-}" \
                    "${WAL[$k]:-}" "${CHECK[$k]}"
            fi
        done
    done
    echo
    echo "Source worker CPU time / wall time (median over the runs; above 1 when librdkafka's threads, which decompress and parse fetch responses, run alongside the main thread):"
    echo
    for v in "${VARIANTS[@]}"; do
        [[ $v == "$RAWV" ]] && continue
        util=$(for run in $(seq "$RUNS"); do
                   k="$v|$run"; [[ -n ${WCPU[$k]:-} && -n ${WALL[$k]:-} ]] && fdiv "${WCPU[$k]}" "${WALL[$k]}" && echo
               done | median)
        echo "- $v: ${util:-n/a}"
    done
    if [[ -n $TUNED_OPTIONS ]]; then
        echo
        echo "Unbounded prefetch = \`options => '$TUNED_OPTIONS'\`: librdkafka may then prefetch the whole topic into memory; a diagnostic, not a recommended setting. See bench/README.md, \"Reading the Kafka results\"."
    fi
    for prof in "${PROFILES[@]}"; do
        v=${prof%|*}; tag=${prof##*|}
        [[ -s $WORK/perf_${tag}_worker.data ]] || continue
        echo
        echo "## Profile: \`perf record -g\` during \"$v\""
        echo
        echo "$(commas "$EVENTS") events in ${WALL["$v|1"]:-?} s; source worker CPU ${WCPU["$v|1"]:-?} s, mock broker CPU ${MCPU["$v|1"]:-?} s. Top 15 symbols by self time in the source worker process (all its threads; \`perf report --no-children\`), as a share of its samples (CPU time, not wall time):"
        echo
        echo "| self | dso | symbol |"
        echo "| ---: | --- | --- |"
        perf_top "$WORK/perf_${tag}_worker.data" 15
        echo
        echo "By thread: $(perf_threads "$WORK/perf_${tag}_worker.data") (\`postgres\` is the worker's main thread: decoding, views, commits; \`rdk:*\` are librdkafka's threads: fetching and decompressing)."
        echo
        echo "Top 20 by inclusive time (frame-pointer call graphs: PostgreSQL and libc are built without frame pointers, so some callers are lost and unresolved frames are left out):"
        echo
        echo "| children | self | dso | symbol |"
        echo "| ---: | ---: | --- | --- |"
        perf_children "$WORK/perf_${tag}_worker.data" 20
        if [[ -s $WORK/perf_${tag}_mock.data ]]; then
            echo
            echo "The mock broker during the same run, top 8 by self time:"
            echo
            echo "| self | dso | symbol |"
            echo "| ---: | --- | --- |"
            perf_top "$WORK/perf_${tag}_mock.data" 8
        fi
    done
    if [[ ${#ERRORS[@]} -gt 0 ]]; then
        echo
        echo "Errors (verbatim):"
        echo
        echo '```'
        printf '%s\n' "${ERRORS[@]}"
        echo '```'
    fi
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
[[ ${#ERRORS[@]} -eq 0 ]]
