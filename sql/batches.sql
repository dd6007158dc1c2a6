-- Micro-batches: COPY in several batches, transactions, failed statements,
-- several views on one stream, views created mid-stream, restarts of state.
CREATE EXTENSION IF NOT EXISTS streamproc;
SELECT streamproc.create_stream('events', 'id int, kind text, v int');
SELECT streamproc.create_view('by_kind', $$SELECT kind, count(*) AS n, sum(v) AS s, max(id) AS last_id FROM events GROUP BY kind$$);
SELECT streamproc.create_view('all_events', $$SELECT count(*) AS n, sum(v) AS s FROM events$$);

-- 25 000 rows through COPY: three batches at the default size
COPY (SELECT g, 'k' || (g % 5), g % 100 FROM generate_series(1, 25000) g) TO '/tmp/streamproc_regress_batches.csv' WITH (FORMAT csv);
COPY events FROM '/tmp/streamproc_regress_batches.csv' WITH (FORMAT csv);
SELECT * FROM by_kind ORDER BY kind;
SELECT * FROM all_events;
SELECT rows_applied FROM streamproc.views WHERE name = 'by_kind'::regclass;

-- the same rows again with batches of 7 rows: everything doubles
SET streamproc.batch_size = 7;
COPY events FROM '/tmp/streamproc_regress_batches.csv' WITH (FORMAT csv);
RESET streamproc.batch_size;
SELECT * FROM by_kind ORDER BY kind;
SELECT * FROM all_events;

-- a failed statement changes nothing, even after some of its batches applied
SET streamproc.batch_size = 100;
INSERT INTO events SELECT g, 'k1', 1000 / (300 - g) FROM generate_series(1, 400) g;
RESET streamproc.batch_size;
COPY events FROM STDIN WITH (FORMAT csv);
1,k1,1
2,k1,not-a-number
\.
SELECT * FROM all_events;

-- rolled back transactions and savepoints
BEGIN;
INSERT INTO events VALUES (1, 'k1', 1);
SELECT n FROM all_events;
ROLLBACK;
BEGIN;
INSERT INTO events VALUES (1, 'new', 1);
SAVEPOINT s1;
INSERT INTO events VALUES (2, 'new', 1000);
ROLLBACK TO s1;
INSERT INTO events VALUES (3, 'new', 10);
COMMIT;
SELECT * FROM by_kind WHERE kind = 'new';

-- a view created now counts only what arrives from now on
SELECT streamproc.create_view('late_view', $$SELECT kind, count(*) AS n FROM events GROUP BY kind$$);
INSERT INTO events VALUES (4, 'new', 1);
SELECT * FROM late_view ORDER BY kind;
SELECT * FROM by_kind WHERE kind = 'new';

-- dropping one view leaves the others running
SELECT streamproc.drop_view('all_events');
INSERT INTO events VALUES (5, 'new', 1);
SELECT * FROM late_view ORDER BY kind;

-- a stream without views accepts rows and keeps nothing
SELECT streamproc.create_stream('lonely', 'x int');
COPY (SELECT generate_series(1, 25000)) TO '/tmp/streamproc_regress_lonely.csv';
COPY lonely FROM '/tmp/streamproc_regress_lonely.csv';
INSERT INTO lonely SELECT generate_series(1, 1000);

-- batch_size is validated
SET streamproc.batch_size = 0;
SHOW streamproc.batch_size;

SELECT streamproc.drop_stream('events', cascade => true);
SELECT streamproc.drop_stream('lonely');
