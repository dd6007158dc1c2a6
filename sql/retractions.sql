-- Weighted rows: a CDC source's deletes and the old images of its updates
-- take rows back out of every view.  Fed by Debezium events (format
-- debezium) so that every kind of aggregate, window and refusal can be
-- exercised; the pg source and the debezium format have their own tests.
CREATE EXTENSION IF NOT EXISTS streamproc;
\getenv brokers KAFKA_BROKERS

\i sql/include/wait_for.sql

-- one Debezium event per call, in order (one partition); the offsets are
-- logged so that tests can wait until the source has read them all
CREATE TABLE rt_log (o bigint);
CREATE FUNCTION dbz(op text, before jsonb, after jsonb) RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO rt_log
    SELECT streamproc.kafka_produce(current_setting('rt.brokers'), 'rt_events',
               jsonb_build_object('op', op, 'before', before, 'after', after)::text,
               partition => 0)
    RETURNING o
$$;
CREATE FUNCTION caught_up() RETURNS boolean LANGUAGE sql AS $$
    SELECT wait_for($q$(SELECT rows_in + dead_letters FROM streamproc.sources WHERE name = 'rt_src')
                       = (SELECT max(o) + 1 FROM rt_log)$q$)
$$;
SELECT set_config('rt.brokers', :'brokers', false) IS NOT NULL AS set;

SELECT streamproc.create_stream('rt', 'id int, grp text, i2 smallint, i4 int, i8 bigint, x numeric, ts timestamptz',
                                event_time => 'ts', watermark_delay => '1 hour');
-- every aggregate that can take rows back, over every type it takes
CREATE VIEW rt_all WITH (streamproc.continuous) AS
SELECT grp, count(*) AS n, count(x) AS nx,
       sum(i2) AS s2, sum(i4) AS s4, sum(i8) AS s8, sum(x) AS sx,
       avg(i2) AS a2, avg(i4) AS a4, avg(i8) AS a8, avg(x) AS ax,
       count(*) FILTER (WHERE i4 > 10) AS big
  FROM rt GROUP BY grp;
CREATE VIEW rt_tumble WITH (streamproc.continuous) AS
SELECT streamproc.tumble(ts, '1 minute') AS w, count(*) AS n, sum(i4) AS s FROM rt GROUP BY 1;
CREATE VIEW rt_hop WITH (streamproc.continuous) AS
SELECT streamproc.hop(ts, '2 minutes', '1 minute') AS w, count(*) AS n, sum(i8) AS s FROM rt GROUP BY 1;
-- a view that cannot take rows back: the debezium source is refused
CREATE VIEW rt_max WITH (streamproc.continuous) AS SELECT grp, max(i4) FROM rt GROUP BY grp;
SELECT streamproc.create_kafka_source('rt_src', 'rt', :'brokers', 'rt_events', format => 'debezium');
DROP VIEW rt_max;
CREATE VIEW rt_session WITH (streamproc.continuous) AS
SELECT streamproc.session(ts, '1 minute') AS s, count(*) FROM rt GROUP BY 1;
SELECT streamproc.create_kafka_source('rt_src', 'rt', :'brokers', 'rt_events', format => 'debezium');
DROP VIEW rt_session;
SELECT streamproc.create_kafka_source('rt_src', 'rt', :'brokers', 'rt_events', format => 'debezium',
                                      batch_size => 7);
-- and now that the stream has a CDC source, such views are refused
CREATE VIEW rt_min WITH (streamproc.continuous) AS SELECT grp, min(x) FROM rt GROUP BY grp;
CREATE VIEW rt_latest WITH (streamproc.continuous) AS
SELECT grp, streamproc.latest(i4, ts) FROM rt GROUP BY grp;
CREATE VIEW rt_float WITH (streamproc.continuous) AS SELECT grp, sum(i4::float8) FROM rt GROUP BY grp;

