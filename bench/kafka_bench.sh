#!/usr/bin/env bash
# bench/kafka_bench.sh — how fast a streamproc Kafka source turns a topic into
# up-to-date continuous views, against how fast a bare librdkafka consumer can
# merely read the same topic (the "limit"); optionally how fresh the views are
# at fixed input rates and how much memory a source worker holds over a long
# run.  bench/run runs it with the Nexmark lines (BENCH_VIEWS="q7 q5 q11 ten"),
# the freshness and the memory parts, and folds the figures into
# bench/results/nexmark.md.
#
#   1. starts the mock Kafka cluster (test/kafka/mock_kafka) with a topic of
#      16 partitions and preloads BENCH_EVENTS Nexmark-style JSON bids into it
#      with bench/kafka/bidgen (-p 16, lz4) before anything is timed;
#   2. raw:  bench/kafka/raw_consume reads the whole topic (its own clock:
#      first message to last), BENCH_RUNS times;
#   3. streamproc: a throw-away PostgreSQL cluster, stream `bids` (event time
#      date_time) with one set of continuous views (BENCH_VIEWS: q7 = Nexmark
#      q7's aggregate, per auction and 10-second tumbling window count/max/sum
#      of price; q5 = a 10 s / 2 s hopping count per auction; q11 = a 10 s
#      session count per bidder; ten = ten views on the stream); a Kafka
#      source on the topic is created and timed from its creation until
#      rows_in + dead_letters in streamproc.sources reaches BENCH_EVENTS
#      (polled every 50 ms over one psql session), BENCH_RUNS times per view
#      set and parallelism, each on a freshly created stream/views/source;
#      every run is checked (dead letters = 0, no late rows, and every view
#      equals a plain GROUP BY over the same bids); two diagnostic lines
#      follow: the source into a stream with no view, and the first line with
#      librdkafka's prefetch limits lifted (BENCH_TUNED_OPTIONS);
#   4. if perf works, one more untimed run of the first line and of the
#      lifted-limits line under `perf record -g` (source worker and mock broker);
#   5. freshness (BENCH_FRESH_RATES): for each rate, a source on a fresh topic
#      while bidgen -r RATE produces into it; a probe inside the server polls a
#      per-partition count view every 10 ms, and each message's latency is the
#      first poll that saw it minus the time bidgen produced it (p50/p99);
#   6. memory (BENCH_MEMORY_EVENTS): a source over a topic of that many bids
#      (produced while it runs when the mock broker cannot hold them all),
#      the worker's /proc/PID/status (VmHWM, VmRSS, RssAnon, RssShmem)
#      sampled every second;
#   7. writes bench/results/kafka.md (and, with BENCH_SUMMARY_DIR, the figures
#      as tab-separated files) and removes everything it started.
#
# Usage: bench/kafka_bench.sh          (knobs: see bench/README.md)
#
# Nothing is built unless BENCH_BUILD=1: `make` builds the tools and the
# extension, `make install` installs the extension; this script only checks
# that both were done.  Run it as root (initdb/postgres then run as the
# postgres user, like demo/run) or as a user who can run initdb.
set -euo pipefail

