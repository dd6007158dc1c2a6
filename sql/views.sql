-- Continuous views: creation, reading, DDL form, refusals, dropping.
CREATE EXTENSION IF NOT EXISTS streamproc;
SELECT streamproc.create_stream('bids', 'auction int, bidder int, price numeric, channel text, ts timestamptz');

SELECT streamproc.create_view('q7', $$
    SELECT auction, streamproc.tumble(ts, '10 seconds') AS window_start,
           count(*) AS bids, max(price) AS max_price, sum(price) AS total
      FROM bids GROUP BY auction, window_start$$);

-- the DDL form, with WHERE, expressions, HAVING and a key not in the select list
CREATE VIEW by_channel WITH (streamproc.continuous) AS
    SELECT upper(channel) AS channel, count(*) AS n, sum(price * 2) AS double_total,
           round(avg(price), 2) AS avg_price
      FROM bids WHERE price > 0 GROUP BY upper(channel), auction % 2 HAVING count(*) > 1;

-- no GROUP BY: one row for the whole stream
SELECT streamproc.create_view('totals', $$SELECT count(*) AS n, sum(price) AS s FROM bids$$);

-- GROUP BY without aggregates: distinct keys
SELECT streamproc.create_view('bidders', $$SELECT bidder FROM bids GROUP BY bidder$$);

INSERT INTO bids VALUES
    (1, 10, 5, 'web',  '2024-01-01 00:00:01+00'),
    (1, 11, 7, 'web',  '2024-01-01 00:00:03+00'),
    (1, 12, 3, 'app',  '2024-01-01 00:00:12+00'),
    (2, 10, 9, 'web',  '2024-01-01 00:00:05+00'),
    (2, 13, 0, 'app',  '2024-01-01 00:00:06+00'),
    (3, NULL, 4, NULL, '2024-01-01 00:00:09+00');
SELECT * FROM q7 ORDER BY auction, window_start;
SELECT * FROM by_channel ORDER BY channel;
SELECT * FROM totals;
SELECT * FROM bidders ORDER BY bidder NULLS FIRST;

-- more rows merge into the same state rows
INSERT INTO bids VALUES (1, 14, 11, 'app', '2024-01-01 00:00:08+00'), (3, NULL, 1, NULL, '2024-01-01 00:00:02+00');
SELECT * FROM q7 ORDER BY auction, window_start;
SELECT * FROM by_channel ORDER BY channel;
SELECT * FROM totals;
SELECT * FROM bidders ORDER BY bidder NULLS FIRST;

-- a view is an ordinary relation: filter, join, aggregate again
SELECT auction, sum(bids) FROM q7 GROUP BY auction ORDER BY auction;
SELECT q.auction, q.bids, t.n FROM q7 q, totals t WHERE q.auction = 2;

