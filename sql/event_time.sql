-- Event time: watermarks, window close, late rows, emit 'final', retention.
CREATE EXTENSION IF NOT EXISTS streamproc;
SET timezone = 'UTC';

SELECT streamproc.create_stream('clicks', 'page text, user_id int, ts timestamptz',
    event_time => 'ts', watermark_delay => '5 seconds');
SELECT streamproc.create_view('per_page', $$
    SELECT page, streamproc.tumble(ts, '10 seconds') AS w, count(*) AS n, max(user_id) AS max_user
      FROM clicks GROUP BY page, w$$);
SELECT streamproc.create_view('per_page_final', $$
    SELECT page, streamproc.tumble(ts, '10 seconds') AS w, count(*) AS n
      FROM clicks GROUP BY page, w$$, emit => 'final');
CREATE VIEW per_page_hop WITH (streamproc.continuous, streamproc.emit = 'final') AS
    SELECT page, streamproc.hop(ts, '10 seconds', '5 seconds') AS w, count(*) AS n
      FROM clicks GROUP BY page, w;
-- a view without a window never closes anything
SELECT streamproc.create_view('per_user', $$SELECT user_id, count(*) AS n FROM clicks GROUP BY user_id$$);

-- no rows yet: no watermark
SELECT streamproc.watermark('clicks');

-- watermark = greatest event time seen - delay; out of order within the delay is fine
INSERT INTO clicks VALUES ('a', 1, '2024-01-01 00:00:01'), ('a', 2, '2024-01-01 00:00:08'), ('b', 3, '2024-01-01 00:00:03');
SELECT streamproc.watermark('clicks');
INSERT INTO clicks VALUES ('a', 4, '2024-01-01 00:00:04');   -- older than the newest, within the delay
SELECT * FROM per_page ORDER BY page, w;
SELECT * FROM per_page_final ORDER BY page, w;               -- nothing closed yet

-- 00:00:16 moves the watermark to 00:00:11: [00:00, 00:10) closes
INSERT INTO clicks VALUES ('a', 5, '2024-01-01 00:00:16');
SELECT streamproc.watermark('clicks');
SELECT * FROM per_page_final ORDER BY page, w;
SELECT * FROM per_page_hop ORDER BY page, w;
-- windows that end exactly at the watermark are closed too
INSERT INTO clicks VALUES ('b', 6, '2024-01-01 00:00:20');
SELECT streamproc.watermark('clicks');
SELECT * FROM per_page_hop ORDER BY page, w;

-- a row for a closed window is late: the view does not change, the row is kept
INSERT INTO clicks VALUES ('a', 7, '2024-01-01 00:00:02');
SELECT * FROM per_page ORDER BY page, w;
SELECT * FROM per_page_final ORDER BY page, w;
SELECT * FROM per_user ORDER BY user_id;                     -- no window: counted
SELECT stream, view, "row", event_time, watermark FROM streamproc.late_rows ORDER BY view::text;
SELECT name, windows_open, rows_applied, late_rows FROM streamproc.views ORDER BY name::text;
-- hop: a row is late once the first window holding it has closed
INSERT INTO clicks VALUES ('c', 8, '2024-01-01 00:00:13');  -- first window [05, 15) closed at watermark 15
SELECT streamproc.watermark('clicks');
SELECT view, "row" ->> 'user_id' AS user_id FROM streamproc.late_rows WHERE "row" ->> 'user_id' = '8';

-- NULL event time is an error naming the column; nothing of the statement counts
INSERT INTO clicks VALUES ('z', 9, '2024-01-01 00:00:30'), ('z', 10, NULL);
SELECT count(*) FROM per_user WHERE user_id IN (9, 10);
COPY clicks FROM STDIN WITH (FORMAT csv);
z,11,
\.

-- event times must be finite
INSERT INTO clicks VALUES ('z', 12, 'infinity');

-- batches of one statement take turns: the second batch sees the watermark
-- the first one moved, so a row behind it is late even within one INSERT
SELECT streamproc.create_stream('turns', 'k int, ts timestamptz', event_time => 'ts');
SELECT streamproc.create_view('turns_v', $$SELECT streamproc.tumble(ts, '1 minute') AS w, count(*) AS n
                                           FROM turns GROUP BY w$$, emit => 'final');
