#!/usr/bin/env bash
# bench/copy_bench.sh — COPY throughput of a streamproc stream against what users
# do without streamproc, measured in one run on the same generated rows:
#
#   stream   COPY into stream `bids` that feeds one continuous view `q7`
#            (10-second tumbling window per auction: count, max, sum)
#   plain    COPY into a plain table with the same columns, no indexes
#   trigger  COPY into a plain table whose AFTER ... FOR EACH STATEMENT trigger
#            (REFERENCING NEW TABLE) upserts the same aggregate by hand
#
# A throw-away cluster is created in a temp dir (initdb as the postgres user when
# run as root), the rows are generated once into a CSV file and split into
# 10,000-row chunks, and each variant loads every chunk with one
# `COPY ... FROM '<chunk>' WITH (FORMAT csv)` statement (autocommit), all in one
# psql session, timed with clock_timestamp() on the server.  Each variant runs
# BENCH_RUNS times on fresh objects, round-robin; best and median rows/s, the
# ratios and per-run correctness checks go to bench/results/copy.md.
#
# Usage: bench/copy_bench.sh            (see bench/README.md for the knobs)
set -euo pipefail

ME=copy_bench
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROWS=${BENCH_ROWS:-1000000}
RUNS=${BENCH_RUNS:-3}
CHUNK_ROWS=${BENCH_CHUNK_ROWS:-10000}
VARIANTS=${BENCH_VARIANTS:-stream plain trigger noview}
VARIANTS=${VARIANTS//,/ }
REQUESTED=$VARIANTS
OUT=${BENCH_OUT:-$here/results/copy.md}
WARMUP=${BENCH_WARMUP:-1}
STMT_TIMEOUT=${BENCH_STATEMENT_TIMEOUT:-5min}   # a hung engine fails the run, not the night

posint BENCH_ROWS "$ROWS"
posint BENCH_RUNS "$RUNS"
posint BENCH_CHUNK_ROWS "$CHUNK_ROWS"
for v in $VARIANTS; do
    case $v in stream|plain|trigger|noview) ;; *) die "unknown variant '$v' in BENCH_VARIANTS (stream, plain, trigger, noview)";; esac
