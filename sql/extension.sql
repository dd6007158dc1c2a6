-- DROP EXTENSION removes streams, views and state tables; creating it again
-- in the same session works (nothing cached survives that should not).
CREATE EXTENSION IF NOT EXISTS streamproc;
SELECT streamproc.create_stream('ext_s', 'k int, ts timestamptz', event_time => 'ts');
SELECT streamproc.create_view('ext_v', $$SELECT k, count(*) AS n FROM ext_s GROUP BY k$$);
INSERT INTO ext_s VALUES (1, '2024-01-01 00:00:00+00');
DROP EXTENSION streamproc CASCADE;
SELECT count(*) AS leftovers FROM pg_class
 WHERE relnamespace = 'streamproc'::regnamespace OR relname IN ('ext_s', 'ext_v');
INSERT INTO ext_s VALUES (1, '2024-01-01 00:00:00+00');

CREATE EXTENSION streamproc;
SELECT streamproc.create_stream('ext_s', 'k int, ts timestamptz', event_time => 'ts');
SELECT streamproc.create_view('ext_v', $$SELECT k, count(*) AS n FROM ext_s GROUP BY k$$);
INSERT INTO ext_s VALUES (2, '2024-01-02 00:00:00+00');
SELECT * FROM ext_v;
SELECT streamproc.watermark('ext_s');
SELECT streamproc.drop_stream('ext_s', cascade => true);