SET streamproc.batch_size = 1;
INSERT INTO turns VALUES (1, '2024-01-01 10:00:00'), (2, '2024-01-01 10:05:00'), (3, '2024-01-01 10:00:30');
RESET streamproc.batch_size;
SELECT * FROM turns_v;
SELECT "row" ->> 'k' AS late_k FROM streamproc.late_rows WHERE view = 'turns_v'::regclass;
SELECT streamproc.drop_stream('turns', cascade => true);

-- punctuation: move the watermark by hand, never backward
SELECT streamproc.advance_watermark('clicks', '2024-01-01 00:01:00');
SELECT streamproc.advance_watermark('clicks', '2024-01-01 00:00:00');
SELECT streamproc.watermark('clicks');
SELECT * FROM per_page_final ORDER BY page, w;
SELECT name, windows_open FROM streamproc.views ORDER BY name::text;
SELECT streamproc.advance_watermark('per_page', now());
SELECT streamproc.advance_watermark('clicks', 'infinity');

-- emit 'final' and retention need a window over the event-time column
SELECT streamproc.create_view('bad', $$SELECT page, count(*) FROM clicks GROUP BY page$$, emit => 'final');
SELECT streamproc.create_view('bad', $$SELECT page, streamproc.tumble(now(), '1 minute') AS w, count(*) FROM clicks GROUP BY 1, 2$$, emit => 'final');
SELECT streamproc.create_view('bad', $$SELECT page, count(*) FROM clicks GROUP BY page$$, retention => '1 hour');
SELECT streamproc.create_view('bad', $$SELECT page, streamproc.tumble(ts, '1 minute') AS w, count(*) FROM clicks GROUP BY 1, 2$$, retention => '1 month');
SELECT streamproc.create_stream('no_et', 'x int, ts timestamptz');
SELECT streamproc.create_view('bad', $$SELECT streamproc.tumble(ts, '1 minute') AS w, count(*) FROM no_et GROUP BY 1$$, emit => 'final');
-- a stream without an event-time column never has late rows; its watermark follows arrival time
SELECT streamproc.create_view('no_et_v', $$SELECT streamproc.tumble(ts, '1 minute') AS w, count(*) AS n FROM no_et GROUP BY 1$$);
INSERT INTO no_et VALUES (1, '2000-01-01');
SELECT streamproc.watermark('no_et') > '2020-01-01' AS arrival_time;
INSERT INTO no_et VALUES (2, '1990-01-01');
SELECT * FROM no_et_v ORDER BY w;

-- retention: windows that ended more than the retention before the watermark go away
SELECT streamproc.create_stream('ticks', 'v int, ts timestamptz', event_time => 'ts');
SELECT streamproc.create_view('ticks_1m', $$
    SELECT streamproc.tumble(ts, '1 minute') AS w, count(*) AS n, sum(v) AS s FROM ticks GROUP BY w$$,
    retention => '5 minutes');
INSERT INTO ticks SELECT g, '2024-01-01'::timestamptz + g * interval '10 seconds' FROM generate_series(0, 59) g;
SELECT streamproc.watermark('ticks');
SELECT min(w), max(w), count(*) FROM ticks_1m;
INSERT INTO ticks VALUES (0, '2024-01-01 00:30:00');
SELECT min(w), max(w), count(*) FROM ticks_1m;

-- hop with retention: a window whose oldest slide buckets expired is not shown
SELECT streamproc.create_view('ticks_hop', $$
    SELECT streamproc.hop(ts, '3 minutes', '1 minute') AS w, count(*) AS n FROM ticks GROUP BY w$$,
    emit => 'final', retention => '1 minute');
INSERT INTO ticks SELECT g, '2024-01-01 01:00:00'::timestamptz + g * interval '10 seconds' FROM generate_series(0, 59) g;
SELECT streamproc.watermark('ticks');
SELECT * FROM ticks_hop ORDER BY w;

-- the watermark is stored with the stream
SELECT stream, watermark FROM streamproc.streams WHERE stream <> 'no_et'::regclass ORDER BY stream::text;
SELECT stream, input, max_event_time FROM streamproc.stream_inputs WHERE stream <> 'no_et'::regclass ORDER BY stream::text;

SELECT streamproc.drop_stream('clicks', cascade => true);
SELECT streamproc.drop_stream('no_et', cascade => true);
SELECT streamproc.drop_stream('ticks', cascade => true);
SELECT count(*) FROM streamproc.late_rows;
SELECT count(*) FROM streamproc.stream_inputs;
