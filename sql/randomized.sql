-- Randomized comparison: thousands of random rows, in random batch sizes,
-- into a stream and into a plain table; every continuous view must equal
-- the same query run over the table (EXCEPT ALL both ways is empty).
CREATE EXTENSION IF NOT EXISTS streamproc;
SET timezone = 'UTC';

\i sql/include/view_diff.sql

SELECT streamproc.create_stream('r', 'id int, auction int, bidder int, price numeric, channel text, ts timestamptz');
CREATE TABLE r_t (id int, auction int, bidder int, price numeric, channel text, ts timestamptz);
CREATE TABLE r_auctions (id int PRIMARY KEY, category text);
INSERT INTO r_auctions SELECT g, 'cat' || (g % 4) FROM generate_series(0, 40) g;

SELECT streamproc.create_view('r_tumble', $$
    SELECT auction, streamproc.tumble(ts, '10 seconds') AS w, count(*) AS n, max(price) AS maxp,
           min(price) AS minp, sum(price) AS total, avg(price) AS avgp, count(bidder) AS nb
      FROM r GROUP BY auction, w$$);
SELECT streamproc.create_view('r_hop', $$
    SELECT channel, streamproc.hop(ts, '30 seconds', '10 seconds') AS w, count(*) AS n, sum(price) AS total
      FROM r GROUP BY channel, w$$);
SELECT streamproc.create_view('r_join', $$
    SELECT a.category, streamproc.tumble(r.ts, '1 minute') AS w, count(*) AS n, sum(r.price) AS total,
           max(r.bidder) AS maxb
      FROM r JOIN r_auctions a ON a.id = r.auction WHERE r.price > 10 GROUP BY a.category, w$$);
SELECT streamproc.create_view('r_misc', $$
    SELECT bidder % 7 AS b7, bool_or(price > 90) AS anybig, bool_and(channel IS NOT NULL) AS allch,
           round(stddev_samp(price), 8) AS sd, streamproc.latest(price, ts) AS lastp,
           streamproc.earliest(id, ts) AS firstid, bit_or(auction) AS bits
      FROM r GROUP BY 1 HAVING count(*) > 3$$);
SELECT streamproc.create_view('r_total', $$SELECT count(*) AS n, sum(price) AS s, max(ts) AS last FROM r$$);

-- 5000 rows; unique timestamps so latest/earliest have no ties
SELECT setseed(0.77);
INSERT INTO r_t
SELECT g, (random() * 40)::int,
       CASE WHEN random() < 0.05 THEN NULL ELSE (random() * 500)::int END,
       round((random() * 100)::numeric, 2),
       CASE WHEN random() < 0.05 THEN NULL ELSE (ARRAY['web', 'app', 'api'])[1 + (random() * 2)::int] END,
       '2024-03-01'::timestamptz + ((g * 7919) % 5000) * interval '1 second' / 10 + (random() * 1000)::int * interval '1 microsecond'
  FROM generate_series(1, 5000) g;

-- feed it in random statement sizes with random micro-batch sizes
DO $$
DECLARE
    lo int := 1;
    hi int;
BEGIN
    WHILE lo <= 5000 LOOP
        hi := lo + (random() * 700)::int;
        PERFORM set_config('streamproc.batch_size', (1 + (random() * 300)::int)::text, true);
        INSERT INTO r SELECT * FROM r_t WHERE id BETWEEN lo AND hi ORDER BY random();
        lo := hi + 1;
    END LOOP;
END $$;

SELECT view_diff('r_tumble', $$
    SELECT auction, streamproc.tumble(ts, '10 seconds'), count(*), max(price), min(price), sum(price), avg(price), count(bidder)
      FROM r_t GROUP BY 1, 2$$) AS tumble_diff;
SELECT view_diff('r_hop', $$
    SELECT channel, w, count(*), sum(price)
      FROM r_t, streamproc.hop_windows(ts, '30 seconds', '10 seconds') w GROUP BY 1, 2$$) AS hop_diff;
SELECT view_diff('r_join', $$
    SELECT a.category, streamproc.tumble(r_t.ts, '1 minute'), count(*), sum(r_t.price), max(r_t.bidder)
      FROM r_t JOIN r_auctions a ON a.id = r_t.auction WHERE r_t.price > 10 GROUP BY 1, 2$$) AS join_diff;
SELECT view_diff('r_misc', $$
    SELECT bidder % 7, bool_or(price > 90), bool_and(channel IS NOT NULL), round(stddev_samp(price), 8),
           (array_agg(price ORDER BY ts DESC))[1], (array_agg(id ORDER BY ts))[1], bit_or(auction)
      FROM r_t GROUP BY 1 HAVING count(*) > 3$$) AS misc_diff;
SELECT view_diff('r_total', $$SELECT count(*), sum(price), max(ts) FROM r_t$$) AS total_diff;
SELECT count(*) > 100 AS enough_groups FROM r_tumble;

SELECT streamproc.drop_stream('r', cascade => true);
DROP TABLE r_t, r_auctions;
DROP FUNCTION view_diff(regclass, text);