-- the same changes to a table, to compare with
CREATE TABLE rt_ref (id int PRIMARY KEY, grp text, i2 smallint, i4 int, i8 bigint, x numeric, ts timestamptz);
CREATE FUNCTION ref_row(r rt_ref) RETURNS jsonb LANGUAGE sql AS $$ SELECT to_jsonb(r) $$;
CREATE FUNCTION compare() RETURNS TABLE (view text, missing bigint, extra bigint) LANGUAGE sql AS $$
    WITH truth AS (
        SELECT grp, count(*) AS n, count(x) AS nx, sum(i2) AS s2, sum(i4) AS s4, sum(i8) AS s8, sum(x) AS sx,
               avg(i2) AS a2, avg(i4) AS a4, avg(i8) AS a8, avg(x) AS ax,
               count(*) FILTER (WHERE i4 > 10) AS big
          FROM rt_ref GROUP BY grp),
    t_tumble AS (SELECT date_bin('1 minute', ts, 'epoch') AS w, count(*) AS n, sum(i4) AS s FROM rt_ref GROUP BY 1),
    t_hop AS (SELECT w, count(*) AS n, sum(i8) AS s
                FROM rt_ref, LATERAL (VALUES (date_bin('1 minute', ts, 'epoch')),
                                             (date_bin('1 minute', ts, 'epoch') - interval '1 minute')) h(w)
               GROUP BY 1)
    SELECT 'rt_all', (SELECT count(*) FROM (SELECT * FROM truth EXCEPT ALL SELECT * FROM rt_all) a),
                     (SELECT count(*) FROM (SELECT * FROM rt_all EXCEPT ALL SELECT * FROM truth) b)
    UNION ALL
    SELECT 'rt_tumble', (SELECT count(*) FROM (SELECT * FROM t_tumble EXCEPT ALL SELECT * FROM rt_tumble) a),
                        (SELECT count(*) FROM (SELECT * FROM rt_tumble EXCEPT ALL SELECT * FROM t_tumble) b)
    UNION ALL
    SELECT 'rt_hop', (SELECT count(*) FROM (SELECT * FROM t_hop EXCEPT ALL SELECT w, n, s FROM rt_hop) a),
                     (SELECT count(*) FROM (SELECT w, n, s FROM rt_hop EXCEPT ALL SELECT * FROM t_hop) b)
$$;

-- hand-written changes: a group that empties disappears, an update moves a
-- row between groups, NULLs are taken back as NULLs
INSERT INTO rt_ref VALUES (1, 'a', 1, 10, 100, 1.5, '2026-01-01 00:00:10+00'),
                          (2, 'a', 2, 20, 200, NULL, '2026-01-01 00:00:20+00'),
                          (3, 'b', 3, 30, 300, 3.25, '2026-01-01 00:01:10+00');
SELECT count(dbz('c', NULL, ref_row(r))) FROM rt_ref r;
SELECT caught_up();
SELECT grp, n, nx, s2, s4, s8, sx, a2, a4, a8, ax, big FROM rt_all ORDER BY grp;
-- row 3 moves from b to a (b is then empty), row 1 goes away
SELECT dbz('u', ref_row(r), ref_row(r) || '{"grp": "a", "x": 4.125}') FROM rt_ref r WHERE id = 3;
UPDATE rt_ref SET grp = 'a', x = 4.125 WHERE id = 3;
SELECT dbz('d', ref_row(r), NULL) FROM rt_ref r WHERE id = 1;
DELETE FROM rt_ref WHERE id = 1;
SELECT caught_up();
SELECT grp, n, nx, s2, s4, s8, sx, a2, a4, a8, ax, big FROM rt_all ORDER BY grp;
SELECT * FROM compare();
-- everything deleted: every view is empty
SELECT count(dbz('d', ref_row(r), NULL)) FROM rt_ref r;
DELETE FROM rt_ref;
SELECT caught_up();
SELECT (SELECT count(*) FROM rt_all) AS all_groups, (SELECT count(*) FROM rt_tumble) AS tumble_groups,
       (SELECT count(*) FROM rt_hop) AS hop_groups;

-- a random workload: inserts, updates (including moves between groups and
-- windows) and deletes, in batches of 7 events
SELECT setseed(0.42);
DO $$
DECLARE
    k int;
    r rt_ref;
    n rt_ref;
BEGIN
    FOR i IN 1..1500 LOOP
        k := 1 + floor(random() * 150)::int;
        SELECT * INTO r FROM rt_ref WHERE id = k;
        IF r.id IS NULL THEN
            INSERT INTO rt_ref VALUES (k, 'g' || floor(random() * 8)::int, floor(random() * 100)::int,
                                       floor(random() * 1000)::int - 100, floor(random() * 1e9)::bigint,
                                       CASE WHEN random() < 0.2 THEN NULL ELSE round((random() * 1000)::numeric, floor(random() * 4)::int) END,
                                       '2026-01-01' ::timestamptz + random() * interval '10 minutes')
            RETURNING * INTO n;
            PERFORM dbz('c', NULL, ref_row(n));
        ELSIF random() < 0.6 THEN
            UPDATE rt_ref SET grp = CASE WHEN random() < 0.5 THEN 'g' || floor(random() * 8)::int ELSE grp END,
                              i4 = floor(random() * 1000)::int - 100,
                              x = CASE WHEN random() < 0.2 THEN NULL ELSE round((random() * 1000)::numeric, 2) END,
                              ts = CASE WHEN random() < 0.3 THEN '2026-01-01' ::timestamptz + random() * interval '10 minutes' ELSE ts END
             WHERE id = k RETURNING * INTO n;
            PERFORM dbz('u', ref_row(r), ref_row(n));
        ELSE
            DELETE FROM rt_ref WHERE id = k;
            PERFORM dbz('d', ref_row(r), NULL);
        END IF;
    END LOOP;