done
[[ -n ${VARIANTS// /} ]] || die "BENCH_VARIANTS is empty"
has_variant() { [[ " $VARIANTS " == *" $1 "* ]]; }
STREAMPROC=0    # does a requested variant need the extension?
{ has_variant stream || has_variant noview; } && STREAMPROC=1

find_pg
for tool in split wc; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
# Say up front rather than failing half-way.
[[ $STREAMPROC == 0 ]] || require_extension 'or set BENCH_VARIANTS="plain trigger"'

# ---------------------------------------------------------------- cluster
new_workdir spbench
# Durability left at the defaults on purpose: every COPY commits and waits
# for its WAL flush, as it would in production.
SETTINGS=(synchronous_commit=on)
[[ $STREAMPROC == 0 ]] || SETTINGS+=(shared_preload_libraries=streamproc)
start_cluster 54329 "${SETTINGS[@]}"
psql_val() { "${PSQL[@]}" -At -c "$1"; }

wait_ready() {
    for _ in $(seq 1 120); do
        "$PGBIN/pg_isready" -q -h "$WORK" -p "$PORT" -U postgres -d bench && return 0
        sleep 0.5
    done
    return 1
}

ERRORS=()    # verbatim errors, for the report
LOG_MARK=0   # server log size when the current step started
mark_log() { LOG_MARK=$(stat -c %s "$SERVER_LOG" 2>/dev/null || echo 0); }
record_error() {  # where ("stream run 2"), step, log file
    local msg crash
    msg=$(grep -E 'ERROR|FATAL|PANIC|server closed|terminated|DETAIL|HINT|CONTEXT' "$3" | head -n 8 || true)
    [[ -n $msg ]] || msg=$(tail -n 8 "$3")
    # A backend crash shows up in the server log, not in psql's output.
    crash=$(tail -c +"$((LOG_MARK + 1))" "$SERVER_LOG" 2>/dev/null |
            grep -E 'PANIC|TRAP|terminated by signal|was terminated|exited with exit code [^0]' | head -n 5 || true)
    [[ -z $crash ]] || msg+=$'\n'"server log: $crash"
    ERRORS+=("$1, $2: $msg")
    log "$1: $2 failed:"
    printf '    %s\n' "${msg//$'\n'/$'\n    '}" >&2
    wait_ready || die "server is not coming back after the failure"
}

# ---------------------------------------------------------------- data
# Nexmark-style bids: ~1000 auctions, event time advancing 1 ms per row
# (~1000 events per second of event time) with up to 200 ms of jitter, Nexmark's
# price distribution.  Event time starts at the next midnight (UTC), in the
# future, so an arrival-time watermark can never close one of these windows
# while the benchmark runs.  Generated once with a fixed seed; the expected
# per-window aggregate is computed from the same rows for the checks.
log "generating $ROWS rows"
"${PSQL[@]}" -v rows="$ROWS" -v csv="$WORK/bids.csv" >/dev/null <<'SQL'
SET TimeZone = 'UTC';
SELECT setseed(0.42);
CREATE UNLOGGED TABLE bench_src AS
SELECT (1000 + floor(random() * 1000))::int                                AS auction,
       (1000 + floor(random() * 10000))::int                               AS bidder,
       round(power(10, random() * 6) * 100)::bigint                        AS price,
       CASE WHEN random() < 0.6
            THEN (ARRAY['Google', 'Facebook', 'Baidu', 'Apple'])[1 + floor(random() * 4)::int]
            ELSE 'channel-' || floor(random() * 10000)::int END            AS channel,
       'https://www.nexmark.com/' || substr(md5(random()::text), 1, 4) || '/'
         || substr(md5(random()::text), 1, 6)
         || '/item.htm?query=1&channel_id=' || floor(random() * 10000)::int AS url,
       date_trunc('day', now()) + interval '1 day'
         + (i + random() * 200) * interval '1 millisecond'                 AS date_time,
       substr(md5(i::text) || md5((i + 1)::text), 1, 10 + i % 40)          AS extra
FROM generate_series(0, :rows - 1) AS i;
COPY bench_src TO :'csv' WITH (FORMAT csv);
CREATE TABLE bench_input AS SELECT count(*) AS n, sum(price) AS total FROM bench_src;
CREATE TABLE bench_expected AS
SELECT auction, date_bin('10 seconds', date_time, 'epoch') AS window_start,
       count(*) AS n, max(price) AS max_price, sum(price) AS total
FROM bench_src GROUP BY 1, 2;
DROP TABLE bench_src;
CREATE TABLE bench_runs (
    variant text, run int, rows bigint, secs float8, wal_bytes numeric,
    ok boolean, check_detail text);
SQL

read -r lines CSV_BYTES _ < <(wc -lc "$WORK/bids.csv")
[[ $lines -eq $ROWS ]] || die "the CSV file holds $lines lines, expected $ROWS"
as_pg mkdir "$WORK/chunks"
as_pg split -l "$CHUNK_ROWS" -d -a 6 --additional-suffix=.csv "$WORK/bids.csv" "$WORK/chunks/c"
rm -f "$WORK/bids.csv"
# The load: one COPY per chunk; psql echoes each one's row count (client
# side, no round trip) for the checks.
NCHUNKS=0
for f in "$WORK"/chunks/c*.csv; do
    printf "COPY :\"target\" FROM '%s' WITH (FORMAT csv);\n%s\n" "$f" '\echo copied :ROW_COUNT'
    NCHUNKS=$((NCHUNKS + 1))
done >"$WORK/load.sql"
"${PSQL[@]}" -c 'VACUUM ANALYZE' -c 'CHECKPOINT' >/dev/null

# ---------------------------------------------------------------- variants
COLUMNS_SQL='auction int, bidder int, price bigint, channel text, url text, date_time timestamptz, extra text'

# Drops whatever a previous (possibly failed) run of the variant left behind.
drop_sql() {
    case $1 in
    stream) cat <<'SQL'
SELECT streamproc.drop_view('q7') WHERE to_regclass('q7') IS NOT NULL;
SELECT streamproc.drop_stream('bids', true) WHERE to_regclass('bids') IS NOT NULL;
SQL
    ;;
    plain) echo 'DROP TABLE IF EXISTS bids_plain;' ;;
    trigger) echo 'DROP TABLE IF EXISTS bids_trig, bids_trig_agg;' ;;
    noview) echo "SELECT streamproc.drop_stream('bids_nv') WHERE to_regclass('bids_nv') IS NOT NULL;" ;;
    esac
}

