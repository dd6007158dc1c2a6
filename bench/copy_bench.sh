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

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

ROWS=${BENCH_ROWS:-1000000}
RUNS=${BENCH_RUNS:-3}
CHUNK_ROWS=${BENCH_CHUNK_ROWS:-10000}
VARIANTS=${BENCH_VARIANTS:-stream plain trigger noview}
VARIANTS=${VARIANTS//,/ }
REQUESTED=$VARIANTS
OUT=${BENCH_OUT:-$here/results/copy.md}
KEEP=${BENCH_KEEP:-0}
SEED=${BENCH_SEED:-0.42}
WARMUP=${BENCH_WARMUP:-1}
STMT_TIMEOUT=${BENCH_STATEMENT_TIMEOUT:-5min}   # a hung engine fails the run, not the night
EXTRA_CONF=${BENCH_PG_CONF:-}
if [[ -z ${PG_CONFIG:-} ]]; then
    if [[ -x /usr/lib/postgresql/15/bin/pg_config ]]; then
        PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
    else
        PG_CONFIG=pg_config
    fi
fi

die() { echo "copy_bench: $*" >&2; exit 1; }
log() { echo "copy_bench: $*" >&2; }

[[ $ROWS =~ ^[1-9][0-9]*$ ]]       || die "BENCH_ROWS must be a positive integer (got '$ROWS')"
[[ $RUNS =~ ^[1-9][0-9]*$ ]]       || die "BENCH_RUNS must be a positive integer (got '$RUNS')"
[[ $CHUNK_ROWS =~ ^[1-9][0-9]*$ ]] || die "BENCH_CHUNK_ROWS must be a positive integer (got '$CHUNK_ROWS')"
for v in $VARIANTS; do
    case $v in stream|plain|trigger|noview) ;; *) die "unknown variant '$v' in BENCH_VARIANTS (stream, plain, trigger, noview)";; esac
