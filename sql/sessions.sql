-- Session windows: per key, rows less than gap apart form one session.
CREATE EXTENSION IF NOT EXISTS streamproc;
SET timezone = 'UTC';

SELECT streamproc.create_stream('acts', 'user_id int, action text, ts timestamptz',
    event_time => 'ts', watermark_delay => '1 hour');
SELECT streamproc.create_view('sess', $$
    SELECT user_id, streamproc.session(ts, '10 minutes') AS session_start,
           count(*) AS actions, max(ts) AS last_action, streamproc.latest(action, ts) AS last
      FROM acts GROUP BY user_id, session_start$$);
SELECT streamproc.create_view('sess_final', $$
    SELECT user_id, streamproc.session(ts, '10 minutes') AS session_start, count(*) AS actions
      FROM acts GROUP BY user_id, session_start$$, emit => 'final');

-- two separate sessions for user 1, one for user 2
INSERT INTO acts VALUES (1, 'login', '2024-01-01 10:00'), (1, 'view', '2024-01-01 10:05'),
                        (1, 'login', '2024-01-01 10:30'), (2, 'login', '2024-01-01 10:02');
SELECT * FROM sess ORDER BY user_id, session_start;

-- a row that bridges two sessions merges them; the states are combined
INSERT INTO acts VALUES (1, 'buy', '2024-01-01 10:14');
SELECT * FROM sess ORDER BY user_id, session_start;
INSERT INTO acts VALUES (1, 'view', '2024-01-01 10:22');
SELECT * FROM sess ORDER BY user_id, session_start;

-- out of order within the delay extends a session backward
INSERT INTO acts VALUES (2, 'view', '2024-01-01 09:55');
SELECT * FROM sess WHERE user_id = 2;

-- exactly gap apart is a new session
INSERT INTO acts VALUES (2, 'view', '2024-01-01 10:12');
SELECT * FROM sess WHERE user_id = 2 ORDER BY session_start;

-- several sessions in one batch, merging with each other and with stored ones
SET streamproc.batch_size = 3;
INSERT INTO acts VALUES (3, 'a', '2024-01-01 11:00'), (3, 'b', '2024-01-01 11:30'), (3, 'c', '2024-01-01 11:09'),
                        (3, 'd', '2024-01-01 11:18'), (3, 'e', '2024-01-01 11:27'), (4, 'a', '2024-01-01 11:00');
RESET streamproc.batch_size;
SELECT * FROM sess WHERE user_id IN (3, 4) ORDER BY user_id, session_start;

-- a session closes when the watermark passes its last row + gap
SELECT streamproc.watermark('acts');
SELECT * FROM sess_final ORDER BY user_id, session_start;
INSERT INTO acts VALUES (9, 'tick', '2024-01-01 12:50');     -- watermark 11:50
SELECT streamproc.watermark('acts');
SELECT * FROM sess_final ORDER BY user_id, session_start;

-- a row whose own session would already be closed is late;
-- a closed session never changes, a new row near it starts a new session
INSERT INTO acts VALUES (4, 'late', '2024-01-01 11:05');     -- 11:05 + 10 min <= 11:50
INSERT INTO acts VALUES (3, 'next', '2024-01-01 11:45');     -- its session is open; the one before it closed at 11:40
SELECT * FROM sess WHERE user_id IN (3, 4) ORDER BY user_id, session_start;
SELECT view, "row" ->> 'action' AS action FROM streamproc.late_rows ORDER BY view::text;
SELECT name, windows_open, late_rows FROM streamproc.views ORDER BY name::text;

-- session() is only meaningful in a view's GROUP BY
SELECT streamproc.session(now(), '1 minute');
SELECT streamproc.create_view('bad', $$SELECT user_id, count(*) FROM acts WHERE streamproc.session(ts, '1 minute') > now() GROUP BY 1$$);
SELECT streamproc.create_view('bad', $$SELECT user_id, streamproc.session(ts, (user_id || ' minutes')::interval) AS s, count(*) FROM acts GROUP BY 1, 2$$);

SELECT streamproc.drop_stream('acts', cascade => true);
