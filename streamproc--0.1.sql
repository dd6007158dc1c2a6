/* streamproc--0.1.sql — install script */

\echo Use "CREATE EXTENSION streamproc" to load this file. \quit

-- Window functions and watermark() are for everyone; what administers
-- streams, views and sources is revoked from PUBLIC one by one below.
GRANT USAGE ON SCHEMA streamproc TO PUBLIC;

-- Loading the module first: outside shared_preload_libraries this fails
-- with a hint, before anything is created.
CREATE FUNCTION streamproc.stream_fdw_handler() RETURNS fdw_handler
    AS 'MODULE_PATHNAME', 'sp_stream_fdw_handler' LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER streamproc_fdw HANDLER streamproc.stream_fdw_handler;
CREATE SERVER streamproc FOREIGN DATA WRAPPER streamproc_fdw;
COMMENT ON SERVER streamproc IS 'streams: foreign tables of this server feed continuous views';

-- ---------------------------------------------------------------------------
-- Catalog
-- ---------------------------------------------------------------------------
CREATE TABLE streamproc.stream_defs (
    relid           regclass PRIMARY KEY,
    event_time_att  int2,                          -- event-time column (attnum), or NULL
    event_time      name,                          -- its name, for restores into another database
    origin          text NOT NULL,                 -- system identifier/database/stream OID where attnums hold
    watermark_delay interval NOT NULL DEFAULT '0',
    idle_timeout    interval,
    watermark       timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE streamproc.stream_defs IS 'one row per stream';

CREATE TABLE streamproc.view_defs (
    id              bigserial PRIMARY KEY,
    relid           regclass NOT NULL UNIQUE,      -- the read view
    stream          regclass NOT NULL,
    state_table     regclass NOT NULL UNIQUE,
    query           text NOT NULL,                 -- as written
    canonical_query text NOT NULL,                 -- names qualified; for display and dumps
    query_tree      text NOT NULL,                 -- the analyzed query: what is compiled
    origin          text NOT NULL,                 -- system id/database/stream OID/state OID where its OIDs hold
    emit            text NOT NULL DEFAULT 'changes' CHECK (emit IN ('changes', 'final')),
    retention       interval,
    window_kind     text CHECK (window_kind IN ('tumble', 'hop', 'session')),
    window_column   name,
    window_size     interval,                      -- tumble/hop size, session gap
    window_slide    interval,
    event_time_window boolean NOT NULL DEFAULT false,  -- windows close with the watermark
    late_rows       bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON streamproc.view_defs (stream);
COMMENT ON TABLE streamproc.view_defs IS 'one row per continuous view';

-- Each input of a stream (INSERT/COPY is 'sql'; a Kafka partition is one
-- input) reports the greatest event time it has delivered; the stream's
-- watermark is the least of those, less the delay, over inputs heard from
-- within idle_timeout.  It never moves backward.
CREATE TABLE streamproc.stream_inputs (
    stream          regclass NOT NULL REFERENCES streamproc.stream_defs (relid) ON DELETE CASCADE,
    input           text NOT NULL,
    max_event_time  timestamptz,
    last_seen       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, input)
);
COMMENT ON TABLE streamproc.stream_inputs IS 'event-time progress of each input of a stream';

-- Rows that arrived for windows the watermark had already closed.
CREATE TABLE streamproc.late_rows (
    stream      regclass NOT NULL,
    view        regclass NOT NULL,
    "row"       jsonb NOT NULL,
    event_time  timestamptz,
    watermark   timestamptz NOT NULL,
    arrived_at  timestamptz NOT NULL
);
COMMENT ON TABLE streamproc.late_rows IS 'rows that arrived after their window closed; they did not change the view';

SELECT pg_catalog.pg_extension_config_dump('streamproc.stream_defs', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.stream_inputs', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.late_rows', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.view_defs', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.view_defs_id_seq', '');

-- Plain DROP commands (DROP VIEW, DROP FOREIGN TABLE ... CASCADE) remove
-- catalog rows through this trigger; drop_view()/drop_stream() do it directly.
-- SECURITY DEFINER: it runs for every DROP in the database, by any user,
-- and only ever deletes the rows of objects that were just dropped.
CREATE FUNCTION streamproc.on_sql_drop() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS
$$
BEGIN
    DELETE FROM streamproc.view_defs v
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
       AND d.objid IN (v.relid::oid, v.state_table::oid, v.stream::oid);
    DELETE FROM streamproc.late_rows l
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
       AND d.objid IN (l.stream::oid, l.view::oid);
    DELETE FROM streamproc.stream_defs s
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = s.relid::oid;
END
$$;
REVOKE ALL ON FUNCTION streamproc.on_sql_drop() FROM PUBLIC;
CREATE EVENT TRIGGER streamproc_sql_drop ON sql_drop
    EXECUTE FUNCTION streamproc.on_sql_drop();

-- ---------------------------------------------------------------------------
-- Streams and continuous views
-- ---------------------------------------------------------------------------
CREATE FUNCTION streamproc.create_stream(
    name            text,
    columns         text,
    event_time      text DEFAULT NULL,
    watermark_delay interval DEFAULT '0',
    idle_timeout    interval DEFAULT NULL)
RETURNS regclass AS 'MODULE_PATHNAME', 'sp_create_stream' LANGUAGE C VOLATILE;

CREATE FUNCTION streamproc.drop_stream(name text, "cascade" boolean DEFAULT false)
RETURNS void AS 'MODULE_PATHNAME', 'sp_drop_stream' LANGUAGE C VOLATILE;

CREATE FUNCTION streamproc.create_view(
    name      text,
    query     text,
    emit      text DEFAULT 'changes',
    retention interval DEFAULT NULL)
RETURNS regclass AS 'MODULE_PATHNAME', 'sp_create_view' LANGUAGE C VOLATILE;

CREATE FUNCTION streamproc.drop_view(name text)
RETURNS void AS 'MODULE_PATHNAME', 'sp_drop_view' LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION streamproc.create_stream(text, text, text, interval, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION streamproc.drop_stream(text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION streamproc.create_view(text, text, text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION streamproc.drop_view(text) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Windows
-- ---------------------------------------------------------------------------
CREATE FUNCTION streamproc.tumble(ts timestamptz, size interval)
RETURNS timestamptz AS 'MODULE_PATHNAME', 'sp_tumble'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION streamproc.tumble(ts timestamptz, size interval, origin timestamptz)
RETURNS timestamptz AS 'MODULE_PATHNAME', 'sp_tumble'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION streamproc.hop(ts timestamptz, size interval, slide interval)
RETURNS timestamptz AS 'MODULE_PATHNAME', 'sp_hop'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamproc.hop(timestamptz, interval, interval) IS
    'start of the latest hopping window holding ts; in a continuous view every window holding ts';

CREATE FUNCTION streamproc.hop_windows(ts timestamptz, size interval, slide interval)
RETURNS SETOF timestamptz AS 'MODULE_PATHNAME', 'sp_hop_windows'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 5;

CREATE FUNCTION streamproc.window_end(window_start timestamptz, size interval)
RETURNS timestamptz AS 'MODULE_PATHNAME', 'sp_window_end'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION streamproc.session(ts timestamptz, gap interval)
RETURNS timestamptz AS 'MODULE_PATHNAME', 'sp_session'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamproc.session(timestamptz, interval) IS
    'session window: in a continuous view, the start of the session holding ts (rows less than gap apart share a session)';

-- ---------------------------------------------------------------------------
-- Watermarks
-- ---------------------------------------------------------------------------
-- SECURITY DEFINER: readers of emit 'final' views need it, not the catalog.
CREATE FUNCTION streamproc.watermark(stream regclass) RETURNS timestamptz
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT watermark FROM streamproc.stream_defs WHERE relid = stream $$;

CREATE FUNCTION streamproc.advance_watermark(stream regclass, ts timestamptz) RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'sp_advance_watermark' LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION streamproc.advance_watermark(regclass, timestamptz) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Aggregate states: finalize one, combine many (used by the read views)
-- ---------------------------------------------------------------------------
CREATE FUNCTION streamproc.finalize(state "any", agg regprocedure, argtypes regtype[], result anyelement)
RETURNS anyelement AS 'MODULE_PATHNAME', 'sp_finalize'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION streamproc.combine_sfunc(internal, state anyelement, agg regprocedure, argtypes regtype[])
RETURNS internal AS 'MODULE_PATHNAME', 'sp_combine_sfunc'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION streamproc.combine_ffunc(internal, state anyelement, agg regprocedure, argtypes regtype[])
RETURNS anyelement AS 'MODULE_PATHNAME', 'sp_combine_ffunc'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE AGGREGATE streamproc.combine(state anyelement, agg regprocedure, argtypes regtype[]) (
    SFUNC = streamproc.combine_sfunc,
    STYPE = internal,
    FINALFUNC = streamproc.combine_ffunc,
    FINALFUNC_EXTRA
);

-- ---------------------------------------------------------------------------
-- Aggregates streams need: the value at the latest / earliest event time
-- ---------------------------------------------------------------------------
CREATE FUNCTION streamproc.latest_transfn(internal, anyelement, timestamptz)
RETURNS internal AS 'MODULE_PATHNAME', 'sp_latest_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION streamproc.earliest_transfn(internal, anyelement, timestamptz)
RETURNS internal AS 'MODULE_PATHNAME', 'sp_earliest_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION streamproc.latest_combinefn(internal, internal)
RETURNS internal AS 'MODULE_PATHNAME', 'sp_latest_combinefn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION streamproc.earliest_combinefn(internal, internal)
RETURNS internal AS 'MODULE_PATHNAME', 'sp_earliest_combinefn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION streamproc.pick_serialize(internal)
RETURNS bytea AS 'MODULE_PATHNAME', 'sp_pick_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION streamproc.pick_deserialize(bytea, internal)
RETURNS internal AS 'MODULE_PATHNAME', 'sp_pick_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION streamproc.pick_finalfn(internal, anyelement, timestamptz)
RETURNS anyelement AS 'MODULE_PATHNAME', 'sp_pick_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE streamproc.latest(value anyelement, ts timestamptz) (
    SFUNC = streamproc.latest_transfn,
    STYPE = internal,
    COMBINEFUNC = streamproc.latest_combinefn,
    SERIALFUNC = streamproc.pick_serialize,
    DESERIALFUNC = streamproc.pick_deserialize,
    FINALFUNC = streamproc.pick_finalfn,
    FINALFUNC_EXTRA,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamproc.latest(anyelement, timestamptz) IS 'value at the greatest ts';

CREATE AGGREGATE streamproc.earliest(value anyelement, ts timestamptz) (
    SFUNC = streamproc.earliest_transfn,
    STYPE = internal,
    COMBINEFUNC = streamproc.earliest_combinefn,
    SERIALFUNC = streamproc.pick_serialize,
    DESERIALFUNC = streamproc.pick_deserialize,
    FINALFUNC = streamproc.pick_finalfn,
    FINALFUNC_EXTRA,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamproc.earliest(anyelement, timestamptz) IS 'value at the least ts';

-- ---------------------------------------------------------------------------
-- Weighted twins of count, sum and avg: the partial state of rows taken back
-- (weight -1) from a view, in the original aggregate's state layout, so the
-- original's combine function adds it to the stored state.  Used internally
-- for streams fed by CDC sources; see "Retractions" in src/view_compile.c.
-- They take any weight, a row counting w times (w < 0: taken back |w| times);
-- a NULL weight counts as +1.
-- ---------------------------------------------------------------------------
CREATE FUNCTION streamproc.weighted_count_trans(bigint, int)
RETURNS bigint AS 'MODULE_PATHNAME', 'sp_weighted_count_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION streamproc.weighted_count_trans(bigint, "any", int)
RETURNS bigint AS 'MODULE_PATHNAME', 'sp_weighted_count_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION streamproc.weighted_sum_trans(bigint, bigint, int)
RETURNS bigint AS 'MODULE_PATHNAME', 'sp_weighted_sum_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION streamproc.weighted_int8_trans(internal, bigint, int)
RETURNS internal AS 'MODULE_PATHNAME', 'sp_weighted_int8_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION streamproc.weighted_numeric_trans(internal, numeric, int)
RETURNS internal AS 'MODULE_PATHNAME', 'sp_weighted_numeric_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION streamproc.weighted_int4_avg_trans(bigint[], int, int)
RETURNS bigint[] AS 'MODULE_PATHNAME', 'sp_weighted_int4_avg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE streamproc.weighted_count(weight int) (
    SFUNC = streamproc.weighted_count_trans, STYPE = bigint, INITCOND = '0',
    COMBINEFUNC = pg_catalog.int8pl, PARALLEL = SAFE
);
CREATE AGGREGATE streamproc.weighted_count(value "any", weight int) (
    SFUNC = streamproc.weighted_count_trans, STYPE = bigint, INITCOND = '0',
    COMBINEFUNC = pg_catalog.int8pl, PARALLEL = SAFE
);
CREATE AGGREGATE streamproc.weighted_sum(value bigint, weight int) (
    SFUNC = streamproc.weighted_sum_trans, STYPE = bigint,
    COMBINEFUNC = pg_catalog.int8pl, PARALLEL = SAFE
);
CREATE AGGREGATE streamproc.weighted_int8_state(value bigint, weight int) (
    SFUNC = streamproc.weighted_int8_trans, STYPE = internal,
    COMBINEFUNC = pg_catalog.int8_avg_combine,
    SERIALFUNC = pg_catalog.int8_avg_serialize, DESERIALFUNC = pg_catalog.int8_avg_deserialize,
    FINALFUNC = pg_catalog.numeric_poly_sum, PARALLEL = SAFE
);
CREATE FUNCTION streamproc.weighted_numeric_serialize(internal)
RETURNS bytea AS 'MODULE_PATHNAME', 'sp_weighted_numeric_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION streamproc.weighted_numeric_deserialize(bytea, internal)
RETURNS internal AS 'MODULE_PATHNAME', 'sp_weighted_numeric_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION streamproc.weighted_numeric_final(internal)
RETURNS numeric AS 'MODULE_PATHNAME', 'sp_weighted_numeric_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
-- serial form: numeric_avg_serialize's, with the net row count
CREATE AGGREGATE streamproc.weighted_numeric_state(value numeric, weight int) (
    SFUNC = streamproc.weighted_numeric_trans, STYPE = internal,
    SERIALFUNC = streamproc.weighted_numeric_serialize,
    DESERIALFUNC = streamproc.weighted_numeric_deserialize,
    FINALFUNC = streamproc.weighted_numeric_final, PARALLEL = SAFE
);
CREATE AGGREGATE streamproc.weighted_int4_avg(value int, weight int) (
    SFUNC = streamproc.weighted_int4_avg_trans, STYPE = bigint[], INITCOND = '{0,0}',
    COMBINEFUNC = pg_catalog.int4_avg_combine, FINALFUNC = pg_catalog.int8_avg, PARALLEL = SAFE
);

-- ---------------------------------------------------------------------------
-- Observability
-- ---------------------------------------------------------------------------
CREATE VIEW streamproc.streams AS
SELECT s.relid AS stream,
       s.event_time,
       s.watermark_delay,
       s.idle_timeout,
       s.watermark,
       (SELECT count(*) FROM streamproc.view_defs v WHERE v.stream = s.relid) AS views
  FROM streamproc.stream_defs s;

CREATE FUNCTION streamproc.view_stats(
    OUT name regclass, OUT stream regclass, OUT emit text,
    OUT groups bigint, OUT windows_open bigint, OUT rows_applied numeric,
    OUT late_rows bigint, OUT state_size bigint)
RETURNS SETOF record LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS
$$
DECLARE
    v record;
    wm timestamptz;
BEGIN
    FOR v IN SELECT * FROM streamproc.view_defs ORDER BY id LOOP
        name := v.relid; stream := v.stream; emit := v.emit; late_rows := v.late_rows;
        EXECUTE format('SELECT count(*), coalesce(sum(_rows), 0) FROM %s', v.state_table)
           INTO groups, rows_applied;
        -- a window is open until the watermark reaches its end
        wm := CASE WHEN v.event_time_window THEN streamproc.watermark(v.stream) END;
        windows_open := NULL;
        IF v.window_kind = 'session' THEN
            EXECUTE format('SELECT count(*) FROM %s WHERE NOT coalesce(streamproc.window_end(_session_end, $1) <= $2, false)',
                           v.state_table)
               USING v.window_size, wm INTO windows_open;
        ELSIF v.window_kind = 'hop' THEN
            EXECUTE format('SELECT count(DISTINCT hw.ws) FROM %s st, streamproc.hop_windows(st.%I, $1, $2) hw(ws)
                             WHERE NOT coalesce(streamproc.window_end(hw.ws, $1) <= $3, false)',
                           v.state_table, v.window_column)
               USING v.window_size, v.window_slide, wm INTO windows_open;
        ELSIF v.window_kind = 'tumble' THEN
            EXECUTE format('SELECT count(DISTINCT %I) FROM %s WHERE NOT coalesce(streamproc.window_end(%I, $1) <= $2, false)',
                           v.window_column, v.state_table, v.window_column)
               USING v.window_size, wm INTO windows_open;
        END IF;
        state_size := pg_total_relation_size(v.state_table);
        RETURN NEXT;
    END LOOP;
END
$$;

CREATE VIEW streamproc.views AS SELECT * FROM streamproc.view_stats();

-- ---------------------------------------------------------------------------
-- Kafka
-- ---------------------------------------------------------------------------
CREATE FUNCTION streamproc.kafka_produce(brokers text, topic text, value text,
                                         key text DEFAULT NULL, partition int DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'sp_kafka_produce' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION streamproc.kafka_produce(text, text, text, text, int) IS
    'send one message to a Kafka topic and wait for it to be stored; returns its offset';
REVOKE ALL ON FUNCTION streamproc.kafka_produce(text, text, text, text, int) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Sources: background workers that feed streams (see src/workers.h)
-- ---------------------------------------------------------------------------
-- Managing sources needs superuser or membership in streamproc_admin.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'streamproc_admin') THEN
        CREATE ROLE streamproc_admin NOLOGIN;
    END IF;
END
$$;

CREATE TABLE streamproc.source_defs (
    id            serial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    kind          text NOT NULL CHECK (kind IN ('kafka', 'pg')),
    stream        regclass NOT NULL REFERENCES streamproc.stream_defs (relid) ON DELETE CASCADE,
    owner         oid NOT NULL,                -- who created it
    enabled       boolean NOT NULL DEFAULT true,
    brokers       text,
    topic         text,
    format        text NOT NULL,
    start         text NOT NULL DEFAULT 'earliest',
    parallelism   int NOT NULL DEFAULT 1,
    batch_size    int NOT NULL,
    batch_timeout interval NOT NULL,
    options       jsonb NOT NULL DEFAULT '{}',  -- may hold secrets: never shown unmasked
    -- kind 'pg' (logical replication; see src/source_pg.c)
    conninfo      text,                        -- may hold a password: shown masked
    publication   text,
    source_table  text,                        -- 'schema.table' upstream
    slot          text,
    snapshot      boolean,
    slot_created  boolean NOT NULL DEFAULT false,  -- the slot is ours: drop_source drops it
    row_identity  text,                        -- how pg_source_rows is keyed (worker's)
    last_error    text,
    last_error_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE streamproc.source_defs IS 'one row per source; read streamproc.sources instead';

-- Where each partition stands: written only by the source's workers, in
-- the transaction that applies the batch (exactly once).
CREATE TABLE streamproc.source_offsets (
    source          int NOT NULL REFERENCES streamproc.source_defs (id) ON DELETE CASCADE,
    partition       int NOT NULL,
    next_offset     bigint NOT NULL,           -- first offset not yet applied
    high_watermark  bigint,                    -- the partition's end, last seen
    rows_in         bigint NOT NULL DEFAULT 0,
    bytes_in        bigint NOT NULL DEFAULT 0,
    dead_letters    bigint NOT NULL DEFAULT 0,
    max_event_time  timestamptz,
    last_message_at timestamptz,
    PRIMARY KEY (source, partition)
);
COMMENT ON TABLE streamproc.source_offsets IS 'committed position of each source partition';

CREATE TABLE streamproc.dead_letters (
    id          bigserial PRIMARY KEY,
    source      text NOT NULL,
    topic       text,
    partition   int,
    "offset"    bigint,
    lsn         pg_lsn,
    key         bytea,
    payload     bytea,
    error       text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON streamproc.dead_letters (source, at);
COMMENT ON TABLE streamproc.dead_letters IS 'messages that could not become rows, with the reason; delete them when handled';
GRANT SELECT, DELETE ON streamproc.dead_letters TO streamproc_admin;

-- What a pg source has counted in the views, per row of its upstream table:
-- the stream columns' text values under the row's replica-identity key (or,
-- for REPLICA IDENTITY FULL and tables without a key, under the values
-- themselves, with a count).  Deletes and updates upstream send only the key
-- of the old row; this is where the row to retract comes from, and where
-- unchanged TOASTed values come from.  Written by the source's worker in the
-- transaction of each batch.
CREATE TABLE streamproc.pg_source_rows (
    source      int NOT NULL REFERENCES streamproc.source_defs (id) ON DELETE CASCADE,
    key         text NOT NULL,
    vals        text[] NOT NULL,           -- counted n times (n = 0: not counted, the values upstream)
    n           int NOT NULL DEFAULT 1,
    latest      text[],                    -- the values upstream, if not those counted (a change set aside)
    PRIMARY KEY (source, key)
);
COMMENT ON TABLE streamproc.pg_source_rows IS 'rows of the upstream tables of pg sources, as counted in the views';

SELECT pg_catalog.pg_extension_config_dump('streamproc.source_defs', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.pg_source_rows', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.source_defs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.source_offsets', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.dead_letters_id_seq', '');

CREATE FUNCTION streamproc.create_kafka_source(
    name          text,
    stream        regclass,
    brokers       text,
    topic         text,
    format        text DEFAULT 'json',
    start         text DEFAULT 'earliest',
    parallelism   int DEFAULT 1,
    batch_size    int DEFAULT 10000,
    batch_timeout interval DEFAULT '100 ms',
    options       jsonb DEFAULT '{}')
RETURNS void AS 'MODULE_PATHNAME', 'sp_create_kafka_source' LANGUAGE C VOLATILE;
CREATE FUNCTION streamproc.create_pg_source(
    name          text,
    stream        regclass,
    conninfo      text,
    publication   text,
    source_table  text,
    slot          text DEFAULT NULL,
    snapshot      boolean DEFAULT true)
RETURNS void AS 'MODULE_PATHNAME', 'sp_create_pg_source' LANGUAGE C VOLATILE;
CREATE FUNCTION streamproc.start_source(name text) RETURNS void
    AS 'MODULE_PATHNAME', 'sp_start_source' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION streamproc.stop_source(name text) RETURNS void
    AS 'MODULE_PATHNAME', 'sp_stop_source' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION streamproc.drop_source(name text) RETURNS void
    AS 'MODULE_PATHNAME', 'sp_drop_source' LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION streamproc.create_kafka_source(text, regclass, text, text, text, text, int, int, interval, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION streamproc.create_pg_source(text, regclass, text, text, text, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION streamproc.start_source(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION streamproc.stop_source(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION streamproc.drop_source(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamproc.create_kafka_source(text, regclass, text, text, text, text, int, int, interval, jsonb) TO streamproc_admin;
GRANT EXECUTE ON FUNCTION streamproc.create_pg_source(text, regclass, text, text, text, text, boolean) TO streamproc_admin;
GRANT EXECUTE ON FUNCTION streamproc.start_source(text) TO streamproc_admin;
GRANT EXECUTE ON FUNCTION streamproc.stop_source(text) TO streamproc_admin;
GRANT EXECUTE ON FUNCTION streamproc.drop_source(text) TO streamproc_admin;

CREATE FUNCTION streamproc.mask_options(options jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'sp_mask_options' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamproc.mask_options(jsonb) IS 'source options with the values of secrets replaced by ********';

CREATE FUNCTION streamproc.mask_conninfo(conninfo text) RETURNS text
    AS 'MODULE_PATHNAME', 'sp_mask_conninfo' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamproc.mask_conninfo(text) IS 'a libpq connection string with its password replaced by ********';

CREATE FUNCTION streamproc.source_workers(
    OUT source int, OUT worker int, OUT pid int, OUT in_error boolean,
    OUT last_error text, OUT last_error_at timestamptz, OUT rows_per_sec float8)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'sp_source_workers' LANGUAGE C VOLATILE;

-- Views run as their owner (the extension's owner), so they show sources to
-- anyone allowed to read them; the options are masked.
CREATE VIEW streamproc.sources AS
SELECT d.name,
       d.kind,
       d.stream,
       CASE WHEN NOT d.enabled THEN 'stopped'
            WHEN coalesce(w.in_error, false) THEN 'error'
            WHEN coalesce(w.workers, 0) = 0 AND d.last_error_at > now() - interval '30 seconds' THEN 'error'
            ELSE 'running' END AS state,
       coalesce(w.workers, 0) AS workers,
       coalesce(o.rows_in, 0) AS rows_in,
       coalesce(w.rows_per_sec, 0) AS rows_per_sec,
       coalesce(o.bytes_in, 0) AS bytes_in,
       coalesce(o.dead_letters, 0) AS dead_letters,
       o.lag,
       coalesce(w.last_error, d.last_error) AS last_error,
       CASE WHEN w.last_error IS NOT NULL THEN w.last_error_at ELSE d.last_error_at END AS last_error_at,
       d.brokers,
       d.topic,
       d.format,
       d.parallelism,
       d.batch_size,
       d.batch_timeout,
       streamproc.mask_options(d.options) AS options,
       streamproc.mask_conninfo(d.conninfo) AS conninfo,
       d.publication,
       d.source_table,
       d.slot,
       d.snapshot,
       CASE WHEN d.kind = 'pg' THEN '0/0'::pg_lsn + o.next_offset END AS lsn
  FROM streamproc.source_defs d
  LEFT JOIN (SELECT source,
                    sum(rows_in)::bigint AS rows_in,
                    sum(bytes_in)::bigint AS bytes_in,
                    sum(dead_letters)::bigint AS dead_letters,
                    sum(greatest(coalesce(high_watermark, next_offset) - next_offset, 0))::bigint AS lag,
                    max(next_offset) AS next_offset
               FROM streamproc.source_offsets GROUP BY source) o ON o.source = d.id
  LEFT JOIN (SELECT source,
                    count(*) AS workers,
                    bool_or(in_error) AS in_error,
                    sum(rows_per_sec) AS rows_per_sec,
                    (array_agg(last_error ORDER BY last_error_at DESC) FILTER (WHERE last_error IS NOT NULL))[1] AS last_error,
                    max(last_error_at) AS last_error_at
               FROM streamproc.source_workers() GROUP BY source) w ON w.source = d.id;

CREATE VIEW streamproc.source_partitions AS
SELECT d.name AS source,
       d.topic,
       o.partition,
       o.next_offset AS committed_offset,
       o.high_watermark AS high_watermark_offset,
       greatest(coalesce(o.high_watermark, o.next_offset) - o.next_offset, 0) AS lag,
       o.rows_in,
       o.dead_letters,
       o.max_event_time,
       o.last_message_at,
       (s.idle_timeout IS NOT NULL
        AND coalesce(o.last_message_at, d.created_at) < now() - s.idle_timeout) AS idle
  FROM streamproc.source_defs d
  JOIN streamproc.source_offsets o ON o.source = d.id
  JOIN streamproc.stream_defs s ON s.relid = d.stream
 WHERE d.kind = 'kafka';

GRANT SELECT ON streamproc.sources, streamproc.source_partitions TO PUBLIC;