done
[[ -n ${VARIANTS// /} ]] || die "BENCH_VARIANTS is empty"
has_variant() { [[ " $VARIANTS " == *" $1 "* ]]; }

PGBIN=$("$PG_CONFIG" --bindir)    || die "cannot run $PG_CONFIG"
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
SHAREDIR=$("$PG_CONFIG" --sharedir)
for tool in initdb pg_ctl psql pg_isready; do
    [[ -x $PGBIN/$tool ]] || die "$PGBIN/$tool not found"
done
for tool in split wc; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

# The stream variant needs the extension installed (make install).  Say so up
# front rather than failing half-way; BENCH_VARIANTS="plain trigger" skips it.
if has_variant stream || has_variant noview; then
    if [[ ! -f $PKGLIBDIR/streamproc.so || ! -f $SHAREDIR/extension/streamproc.control ]]; then
        die "streamproc is not installed in $PKGLIBDIR (run: make PG_CONFIG=$PG_CONFIG && make install PG_CONFIG=$PG_CONFIG), or set BENCH_VARIANTS=\"plain trigger\""
    fi
    if [[ -f $repo/streamproc.so ]] && ! cmp -s "$repo/streamproc.so" "$PKGLIBDIR/streamproc.so"; then
        log "warning: $PKGLIBDIR/streamproc.so differs from the build in $repo (forgot make install?)"
    fi
fi

# initdb and postgres refuse to run as root: run the server side as postgres.
if [[ $EUID -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user"
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

# ---------------------------------------------------------------- cluster
WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/spbench.XXXXXX")
chmod 755 "$WORK"
[[ $EUID -eq 0 ]] && chown postgres: "$WORK"
DATA=$WORK/data
SERVER_LOG=$WORK/server.log
STARTED=0

# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ $STARTED == 1 ]]; then
        as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            as_pg "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [[ $rc -ne 0 && -f $SERVER_LOG ]]; then
        echo "copy_bench: last lines of the server log ($SERVER_LOG):" >&2
        tail -n 30 "$SERVER_LOG" >&2 || true
    fi
    if [[ $KEEP == 1 ]]; then
        echo "copy_bench: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The server listens on its unix socket in $WORK only (no TCP), so it cannot
# clash with another cluster; the port just has to be one nobody on this host
# listens on over TCP either, to avoid confusing anyone reading `ss -l`.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=${BENCH_PORT:-}
if [[ -z $PORT ]]; then
    for p in $(seq 54329 54429); do
        if ! port_in_use "$p"; then PORT=$p; break; fi
    done
    [[ -n $PORT ]] || die "no free port in 54329-54429"
fi

log "initdb in $DATA (port $PORT)"
as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C -N >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; die "initdb failed"; }

PRELOAD=""
{ has_variant stream || has_variant noview; } && PRELOAD="shared_preload_libraries = 'streamproc'"
cat >>"$DATA/postgresql.conf" <<EOF

# ---- copy_bench.sh ----
listen_addresses = ''
port = $PORT
unix_socket_directories = '$WORK'
$PRELOAD
shared_buffers = 1GB
max_wal_size = 4GB
checkpoint_timeout = 30min
log_checkpoints = off
# Stable numbers: no autovacuum kicking in mid-run (every run starts on fresh
# tables and ends by dropping them, so nothing accumulates).
autovacuum = off
# Durability left at the defaults on purpose: every COPY commits and waits for
# its WAL flush, as it would in production.
synchronous_commit = on
fsync = on
$EXTRA_CONF
EOF
[[ $EUID -eq 0 ]] && chown postgres: "$DATA/postgresql.conf"

as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$SERVER_LOG" -w -t 120 start >/dev/null ||
    die "server did not start (see $SERVER_LOG)"
STARTED=1

PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -U postgres)
"${PSQL[@]}" -d postgres -c 'CREATE DATABASE bench' >/dev/null
PSQL+=(-d bench)
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
"${PSQL[@]}" -v rows="$ROWS" -v seed="$SEED" -v csv="$WORK/bids.csv" >/dev/null <<'SQL'
SET TimeZone = 'UTC';
SELECT setseed(:seed);
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

mkdir -p "$WORK/chunks"
[[ $EUID -eq 0 ]] && chown postgres: "$WORK/chunks"
as_pg split -l "$CHUNK_ROWS" -d -a 6 --additional-suffix=.csv "$WORK/bids.csv" "$WORK/chunks/c"
rm -f "$WORK/bids.csv"
lines=$(cat "$WORK"/chunks/c*.csv | wc -l)
[[ $lines -eq $ROWS ]] || die "chunks hold $lines lines, expected $ROWS"
CSV_BYTES=$(cat "$WORK"/chunks/c*.csv | wc -c)
NCHUNKS=0
: >"$WORK/load.sql"
for f in "$WORK"/chunks/c*.csv; do
    printf "COPY :\"target\" FROM '%s' WITH (FORMAT csv);\n" "$f" >>"$WORK/load.sql"
    NCHUNKS=$((NCHUNKS + 1))
done
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
check_sql() {
    local rel
    case $1 in
    plain) cat <<'SQL'
SELECT (t.n = i.n AND t.total = i.total) AS ok,
       format('rows %s, sum(price) %s', t.n, t.total) AS detail
FROM (SELECT count(*) AS n, coalesce(sum(price), 0) AS total FROM bids_plain) t, bench_input i \gset
SQL
        return ;;
    noview) echo "SELECT true AS ok, 'nothing kept: the ceiling of COPY into a stream' AS detail \\gset"
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
    local v=$1 r=$2 rlog=$WORK/$1.$2.log
    local what="run $r/$RUNS"
    [[ $r == 0 ]] && what="warm-up run"
    log "$v $what"
    mark_log
    # One session: drop leftovers, create fresh objects, checkpoint, then the
    # timed load (clock_timestamp() before the first and after the last COPY).
    if ! {
        echo "SET statement_timeout = '$STMT_TIMEOUT';"
        drop_sql "$v"
        setup_sql "$v"
        cat <<'SQL'
CHECKPOINT;
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
    if ! {
        echo "SET statement_timeout = '$STMT_TIMEOUT';"
        check_sql "$v"
        cat <<'SQL'
UPDATE bench_runs SET ok = :'ok', check_detail = :'detail' WHERE variant = :'variant' AND run = :run;
SQL
    } | "${PSQL[@]}" -v variant="$v" -v run="$r" >"$rlog" 2>&1; then
        record_error "$v $what" check "$rlog"
    fi
    if ! drop_sql "$v" | "${PSQL[@]}" >"$rlog" 2>&1; then
        record_error "$v $what" drop "$rlog"
    fi
    local line
    line=$(psql_val "SELECT format('%s rows/s, check %s', round(rows / secs), CASE WHEN ok THEN 'OK' WHEN NOT ok THEN 'MISMATCH' ELSE 'not run' END) FROM bench_runs WHERE variant = '$v' AND run = $r")
    log "$v $what: $line"
}

if has_variant stream || has_variant noview; then
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
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
MEM_GIB=$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo 2>/dev/null || echo '?')
GIT=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $GIT != unknown && -n $(git -C "$repo" status --porcelain -- src Makefile '*.sql' '*.control' 2>/dev/null) ]]; then
    GIT="$GIT + uncommitted changes"
