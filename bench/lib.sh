# shellcheck shell=bash
# bench/lib.sh — what the benchmark scripts share, sourced by bench/run,
# bench/copy_bench.sh and bench/kafka_bench.sh: messages, knob checks, the
# PostgreSQL binaries and the installed extension, and the throw-away cluster
# each script runs (a temp dir, initdb, the common settings, start; on exit
# stop, and remove the dir unless BENCH_KEEP=1).
#
# The sourcing script sets ME (the name its messages start with) first.
# Sourcing defines functions and the variables here, repo and PG_CONFIG
# (exported, so the scripts bench/run starts use the same one); it runs
# nothing else.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
if [[ -z ${PG_CONFIG:-} ]]; then
    PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
    [[ -x $PG_CONFIG ]] || PG_CONFIG=pg_config
fi
export PG_CONFIG

die() { echo "$ME: $*" >&2; exit 1; }
log() { echo "$ME: $*" >&2; }

# posint KNOB VALUE: dies unless VALUE is a positive integer
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer (got '$2')"; }

# integer with thousands separators
commas() { printf '%s' "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'; }

# ---- the reports' cells: a figure, or n/a when a run did not give one
num() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
# rounded, with thousands separators
fmt_int() { if num "$1"; then commas "$(printf '%.0f' "$1")"; else echo 'n/a'; fi; }
# ratio A B [FORMAT]: A / B (default %.3f)
ratio() { if num "$1" && num "$2" && [[ $2 != 0 ]]; then awk -v a="$1" -v b="$2" -v f="${3:-%.3f}" 'BEGIN { printf f, a / b }'; else echo 'n/a'; fi; }
# met VALUE TARGET [le]: yes / **no** (at least the target; at most with le)
met() {
    num "$1" || { echo 'n/a'; return; }
    awk -v x="$1" -v t="$2" -v le="${3:-}" 'BEGIN { ok = le ? x <= t : x >= t; print ok ? "yes" : "**no**" }'
}
# the COPY targets: stream / plain table, stream / trigger
T_COPY_PLAIN=1.5
T_COPY_TRIGGER=2.5
rdkafka_version() { dpkg-query -W -f '${Version}' librdkafka1 2>/dev/null || echo unknown; }

# its arguments, comma separated
join_list() { local out="" x; for x; do out+="${out:+, }$x"; done; echo "$out"; }

# the command line as run: SCRIPT preceded by those of the knobs VAR... that are set
command_line() {
    local cmd=$1 var
    shift
    for var; do [[ -n ${!var:-} ]] && cmd="$var=$(printf '%q' "${!var}") $cmd"; done
    echo "$cmd"
}

# the report's section of the errors the runs hit (ERRORS), verbatim, if any
report_errors() {
    (( ${#ERRORS[@]} > 0 )) || return 0
    printf '\nErrors (verbatim):\n\n```\n'
    printf '%s\n' "${ERRORS[@]}"
    echo '```'
}

# the checkout's commit, and whether what the extension is built from has uncommitted changes
git_commit() {
    local c
    c=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
    [[ -z $(git -C "$repo" status --porcelain -- src Makefile 'streamproc--*.sql' streamproc.control 2>/dev/null) ]] ||
        c+=" + uncommitted changes"
    echo "$c"
}
cpu_model() { awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null; }
mem_gib() { awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo 2>/dev/null; }

# BENCH_BUILD=1: make and make install first
build_if_asked() {
    [[ ${BENCH_BUILD:-0} == 1 ]] || return 0
    log "BENCH_BUILD=1: make && make install"
    make -s -C "$repo" -j"$(nproc)" PG_CONFIG="$PG_CONFIG"
    make -s -C "$repo" install PG_CONFIG="$PG_CONFIG" >/dev/null
}

# ---------------------------------------------------------------- PostgreSQL
# find_pg: PGBIN holds the server binaries; as root, the server side runs as
# postgres (initdb and postgres refuse to run as root)
find_pg() {
    local tool
    PGBIN=$("$PG_CONFIG" --bindir) || die "cannot run $PG_CONFIG (install postgresql-server-dev-15 or set PG_CONFIG)"
    for tool in initdb pg_ctl psql pg_isready; do
        [[ -x $PGBIN/$tool ]] || die "$PGBIN/$tool not found"
    done
    (( EUID != 0 )) || id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user (install postgresql-15)"
}
as_pg() { if (( EUID == 0 )); then runuser -u postgres -- "$@"; else "$@"; fi; }

# require_extension [HINT]: dies unless streamproc is installed (HINT: another
# way out); warns when the build in the checkout is not the installed one
require_extension() {
    local lib share
    lib=$("$PG_CONFIG" --pkglibdir)
    share=$("$PG_CONFIG" --sharedir)
    [[ -f $lib/streamproc.so && -f $share/extension/streamproc.control ]] ||
        die "streamproc is not installed in $lib: run  make PG_CONFIG=$PG_CONFIG && make install PG_CONFIG=$PG_CONFIG${1:+  ($1)}"
    if [[ -f $repo/streamproc.so ]] && ! cmp -s "$repo/streamproc.so" "$lib/streamproc.so"; then
        log "warning: $lib/streamproc.so differs from the build in $repo (forgot make install?)"
    fi
}

# ---------------------------------------------------------------- the cluster
# new_workdir PREFIX: WORK, a temp dir the server's user owns (cluster DATA,
# SERVER_LOG and whatever else the script keeps there); cleanup runs on exit
new_workdir() {
    WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/$1.XXXXXX")
    chmod 755 "$WORK"
    (( EUID != 0 )) || chown postgres: "$WORK"
    DATA=$WORK/data
    SERVER_LOG=$WORK/server.log
    STARTED=0
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Stops what the script started (its stop_children first, if it defines
# one), shows the end of the server log after a failure, removes WORK.
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    declare -F stop_children >/dev/null && stop_children
    if [[ $STARTED == 1 ]]; then
        as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            as_pg "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [[ $rc -ne 0 && -f $SERVER_LOG ]]; then
        log "last lines of the server log ($SERVER_LOG):"
        tail -n 30 "$SERVER_LOG" >&2 || true
    fi
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}

# What every benchmark cluster has, for the reports; start_cluster writes them.
# Stable numbers: no checkpoint inside a timed run, no autovacuum kicking in
# (every run starts on fresh tables and drops them), fsync on.
CLUSTER_SETTINGS=(shared_buffers=1GB max_wal_size=4GB checkpoint_timeout=30min autovacuum=off fsync=on)

# start_cluster FIRST_PORT SETTING=VALUE...: initdb in DATA, the common
# settings, then these, then BENCH_PG_CONF's lines; start; create database
# bench.  The server listens only on its unix socket in WORK; its port (PORT:
# BENCH_PORT, or the first from FIRST_PORT on that nobody listens on over TCP,
# so as not to confuse anyone reading `ss -l`) only names the socket.  Sets
# PSQL, the psql command line for database bench.
start_cluster() {
    local first=$1 p setting
    shift
    PORT=${BENCH_PORT:-}
    for p in $(seq "$first" $((first + 100))); do
        [[ -z $PORT ]] || break
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || PORT=$p
    done
    [[ -n $PORT ]] || die "no free port in $first-$((first + 100)) (set BENCH_PORT)"
    log "initdb in $DATA (port $PORT)"
    as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C -N >"$WORK/initdb.log" 2>&1 ||
        { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
    {
        echo
        echo "# ---- $ME ----"
        echo "listen_addresses = ''"
        echo "port = $PORT"
        echo "unix_socket_directories = '$WORK'"
        echo "log_checkpoints = off"
        for setting in "${CLUSTER_SETTINGS[@]}" "$@"; do echo "${setting%%=*} = '${setting#*=}'"; done
        echo "${BENCH_PG_CONF:-}"
    } >>"$DATA/postgresql.conf"
    as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$SERVER_LOG" -w -t 120 start >/dev/null ||
        die "the server did not start (see $SERVER_LOG)"
    STARTED=1
    PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -U postgres)
    "${PSQL[@]}" -d postgres -c 'CREATE DATABASE bench' >/dev/null
    PSQL+=(-d bench)
}
