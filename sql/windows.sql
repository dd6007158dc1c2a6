-- Window functions: tumble, hop, hop_windows, window_end; hop views.
CREATE EXTENSION IF NOT EXISTS streamproc;
SET timezone = 'UTC';

SELECT streamproc.tumble('2024-01-01 00:00:07', '10 seconds');
SELECT streamproc.tumble('2024-01-01 00:00:10', '10 seconds');
SELECT streamproc.tumble('2024-01-01 13:47:00', '1 hour');
SELECT streamproc.tumble('2024-01-01 13:47:00', '1 day');
SELECT streamproc.tumble('1969-12-31 23:59:59.5', '1 second');          -- before the epoch
SELECT streamproc.tumble('2024-01-01 00:00:07', '10 seconds', '2024-01-01 00:00:05');
SELECT streamproc.tumble('2024-01-01 00:00:03', '10 seconds', '2024-01-01 00:00:05');
SELECT streamproc.window_end(streamproc.tumble('2024-01-01 00:00:07', '10 seconds'), '10 seconds');
SELECT streamproc.hop('2024-01-01 00:00:07', '10 seconds', '5 seconds');
SELECT streamproc.hop_windows('2024-01-01 00:00:07', '10 seconds', '5 seconds');
SELECT streamproc.hop_windows('2024-01-01 00:00:07', '1 minute', '20 seconds');
SELECT count(*) FROM streamproc.hop_windows('2024-01-01', '1 hour', '1 minute');
SELECT streamproc.tumble(NULL, '10 seconds');

-- refused
SELECT streamproc.tumble('2024-01-01', '1 month');
SELECT streamproc.tumble('2024-01-01', '0 seconds');
SELECT streamproc.tumble('2024-01-01', '-5 seconds');
SELECT streamproc.tumble('infinity', '5 seconds');
SELECT streamproc.hop('2024-01-01', '10 seconds', '3 seconds');
SELECT streamproc.hop_windows('2024-01-01', '10 seconds', '3 seconds');

-- a hop view stores slide buckets and combines them when read
SELECT streamproc.create_stream('trades', 'sym text, qty int, px numeric, ts timestamptz');
CREATE TABLE trades_t (sym text, qty int, px numeric, ts timestamptz);
SELECT streamproc.create_view('vol_hop', $$
    SELECT sym, streamproc.hop(ts, '1 minute', '20 seconds') AS window_start,
           count(*) AS n, sum(qty) AS qty, max(px) AS high, min(px) AS low, avg(px) AS avg_px
      FROM trades GROUP BY sym, window_start$$);
SELECT streamproc.create_view('vol_tumble', $$
    SELECT sym, streamproc.tumble(ts, '1 minute', '2024-01-01 00:00:30+00') AS window_start,
           streamproc.window_end(streamproc.tumble(ts, '1 minute', '2024-01-01 00:00:30+00'), '1 minute') AS window_end,
           count(*) AS n, sum(qty) AS qty
      FROM trades GROUP BY sym, 2$$);

SELECT setseed(0.5);
INSERT INTO trades_t
SELECT (ARRAY['AAPL', 'MSFT', 'ORCL'])[1 + (random() * 2)::int], (random() * 100)::int,
       round((100 + random() * 10)::numeric, 2), '2024-01-01'::timestamptz + random() * interval '5 minutes'
  FROM generate_series(1, 400);
SET streamproc.batch_size = 50;
INSERT INTO trades SELECT * FROM trades_t;

-- one state row per slide bucket, not per window
SELECT groups = (SELECT count(DISTINCT (sym, streamproc.hop(ts, '1 minute', '20 seconds'))) FROM trades_t) AS one_row_per_bucket
  FROM streamproc.views WHERE name = 'vol_hop'::regclass;

SELECT count(*) AS hop_diff FROM (
    (SELECT * FROM vol_hop
     EXCEPT ALL
     SELECT sym, w, count(*), sum(qty), max(px), min(px), avg(px)
       FROM trades_t, streamproc.hop_windows(ts, '1 minute', '20 seconds') w GROUP BY sym, w)
    UNION ALL
    (SELECT sym, w, count(*), sum(qty), max(px), min(px), avg(px)
       FROM trades_t, streamproc.hop_windows(ts, '1 minute', '20 seconds') w GROUP BY sym, w
     EXCEPT ALL
     SELECT * FROM vol_hop)) d;
SELECT count(*) AS tumble_diff FROM (
    (SELECT * FROM vol_tumble
     EXCEPT ALL
     SELECT sym, date_bin('1 minute', ts, '2024-01-01 00:00:30+00'), date_bin('1 minute', ts, '2024-01-01 00:00:30+00') + interval '1 minute', count(*), sum(qty)
       FROM trades_t GROUP BY 1, 2)
    UNION ALL
    (SELECT sym, date_bin('1 minute', ts, '2024-01-01 00:00:30+00'), date_bin('1 minute', ts, '2024-01-01 00:00:30+00') + interval '1 minute', count(*), sum(qty)
       FROM trades_t GROUP BY 1, 2
     EXCEPT ALL
     SELECT * FROM vol_tumble)) d;

-- a hop window can be read for one key through the index
SELECT window_start, n FROM vol_hop WHERE sym = 'MSFT' ORDER BY window_start LIMIT 3;

-- hop must be a constant GROUP BY key
SELECT streamproc.create_view('bad', $$SELECT sym, streamproc.hop(ts, '1 minute', '7 seconds') AS w, count(*) FROM trades GROUP BY 1, 2$$);
SELECT streamproc.create_view('bad', $$SELECT sym, streamproc.hop(ts, (qty || ' seconds')::interval, '1 second') AS w, count(*) FROM trades GROUP BY 1, 2$$);
SELECT streamproc.create_view('bad', $$SELECT sym, count(*) FROM trades WHERE streamproc.hop(ts, '1 minute', '1 second') > now() GROUP BY sym, streamproc.hop(ts, '1 minute', '1 second')$$);
SELECT streamproc.create_view('bad', $$SELECT sym, streamproc.tumble(ts, '1 month') AS w, count(*) FROM trades GROUP BY 1, 2$$);
SELECT streamproc.create_view('bad', $$SELECT streamproc.tumble(ts, '1 minute') AS a, streamproc.hop(ts, '1 minute', '1 second') AS b, count(*) FROM trades GROUP BY 1, 2$$);

SELECT streamproc.drop_stream('trades', cascade => true);
DROP TABLE trades_t;