setup_sql() {
    case $1 in
    stream) cat <<'SQL'
SELECT streamproc.create_stream('bids', 'auction int, bidder int, price bigint, channel text, url text, date_time timestamptz, extra text');
SELECT streamproc.create_view('q7', $$SELECT auction, streamproc.tumble(date_time, '10 seconds') AS window_start, count(*) AS n, max(price) AS max_price, sum(price) AS total FROM bids GROUP BY auction, window_start$$);
SQL
    ;;
    plain) echo "CREATE TABLE bids_plain ($COLUMNS_SQL);" ;;
    noview) echo "SELECT streamproc.create_stream('bids_nv', '$COLUMNS_SQL');" ;;
    trigger)
        echo "CREATE TABLE bids_trig ($COLUMNS_SQL);"
        cat <<'SQL'
CREATE TABLE bids_trig_agg (
    auction      int,
    window_start timestamptz,
    n            bigint NOT NULL,
    max_price    bigint,
    total        numeric,
    PRIMARY KEY (auction, window_start));
CREATE OR REPLACE FUNCTION bids_trig_upsert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bids_trig_agg AS t (auction, window_start, n, max_price, total)
    SELECT auction, date_bin('10 seconds', date_time, 'epoch'), count(*), max(price), sum(price)
    FROM new_rows
    GROUP BY 1, 2
    ON CONFLICT (auction, window_start) DO UPDATE
       SET n         = t.n + excluded.n,
           max_price = greatest(t.max_price, excluded.max_price),
           total     = t.total + excluded.total;
    RETURN NULL;
END
$$;
CREATE TRIGGER bids_trig_agg AFTER INSERT ON bids_trig
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bids_trig_upsert();
SQL
    ;;
    esac
}

target_of() {
    case $1 in stream) echo bids ;; plain) echo bids_plain ;; trigger) echo bids_trig ;; noview) echo bids_nv ;; esac
}

# Checks, sets :ok and :detail.  Stream and trigger: the aggregate's totals
# match the input (sum(n) = rows, sum(total) = sum(price)), and the whole
# aggregate equals a plain GROUP BY over the input (EXCEPT ALL both ways).
# No view: the stream took every row (:copied, the sum of COPY's counts).
check_sql() {
    local rel
    case $1 in
    plain) cat <<'SQL'
SELECT (t.n = i.n AND t.total = i.total) AS ok,
       format('rows %s, sum(price) %s', t.n, t.total) AS detail
FROM (SELECT count(*) AS n, coalesce(sum(price), 0) AS total FROM bids_plain) t, bench_input i \gset
SQL
        return ;;
    noview) cat <<'SQL'
SELECT :copied = :rows AS ok,
       format('COPY took %s of %s rows; nothing kept: the ceiling of COPY into a stream', :copied, :rows) AS detail \gset
SQL
        return ;;
    stream) rel=q7 ;;
    trigger) rel=bids_trig_agg ;;
    esac
    cat <<SQL
WITH got AS (
    SELECT auction::int AS auction, window_start::timestamptz AS window_start, n::bigint AS n,
           max_price::bigint AS max_price, total::numeric AS total
    FROM $rel),
diff AS (
    (SELECT * FROM got EXCEPT ALL SELECT * FROM bench_expected)
    UNION ALL
    (SELECT * FROM bench_expected EXCEPT ALL SELECT * FROM got)),