fi
AVG_ROW=$((CSV_BYTES / ROWS))

# rows/s per variant: best and median over the runs that completed the load.
stats() {  # variant -> "best median runs_ok runs wal_mb_median check"
    psql_val "
        SELECT concat_ws(' ',
               coalesce(round(max(rows / secs))::text, '-'),
               coalesce(round(percentile_cont(0.5) WITHIN GROUP (ORDER BY rows / secs))::text, '-'),
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

fmt_int() { [[ $1 =~ ^[0-9]+$ ]] || { echo 'n/a'; return; }; sed -E ':a; s/([0-9])([0-9]{3})($|,)/\1,\2\3/; ta' <<<"$1"; }
ratio() { [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ && $2 -gt 0 ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }' || echo 'n/a'; }
times() { [[ $1 == n/a ]] && echo 'n/a' || echo "$1×"; }
met() { [[ $1 == n/a ]] && { echo 'n/a'; return; }; awk -v x="$1" -v t="$2" 'BEGIN { print (x >= t) ? "yes" : "no" }'; }

R_SP_MED=$(ratio "${MEDIAN[stream]}" "${MEDIAN[plain]}")
R_SP_BEST=$(ratio "${BEST[stream]}" "${BEST[plain]}")
R_ST_MED=$(ratio "${MEDIAN[stream]}" "${MEDIAN[trigger]}")
R_ST_BEST=$(ratio "${BEST[stream]}" "${BEST[trigger]}")

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
    echo "- host: $(nproc) cores (\`nproc\`), ${CPU:-unknown CPU}, ${MEM_GIB} GiB RAM"
    echo "- PostgreSQL $PG_VERSION; streamproc at git $GIT"
    echo "- data: $(fmt_int "$ROWS") Nexmark-style bids (~1000 auctions, ~1000 events per second of event time, ~$AVG_ROW bytes per CSV row), loaded with $NCHUNKS \`COPY ... FROM '<file>' WITH (FORMAT csv)\` statements of $(fmt_int "$CHUNK_ROWS") rows, each its own transaction, in one psql session"
    echo "- $RUNS runs per variant, round-robin, fresh tables/stream/view each run, \`CHECKPOINT\` before each (untimed)$([[ $WARMUP == 1 ]] && echo ', after one untimed warm-up run of each variant'); rows/s = rows / wall time of the whole load"
    echo "- settings: shared_buffers=1GB, max_wal_size=4GB, checkpoint_timeout=30min, autovacuum=off; synchronous_commit=on and fsync=on (defaults: every COPY waits for its WAL flush)${EXTRA_CONF:+; extra: $(tr '\n' ' ' <<<"$EXTRA_CONF")}"
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
    echo "| stream / plain | $(times "$R_SP_MED") | $(times "$R_SP_BEST") | ≥ 1.5× | $(met "$R_SP_MED" 1.5) |"
    echo "| stream / trigger | $(times "$R_ST_MED") | $(times "$R_ST_BEST") | ≥ 2.5× | $(met "$R_ST_MED" 2.5) |"
    if [[ " $REQUESTED " == *" noview "* ]]; then
        echo "| no view / plain (ceiling of stream / plain) | $(times "$(ratio "${MEDIAN[noview]}" "${MEDIAN[plain]}")") | $(times "$(ratio "${BEST[noview]}" "${BEST[plain]}")") | | |"
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