END
$$;
SELECT caught_up();
SELECT dead_letters, last_error FROM streamproc.sources WHERE name = 'rt_src';
SELECT * FROM compare();

-- a retraction of a row in a closed window is late, like any row: it
-- goes to late_rows and the windows keep it; the plain view takes it back
INSERT INTO rt_ref SELECT 1000, 'future', 0, 0, 0, 0, max(ts) + interval '3 hours' FROM rt_ref;
SELECT dbz('c', NULL, ref_row(r)) FROM rt_ref r WHERE id = 1000;
SELECT caught_up();
SELECT streamproc.watermark('rt') > (SELECT max(ts) FROM rt_ref WHERE id < 1000) AS all_windows_closed;
SELECT count(*) AS late_before FROM streamproc.late_rows WHERE stream = 'rt'::regclass;
SELECT dbz('d', ref_row(r), NULL) FROM rt_ref r WHERE id = (SELECT min(id) FROM rt_ref);
DELETE FROM rt_ref WHERE id = (SELECT min(id) FROM rt_ref);
SELECT caught_up();
SELECT view, "row" ->> 'id' AS id FROM streamproc.late_rows WHERE stream = 'rt'::regclass ORDER BY 1;
SELECT * FROM compare();

SELECT streamproc.drop_source('rt_src');
SELECT streamproc.drop_stream('rt', cascade => true);
DELETE FROM streamproc.late_rows;
DROP TABLE rt_ref CASCADE;
DROP FUNCTION compare();
DROP FUNCTION caught_up();
DROP FUNCTION dbz(text, jsonb, jsonb);
DROP TABLE rt_log;
DROP FUNCTION wait_for(text);

-- The weighted twins are aggregates of their own: a row counts w times
-- (w < 0: taken back |w| times, from an empty state too), a NULL weight
-- counts as +1, a NULL value adds nothing.  Each against its expansion.
CREATE TEMP TABLE wt (g int, x bigint, n numeric, i int, w int);
INSERT INTO wt VALUES
    (1, 5, 1.5, 5, 2), (1, 7, 2.25, 7, -3), (1, NULL, NULL, NULL, 4),
    (1, 11, 3.125, 11, NULL), (1, 13, 0.5, 13, 5), (1, 17, 4.75, 17, 0),
    (2, 4, 1.25, 4, -2);
SELECT g,
       streamproc.weighted_count(w) AS count_star,
       sum(coalesce(w, 1)) AS expected,
       streamproc.weighted_count(x, w) AS count_x,
       sum(coalesce(w, 1)) FILTER (WHERE x IS NOT NULL) AS expected,
       streamproc.weighted_sum(x, w) AS sum_int,
       sum(x * coalesce(w, 1)) AS expected,
       streamproc.weighted_int8_state(x, w) AS sum_int8,
       streamproc.weighted_numeric_state(n, w) AS sum_numeric,
       sum(n * coalesce(w, 1)) AS expected,
       streamproc.weighted_int4_avg(i, w) AS avg_int4,
       sum(i * coalesce(w, 1))::numeric / sum(coalesce(w, 1)) FILTER (WHERE i IS NOT NULL) AS expected
FROM wt GROUP BY g ORDER BY g;
-- the weights of nothing but NULL values leave the states empty
SELECT streamproc.weighted_sum(NULL::bigint, -2) AS sum_int,
       streamproc.weighted_int8_state(NULL::bigint, -2) AS sum_int8,
       streamproc.weighted_numeric_state(NULL::numeric, 3) AS sum_numeric,
       streamproc.weighted_count(NULL::text, 3) AS count_x;
-- overflow is an error, as in sum
SELECT streamproc.weighted_sum(x, 2) FROM (VALUES (9223372036854775807)) v(x);
DROP TABLE wt;