tot AS (SELECT coalesce(sum(n), 0) AS n, coalesce(sum(total), 0) AS total, count(*) AS groups FROM got)
SELECT (tot.n = i.n AND tot.total = i.total AND (SELECT count(*) FROM diff) = 0) AS ok,
       format('sum(n) %s / %s, sum(total) %s / %s: %s; %s groups, %s differ from GROUP BY over the input',
              tot.n, i.n, tot.total, i.total,
              CASE WHEN tot.n = i.n AND tot.total = i.total THEN 'OK' ELSE 'MISMATCH' END,
              tot.groups, (SELECT count(*) FROM diff)) AS detail
FROM tot, bench_input i \gset
SQL
}

run_variant() {  # variant run
    local v=$1 r=$2 rlog=$WORK/$1.$2.log copied
    local what="run $r/$RUNS"
    [[ $r == 0 ]] && what="warm-up run"
    log "$v $what"
    mark_log
    # One session: drop leftovers, create fresh objects, checkpoint, then the
    # timed load (clock_timestamp() before the first and after the last COPY).
    # `sync` after the checkpoint: the kernel's writeback of what earlier
    # runs wrote (hundreds of MB of WAL and table files) would otherwise
    # compete with this run's WAL flushes, one per COPY, and make a run's
    # time depend on which variant ran before it.
    if ! {
        echo "SET statement_timeout = '$STMT_TIMEOUT';"
        drop_sql "$v"
        setup_sql "$v"
        cat <<'SQL'
CHECKPOINT;
\! sync
SELECT clock_timestamp() AS t0, pg_current_wal_lsn() AS lsn0 \gset
\i :load
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS secs,
       pg_wal_lsn_diff(pg_current_wal_lsn(), :'lsn0') AS wal \gset
INSERT INTO bench_runs (variant, run, rows, secs, wal_bytes)
VALUES (:'variant', :run, :rows, :secs, :wal);
SQL
    } | "${PSQL[@]}" -v variant="$v" -v run="$r" -v rows="$ROWS" \
            -v target="$(target_of "$v")" -v load="$WORK/load.sql" >"$rlog" 2>&1; then
        record_error "$v $what" "setup+load" "$rlog"
        return 0
    fi
    # Untimed: correctness check, then drop everything again.
    copied=$(awk '$1 == "copied" { n += $2 } END { print n + 0 }' "$rlog")
    if ! {
        echo "SET statement_timeout = '$STMT_TIMEOUT';"
        check_sql "$v"
        cat <<'SQL'
UPDATE bench_runs SET ok = :'ok', check_detail = :'detail' WHERE variant = :'variant' AND run = :run;
SQL
    } | "${PSQL[@]}" -v variant="$v" -v run="$r" -v rows="$ROWS" -v copied="$copied" >"$rlog" 2>&1; then
        record_error "$v $what" check "$rlog"
    fi
    if ! drop_sql "$v" | "${PSQL[@]}" >"$rlog" 2>&1; then
        record_error "$v $what" drop "$rlog"
    fi
    local line
    line=$(psql_val "SELECT format('%s rows/s, check %s', round(rows / secs), CASE WHEN ok THEN 'OK' WHEN NOT ok THEN 'MISMATCH' ELSE 'not run' END) FROM bench_runs WHERE variant = '$v' AND run = $r")
    log "$v $what: $line"
}

if [[ $STREAMPROC == 1 ]]; then
    mark_log
    if ! "${PSQL[@]}" -c 'CREATE EXTENSION streamproc' >"$WORK/ext.log" 2>&1; then
        record_error "stream setup" "CREATE EXTENSION streamproc" "$WORK/ext.log"
        VARIANTS=" $VARIANTS "
        VARIANTS=${VARIANTS/ stream / }
        VARIANTS=${VARIANTS/ noview / }
    fi
fi