-- point lookups on the group key use the state table's index
CREATE FUNCTION plan_of(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
    FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
        RETURN NEXT regexp_replace(l, 'state_\d+', 'state_N', 'g');
    END LOOP;
END $$;
SET enable_seqscan = off;
SELECT plan_of($$SELECT * FROM q7 WHERE auction = 1$$);
SELECT plan_of($$SELECT * FROM q7 WHERE auction = 1 AND window_start = '2024-01-01 00:00:00+00'$$);
RESET enable_seqscan;

-- the catalog
SELECT relid, stream, emit, window_kind, window_column, window_size FROM streamproc.view_defs ORDER BY id;
SELECT name, stream, groups, windows_open, rows_applied FROM streamproc.views ORDER BY name::text;
SELECT query FROM streamproc.view_defs WHERE relid = 'by_channel'::regclass;

-- refused at creation, with the cause named
SELECT streamproc.create_view('bad', $$SELECT auction, count(DISTINCT bidder) FROM bids GROUP BY auction$$);
SELECT streamproc.create_view('bad', $$SELECT auction, array_agg(bidder) FROM bids GROUP BY auction$$);
SELECT streamproc.create_view('bad', $$SELECT auction, string_agg(channel, ',' ORDER BY ts) FROM bids GROUP BY auction$$);
SELECT streamproc.create_view('bad', $$SELECT auction, percentile_cont(0.5) WITHIN GROUP (ORDER BY price) FROM bids GROUP BY auction$$);
SELECT streamproc.create_view('bad', $$SELECT auction, rank() OVER (ORDER BY auction) FROM bids GROUP BY auction$$);
SELECT streamproc.create_view('bad', $$SELECT auction, count(*) FROM bids GROUP BY auction ORDER BY auction$$);
SELECT streamproc.create_view('bad', $$SELECT auction, count(*) FROM bids GROUP BY auction LIMIT 10$$);
SELECT streamproc.create_view('bad', $$SELECT auction, count(*) FROM (SELECT * FROM bids WHERE price > 1) b GROUP BY auction$$);
SELECT streamproc.create_view('bad', $$SELECT auction, count(*) FROM bids WHERE bidder IN (SELECT bidder FROM bids) GROUP BY auction$$);
SELECT streamproc.create_stream('asks', 'auction int, price numeric');
SELECT streamproc.create_view('bad', $$SELECT b.auction, count(*) FROM bids b JOIN asks a USING (auction) GROUP BY b.auction$$);
SELECT streamproc.create_view('bad', $$SELECT auction, price FROM bids$$);
SELECT streamproc.create_view('bad', $$SELECT count(*) FROM pg_class$$);
SELECT streamproc.create_view('bad', $$SELECT DISTINCT auction FROM bids$$);
SELECT streamproc.create_view('bad', $$SELECT auction, count(*) FROM bids GROUP BY ROLLUP (auction)$$);
SELECT streamproc.create_view('bad', $$SELECT auction, count(*) FROM bids GROUP BY auction UNION ALL SELECT 1, 1$$);
SELECT streamproc.create_view('bad', $$SELECT generate_series(1, auction), count(*) FROM bids GROUP BY auction$$);
SELECT streamproc.create_view('bad', $$SELECT point(auction, auction) AS p, count(*) FROM bids GROUP BY 1$$);
SELECT streamproc.create_view('bad', $$SELECT auction, count(*) FROM bids GROUP BY auction; SELECT 1$$);
SELECT streamproc.create_view('bad', $$DELETE FROM bids$$);
SELECT streamproc.create_view('bad', $$SELECT auction, count(*) FROM bids GROUP BY auction$$, emit => 'sometimes');
SELECT streamproc.create_view('bad', $$SELECT auction, count(*) FROM bids GROUP BY auction$$, emit => 'final');
SELECT streamproc.create_view('q7', $$SELECT auction, count(*) FROM bids GROUP BY auction$$);
SELECT streamproc.create_view('bad', $$SELECT auction, count(*) FROM nosuch GROUP BY auction$$);
CREATE VIEW bad WITH (streamproc.continuous, security_barrier) AS SELECT auction, count(*) FROM bids GROUP BY auction;
CREATE VIEW bad WITH (streamproc.bogus) AS SELECT auction, count(*) FROM bids GROUP BY auction;
CREATE OR REPLACE VIEW bad WITH (streamproc.continuous) AS SELECT auction, count(*) FROM bids GROUP BY auction;
CREATE VIEW bad (a, b) WITH (streamproc.continuous) AS SELECT auction, count(*) FROM bids GROUP BY auction;
SELECT count(*) FROM pg_class WHERE relname = 'bad';

-- continuous views outlive sessions: no temporary ones, no temporary tables
SELECT streamproc.create_view('pg_temp.tmp_v', $$SELECT auction, count(*) FROM bids GROUP BY auction$$);
CREATE TEMP TABLE tmp_dim (id int);
SELECT streamproc.create_view('bad', $$SELECT b.auction, count(*) FROM bids b JOIN tmp_dim d ON d.id = b.auction GROUP BY 1$$);
DROP TABLE tmp_dim;
-- names the state table uses itself are fine as group keys
SELECT streamproc.create_view('odd_names', $$SELECT bidder AS _rows, auction AS _agg1, count(*) AS _session_end FROM bids GROUP BY 1, 2$$);
INSERT INTO bids VALUES (9, 90, 1, 'web', '2024-01-01 00:00:00+00');
SELECT * FROM odd_names WHERE _agg1 = 9;
SELECT streamproc.drop_view('odd_names');

-- ordinary views are untouched by the hook
CREATE VIEW plain_v AS SELECT 1 AS one;
CREATE VIEW plain_sb WITH (security_barrier) AS SELECT 1 AS one;
DROP VIEW plain_v, plain_sb;

-- a state table altered by hand is refused, not trusted
DO $$
BEGIN
    EXECUTE format('ALTER TABLE %s ADD COLUMN extra text', (SELECT state_table FROM streamproc.view_defs WHERE relid = 'totals'::regclass));
END $$;
INSERT INTO bids VALUES (1, 1, 1, 'web', '2024-01-01 00:00:00+00');
DO $$
BEGIN
    EXECUTE format('ALTER TABLE %s DROP COLUMN extra', (SELECT state_table FROM streamproc.view_defs WHERE relid = 'totals'::regclass));
END $$;
INSERT INTO bids VALUES (1, 1, 1, 'web', '2024-01-01 00:00:00+00');
SELECT streamproc.drop_view('totals');
INSERT INTO bids VALUES (1, 1, 1, 'web', '2024-01-01 00:00:00+00');

-- the state table belongs to the view
DO $$
BEGIN
    EXECUTE format('DROP TABLE %s', (SELECT state_table FROM streamproc.view_defs WHERE relid = 'q7'::regclass));
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'refused (%): %', SQLSTATE, regexp_replace(SQLERRM, 'state_\d+', 'state_N');
END $$;
SELECT streamproc.drop_view('bids');
SELECT streamproc.drop_view('nosuch');
-- and the stream cannot go while views read it
DROP FOREIGN TABLE bids;
SELECT streamproc.drop_stream('bids');

-- dropping views, both ways
SELECT streamproc.drop_view('q7');
DROP VIEW by_channel;
SELECT relid FROM streamproc.view_defs ORDER BY id;
SELECT count(*) FROM pg_class WHERE relnamespace = 'streamproc'::regnamespace AND relname LIKE 'state%';
SELECT streamproc.drop_stream('bids', cascade => true);
SELECT streamproc.drop_stream('asks');
DROP FUNCTION plan_of(text);
SELECT count(*) FROM streamproc.view_defs;
SELECT count(*) FROM pg_class WHERE relnamespace = 'streamproc'::regnamespace AND relname LIKE 'state%';