ME=kafka_bench
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EVENTS=${BENCH_EVENTS:-1000000}
RUNS=${BENCH_RUNS:-3}
PARALLELISM=${BENCH_PARALLELISM:-1 2}
PARALLELISM=${PARALLELISM//,/ }
NOVIEW=${BENCH_NOVIEW:-1}
BATCH_SIZE=${BENCH_BATCH_SIZE:-10000}
BATCH_TIMEOUT=${BENCH_BATCH_TIMEOUT:-}  # batch_timeout of every source; empty: the default (100 ms)
SOURCE_OPTIONS=${BENCH_SOURCE_OPTIONS:-}
# Diagnostic line: the same source with librdkafka's prefetch limits out of the
# way (the whole topic may be prefetched into memory), to separate what the
# consumer configuration costs from what the engine costs.  Empty: skipped.
TUNED_OPTIONS=${BENCH_TUNED_OPTIONS-'{"queued.min.messages": "10000000", "queued.max.messages.kbytes": "2097151"}'}
PARTITIONS=${BENCH_PARTITIONS:-16}
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-300}
PERF_MODE=${BENCH_PERF:-auto}
OUT=${BENCH_OUT:-$here/results/kafka.md}
VIEWS=${BENCH_VIEWS:-q7}                # view sets of the main lines (q7 q5 q11 ten)
VIEWS=${VIEWS//,/ }
FRESH_RATES=${BENCH_FRESH_RATES:-}      # bids per second; empty: no freshness part
FRESH_RATES=${FRESH_RATES//,/ }
FRESH_SECONDS=${BENCH_FRESH_SECONDS:-20}
FRESH_PAR=${BENCH_FRESH_PARALLELISM:-1}  # workers of the freshness source
FRESH_POLL_MS=${BENCH_FRESH_POLL_MS:-10}
FRESH_WARMUP=${BENCH_FRESH_WARMUP:-2}
MEM_EVENTS=${BENCH_MEMORY_EVENTS:-0}    # 0: no memory part
MEM_VIEWS=${BENCH_MEMORY_VIEWS:-q7}
MEM_PARTS=${BENCH_MEMORY_PARTITIONS:-$PARTITIONS}
MEM_INTERVAL=${BENCH_MEMORY_INTERVAL:-1}
SUMMARY_DIR=${BENCH_SUMMARY_DIR:-}
START_TS=2026-11-22T10:00:00Z           # event time of the first bid (fixed: same bids every time)
POLL_S=0.05
# The mock broker keeps only ~5 MiB of (lz4) batches per partition, ~80,000
# of these bids; topics that must hold more get more partitions.
PER_PARTITION=60000

posint BENCH_EVENTS "$EVENTS"
posint BENCH_RUNS "$RUNS"
posint BENCH_BATCH_SIZE "$BATCH_SIZE"
posint BENCH_PARTITIONS "$PARTITIONS"
posint BENCH_RUN_TIMEOUT "$RUN_TIMEOUT"
[[ -n ${PARALLELISM// /} ]]         || die "BENCH_PARALLELISM is empty"
for p in $PARALLELISM; do posint BENCH_PARALLELISM "$p"; done
[[ -n ${VIEWS// /} ]]               || die "BENCH_VIEWS is empty"
for vs in $VIEWS $MEM_VIEWS; do
    case $vs in q7|q5|q11|ten|none) ;; *) die "unknown view set '$vs' in BENCH_VIEWS/BENCH_MEMORY_VIEWS (q7, q5, q11, ten, none)";; esac
done
[[ $MEM_VIEWS != *" "* ]]           || die "BENCH_MEMORY_VIEWS takes one view set"
for r in $FRESH_RATES; do posint BENCH_FRESH_RATES "$r"; done
posint BENCH_FRESH_SECONDS "$FRESH_SECONDS"
posint BENCH_FRESH_PARALLELISM "$FRESH_PAR"
posint BENCH_FRESH_POLL_MS "$FRESH_POLL_MS"
[[ $FRESH_WARMUP =~ ^[0-9]+$ ]]       || die "BENCH_FRESH_WARMUP must be a number of seconds (got '$FRESH_WARMUP')"
(( FRESH_WARMUP < FRESH_SECONDS )) || [[ -z $FRESH_RATES ]] || die "BENCH_FRESH_WARMUP must be less than BENCH_FRESH_SECONDS"
[[ $MEM_EVENTS =~ ^[0-9]+$ ]]         || die "BENCH_MEMORY_EVENTS must be a non-negative integer (got '$MEM_EVENTS')"
[[ $MEM_INTERVAL =~ ^[0-9]*\.?[0-9]+$ ]] || die "BENCH_MEMORY_INTERVAL must be a number of seconds (got '$MEM_INTERVAL')"
posint BENCH_MEMORY_PARTITIONS "$MEM_PARTS"
case $PERF_MODE in auto|0|1) ;; *) die "BENCH_PERF must be auto, 0 or 1 (got '$PERF_MODE')";; esac
(( BASH_VERSINFO[0] >= 5 )) || die "needs bash 5 (EPOCHREALTIME)"

MOCK=$repo/test/kafka/mock_kafka
BIDGEN=$repo/bench/kafka/bidgen
RAW=$repo/bench/kafka/raw_consume

# ---------------------------------------------------------------- prerequisites
build_if_asked
find_pg
require_extension "or BENCH_BUILD=1 $0"
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

# ---------------------------------------------------------------- cleanup
MOCK_PID=
PSQL_PID=
PERF_PIDS=()
BG_PIDS=()      # freshness probe and live producer while they run
# called by cleanup (bench/lib.sh) before it stops the cluster
# shellcheck disable=SC2317  # invoked by the trap
stop_children() {
    local p
    perf_stop
    for p in "${BG_PIDS[@]}" $PSQL_PID $MOCK_PID; do kill "$p" 2>/dev/null || true; done
    for p in "${BG_PIDS[@]}" $PSQL_PID $MOCK_PID; do wait "$p" 2>/dev/null || true; done
}
new_workdir spkbench

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
# median and max of numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maxof()  { sort -g | tail -n 1; }
fdiv()   { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (b == 0) print "n/a"; else printf f, a / b }'; }
# a fixed-point sleep without forking: read with a timeout on a pipe nobody writes to
exec {SLEEP_FD}<> <(:)
nap() { read -r -t "$1" -u "$SLEEP_FD" _ || true; }
# memory of a process from /proc/PID/status, in kB, into the array MEMST
# (VmRSS VmHWM RssAnon RssFile RssShmem); returns 1 if the process is gone
declare -A MEMST
read_mem() {
    local key val _rest
    MEMST=()
    [[ -r /proc/$1/status ]] || return 1
    while read -r key val _rest; do
        case $key in VmRSS:|VmHWM:|RssAnon:|RssFile:|RssShmem:) MEMST[${key%:}]=$val ;; esac
    done <"/proc/$1/status" 2>/dev/null
    [[ -n ${MEMST[VmHWM]:-} ]]
}
mb() { fdiv "${1:-0}" 1024 %.0f; }      # kB -> MB
# is a child process still running (not a zombie)?
running() {
    local st
    { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1     # gone (bash reaps its children)
    st=${st##*) }
    [[ ${st%% *} != Z ]]
}

# ---------------------------------------------------------------- broker + data
# Topics: bids (the preloaded one every line reads), one fresh topic per
# freshness rate, and bids_mem for the memory run.
TOPIC_ARGS=(-t "bids:$PARTITIONS")
for r in $FRESH_RATES; do
    TOPIC_ARGS+=(-t "fresh_$r:$PARTITIONS")
    (( r * FRESH_SECONDS <= PER_PARTITION * PARTITIONS )) ||
        log "warning: $((r * FRESH_SECONDS)) bids at $r/s may not fit in $PARTITIONS partitions of the mock broker if the source falls behind (the checks would tell)"
done
(( MEM_EVENTS > 0 )) && TOPIC_ARGS+=(-t "bids_mem:$MEM_PARTS")
log "starting the mock Kafka cluster (topic bids, $PARTITIONS partitions)"
"$MOCK" "${TOPIC_ARGS[@]}" >"$WORK/mock.out" 2>"$WORK/mock.err" </dev/null &
MOCK_PID=$!
for _ in $(seq 100); do [[ -s $WORK/mock.out ]] && break; sleep 0.1; done
BROKERS=$(head -n 1 "$WORK/mock.out")
[[ $BROKERS == *:* ]] || die "the mock Kafka cluster did not start: $(cat "$WORK/mock.err")"

log "preloading $(commas "$EVENTS") bids (bidgen -p $PARTITIONS, lz4)"
"$BIDGEN" -b "$BROKERS" -t bids -p "$PARTITIONS" -n "$EVENTS" --start "$START_TS" 2>"$WORK/bidgen.log" ||
    die "bidgen failed: $(cat "$WORK/bidgen.log")"
GEN_LINE=$(grep '^bidgen:' "$WORK/bidgen.log" | tail -n 1)
log "  $GEN_LINE"
[[ $GEN_LINE == *"delivered=$EVENTS "* ]] || die "bidgen did not deliver every bid: $GEN_LINE"

# Untimed read of a whole topic: every bid must still be in it — the mock
# broker keeps only ~5 MiB per partition and drops the oldest data beyond
# that.  verify_topic TOPIC N: dies if not; sets TOPIC_BYTES.
verify_topic() {
    local topic=$1 n=$2 kept
    "$RAW" -b "$BROKERS" -t "$topic" -n "$n" -v >"$WORK/raw_verify.out" 2>"$WORK/raw_verify.err" || true
    kept=$(awk '/^partition/ { split($0, a, "watermarks="); split(a[2], w, "\\.\\."); if (w[1] != 0) bad++; hi += w[2] }
                END { print (bad ? "dropped" : hi) }' "$WORK/raw_verify.err")
    if [[ $kept != "$n" ]]; then
        grep '^partition' "$WORK/raw_verify.err" >&2 || cat "$WORK/raw_verify.err" >&2
        die "topic $topic does not hold all $n bids ($kept): the mock broker keeps only ~5 MiB per partition; lower the number of bids or raise BENCH_PARTITIONS"
    fi
    TOPIC_BYTES=$(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' "$WORK/raw_verify.out")
}
# (doubles as a warm-up)
verify_topic bids "$EVENTS"
MAIN_TOPIC_BYTES=$TOPIC_BYTES

# ---------------------------------------------------------------- (a) raw consume
declare -A EPS WALL STARTUP WCPU MCPU BUSY CHECK WAL RAWWALL RSS
RAWV="raw_consume"
VARIANTS=("$RAWV")
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
# A batch's view changes and its Kafka offsets commit in one transaction, so
# an asynchronous commit lost in a crash rolls both back together and the
# source re-reads those messages from Kafka: nothing is lost or counted twice.
# fsync stays on (no risk of a corrupt cluster).
SETTINGS=(synchronous_commit=off shared_preload_libraries=streamproc max_worker_processes=32 timezone=UTC)
start_cluster 54430 "${SETTINGS[@]}"
PG_VERSION=$("${PSQL[@]}" -At -c 'SHOW server_version')

# ---------------------------------------------------------------- views and expected results
# The view sets.  VIEW_Q: a view's query over the stream `bids`; EXP_Q: the
# same result as a plain query over __SRC__ (a prefix of the bids, as rows
# of a table), which the view must equal exactly after a run.  EXP_Q uses
# none of streamproc's functions, so a bug in them cannot hide in the check:
# a tumbling window is date_bin() from the epoch, a hopping window a
# generate_series() of the windows that hold the bid (size / slide of them,
# the last starting at date_bin(slide)), a bidder's sessions numbered by the
# gaps of 10 s or more before each bid.
HOT="('Google', 'Facebook', 'Baidu', 'Apple')"
declare -A VIEW_Q EXP_Q SET_VIEWS SET_LABEL
VIEW_Q[q7]="SELECT auction, streamproc.tumble(date_time, '10 seconds') AS w, count(*) AS n, max(price) AS max_price, sum(price) AS total FROM bids GROUP BY 1, 2"
VIEW_Q[q5]="SELECT auction, streamproc.hop(date_time, '10 seconds', '2 seconds') AS w, count(*) AS n FROM bids GROUP BY 1, 2"
VIEW_Q[q11]="SELECT bidder, streamproc.session(date_time, '10 seconds') AS s, count(*) AS n FROM bids GROUP BY 1, 2"
VIEW_Q[t04]="SELECT bidder, streamproc.tumble(date_time, '1 minute') AS w, count(*) AS n, sum(price) AS total FROM bids GROUP BY 1, 2"
VIEW_Q[t05]="SELECT channel, streamproc.hop(date_time, '1 minute', '10 seconds') AS w, count(*) AS n, max(price) AS max_price FROM bids WHERE channel IN $HOT GROUP BY 1, 2"
VIEW_Q[t06]="SELECT auction, streamproc.tumble(date_time, '1 minute') AS w, min(price) AS min_price, avg(price) AS avg_price FROM bids GROUP BY 1, 2"
VIEW_Q[t07]="SELECT auction, count(*) AS n, sum(price) AS total FROM bids GROUP BY 1"
VIEW_Q[t08]="SELECT bidder, count(*) AS n, max(date_time) AS last_bid FROM bids GROUP BY 1"
VIEW_Q[t09]="SELECT streamproc.tumble(date_time, '1 second') AS w, count(*) AS n, sum(price) AS total FROM bids GROUP BY 1"
VIEW_Q[t10]="SELECT channel, count(*) AS n, max(price) AS max_price FROM bids GROUP BY 1"
for v in q7 t04 t06 t07 t08 t09 t10; do
    EXP_Q[$v]=$(sed -E "s/streamproc\.tumble\(date_time, ('[^']*')\)/date_bin(\1, date_time, 'epoch')/; s/FROM bids/FROM __SRC__/" <<<"${VIEW_Q[$v]}")
done
EXP_Q[q5]="SELECT auction, w, count(*) AS n FROM __SRC__,
    generate_series(date_bin('2 seconds', date_time, 'epoch') - interval '8 seconds', date_bin('2 seconds', date_time, 'epoch'), interval '2 seconds') AS w
 GROUP BY 1, 2"
EXP_Q[t05]="SELECT channel, w, count(*) AS n, max(price) AS max_price FROM __SRC__,
    generate_series(date_bin('10 seconds', date_time, 'epoch') - interval '50 seconds', date_bin('10 seconds', date_time, 'epoch'), interval '10 seconds') AS w
 WHERE channel IN $HOT GROUP BY 1, 2"
EXP_Q[q11]="SELECT bidder, min(date_time) AS s, count(*) AS n FROM (
    SELECT bidder, date_time, sum(starts) OVER (PARTITION BY bidder ORDER BY date_time, seq) AS sid FROM (
        SELECT bidder, date_time, seq,
               CASE WHEN date_time - lag(date_time) OVER (PARTITION BY bidder ORDER BY date_time, seq) < interval '10 seconds'
                    THEN 0 ELSE 1 END AS starts
          FROM __SRC__) m) n
 GROUP BY bidder, sid"
[[ ${EXP_Q[*]} != *streamproc.* ]] || die "an expected result must not use streamproc's functions"
SET_VIEWS=([none]="" [q7]="q7" [q5]="q5" [q11]="q11" [ten]="q7 q5 q11 t04 t05 t06 t07 t08 t09 t10")
SET_LABEL=([none]="no view" [q7]="q7 (10 s tumble per auction)" [q5]="q5 (10 s / 2 s hop per auction)"
           [q11]="q11 (10 s session per bidder)" [ten]="ten views")
BIDS_COLUMNS="auction bigint, bidder bigint, price bigint, channel text, url text, date_time timestamptz, extra text"

# Every bid of every topic comes from the same sequence (same seed and start:
# a run over N bids reads the first N of it), loaded here as rows, untimed,
# for the checks: bids_all(seq, ...) holds the first LOADED of them.
log "loading the bids as rows, for the checks"
"${PSQL[@]}" >/dev/null <<SQL
CREATE EXTENSION streamproc;
CREATE UNLOGGED TABLE bids_all (seq bigserial, $BIDS_COLUMNS);
-- freshness: what the probe saw, and what bidgen produced
CREATE UNLOGGED TABLE fresh_polls (poll int, t_us bigint, part int, n bigint, last_us bigint);
CREATE UNLOGGED TABLE fresh_sent (part int, off bigint, produced_us bigint, acked_us bigint);
-- The probe: every poll_s, in its own transaction (a fresh snapshot, and no
-- snapshot held between polls), records the per-partition counts visible in
-- the view fresh_v with the time it read them; the time is taken after the
-- snapshot, so a row counted was visible by then.  Stops once 'total' rows
-- are visible, or after timeout_s.
CREATE PROCEDURE fresh_probe(total bigint, poll_s float8, timeout_s float8) LANGUAGE plpgsql AS \$\$
DECLARE
    seen bigint := 0;
    i int := 0;
    deadline timestamptz := clock_timestamp() + timeout_s * interval '1 second';
BEGIN
    WHILE seen < total AND clock_timestamp() < deadline LOOP
        i := i + 1;
        WITH v AS (SELECT part, n, last_us FROM fresh_v),
             c AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS t_us FROM v LIMIT 1),
             ins AS (INSERT INTO fresh_polls SELECT i, c.t_us, v.part, v.n, v.last_us FROM v, c)
        SELECT coalesce(sum(n), 0) INTO seen FROM v;
        COMMIT;
        PERFORM pg_sleep(poll_s);
    END LOOP;
END
\$\$;
SQL
LOADED=0
# ensure_bids N: bids_all holds at least the first N bids
ensure_bids() {
    local n=$1
    (( n <= LOADED )) && return 0
    "$BIDGEN" --print --csv --first "$LOADED" -n "$((n - LOADED))" --start "$START_TS" 2>/dev/null |
        "${PSQL[@]}" -c "\\copy bids_all (auction, bidder, price, channel, url, date_time, extra) FROM pstdin WITH (FORMAT csv)" >/dev/null ||
        die "loading bids $((LOADED + 1))..$n for the checks failed"
    LOADED=$n
    [[ $("${PSQL[@]}" -At -c 'SELECT count(*) = max(seq) FROM bids_all') == t ]] || die "bids_all is not 1..N"
}
ensure_bids "$EVENTS"

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

STREAM_SQL="SELECT streamproc.create_stream('bids', '$BIDS_COLUMNS', event_time => 'date_time');"
# freshness: the same stream plus the time bidgen produced each bid
FRESH_STREAM_SQL="SELECT streamproc.create_stream('bids', '$BIDS_COLUMNS, produced_us bigint', event_time => 'date_time');"
create_view_sql() { printf "SELECT streamproc.create_view('%s', \$\$%s\$\$);" "$1" "${VIEW_Q[$1]}"; }
# source_sql TOPIC PARALLELISM [OPTIONS_JSON]: the source of every run
# shellcheck disable=SC2016  # the single quotes are SQL's, inside double quotes
source_sql() {
    echo "SELECT streamproc.create_kafka_source('src', 'bids', '$BROKERS', '$1', format => 'json',
              parallelism => $2, batch_size => $BATCH_SIZE${BATCH_TIMEOUT:+, batch_timeout => '$BATCH_TIMEOUT'}${3:+, options => '$3'});"
}
# the pids of the source workers, one a line in SQL_OUT
worker_pids() { sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'streamproc source'" || die "$SQL_ERR"; }

# ensure_expected VIEW N: table exp_VIEW_N holds the view's result over the
# first N bids, computed by a plain query (untimed, once)
declare -A HAVE_EXP
ensure_expected() {
    local vw=$1 n=$2
    [[ -n ${HAVE_EXP["$vw|$n"]:-} ]] && return 0
    ensure_bids "$n"
    sql "CREATE OR REPLACE VIEW bids_upto_$n AS SELECT * FROM bids_all WHERE seq <= $n;
         CREATE TABLE exp_${vw}_$n AS ${EXP_Q[$vw]//__SRC__/bids_upto_$n};
         ANALYZE exp_${vw}_$n;" || die "expected result of $vw over $n bids: $SQL_ERR"
    HAVE_EXP["$vw|$n"]=1
}

# drop the source (its workers stop) and the stream with its views
teardown() {
    sql "SELECT streamproc.drop_source('src') FROM streamproc.source_defs WHERE name = 'src';
         SELECT streamproc.drop_stream('bids', cascade => true) WHERE to_regclass('bids') IS NOT NULL;" ||
        die "teardown failed: $SQL_ERR"
    # wait for the old workers to be gone, so they cannot take CPU from the next run
    for _ in $(seq 200); do
        worker_pids
        (( ${#SQL_OUT[@]} == 0 )) && return 0
        nap 0.05
    done
    die "the source workers did not stop after drop_source"
}

# check_run VIEW_SET N: after a run over the first N bids, the source took
# every one (rows_in = N, no dead letters), none was late, and every view of
# the set equals its expected result over them (EXCEPT ALL both ways, and not
# empty): the outcome in CHK (what was found) and CHK_OK (1 or 0)
check_run() {
    local set=$1 n=$2 got dead late vw e diff rows list=""
    sql "SELECT rows_in, dead_letters, (SELECT coalesce(sum(late_rows), 0) FROM streamproc.view_defs WHERE stream = 'bids'::regclass)
           FROM streamproc.sources WHERE name = 'src'" || die "check: $SQL_ERR"
    IFS='|' read -r got dead late <<<"${SQL_OUT[0]}"
    CHK="rows_in $got, dead_letters $dead"
    CHK_OK=1
    [[ $got == "$n" && $dead == 0 ]] || CHK_OK=0
    [[ -n ${SET_VIEWS[$set]} ]] || return 0
    [[ $late == 0 ]] || CHK_OK=0
    for vw in ${SET_VIEWS[$set]}; do
        e=exp_${vw}_$n
        sql "SELECT (SELECT count(*) FROM (TABLE $vw EXCEPT ALL TABLE $e) a) + (SELECT count(*) FROM (TABLE $e EXCEPT ALL TABLE $vw) b),
                    (SELECT count(*) FROM $vw)" || die "check of $vw: $SQL_ERR"
        IFS='|' read -r diff rows <<<"${SQL_OUT[0]}"
        [[ $diff == 0 && $rows -gt 0 ]] || CHK_OK=0
        list+="${list:+, }$vw $diff/$rows"
    done
    CHK+=", late rows $late; rows differing from GROUP BY / rows: $list"
}

# fail_run LINE RUN WHY: the run failed before it could be checked
fail_run() { CHECK["$1|$2"]="FAILED: $3"; ERRORS+=("$1 run $2: FAILED: $3"); }

# perf record -g on the workers (pids, comma separated) and the mock broker,
# into $WORK/perf_TAG_{worker,mock}.data, until perf_stop
perf_start() {  # tag pids
    perf record -g -N -q -o "$WORK/perf_$1_worker.data" -p "$2" >"$WORK/perf_$1_worker.log" 2>&1 &
    PERF_PIDS+=($!)
    perf record -g -N -q -o "$WORK/perf_$1_mock.data" -p "$MOCK_PID" >"$WORK/perf_$1_mock.log" 2>&1 &
    PERF_PIDS+=($!)
}
perf_stop() {
    local p
    for p in "${PERF_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${PERF_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PERF_PIDS=()
}

sample_mem() {  # pids (comma separated), seconds, rows -> one line, or returns 1
    local p f sum=(0 0 0 0 0) i
    for p in ${1//,/ }; do
        read_mem "$p" || return 1
        i=0
        for f in VmRSS VmHWM RssAnon RssFile RssShmem; do
            sum[i]=$(( sum[i] + ${MEMST[$f]:-0} )); i=$((i + 1))
        done
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$2" "$3" "${sum[@]}"
}

# feed TOPIC N DONE: while a source reads TOPIC (RS_FEED partitions), keeps
# bidgen filling it with the first N bids, a chunk of RS_FEED_CHUNK at a time,
# the next one once the last is in and fewer than RS_FEED_AHEAD bids wait to
# be consumed (DONE are in), so the mock broker, which keeps ~80,000 bids per
# partition, never drops one.  Returns 1 if bidgen failed (FEED_ERR: how).
FEED_FED=0      # bids produced so far
FEED_N=0        # of the chunk being produced
FEED_PID=
feed() {
    local topic=$1 n=$2 done=$3
    if [[ -n $FEED_PID ]]; then
        running "$FEED_PID" && return 0
        BG_PIDS=()
        if ! wait "$FEED_PID"; then
            FEED_PID=
            FEED_ERR="bidgen --first $FEED_FED -n $FEED_N: $(tail -n 2 "$WORK/bidgen_feed.log" | tr '\n' ' ')"
            return 1
        fi
        FEED_PID=
        FEED_FED=$((FEED_FED + FEED_N))
    fi
    (( FEED_FED < n && FEED_FED - done < RS_FEED_AHEAD )) || return 0
    FEED_N=$(( n - FEED_FED < RS_FEED_CHUNK ? n - FEED_FED : RS_FEED_CHUNK ))
    "$BIDGEN" -b "$BROKERS" -t "$topic" -p "$RS_FEED" --first "$FEED_FED" -n "$FEED_N" --start "$START_TS" \
        2>>"$WORK/bidgen_feed.log" &
    FEED_PID=$!
    BG_PIDS=("$FEED_PID")
}

# run_stream LINE VIEW_SET PARALLELISM OPTIONS_JSON RUN [PROFILE_TAG]
# A source on topic RS_TOPIC (default bids, RS_EVENTS bids, default
# BENCH_EVENTS) into stream bids with the views of VIEW_SET (none: no view),
# timed from its creation until every bid is in, then checked.  With a
# PROFILE_TAG the source worker(s) and the mock broker run under
# perf record -g while the run lasts.  With RS_SAMPLES set, the worker's
# memory is appended to that file every BENCH_MEMORY_INTERVAL seconds:
# seconds, bids in, then VmRSS VmHWM RssAnon RssFile RssShmem in kB (summed
# over the workers).  With RS_FEED=P the topic (of P partitions) starts
# empty and feed fills it while the source runs.
RS_TOPIC=bids
RS_EVENTS=$EVENTS
RS_SAMPLES=
RS_FEED=
RS_FEED_CHUNK=0
RS_FEED_AHEAD=0
run_stream() {
    local v=$1 set=$2 par=$3 opts=$4 run=$5 ptag=${6:-}
    local topic=$RS_TOPIC nev=$RS_EVENTS samples=$RS_SAMPLES
    local k="$v|$run" t0 t1 tfirst="" ndone=0 got dead pids="" m0 m1 b0 b1 w_ticks=0 p wal0 vw
    local next_sample=0 step_us hwm=0 line
    step_us=$(awk -v s="$MEM_INTERVAL" 'BEGIN { printf "%d", s * 1000000 }')
    teardown
    for vw in ${SET_VIEWS[$set]}; do ensure_expected "$vw" "$nev"; done
    sql "$STREAM_SQL" || die "create_stream: $SQL_ERR"
    for vw in ${SET_VIEWS[$set]}; do
        sql "$(create_view_sql "$vw")" || die "create_view $vw: $SQL_ERR"
    done
    sql "CHECKPOINT; SELECT pg_current_wal_insert_lsn();" || die "$SQL_ERR"
    wal0=${SQL_OUT[0]}
    FEED_FED=0
    m0=$(proc_ticks "$MOCK_PID"); b0=$(sys_busy_ticks)

    t0=$(now_us)
    sql "$(source_sql "$topic" "$par" "$opts")" || { fail_run "$v" "$run" "create_kafka_source: $SQL_ERR"; return; }
    while :; do
        sql "SELECT rows_in, dead_letters FROM streamproc.sources WHERE name = 'src';" || die "poll: $SQL_ERR"
        t1=$(now_us)
        IFS='|' read -r got dead <<<"${SQL_OUT[0]:-0|0}"
        ndone=$((got + dead))
        (( ndone >= nev )) && break
        [[ -z $tfirst ]] && (( ndone > 0 )) && tfirst=$t1
        if [[ -n $RS_FEED ]] && ! feed "$topic" "$nev" "$ndone"; then
            fail_run "$v" "$run" "$FEED_ERR"
            return
        fi
        if [[ ( -n $ptag || -n $samples ) && -z $pids ]]; then
            worker_pids
            pids=$(IFS=,; echo "${SQL_OUT[*]}")
            [[ -n $pids && -n $ptag ]] && perf_start "$ptag" "$pids"
        fi
        if [[ -n $samples && -n $pids ]] && (( t1 >= next_sample )); then
            if line=$(sample_mem "$pids" "$(fdiv "$((t1 - t0))" 1000000 %.2f)" "$ndone"); then
                echo "$line" >>"$samples"
            else
                pids=""     # a worker went away (restarted?): look again
            fi
            next_sample=$((t1 + step_us))
        fi
        if (( t1 - t0 > RUN_TIMEOUT * 1000000 )); then
            sql "SELECT state, lag, last_error FROM streamproc.sources WHERE name = 'src'" || true
            fail_run "$v" "$run" "timeout after ${RUN_TIMEOUT}s at $ndone of $nev events (${SQL_OUT[0]:-})"
            return
        fi
        nap "$POLL_S"
    done
    # CPU and peak memory of the workers (fresh processes: all their CPU time
    # and their high-water mark are this run's)
    worker_pids
    for p in "${SQL_OUT[@]}"; do
        w_ticks=$(( w_ticks + $(proc_ticks "$p") ))
        if read_mem "$p" && (( MEMST[VmHWM] > hwm )); then hwm=${MEMST[VmHWM]}; fi
    done
    if [[ -n $samples ]]; then
        pids=$(IFS=,; echo "${SQL_OUT[*]}")
        line=$(sample_mem "$pids" "$(fdiv "$((t1 - t0))" 1000000 %.2f)" "$ndone") && echo "$line" >>"$samples"
    fi
    m1=$(proc_ticks "$MOCK_PID"); b1=$(sys_busy_ticks)
    [[ -z $ptag ]] || perf_stop
    [[ -n $tfirst ]] || tfirst=$t1

    WALL[$k]=$(fdiv "$((t1 - t0))" 1000000 %.3f)
    EPS[$k]=$(fdiv "$nev" "${WALL[$k]}" %.0f)
    STARTUP[$k]=$(fdiv "$((tfirst - t0))" 1000000 %.2f)
    WCPU[$k]=$(fdiv "$w_ticks" "$CLK_TCK")
    MCPU[$k]=$(fdiv "$((m1 - m0))" "$CLK_TCK")
    BUSY[$k]=$(fdiv "$(( (b1 - b0) * 1000000 / CLK_TCK ))" "$((t1 - t0))")
    RSS[$k]=$(mb "$hwm")

    # checks and WAL (untimed)
    sql "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$wal0')" || die "$SQL_ERR"
    WAL[$k]=$(fdiv "${SQL_OUT[0]}" 1048576 %.0f)
    check_run "$set" "$nev"
    if [[ $CHK_OK == 1 ]]; then
        CHECK[$k]="OK: $CHK"
    else
        CHECK[$k]="MISMATCH: $CHK (expected rows_in $nev, no dead letters, no late rows, no row differing)"
        ERRORS+=("$v run $run: ${CHECK[$k]}")
    fi
    log "$v run $run: ${WALL[$k]} s, $(commas "${EPS[$k]}") events/s (first rows after ${STARTUP[$k]} s; worker CPU ${WCPU[$k]} s, peak RSS ${RSS[$k]} MB, broker CPU ${MCPU[$k]} s); ${CHECK[$k]%%:*}"
    teardown
}

# ---------------------------------------------------------------- (b) streamproc
FIRST_PAR=${PARALLELISM%% *}
FIRST_SET=${VIEWS%% *}
SPECS=()      # label|view set|parallelism|options|summary key
for vs in $VIEWS; do
    for par in $PARALLELISM; do
        SPECS+=("streamproc ${SET_LABEL[$vs]}, parallelism $par|$vs|$par|$SOURCE_OPTIONS|line.$vs.$par")
    done
done
[[ $NOVIEW == 1 ]] &&
    SPECS+=("diagnostic: streamproc, no view, parallelism $FIRST_PAR|none|$FIRST_PAR|$SOURCE_OPTIONS|noview")
[[ -n $TUNED_OPTIONS ]] &&
    SPECS+=("diagnostic: streamproc ${SET_LABEL[$FIRST_SET]}, parallelism $FIRST_PAR, unbounded prefetch (options below)|$FIRST_SET|$FIRST_PAR|$TUNED_OPTIONS|tuned")
declare -A KEY_OF     # line label -> summary key
KEY_OF[$RAWV]=raw
for spec in "${SPECS[@]}"; do
    IFS='|' read -r v vs par opts key <<<"$spec"
    VARIANTS+=("$v")
    KEY_OF[$v]=$key
    for run in $(seq "$RUNS"); do run_stream "$v" "$vs" "$par" "$opts" "$run"; done
done

# Profiles: one more (untimed) run of the first line, and of the unbounded-prefetch line.
PROFILES=()   # label|tag
if [[ $PERF == 1 ]]; then
    v="streamproc ${SET_LABEL[$FIRST_SET]}, parallelism $FIRST_PAR (profiled, untimed)"
    log "one more run of the first line under perf record -g (worker and broker)"
    run_stream "$v" "$FIRST_SET" "$FIRST_PAR" "$SOURCE_OPTIONS" 1 main
    PROFILES+=("$v|main")
    if [[ -n $TUNED_OPTIONS ]]; then
        v="streamproc ${SET_LABEL[$FIRST_SET]}, parallelism $FIRST_PAR, unbounded prefetch (profiled, untimed)"
        log "and of the unbounded-prefetch line"
        run_stream "$v" "$FIRST_SET" "$FIRST_PAR" "$TUNED_OPTIONS" 1 tuned
        PROFILES+=("$v|tuned")
    fi
fi

# ---------------------------------------------------------------- freshness
# At a fixed input rate, how long from a bid being produced until its effect
# is visible in the view.  Per rate: a fresh topic, stream bids with view q7
# and a small companion view fresh_v (per partition: count and the newest
# produced_us), both maintained in the same transaction per batch, so a bid
# is visible in q7 exactly when it is counted in fresh_v.  A source is
# started on the empty topic, then bidgen -r RATE produces RATE * seconds
# bids, logging each bid's partition, offset, produce time and ack time from
# its delivery report, while the probe (fresh_probe above) polls fresh_v
# every BENCH_FRESH_POLL_MS ms.  A partition's bids become visible in offset
# order (a batch commits a prefix of each partition), so bid (p, o) is
# visible from the first poll whose count for p exceeds o; its latency is
# that poll's time minus its produce time (an upper bound, by at most one
# poll interval).  Both clocks are this machine's CLOCK_REALTIME.  Bids
# produced during the first BENCH_FRESH_WARMUP seconds are left out of the
# percentiles (the source's first fetches), not out of the checks.
declare -A FR          # "rate|field" -> value
FRESH_DONE=()
pct_ms() { awk -v v="$1" 'BEGIN { if (v == "") print "n/a"; else printf "%.1f", v / 1000 }'; }
run_fresh() {
    local rate=$1 count=$(( $1 * FRESH_SECONDS )) topic=fresh_$1 probe_pid gen_line ok=1
    local stamps=$WORK/stamps_$1.tsv poll_s pdiff never mono stampbad stampn
    local npolls interval n mean mx
    poll_s=$(fdiv "$FRESH_POLL_MS" 1000 %.3f)
    log "freshness at $rate bids/s: $(commas "$count") bids into topic $topic while a source consumes it"
    teardown
    ensure_expected q7 "$count"
    sql "$FRESH_STREAM_SQL" || die "create_stream: $SQL_ERR"
    sql "$(create_view_sql q7)" || die "create_view q7: $SQL_ERR"
    sql "SELECT streamproc.create_view('fresh_v', \$\$SELECT auction % $PARTITIONS AS part, count(*) AS n, max(produced_us) AS last_us FROM bids GROUP BY 1\$\$);" ||
        die "create_view fresh_v: $SQL_ERR"
    sql "TRUNCATE fresh_polls, fresh_sent; CHECKPOINT;" || die "$SQL_ERR"
    if ! sql "$(source_sql "$topic" "$FRESH_PAR" "$SOURCE_OPTIONS")"; then
        FR["$rate|check"]="FAILED: create_kafka_source: $SQL_ERR"; ERRORS+=("freshness $rate/s: ${FR["$rate|check"]}")
        return
    fi
    # the worker is up and fetching from the (still empty) topic
    for _ in $(seq 200); do
        worker_pids
        (( ${#SQL_OUT[@]} > 0 )) && break
        nap 0.05
    done
    nap 1
    "${PSQL[@]}" -c "CALL fresh_probe($count, $poll_s, $((FRESH_SECONDS + RUN_TIMEOUT)))" >"$WORK/probe_$rate.log" 2>&1 &
    probe_pid=$!
    BG_PIDS=("$probe_pid")
    nap 0.2
    if ! "$BIDGEN" -b "$BROKERS" -t "$topic" -p "$PARTITIONS" -n "$count" -r "$rate" --start "$START_TS" \
            --stamp --stamp-log "$stamps" 2>"$WORK/bidgen_$rate.log"; then
        ok=0
    fi
    gen_line=$(grep '^bidgen: sent' "$WORK/bidgen_$rate.log" | tail -n 1)
    log "  $gen_line"
    wait "$probe_pid" || { ok=0; log "the probe failed: $(tail -n 3 "$WORK/probe_$rate.log")"; }
    BG_PIDS=()
    FR["$rate|produced"]=$(sed -n 's/.*msgs_per_sec=\([0-9]*\).*/\1/p' <<<"$gen_line")

    # checks (untimed): every bid in, nothing dead or late, q7 equals its
    # GROUP BY, fresh_v's counts equal the bids per partition
    "${PSQL[@]}" -c "\\copy fresh_sent FROM '$stamps'" >/dev/null || die "loading $stamps failed"
    check_run q7 "$count"
    (( ok )) || CHK_OK=0
    sql "SELECT (SELECT count(*) FROM ((SELECT part, n FROM fresh_v EXCEPT ALL SELECT auction % $PARTITIONS, count(*) FROM bids_upto_$count GROUP BY 1)
                                       UNION ALL (SELECT auction % $PARTITIONS, count(*) FROM bids_upto_$count GROUP BY 1 EXCEPT ALL SELECT part, n FROM fresh_v)) d),
                (SELECT count(*) FROM fresh_sent)" || die "$SQL_ERR"
    IFS='|' read -r pdiff n <<<"${SQL_OUT[0]}"
    CHK+="; fresh_v: $pdiff partitions differ; $n delivery reports"
    [[ $pdiff == 0 && $n == "$count" ]] || CHK_OK=0

    # latencies
    sql "CREATE INDEX IF NOT EXISTS fresh_polls_idx ON fresh_polls (part, n, poll);
         DROP TABLE IF EXISTS fresh_lat;
         CREATE UNLOGGED TABLE fresh_lat AS
         SELECT s.part, s.off, s.produced_us, s.acked_us, p.t_us AS visible_us
           FROM fresh_sent s
           LEFT JOIN LATERAL (SELECT t_us FROM fresh_polls f WHERE f.part = s.part AND f.n > s.off
                               ORDER BY f.n, f.poll LIMIT 1) p ON true;" || die "latencies: $SQL_ERR"
    # the method's own checks: counts never go backward between polls, and the
    # newest produced_us visible is the stamp of the bid at offset count - 1
    sql "SELECT (SELECT count(*) FROM fresh_lat WHERE visible_us IS NULL),
                (SELECT count(*) FROM (SELECT n < lag(n) OVER (PARTITION BY part ORDER BY poll) AS bad FROM fresh_polls) x WHERE bad),
                (SELECT count(*) FILTER (WHERE s.produced_us IS DISTINCT FROM f.last_us) || '|' || count(*)
                   FROM fresh_polls f LEFT JOIN fresh_sent s ON s.part = f.part AND s.off = f.n - 1 WHERE f.n > 0),
                (SELECT count(DISTINCT poll) || '|' || coalesce(round((max(t_us) - min(t_us)) / nullif(count(DISTINCT poll) - 1, 0) / 1000.0, 1), 0)
                   FROM fresh_polls)" || die "$SQL_ERR"
    IFS='|' read -r never mono stampbad stampn npolls interval <<<"${SQL_OUT[0]}"
    CHK+="; never seen $never; count went backward $mono times; newest produced_us not the stamp at offset count-1: $stampbad of $stampn polls"
    [[ $never == 0 && $mono == 0 && $stampbad == 0 ]] || CHK_OK=0
    sql "WITH w AS (SELECT visible_us - produced_us AS lat, visible_us - acked_us AS after_ack, acked_us - produced_us AS ack
                      FROM fresh_lat
                     WHERE produced_us >= (SELECT min(produced_us) FROM fresh_lat) + $FRESH_WARMUP * 1000000)
         SELECT count(*), round(avg(lat)), max(lat),
                array_to_string(percentile_disc(ARRAY[0.5, 0.9, 0.99, 0.999]) WITHIN GROUP (ORDER BY lat), '|'),
                array_to_string(percentile_disc(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY after_ack), '|'),
                array_to_string(percentile_disc(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY ack), '|')
           FROM w" || die "$SQL_ERR"
    IFS='|' read -r n mean mx FR["$rate|p50"] FR["$rate|p90"] FR["$rate|p99"] FR["$rate|p999"] \
        FR["$rate|after_ack_p50"] FR["$rate|after_ack_p99"] FR["$rate|ack_p50"] FR["$rate|ack_p99"] <<<"${SQL_OUT[0]}"
    FR["$rate|n"]=$n; FR["$rate|mean"]=$mean; FR["$rate|max"]=$mx
    FR["$rate|polls"]=$npolls; FR["$rate|interval"]=$interval
    # how often the view changed (to the poll's resolution), and by how much:
    # latency is mostly the time between two commits of the source
    sql "WITH t AS (SELECT poll, min(t_us) AS t_us, sum(n) AS n FROM fresh_polls GROUP BY poll),
              c AS (SELECT t_us, n - lag(n, 1, 0::numeric) OVER (ORDER BY poll) AS dn FROM t),
              u AS (SELECT dn, t_us - lag(t_us) OVER (ORDER BY t_us) AS gap FROM c WHERE dn > 0)
         SELECT count(*), round(percentile_disc(0.5) WITHIN GROUP (ORDER BY gap) / 1000.0), round(max(gap) / 1000.0), round(avg(dn))
           FROM u" || die "$SQL_ERR"
    IFS='|' read -r FR["$rate|changes"] FR["$rate|gap_p50"] FR["$rate|gap_max"] FR["$rate|per_change"] <<<"${SQL_OUT[0]}"
    # the whole distribution, for the chart: percentile (1..100) and latency in ms
    sql "SELECT p, round(l / 1000.0, 2) FROM unnest(ARRAY(SELECT generate_series(1, 100) / 100.0)) WITH ORDINALITY AS q(f, p),
                LATERAL (SELECT percentile_disc(q.f) WITHIN GROUP (ORDER BY visible_us - produced_us) AS l
                           FROM fresh_lat WHERE produced_us >= (SELECT min(produced_us) FROM fresh_lat) + $FRESH_WARMUP * 1000000) x" ||
        die "$SQL_ERR"
    printf '%s\n' "${SQL_OUT[@]}" | tr '|' '\t' >"$WORK/fresh_$rate.cdf"
    if [[ $CHK_OK == 1 ]]; then
        FR["$rate|check"]="OK: $CHK"
    else
        FR["$rate|check"]="MISMATCH: $CHK"
        ERRORS+=("freshness $rate/s: ${FR["$rate|check"]}")
    fi
    FRESH_DONE+=("$rate")
    log "freshness at $rate/s: p50 $(pct_ms "${FR["$rate|p50"]}") ms, p99 $(pct_ms "${FR["$rate|p99"]}") ms, max $(pct_ms "$mx") ms over $(commas "$n") bids ($npolls polls, every $interval ms); ${FR["$rate|check"]%%:*}"
    teardown
}
for r in $FRESH_RATES; do run_fresh "$r"; done

# ---------------------------------------------------------------- memory
# A source over BENCH_MEMORY_EVENTS bids in topic bids_mem, preloaded if the
# mock broker can hold them all, else produced while the source runs with a
# bounded backlog (RS_FEED); the worker's memory sampled every
# BENCH_MEMORY_INTERVAL seconds.
MEMV=
MEM_FEED=
if (( MEM_EVENTS > 0 )); then
    MEMV="memory: streamproc ${SET_LABEL[$MEM_VIEWS]}, parallelism 1, $(commas "$MEM_EVENTS") bids in $MEM_PARTS partitions"
    RS_TOPIC=bids_mem; RS_EVENTS=$MEM_EVENTS; RS_SAMPLES=$WORK/memory.tsv
    if (( MEM_EVENTS <= PER_PARTITION * MEM_PARTS )); then
        log "memory: preloading $(commas "$MEM_EVENTS") bids into topic bids_mem ($MEM_PARTS partitions)"
        "$BIDGEN" -b "$BROKERS" -t bids_mem -p "$MEM_PARTS" -n "$MEM_EVENTS" --start "$START_TS" 2>"$WORK/bidgen_mem.log" ||
            die "bidgen failed: $(cat "$WORK/bidgen_mem.log")"
        verify_topic bids_mem "$MEM_EVENTS"
        MEM_TOPIC_BYTES=$TOPIC_BYTES
    else
        # more than the mock broker keeps: produced while the source runs,
        # never more than half of what the partitions hold waiting
        RS_FEED=$MEM_PARTS
        RS_FEED_AHEAD=$(( PER_PARTITION * MEM_PARTS / 2 ))
        RS_FEED_CHUNK=$(( PER_PARTITION * MEM_PARTS / 4 ))
        MEM_FEED="produced by bidgen while the source ran, in chunks of $(commas "$RS_FEED_CHUNK") bids, the next chunk only while fewer than $(commas "$RS_FEED_AHEAD") bids waited to be consumed (the mock broker keeps only ~80,000 bids per partition), so the source's prefetch queue stayed full"
        log "memory: $(commas "$MEM_EVENTS") bids into topic bids_mem ($MEM_PARTS partitions), produced while the source runs"
    fi
    : >"$WORK/memory.tsv"
    run_stream "$MEMV" "$MEM_VIEWS" 1 "$SOURCE_OPTIONS" 1
    RS_TOPIC=bids; RS_EVENTS=$EVENTS; RS_SAMPLES=; RS_FEED=
    # peak of each figure, and private memory (RssAnon) early on vs at the end
    read -r MEM_SAMPLES MEM_PEAK_RSS MEM_PEAK_HWM MEM_PEAK_ANON MEM_PEAK_SHMEM MEM_ANON_EARLY MEM_ANON_END < <(
        awk -v n="$MEM_EVENTS" '{ c++; if ($3 > r) r = $3; if ($4 > h) h = $4; if ($5 > a) a = $5; if ($7 > s) s = $7
                                  if (e == "" && $2 >= n / 10) e = $5; last = $5 }
                                END { print c + 0, r + 0, h + 0, a + 0, s + 0, (e == "" ? last : e) + 0, last + 0 }' "$WORK/memory.tsv")
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
ok_runs() {  # variant -> how many of its runs were checked OK
    local r ok=0
    for r in $(seq "$RUNS"); do [[ ${CHECK["$1|$r"]:-} == OK* ]] && ok=$((ok + 1)); done
    echo "$ok"
}
checks_of() {
    local ok
    ok=$(ok_runs "$1")
    if [[ $ok == "$RUNS" ]]; then echo "OK ($ok/$RUNS runs)"; else echo "**FAILED** ($ok/$RUNS runs OK)"; fi
}

read -r RAW_MED _ < <(stat_of "$RAWV" EPS)
COMMIT=$(git_commit)
CPU_MODEL=$(cpu_model)
RDKAFKA=$(rdkafka_version)
CMD=$(command_line bench/kafka_bench.sh BENCH_EVENTS BENCH_RUNS BENCH_VIEWS BENCH_PARALLELISM BENCH_NOVIEW BENCH_BATCH_SIZE \
          BENCH_BATCH_TIMEOUT BENCH_SOURCE_OPTIONS BENCH_TUNED_OPTIONS BENCH_PARTITIONS BENCH_FRESH_RATES BENCH_FRESH_SECONDS \
          BENCH_FRESH_PARALLELISM BENCH_FRESH_POLL_MS BENCH_FRESH_WARMUP BENCH_MEMORY_EVENTS BENCH_MEMORY_VIEWS BENCH_MEMORY_PARTITIONS \
          BENCH_MEMORY_INTERVAL BENCH_PG_CONF BENCH_PERF BENCH_RUN_TIMEOUT)
AVG_BYTES=$(fdiv "$MAIN_TOPIC_BYTES" "$EVENTS" %.0f)
USED_VIEWS=" "     # the views the report shows the definition of
for vs in $VIEWS $([[ -n $MEMV ]] && echo "$MEM_VIEWS") $([[ ${#FRESH_DONE[@]} -gt 0 ]] && echo q7); do
    for vw in ${SET_VIEWS[$vs]}; do [[ $USED_VIEWS == *" $vw "* ]] || USED_VIEWS+="$vw "; done
done

mkdir -p "$(dirname "$OUT")"
{
    echo "# Kafka source throughput: streamproc vs a bare librdkafka consumer"
    echo
    echo "Generated by \`bench/kafka_bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); command: \`$CMD\`"
    echo
    echo "- host: $(nproc) cores (\`nproc\`), $CPU_MODEL, $(mem_gib) GiB RAM; load average before / after: $LOAD_START / $LOAD_END"
    echo "- PostgreSQL $PG_VERSION; streamproc at git $COMMIT; librdkafka $RDKAFKA"
    echo "- data: N = $(commas "$EVENTS") Nexmark-style JSON bids (bench/kafka/bidgen, ~$AVG_BYTES bytes each, $(commas "$MAIN_TOPIC_BYTES") bytes in all), produced with lz4 into one topic of $PARTITIONS partitions (\`-p $PARTITIONS\`: partition = auction % $PARTITIONS) of the mock Kafka cluster (test/kafka/mock_kafka, librdkafka's mock broker, on loopback, same machine) before anything is timed; event time from $START_TS, 1 ms per bid"
    echo "- raw_consume: bench/kafka/raw_consume reads every partition from the beginning; events/s by its own clock (first message received to last message checksummed; connecting and the first fetch are not counted)"
    # shellcheck disable=SC2016
    echo "- streamproc: stream \`bids($BIDS_COLUMNS)\`, event_time date_time, with the views of the line (below); \`create_kafka_source('src', 'bids', <brokers>, 'bids', format => 'json', parallelism => P, batch_size => $BATCH_SIZE${BATCH_TIMEOUT:+, batch_timeout => '$BATCH_TIMEOUT'}${SOURCE_OPTIONS:+, options => '$SOURCE_OPTIONS'})\` (batch_timeout ${BATCH_TIMEOUT:-100 ms}); timed from just before \`create_kafka_source\` until \`rows_in + dead_letters\` in \`streamproc.sources\` reaches N, polled every 50 ms over one psql session (so the end is known to within ~50 ms); events/s = N / that time. It includes the worker's start, its Kafka connection and first fetch (\"first rows\" below: creation until the first batch was committed)"
    echo "- $RUNS runs of each variant, in the order of the table; every streamproc run on a freshly created stream, views and source (drop_source + drop_stream cascade), \`CHECKPOINT\` (untimed) before each; after each run (untimed) every view is compared, whole, with the same query run as a plain \`GROUP BY\` over the same bids, its windows computed without streamproc's functions (\`date_bin\`, \`generate_series\`, window functions; \`EXCEPT ALL\` both ways), and rows_in, dead letters and late rows are checked"
    echo "- view sets: q7 = \`q7\`; q5 = \`q5\`; q11 = \`q11\`; ten views = \`q7 q5 q11 t04 t05 t06 t07 t08 t09 t10\`, all on the one stream:"
    echo
    for vw in $USED_VIEWS; do
        echo "  - \`$vw\`: \`${VIEW_Q[$vw]}\`"
    done
    echo "- cluster: $(join_list "${CLUSTER_SETTINGS[@]}" "${SETTINGS[@]}")${BENCH_PG_CONF:+, $BENCH_PG_CONF}. synchronous_commit=off because a batch's view changes and its Kafka offsets commit in one transaction: a commit lost in a crash rolls both back and the source re-reads those messages, so it costs no data and no double counting; fsync stays on"
    echo
    echo "| variant | events/s median | events/s best | ratio to raw consume (median) | check |"
    echo "| --- | ---: | ---: | ---: | --- |"
    for v in "${VARIANTS[@]}"; do
        read -r med best < <(stat_of "$v" EPS)
        ratio=$(ratio "$med" "$RAW_MED")
        [[ $v == "$RAWV" ]] && ratio=1
        [[ $ratio != n/a && $v != "$RAWV" ]] && ratio="$ratio (1 / $(ratio "$RAW_MED" "$med" %.0f))"
        printf '| %s | %s | %s | %s | %s |\n' "$v" "$(commas "${med%.*}")" "$(commas "${best%.*}")" "$ratio" "$(checks_of "$v")"
    done
    echo
    echo "Per run. CPU s = CPU time (user + system) used during the run by the source worker(s) and by the mock broker (all its threads); busy cores = CPU time of the whole machine / wall time (out of $(nproc))."
    echo
    echo "| variant | run | seconds | events/s | first rows (s) | worker CPU s | worker peak RSS MB | broker CPU s | busy cores | WAL MB | check |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for v in "${VARIANTS[@]}" "${PROFILES[@]%|*}" ${MEMV:+"$MEMV"}; do
        for run in $(seq "$RUNS"); do
            k="$v|$run"
            [[ -n ${CHECK[$k]:-} ]] || continue
            if [[ $v == "$RAWV" ]]; then
                printf '| %s | %s | %s | %s | — | — | — | %s | %s | — | %s; process wall time %s s (%s events/s) |\n' "$v" "$run" \
                    "$(fdiv "$EVENTS" "${EPS[$k]:-0}" %.3f)" "$(commas "${EPS[$k]:-0}")" "${MCPU[$k]}" "${BUSY[$k]}" \
                    "${CHECK[$k]}" "${WALL[$k]}" "$(commas "${RAWWALL[$k]:-0}")"
            else
                printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$v" "$run" "${WALL[$k]:-}" \
                    "$(commas "${EPS[$k]:-}")" "${STARTUP[$k]:-}" "${WCPU[$k]:-}" "${RSS[$k]:-}" "${MCPU[$k]:-}" "${BUSY[$k]:-}" \
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
    echo
    echo "Worker peak RSS = VmHWM of the source worker process at the end of the run (it includes the pages of shared memory it touched: shared buffers, so it grows with the views' state; see the memory section)."
    if [[ -n $TUNED_OPTIONS ]]; then
        echo
        echo "Unbounded prefetch = \`options => '$TUNED_OPTIONS'\`: librdkafka may then prefetch the whole topic into memory; a diagnostic, not a recommended setting. See bench/README.md, \"Reading the Kafka results\"."
    fi
    if [[ ${#FRESH_DONE[@]} -gt 0 ]]; then
        echo
        echo "## Freshness: produce to visible in the view, at fixed input rates"
        echo
        echo "Per rate: a fresh topic of $PARTITIONS partitions, stream \`bids\` (plus a \`produced_us bigint\` column) with view \`q7\` and a companion view \`fresh_v\` = \`SELECT auction % $PARTITIONS AS part, count(*) AS n, max(produced_us) AS last_us FROM bids GROUP BY 1\` (both updated in the same transaction per batch); a source (parallelism $FRESH_PAR, batch_size $BATCH_SIZE, batch_timeout ${BATCH_TIMEOUT:-100 ms}) is started on the empty topic, then \`bidgen -r RATE --stamp --stamp-log\` produces RATE x $FRESH_SECONDS s bids (lz4, linger.ms 5) and logs each bid's partition, offset, produce time and delivery-report time. A probe in the server (a procedure, one transaction per poll) records \`fresh_v\` every $FRESH_POLL_MS ms with \`clock_timestamp()\` taken after the poll's snapshot. A partition's bids become visible in offset order, so bid (p, o) is visible from the first poll whose count for p exceeds o: latency = that poll's time - the bid's produce time (an upper bound, by at most one poll interval; same machine, same clock). Bids produced in the first $FRESH_WARMUP s are left out of the percentiles. \"after ack\" = poll time - delivery report (the part after Kafka had the bid); \"produce to ack\" = the producer and broker's part. The method checks itself: every bid seen, counts never go backward, and the newest \`produced_us\` visible is always the stamp of the bid at offset count - 1."
        echo
        echo "| input rate (bids/s) | produced (bids/s) | bids (in percentiles) | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | mean ms | after ack p50 / p99 ms | produce to ack p50 / p99 ms | polls (mean interval ms) | view changed: times, median / max ms apart, bids per change | check |"
        echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        for r in "${FRESH_DONE[@]}"; do
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s (%s) | %s, %s / %s ms, %s | %s |\n' \
                "$(commas "$r")" "$(commas "${FR["$r|produced"]:-}")" "$(commas "${FR["$r|n"]:-}")" \
                "$(pct_ms "${FR["$r|p50"]:-}")" "$(pct_ms "${FR["$r|p90"]:-}")" "$(pct_ms "${FR["$r|p99"]:-}")" \
                "$(pct_ms "${FR["$r|p999"]:-}")" "$(pct_ms "${FR["$r|max"]:-}")" "$(pct_ms "${FR["$r|mean"]:-}")" \
                "$(pct_ms "${FR["$r|after_ack_p50"]:-}")" "$(pct_ms "${FR["$r|after_ack_p99"]:-}")" \
                "$(pct_ms "${FR["$r|ack_p50"]:-}")" "$(pct_ms "${FR["$r|ack_p99"]:-}")" \
                "${FR["$r|polls"]:-}" "${FR["$r|interval"]:-}" \
                "${FR["$r|changes"]:-}" "${FR["$r|gap_p50"]:-}" "${FR["$r|gap_max"]:-}" "$(commas "${FR["$r|per_change"]:-}")" \
                "${FR["$r|check"]:-not run}"
        done
        for r in $FRESH_RATES; do
            [[ " ${FRESH_DONE[*]} " == *" $r "* ]] || echo "| $(commas "$r") | | | | | | | | | | | | | ${FR["$r|check"]:-**FAILED**} |"
        done
    fi
    if [[ -n $MEMV ]]; then
        echo
        echo "## Memory of the source worker over $(commas "$MEM_EVENTS") bids"
        echo
        echo "\"$MEMV\": topic \`bids_mem\` ($MEM_PARTS partitions) $( [[ -n $MEM_FEED ]] && echo "with the bids $MEM_FEED" || echo "preloaded with the bids ($(commas "${MEM_TOPIC_BYTES:-0}") bytes) before the source starts"), read from the start by one worker (so events/s here is not a throughput figure when the bids were produced during the run). Every $MEM_INTERVAL s the worker's \`/proc/PID/status\` is read: VmHWM = peak resident set so far, VmRSS = resident now, RssAnon = private memory (palloc, librdkafka's queues and buffers), RssShmem = shared memory it has touched (shared buffers: grows with the views' state tables, bounded by shared_buffers, shared with every backend), RssFile = mapped files (binaries, libraries). Result: ${CHECK["$MEMV|1"]:-not run}"
        echo
        echo "- peak VmHWM **$(mb "$MEM_PEAK_HWM") MB**; peak VmRSS $(mb "$MEM_PEAK_RSS") MB; peak RssAnon $(mb "$MEM_PEAK_ANON") MB (at 10% of the bids $(mb "$MEM_ANON_EARLY") MB, at the end $(mb "$MEM_ANON_END") MB); peak RssShmem $(mb "$MEM_PEAK_SHMEM") MB; $MEM_SAMPLES samples; $(commas "${EPS["$MEMV|1"]:-0}") events/s"
        echo
        echo "| seconds | bids in | VmRSS MB | VmHWM MB | RssAnon MB | RssFile MB | RssShmem MB |"
        echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        # at most ~30 rows: every k-th sample, and the last
        awk -v n="$MEM_SAMPLES" 'BEGIN { k = int((n + 29) / 30); if (k < 1) k = 1 }
             (NR - 1) % k == 0 || NR == n {
                 printf "| %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f |\n", $1, $2, $3 / 1024, $4 / 1024, $5 / 1024, $6 / 1024, $7 / 1024 }' \
            "$WORK/memory.tsv"
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
    report_errors
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"

# Machine-readable figures for bench/run (key<TAB>value), the memory samples
# and the latency distributions.
if [[ -n $SUMMARY_DIR ]]; then
    mkdir -p "$SUMMARY_DIR"
    {
        printf 'cores\t%s\ncpu\t%s\npg_version\t%s\nrdkafka\t%s\ncommit\t%s\nevents\t%s\npartitions\t%s\nruns\t%s\n' \
            "$(nproc)" "$CPU_MODEL" "$PG_VERSION" "$RDKAFKA" "$COMMIT" "$EVENTS" "$PARTITIONS" "$RUNS"
        for v in "${VARIANTS[@]}"; do
            key=${KEY_OF[$v]}
            read -r med best < <(stat_of "$v" EPS)
            ok=$(ok_runs "$v")
            read -r _ hwm < <(stat_of "$v" RSS)
            printf '%s.label\t%s\n%s.median\t%s\n%s.best\t%s\n%s.ok\t%s/%s\n%s.rss_mb\t%s\n' \
                "$key" "$v" "$key" "$med" "$key" "$best" "$key" "$ok" "$RUNS" "$key" "$hwm"
        done
        for r in "${FRESH_DONE[@]}"; do
            for f in produced n p50 p90 p99 p999 max mean after_ack_p50 after_ack_p99 ack_p50 ack_p99 polls interval changes gap_p50 gap_max per_change; do
                printf 'fresh.%s.%s\t%s\n' "$r" "$f" "${FR["$r|$f"]:-}"
            done
            printf 'fresh.%s.ok\t%s\n' "$r" "$([[ ${FR["$r|check"]:-} == OK* ]] && echo 1 || echo 0)"
        done
        for r in $FRESH_RATES; do
            [[ " ${FRESH_DONE[*]} " == *" $r "* ]] || printf 'fresh.%s.ok\t0\n' "$r"
        done
        if [[ -n $MEMV ]]; then
            printf 'mem.events\t%s\nmem.views\t%s\nmem.partitions\t%s\nmem.eps\t%s\nmem.samples\t%s\n' \
                "$MEM_EVENTS" "$MEM_VIEWS" "$MEM_PARTS" "${EPS["$MEMV|1"]:-}" "$MEM_SAMPLES"
            printf 'mem.peak_hwm_kb\t%s\nmem.peak_rss_kb\t%s\nmem.peak_anon_kb\t%s\nmem.anon_early_kb\t%s\nmem.anon_end_kb\t%s\nmem.peak_shmem_kb\t%s\n' \
                "$MEM_PEAK_HWM" "$MEM_PEAK_RSS" "$MEM_PEAK_ANON" "$MEM_ANON_EARLY" "$MEM_ANON_END" "$MEM_PEAK_SHMEM"
            printf 'mem.fed\t%s\n' "$([[ -n $MEM_FEED ]] && echo 1 || echo 0)"
            printf 'mem.ok\t%s\n' "$([[ ${CHECK["$MEMV|1"]:-} == OK* ]] && echo 1 || echo 0)"
        fi
    } >"$SUMMARY_DIR/kafka.tsv"
    [[ -n $MEMV ]] && cp "$WORK/memory.tsv" "$SUMMARY_DIR/memory.tsv"
    for r in "${FRESH_DONE[@]}"; do cp "$WORK/fresh_$r.cdf" "$SUMMARY_DIR/fresh_$r.tsv"; done
fi
cat "$OUT"
[[ ${#ERRORS[@]} -eq 0 ]]
