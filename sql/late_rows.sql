-- Late rows near the edge of the watermark's open windows.  A batch whose
-- earliest event time is at or after the start of the window holding the
-- watermark (tumble: aligned on its origin; hop: on its slide) or within a
-- gap of it (session) cannot hold a late row and skips looking for them;
-- every row just behind that edge must still be found late, and every row
-- at it counted.
CREATE EXTENSION IF NOT EXISTS streamproc;
SET TimeZone = 'UTC';
SELECT streamproc.create_stream('edge', 'k int, at timestamptz', event_time => 'at');
-- windows [..:03, ..:13), [..:13, ..:23) ...
SELECT streamproc.create_view('edge_tumble', $$SELECT k, streamproc.tumble(at, '10 seconds', '2024-01-01 00:00:03+00') AS w, count(*) FROM edge GROUP BY k, w$$);
-- first windows end every 2 s
SELECT streamproc.create_view('edge_hop', $$SELECT k, streamproc.hop(at, '10 seconds', '2 seconds') AS w, count(*) FROM edge GROUP BY k, w$$);
SELECT streamproc.create_view('edge_session', $$SELECT k, streamproc.session(at, '5 seconds') AS w, count(*) FROM edge GROUP BY k, w$$);

-- the watermark to 00:00:14
INSERT INTO edge VALUES (0, '2024-01-01 00:00:14+00');
SELECT watermark FROM streamproc.streams WHERE stream = 'edge'::regclass;

-- one row per statement, each its own batch: which views call it late
CREATE FUNCTION late_for(t timestamptz) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    INSERT INTO edge VALUES (1, t);
    SELECT coalesce(string_agg(view::text, ', ' ORDER BY view::text), 'none') INTO result
      FROM streamproc.late_rows WHERE "row" ->> 'k' = '1' AND event_time = t;
    RETURN result;
END $$;
SELECT t AS event_time, late_for(t) AS late_for
  FROM unnest(ARRAY[
    '2024-01-01 00:00:12.999999+00',  -- tumble [03, 13) closed; hop first window [12, 14) closed
    '2024-01-01 00:00:13+00',         -- tumble [13, 23) open; hop [12, 14) closed
    '2024-01-01 00:00:13.999999+00',
    '2024-01-01 00:00:14+00',         -- open everywhere
    '2024-01-01 00:00:09+00',         -- session: 9 + 5 <= 14, closed
    '2024-01-01 00:00:09.000001+00',  -- session still open
    '2024-01-01 00:00:02.999999+00'   -- everything closed
  ]::timestamptz[]) AS t;

-- the same rows in one batch with a row after the edge: the same verdicts
INSERT INTO edge VALUES
    (2, '2024-01-01 00:00:20+00'), (2, '2024-01-01 00:00:12.999999+00'),
    (2, '2024-01-01 00:00:13+00'), (2, '2024-01-01 00:00:09+00');
SELECT view, "row" ->> 'at' AS at FROM streamproc.late_rows
 WHERE "row" ->> 'k' = '2' ORDER BY view::text, at;

-- what was counted: every row some view did not call late
SELECT 'tumble' AS v, k, w, count FROM edge_tumble WHERE k > 0
UNION ALL SELECT 'hop', k, w, count FROM edge_hop WHERE k > 0
UNION ALL SELECT 'session', k, w, count FROM edge_session WHERE k > 0
ORDER BY 1, 2, 3;

SELECT streamproc.drop_stream('edge', true);
DROP FUNCTION late_for(timestamptz);