# Warm-up: one untimed run of each variant (its result is discarded), so the
# first timed run does not pay alone for first-touch page faults on
# shared_buffers and cold caches.
read -r -a vlist <<<"$VARIANTS"
if [[ $WARMUP == 1 ]]; then
    for v in "${vlist[@]}"; do
        run_variant "$v" 0
    done
    psql_val 'DELETE FROM bench_runs WHERE run = 0' >/dev/null
fi

# Round-robin, starting one variant later each round, so no variant always
# runs first or right after the same neighbour.
for r in $(seq 1 "$RUNS"); do
    n=${#vlist[@]}
    for k in $(seq 0 $((n - 1))); do
        run_variant "${vlist[$(((k + r - 1) % n))]}" "$r"
    done
done

# ---------------------------------------------------------------- report
PG_VERSION=$(psql_val 'SHOW server_version')
AVG_ROW=$((CSV_BYTES / ROWS))

# rows/s per variant: best and median over the runs whose check passed.
stats() {  # variant -> "best median runs_ok runs wal_mb_median check"
    psql_val "
        SELECT concat_ws(' ',
               coalesce(round(max(rows / secs) FILTER (WHERE ok))::text, '-'),
               coalesce(round(percentile_cont(0.5) WITHIN GROUP (ORDER BY rows / secs) FILTER (WHERE ok))::text, '-'),
               count(*) FILTER (WHERE ok), count(*),
               coalesce(round(percentile_cont(0.5) WITHIN GROUP (ORDER BY wal_bytes) / 1048576)::text, '-'),
               CASE WHEN count(*) = 0 THEN 'not-run'
                    WHEN bool_and(ok) AND count(*) = $RUNS THEN 'OK'
                    WHEN bool_or(NOT ok) THEN 'MISMATCH'
                    ELSE 'incomplete' END)
        FROM bench_runs WHERE variant = '$1'"
}
declare -A BEST MEDIAN OKRUNS WALMB CHECK
for v in stream plain trigger noview; do
    read -r BEST[$v] MEDIAN[$v] OKRUNS[$v] _ WALMB[$v] CHECK[$v] <<<"$(stats "$v")"
done

times() { [[ $1 == n/a ]] && echo 'n/a' || echo "$1×"; }

R_SP_MED=$(ratio "${MEDIAN[stream]}" "${MEDIAN[plain]}" %.2f)
R_SP_BEST=$(ratio "${BEST[stream]}" "${BEST[plain]}" %.2f)
R_ST_MED=$(ratio "${MEDIAN[stream]}" "${MEDIAN[trigger]}" %.2f)
R_ST_BEST=$(ratio "${BEST[stream]}" "${BEST[trigger]}" %.2f)

describe() {
    # shellcheck disable=SC2016  # the backquotes are markdown
    case $1 in
    stream)  echo 'COPY into stream `bids`, one continuous view `q7` (10 s tumble per auction: count, max, sum)' ;;
    plain)   echo 'COPY into a plain table, no indexes' ;;
    trigger) echo 'COPY into a plain table + AFTER STATEMENT trigger upserting the same aggregate (transition table, ON CONFLICT)' ;;
    noview)  echo 'COPY into a stream with no view: parsing and batching only, the ceiling of the stream path' ;;
    esac
}

