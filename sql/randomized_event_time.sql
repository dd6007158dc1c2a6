-- Randomized event-time comparison: rows arrive out of order, but never by
-- more than the watermark delay, so none is late.  'changes' views must equal
-- a plain GROUP BY over all rows; 'final' views must equal it restricted to
-- the windows the watermark has closed.
CREATE EXTENSION IF NOT EXISTS streamproc;
SET timezone = 'UTC';

\i sql/include/view_diff.sql

SELECT streamproc.create_stream('ev', 'id int, k int, v numeric, ts timestamptz',
    event_time => 'ts', watermark_delay => '5 seconds');
CREATE TABLE ev_t (id int, k int, v numeric, ts timestamptz);

SELECT streamproc.create_view('ev_tumble', $$
    SELECT k, streamproc.tumble(ts, '5 seconds') AS w, count(*) AS n, sum(v) AS s, max(v) AS mx FROM ev GROUP BY k, w$$);
SELECT streamproc.create_view('ev_tumble_final', $$
    SELECT k, streamproc.tumble(ts, '5 seconds') AS w, count(*) AS n, sum(v) AS s FROM ev GROUP BY k, w$$,
    emit => 'final');
SELECT streamproc.create_view('ev_hop_final', $$
    SELECT k, streamproc.hop(ts, '6 seconds', '2 seconds') AS w, count(*) AS n, avg(v) AS a FROM ev GROUP BY k, w$$,
    emit => 'final');
SELECT streamproc.create_view('ev_session', $$
    SELECT k, streamproc.session(ts, '1500 milliseconds') AS s, count(*) AS n, sum(v) AS total, max(ts) AS last
      FROM ev GROUP BY k, s$$);
SELECT streamproc.create_view('ev_session_final', $$
    SELECT k, streamproc.session(ts, '1500 milliseconds') AS s, count(*) AS n
      FROM ev GROUP BY k, s$$, emit => 'final');

-- row i at base + i*50ms + up to 2 s of jitter, fed in order of i give or take
-- 20 rows (1 s): at most 3 s out of order, within the 5 s delay
SELECT setseed(0.31);
INSERT INTO ev_t
SELECT g, (random() * 40)::int, round((random() * 100)::numeric, 1),
       '2024-05-01'::timestamptz + g * interval '50 milliseconds' + random() * interval '2 seconds'
  FROM generate_series(1, 4000) g;
DO $$
DECLARE
    lo int := 1;
    hi int;
BEGIN
    WHILE lo <= 4000 LOOP
        hi := lo + (random() * 300)::int;
        PERFORM set_config('streamproc.batch_size', (1 + (random() * 120)::int)::text, true);
        INSERT INTO ev SELECT * FROM ev_t WHERE id BETWEEN lo AND hi ORDER BY id + random() * 20;
        lo := hi + 1;
    END LOOP;
END $$;

SELECT count(*) AS late_rows FROM streamproc.late_rows;
SELECT streamproc.watermark('ev') = (SELECT max(ts) - interval '5 seconds' FROM ev_t) AS watermark_ok;

SELECT view_diff('ev_tumble', $$
    SELECT k, streamproc.tumble(ts, '5 seconds'), count(*), sum(v), max(v) FROM ev_t GROUP BY 1, 2$$) AS tumble_diff;
SELECT view_diff('ev_tumble_final', $$
    SELECT k, w, count(*), sum(v) FROM ev_t, streamproc.tumble(ts, '5 seconds') w
     WHERE w + interval '5 seconds' <= streamproc.watermark('ev') GROUP BY 1, 2$$) AS tumble_final_diff;
SELECT view_diff('ev_hop_final', $$
    SELECT k, w, count(*), avg(v) FROM ev_t, streamproc.hop_windows(ts, '6 seconds', '2 seconds') w
     WHERE w + interval '6 seconds' <= streamproc.watermark('ev') GROUP BY 1, 2$$) AS hop_final_diff;
-- sessions from scratch: a new one starts where the gap to the previous row is >= 1.5 s
CREATE VIEW ev_t_sessions AS
WITH marked AS (
    SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY k ORDER BY ts, id) < interval '1500 milliseconds'
                   THEN 0 ELSE 1 END AS starts
      FROM ev_t),
numbered AS (
    SELECT *, sum(starts) OVER (PARTITION BY k ORDER BY ts, id) AS sid FROM marked)
SELECT k, min(ts) AS s, count(*) AS n, sum(v) AS total, max(ts) AS last FROM numbered GROUP BY k, sid;
SELECT view_diff('ev_session', $$SELECT k, s, n, total, last FROM ev_t_sessions$$) AS session_diff;
SELECT view_diff('ev_session_final', $$
    SELECT k, s, n FROM ev_t_sessions WHERE last + interval '1500 milliseconds' <= streamproc.watermark('ev')$$) AS session_final_diff;
SELECT (SELECT count(*) FROM ev_tumble_final) > 100 AS enough_closed,
       (SELECT count(*) FROM ev_session WHERE n > 1) > 100 AS enough_merged_sessions;

SELECT streamproc.drop_stream('ev', cascade => true);
DROP VIEW ev_t_sessions;
DROP TABLE ev_t;
DROP FUNCTION view_diff(regclass, text);