mkdir -p "$(dirname "$OUT")"
{
    echo "# COPY throughput: stream vs plain table vs hand-written trigger"
    echo
    echo "Generated by \`bench/copy_bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo
    echo "- host: $(nproc) cores (\`nproc\`), $(cpu_model), $(mem_gib) GiB RAM"
    echo "- PostgreSQL $PG_VERSION; streamproc at git $(git_commit)"
    echo "- data: $(fmt_int "$ROWS") Nexmark-style bids (~1000 auctions, ~1000 events per second of event time, ~$AVG_ROW bytes per CSV row), loaded with $NCHUNKS \`COPY ... FROM '<file>' WITH (FORMAT csv)\` statements of $(fmt_int "$CHUNK_ROWS") rows, each its own transaction, in one psql session"
    echo "- $RUNS runs per variant, round-robin, fresh tables/stream/view each run, \`CHECKPOINT\` and \`sync\` before each (untimed)$([[ $WARMUP == 1 ]] && echo ', after one untimed warm-up run of each variant'); rows/s = rows / wall time of the whole load"
    echo "- settings: $(join_list "${CLUSTER_SETTINGS[@]}" "${SETTINGS[@]}") (synchronous_commit and fsync on, the defaults: every COPY waits for its WAL flush)${BENCH_PG_CONF:+; extra: $(tr '\n' ' ' <<<"$BENCH_PG_CONF")}"
    echo
    echo "| variant | what | rows/s best | rows/s median | WAL MB per load (median) | check |"
    echo "| --- | --- | ---: | ---: | ---: | --- |"
    for v in stream plain trigger noview; do
        [[ " $REQUESTED " == *" $v "* ]] || continue
        echo "| $v | $(describe "$v") | $(fmt_int "${BEST[$v]}") | $(fmt_int "${MEDIAN[$v]}") | $(fmt_int "${WALMB[$v]}") | ${CHECK[$v]/not-run/not run} (${OKRUNS[$v]}/$RUNS runs OK) |"
    done
    echo
    echo "| ratio | median | best | target | met (median) |"
    echo "| --- | ---: | ---: | ---: | --- |"
    echo "| stream / plain | $(times "$R_SP_MED") | $(times "$R_SP_BEST") | ≥ ${T_COPY_PLAIN}× | $(met "$R_SP_MED" "$T_COPY_PLAIN") |"
    echo "| stream / trigger | $(times "$R_ST_MED") | $(times "$R_ST_BEST") | ≥ ${T_COPY_TRIGGER}× | $(met "$R_ST_MED" "$T_COPY_TRIGGER") |"
    if [[ " $REQUESTED " == *" noview "* ]]; then
        echo "| no view / plain (ceiling of stream / plain) | $(times "$(ratio "${MEDIAN[noview]}" "${MEDIAN[plain]}" %.2f)") | $(times "$(ratio "${BEST[noview]}" "${BEST[plain]}" %.2f)") | | |"
    fi
    echo
    echo "Per run (seconds for the whole load; check):"
    echo
    echo "| variant | run | seconds | rows/s | WAL MB | check |"
    echo "| --- | ---: | ---: | ---: | ---: | --- |"
    psql_val "SELECT format('| %s | %s | %s | %s | %s | %s |', variant, run, round(secs::numeric, 2),
                            to_char(rows / secs, 'FM999,999,999'), round(wal_bytes / 1048576),
                            coalesce(CASE WHEN ok THEN 'OK' ELSE 'MISMATCH' END || ': ' || check_detail, 'not run'))
              FROM bench_runs ORDER BY array_position(ARRAY['stream', 'plain', 'trigger', 'noview'], variant), run"
    report_errors
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"

# Machine-readable figures for bench/run (key<TAB>value).
if [[ -n ${BENCH_SUMMARY_DIR:-} ]]; then
    mkdir -p "$BENCH_SUMMARY_DIR"
    {
        printf 'copy.rows\t%s\ncopy.runs\t%s\ncopy.chunk_rows\t%s\n' "$ROWS" "$RUNS" "$CHUNK_ROWS"
        for v in stream plain trigger noview; do
            [[ " $REQUESTED " == *" $v "* ]] || continue
            printf 'copy.%s.best\t%s\ncopy.%s.median\t%s\ncopy.%s.ok\t%s/%s\ncopy.%s.check\t%s\n' \
                "$v" "${BEST[$v]}" "$v" "${MEDIAN[$v]}" "$v" "${OKRUNS[$v]}" "$RUNS" "$v" "${CHECK[$v]}"
        done
    } >"$BENCH_SUMMARY_DIR/copy.tsv"
fi

# Non-zero when a requested variant failed or a check mismatched, so a CI job
# notices; missing the throughput targets is reported, not an error.
status=0
[[ ${#ERRORS[@]} -eq 0 ]] || status=1
for v in $REQUESTED; do
    [[ ${CHECK[$v]} == OK ]] || status=1
done
exit "$status"
