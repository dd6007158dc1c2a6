-- PostgreSQL sources: change data capture over logical replication
-- (pgoutput) from tables of this very server into streams, with the
-- existing rows first; inserts count, deletes take back, updates do both.
CREATE EXTENSION IF NOT EXISTS streamproc;
SELECT format('host=''%s'' port=%s dbname=''%s''', current_setting('unix_socket_directories'),
              current_setting('port'), current_database()) AS conninfo \gset

\i sql/include/wait_for.sql
-- wait until a source has applied what was committed upstream after a mark
-- (an LSN taken before the last change of a test step)
CREATE FUNCTION caught_up(source text, mark pg_lsn) RETURNS boolean LANGUAGE sql AS $$
    SELECT wait_for(format('(SELECT lsn > %L FROM streamproc.sources WHERE name = %L)', mark, source))
$$;
\i sql/include/view_diff.sql

-- ---------------------------------------------------------------------------
-- Default replica identity (the primary key)
-- ---------------------------------------------------------------------------
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance int, note text);
INSERT INTO accounts SELECT g, 'owner' || (g % 4), g * 10, 'n' || g FROM generate_series(1, 40) g;
CREATE PUBLICATION acc_pub FOR TABLE accounts;

-- the stream has no note column, and a column the table lacks (NULL)
SELECT streamproc.create_stream('acc_changes', 'id int, owner text, balance int, region text');
CREATE VIEW acc_by_owner WITH (streamproc.continuous) AS
SELECT owner, count(*) AS accounts, sum(balance) AS total, count(region) AS regions
  FROM acc_changes GROUP BY owner;
CREATE VIEW acc_all WITH (streamproc.continuous) AS
SELECT count(*) AS accounts, sum(balance) AS total, avg(balance) AS mean FROM acc_changes;

SELECT pg_current_wal_insert_lsn() AS mark \gset
SELECT streamproc.create_pg_source('acc_src', 'acc_changes', :'conninfo', 'acc_pub', 'public.accounts');
SELECT caught_up('acc_src', :'mark');
-- the existing rows, exactly once
SELECT * FROM acc_by_owner ORDER BY owner;
SELECT view_diff('acc_by_owner', 'SELECT owner, count(*), sum(balance), 0::bigint FROM accounts GROUP BY owner') AS differing;
SELECT name, kind, stream, state, workers, rows_in, dead_letters, lag IS NOT NULL AS has_lag, last_error,
       publication, source_table, slot, snapshot, format
  FROM streamproc.sources WHERE name = 'acc_src';
SELECT slot_name, plugin, active FROM pg_replication_slots WHERE slot_name = 'streamproc_acc_src';

-- inserts, updates, deletes; rows moving between owners; key changes; several
-- changes of one row in one transaction; a row inserted and deleted at once
INSERT INTO accounts VALUES (41, 'owner1', 5, 'x'), (42, 'owner9', 7, 'y');
UPDATE accounts SET balance = balance + 1 WHERE id % 5 = 0;
UPDATE accounts SET owner = 'owner2' WHERE id IN (1, 5, 9);
UPDATE accounts SET id = id + 1000 WHERE id IN (2, 3);
UPDATE accounts SET id = id + 2000, owner = 'owner7' WHERE id = 4;
DELETE FROM accounts WHERE id IN (6, 7, 42);
BEGIN;
INSERT INTO accounts VALUES (43, 'owner3', 1, 'z');
UPDATE accounts SET balance = 2 WHERE id = 43;
UPDATE accounts SET id = 44, owner = 'owner4' WHERE id = 43;
INSERT INTO accounts VALUES (45, 'owner5', 9, 'gone');
DELETE FROM accounts WHERE id = 45;
UPDATE accounts SET note = 'only a column the stream does not have' WHERE id = 8;
COMMIT;
-- two rows swap keys in one transaction
BEGIN;
UPDATE accounts SET id = -10 WHERE id = 10;
UPDATE accounts SET id = 10 WHERE id = 11;
UPDATE accounts SET id = 11 WHERE id = -10;
COMMIT;
SELECT pg_current_wal_insert_lsn() AS mark \gset
UPDATE accounts SET owner = 'owner0', balance = balance * 2 WHERE id BETWEEN 20 AND 25;
SELECT caught_up('acc_src', :'mark');
SELECT * FROM acc_by_owner ORDER BY owner;
SELECT view_diff('acc_by_owner', 'SELECT owner, count(*), sum(balance), 0::bigint FROM accounts GROUP BY owner') AS differing;
SELECT view_diff('acc_all', 'SELECT count(*), sum(balance), avg(balance) FROM accounts') AS differing;
-- an owner whose last account went away is a group of no rows
SELECT count(*) FROM acc_by_owner WHERE owner = 'owner9';

-- the keyed copy: what the source counted, per key
SELECT count(*) AS rows_held, sum(n) AS counted FROM streamproc.pg_source_rows r
  JOIN streamproc.source_defs d ON d.id = r.source WHERE d.name = 'acc_src';
SELECT row_identity FROM streamproc.source_defs WHERE name = 'acc_src';

-- TRUNCATE takes every row back
SELECT pg_current_wal_insert_lsn() AS mark \gset
TRUNCATE accounts;
SELECT caught_up('acc_src', :'mark');
SELECT * FROM acc_by_owner ORDER BY owner;
SELECT * FROM acc_all;
SELECT pg_current_wal_insert_lsn() AS mark \gset
INSERT INTO accounts SELECT g, 'owner' || (g % 3), g, NULL FROM generate_series(1, 9) g;
SELECT caught_up('acc_src', :'mark');
SELECT view_diff('acc_by_owner', 'SELECT owner, count(*), sum(balance), 0::bigint FROM accounts GROUP BY owner') AS differing;

-- the replica identity changes to FULL: the source re-keys what it holds
SELECT pg_current_wal_insert_lsn() AS mark \gset
ALTER TABLE accounts REPLICA IDENTITY FULL;
UPDATE accounts SET owner = 'owner5' WHERE id = 1;
DELETE FROM accounts WHERE id = 2;
SELECT caught_up('acc_src', :'mark');
SELECT row_identity FROM streamproc.source_defs WHERE name = 'acc_src';
SELECT view_diff('acc_by_owner', 'SELECT owner, count(*), sum(balance), 0::bigint FROM accounts GROUP BY owner') AS differing;
-- and back to the key, which the stream has
SELECT pg_current_wal_insert_lsn() AS mark \gset
ALTER TABLE accounts REPLICA IDENTITY DEFAULT;
UPDATE accounts SET id = 100 WHERE id = 3;
DELETE FROM accounts WHERE id = 4;
SELECT caught_up('acc_src', :'mark');
SELECT row_identity FROM streamproc.source_defs WHERE name = 'acc_src';
SELECT view_diff('acc_by_owner', 'SELECT owner, count(*), sum(balance), 0::bigint FROM accounts GROUP BY owner') AS differing;

-- ---------------------------------------------------------------------------
-- REPLICA IDENTITY FULL, no key at all, duplicate rows; a TOASTed column
-- that updates leave alone; bad values; a view that fails on some rows
-- ---------------------------------------------------------------------------
CREATE TABLE docs (id int, grp text, body text, qty text);
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;  -- long values out of line, uncompressed
ALTER TABLE docs REPLICA IDENTITY FULL;
INSERT INTO docs SELECT g % 5, 'g' || (g % 3), repeat(chr(97 + g % 26), 3000 + g), (g % 7 + 1)::text
  FROM generate_series(1, 30) g;
INSERT INTO docs VALUES (1, 'g1', 'dup', '1'), (1, 'g1', 'dup', '1');     -- identical rows
CREATE PUBLICATION docs_pub FOR TABLE docs;
SELECT streamproc.create_stream('doc_changes', 'id int, grp text, body text, qty int');
CREATE VIEW doc_sizes WITH (streamproc.continuous) AS
SELECT grp, count(*) AS docs, sum(length(body)) AS chars, sum(qty) AS qty FROM doc_changes GROUP BY grp;
CREATE VIEW doc_ratio WITH (streamproc.continuous) AS
SELECT grp, sum(100 / qty) AS r FROM doc_changes GROUP BY grp;
SELECT pg_current_wal_insert_lsn() AS mark \gset
SELECT streamproc.create_pg_source('docs_src', 'doc_changes', :'conninfo', 'docs_pub', 'public.docs');
SELECT caught_up('docs_src', :'mark');
SELECT view_diff('doc_sizes', 'SELECT grp, count(*), sum(length(body)), sum(qty::int) FROM docs GROUP BY grp') AS differing;

SELECT pg_current_wal_insert_lsn() AS mark \gset
UPDATE docs SET grp = 'g9' WHERE id = 2;                 -- body unchanged and TOASTed
UPDATE docs SET qty = (qty::int + 1)::text WHERE id = 3; -- so is this one's
DELETE FROM docs WHERE ctid = (SELECT min(ctid) FROM docs WHERE body = 'dup');   -- one of two
INSERT INTO docs VALUES (7, 'g1', 'seven', 'lots');      -- qty is no integer: dead letter
INSERT INTO docs VALUES (8, 'g2', 'eight', '0');         -- 100 / 0 in doc_ratio: dead letter
INSERT INTO docs VALUES (9, 'g2', 'nine', '9');
SELECT caught_up('docs_src', :'mark');
SELECT * FROM doc_sizes ORDER BY grp;
SELECT view_diff('doc_sizes', $$SELECT grp, count(*), sum(length(body)), sum(qty::int) FROM docs
                                 WHERE id NOT IN (7, 8) GROUP BY grp$$) AS differing;
SELECT view_diff('doc_ratio', $$SELECT grp, sum(100 / qty::int) FROM docs WHERE id NOT IN (7, 8) GROUP BY grp$$) AS differing;
SELECT source, lsn IS NOT NULL AS has_lsn, topic, partition, "offset",
       convert_from(payload, 'UTF8')::jsonb AS payload, error
  FROM streamproc.dead_letters WHERE source = 'docs_src' ORDER BY id;
-- fixing the rows upstream brings them in
SELECT pg_current_wal_insert_lsn() AS mark \gset
UPDATE docs SET qty = '7' WHERE id = 7;
UPDATE docs SET qty = '8' WHERE id = 8;
SELECT caught_up('docs_src', :'mark');
SELECT view_diff('doc_sizes', 'SELECT grp, count(*), sum(length(body)), sum(qty::int) FROM docs GROUP BY grp') AS differing;
SELECT rows_in, dead_letters FROM streamproc.sources WHERE name = 'docs_src';

-- default replica identity and a TOASTed value, with a change set aside in between
CREATE TABLE notes (id int PRIMARY KEY, grp text, body text, qty text);
ALTER TABLE notes ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO notes VALUES (1, 'a', repeat('x', 4000), '1'), (2, 'a', repeat('y', 5000), '2');
CREATE PUBLICATION notes_pub FOR TABLE notes;
SELECT streamproc.create_stream('note_changes', 'id int, grp text, body text, qty int');
CREATE VIEW note_sizes WITH (streamproc.continuous) AS
SELECT grp, count(*) AS notes, sum(length(body)) AS chars, sum(qty) AS qty FROM note_changes GROUP BY grp;
SELECT pg_current_wal_insert_lsn() AS mark \gset
SELECT streamproc.create_pg_source('notes_src', 'note_changes', :'conninfo', 'notes_pub', 'notes');
SELECT caught_up('notes_src', :'mark');
SELECT pg_current_wal_insert_lsn() AS mark \gset
UPDATE notes SET grp = 'b' WHERE id = 1;                      -- body from the keyed copy
UPDATE notes SET qty = 'two', body = repeat('z', 6000) WHERE id = 2;  -- set aside: still counted as it was
UPDATE notes SET qty = '3' WHERE id = 2;                      -- body: the new one, not the counted one
SELECT caught_up('notes_src', :'mark');
SELECT * FROM note_sizes ORDER BY grp;
SELECT view_diff('note_sizes', 'SELECT grp, count(*), sum(length(body)), sum(qty::int) FROM notes GROUP BY grp') AS differing;
-- lag: the bytes a source is behind show while its batch waits (here for
-- batch_timeout), and are 0 once it is applied
SELECT streamproc.stop_source('notes_src');
SELECT wait_for($$(SELECT workers = 0 FROM streamproc.sources WHERE name = 'notes_src')$$);
UPDATE streamproc.source_defs SET batch_timeout = '3 s' WHERE name = 'notes_src';
SELECT streamproc.start_source('notes_src');
SELECT pg_current_wal_insert_lsn() AS mark \gset
UPDATE notes SET qty = '4' WHERE id = 2;
SELECT wait_for($$(SELECT lag > 0 FROM streamproc.sources WHERE name = 'notes_src')$$);
SELECT caught_up('notes_src', :'mark');
SELECT wait_for($$(SELECT lag = 0 FROM streamproc.sources WHERE name = 'notes_src')$$);
SELECT view_diff('note_sizes', 'SELECT grp, count(*), sum(length(body)), sum(qty::int) FROM notes GROUP BY grp') AS differing;

-- values that COPY's text format escapes come through the initial copy as
-- they are (a literal \N is no NULL)
CREATE TABLE texts (id int PRIMARY KEY, t text);
INSERT INTO texts VALUES (1, E'a\tb'), (2, E'line\nbreak\r'), (3, E'back\\slash'), (4, '\N'), (5, NULL),
                         (6, ''), (7, E'\\N'), (8, E'\b\f\x0b');
CREATE PUBLICATION texts_pub FOR TABLE texts;
SELECT streamproc.create_stream('text_changes', 'id int, t text');
CREATE VIEW text_counts WITH (streamproc.continuous) AS
SELECT t, count(*) AS n, sum(id) AS ids FROM text_changes GROUP BY t;
SELECT pg_current_wal_insert_lsn() AS mark \gset
SELECT streamproc.create_pg_source('texts_src', 'text_changes', :'conninfo', 'texts_pub', 'texts');
SELECT caught_up('texts_src', :'mark');
SELECT view_diff('text_counts', 'SELECT t, count(*), sum(id) FROM texts GROUP BY t') AS differing;
SELECT count(*) FROM text_counts WHERE t IS NULL;

-- ---------------------------------------------------------------------------
-- a partitioned table and event time; the initial copy, applied in chunks
-- (batch_size rows each) in no order of event time, makes nothing late
-- ---------------------------------------------------------------------------
CREATE TABLE readings (sensor int, ts timestamptz, v int, PRIMARY KEY (sensor, ts)) PARTITION BY LIST (sensor);
CREATE TABLE readings_0 PARTITION OF readings FOR VALUES IN (0);
CREATE TABLE readings_1 PARTITION OF readings FOR VALUES IN (1, 2);
INSERT INTO readings SELECT g % 3, '2026-01-31'::timestamptz - g * interval '7 hours', g FROM generate_series(1, 100) g;
CREATE PUBLICATION readings_pub FOR TABLE readings;
SELECT streamproc.create_stream('reading_changes', 'sensor int, ts timestamptz, v int',
                                event_time => 'ts', watermark_delay => '10 days');
CREATE VIEW readings_daily WITH (streamproc.continuous) AS
SELECT streamproc.tumble(ts, '1 day') AS day, sensor, count(*) AS n, sum(v) AS v
  FROM reading_changes GROUP BY 1, 2;
SELECT streamproc.create_pg_source('readings_src', 'reading_changes', :'conninfo', 'readings_pub', 'public.readings');
ALTER PUBLICATION readings_pub SET (publish_via_partition_root = true);
SELECT pg_current_wal_insert_lsn() AS mark \gset
BEGIN;
SELECT streamproc.create_pg_source('readings_src', 'reading_changes', :'conninfo', 'readings_pub', 'public.readings');
UPDATE streamproc.source_defs SET batch_size = 7 WHERE name = 'readings_src';
COMMIT;
SELECT caught_up('readings_src', :'mark');
SELECT view_diff('readings_daily', $$SELECT date_bin('1 day', ts, 'epoch'), sensor, count(*), sum(v) FROM readings GROUP BY 1, 2$$) AS differing;
SELECT count(*) AS late FROM streamproc.late_rows WHERE stream = 'reading_changes'::regclass;
SELECT streamproc.watermark('reading_changes');
-- rows moving between partitions (within open windows): a delete and an
-- insert upstream
SELECT pg_current_wal_insert_lsn() AS mark \gset
UPDATE readings SET sensor = 0, v = v + 1000 WHERE sensor = 1 AND ts >= '2026-01-25';
SELECT caught_up('readings_src', :'mark');
SELECT view_diff('readings_daily', $$SELECT date_bin('1 day', ts, 'epoch'), sensor, count(*), sum(v) FROM readings GROUP BY 1, 2$$) AS differing;
-- late changes, each its own batch, against the watermark 10 days behind
-- the newest reading (2026-01-30 17:00): a reading moved out of a closed
-- window into an open one is taken back late (the closed day keeps it) and
-- counted on time; an insert into a closed day is late; one into an open
-- day is not.  A batch whose least event time were taken from the rows it
-- adds alone would take the late reading back.
CREATE TEMP TABLE readings_before AS SELECT * FROM readings_daily;
SELECT pg_current_wal_insert_lsn() AS mark \gset
UPDATE readings SET ts = '2026-01-30 12:00' WHERE sensor = 1 AND ts = '2026-01-01 20:00';
SELECT caught_up('readings_src', :'mark');
SELECT pg_current_wal_insert_lsn() AS mark \gset
INSERT INTO readings VALUES (0, '2026-01-02 00:00', 1);
SELECT caught_up('readings_src', :'mark');
SELECT pg_current_wal_insert_lsn() AS mark \gset
INSERT INTO readings VALUES (2, '2026-01-29 00:00', 5);
SELECT caught_up('readings_src', :'mark');
SELECT streamproc.watermark('reading_changes');
SELECT "row" ->> 'sensor' AS sensor, "row" ->> 'v' AS v, event_time, watermark
  FROM streamproc.late_rows WHERE stream = 'reading_changes'::regclass ORDER BY event_time;
SELECT coalesce(a.day, b.day) AS day, coalesce(a.sensor, b.sensor) AS sensor,
       b.n AS n_before, a.n AS n_after, b.v AS v_before, a.v AS v_after
  FROM readings_daily a FULL JOIN readings_before b USING (day, sensor)
 WHERE a IS DISTINCT FROM b ORDER BY 1, 2;
-- the view is the table without the late insert, with the moved reading
-- still in its closed day too
SELECT view_diff('readings_daily', $$SELECT date_bin('1 day', ts, 'epoch'), sensor, count(*), sum(v)
                                       FROM (SELECT sensor, ts, v FROM readings
                                              WHERE (sensor, ts) <> (0, '2026-01-02 00:00')
                                             UNION ALL SELECT 1, '2026-01-01 20:00', 100) r
                                      GROUP BY 1, 2$$) AS differing;
-- an infinite event time cannot be counted: a dead letter, and its delete
-- takes nothing back
INSERT INTO readings VALUES (0, 'infinity', 1);
SELECT pg_current_wal_insert_lsn() AS mark \gset
DELETE FROM readings WHERE ts = 'infinity';
SELECT caught_up('readings_src', :'mark');
SELECT error, convert_from(payload, 'UTF8') AS payload FROM streamproc.dead_letters WHERE source = 'readings_src';
SELECT view_diff('readings_daily', $$SELECT date_bin('1 day', ts, 'epoch'), sensor, count(*), sum(v)
                                       FROM (SELECT sensor, ts, v FROM readings
                                              WHERE (sensor, ts) <> (0, '2026-01-02 00:00')
                                             UNION ALL SELECT 1, '2026-01-01 20:00', 100) r
                                      GROUP BY 1, 2$$) AS differing;

-- ---------------------------------------------------------------------------
-- stop and start: changes made meanwhile wait in the slot
-- ---------------------------------------------------------------------------
SELECT streamproc.stop_source('acc_src');
SELECT wait_for($$(SELECT state = 'stopped' AND workers = 0 FROM streamproc.sources WHERE name = 'acc_src')$$);
SELECT wait_for($$NOT (SELECT active FROM pg_replication_slots WHERE slot_name = 'streamproc_acc_src')$$);
INSERT INTO accounts VALUES (50, 'owner1', 50, NULL);
SELECT pg_current_wal_insert_lsn() AS mark \gset
UPDATE accounts SET balance = 0 WHERE id = 1;
SELECT streamproc.start_source('acc_src');
SELECT caught_up('acc_src', :'mark');
SELECT view_diff('acc_by_owner', 'SELECT owner, count(*), sum(balance), 0::bigint FROM accounts GROUP BY owner') AS differing;
SELECT wait_for($$(SELECT state = 'running' AND lag = 0 FROM streamproc.sources WHERE name = 'acc_src')$$);
-- the slot is told what the source committed (and keeps no WAL for it)
SELECT wait_for($$(SELECT s.confirmed_flush_lsn >= d.lsn
                     FROM pg_replication_slots s, streamproc.sources d
                    WHERE s.slot_name = 'streamproc_acc_src' AND d.name = 'acc_src')$$);

-- ---------------------------------------------------------------------------
-- snapshot => false on a slot of one's own: only what comes after it
-- ---------------------------------------------------------------------------
SELECT 'ok' FROM pg_create_logical_replication_slot('my_acc_slot', 'pgoutput');
SELECT pg_current_wal_insert_lsn() AS mark \gset
INSERT INTO accounts VALUES (60, 'owner6', 60, NULL);
SELECT streamproc.create_stream('acc_new', 'id int, owner text, balance int');
CREATE VIEW acc_new_totals WITH (streamproc.continuous) AS
SELECT owner, count(*) AS accounts, sum(balance) AS total FROM acc_new GROUP BY owner;
SELECT streamproc.create_pg_source('acc_new_src', 'acc_new', :'conninfo', 'acc_pub', 'public.accounts',
                                   slot => 'my_acc_slot', snapshot => false);
SELECT caught_up('acc_new_src', :'mark');
SELECT * FROM acc_new_totals;

-- a slot gone missing: the source is in error, and retries until it is back
SELECT streamproc.stop_source('acc_new_src');
SELECT wait_for($$NOT (SELECT active FROM pg_replication_slots WHERE slot_name = 'my_acc_slot')$$);
SELECT pg_drop_replication_slot('my_acc_slot');
SELECT streamproc.start_source('acc_new_src');
SELECT wait_for($$(SELECT state = 'error' FROM streamproc.sources WHERE name = 'acc_new_src')$$);
SELECT state, last_error FROM streamproc.sources WHERE name = 'acc_new_src';
SELECT 'ok' FROM pg_create_logical_replication_slot('my_acc_slot', 'pgoutput');
SELECT pg_current_wal_insert_lsn() AS mark \gset
INSERT INTO accounts VALUES (61, 'owner6', 1, NULL);
SELECT caught_up('acc_new_src', :'mark');
SELECT state FROM streamproc.sources WHERE name = 'acc_new_src';
SELECT * FROM acc_new_totals;

-- ---------------------------------------------------------------------------
-- bad arguments
-- ---------------------------------------------------------------------------
SELECT streamproc.create_pg_source('x', 'acc_changes', :'conninfo', 'no_such_pub', 'public.accounts');
SELECT streamproc.create_pg_source('x', 'acc_changes', :'conninfo', 'docs_pub', 'public.accounts');
SELECT streamproc.create_pg_source('x', 'acc_changes', :'conninfo', 'acc_pub', 'public.no_such_table');
SELECT streamproc.create_pg_source('x', 'acc_changes', :'conninfo', 'acc_pub', 'a.b.c');
SELECT streamproc.create_pg_source('x', 'acc_changes', :'conninfo', 'acc_pub', 'public.accounts', slot => 'Bad-Slot');
SELECT streamproc.create_pg_source('x', 'acc_changes', :'conninfo', 'acc_pub', 'public.accounts', slot => 'my_acc_slot');
SELECT streamproc.create_pg_source('x', 'acc_changes', :'conninfo', 'acc_pub', 'public.accounts', slot => 'streamproc_acc_src', snapshot => false);
-- a slot of another database
SELECT current_database() AS db \gset
\c postgres
SELECT 'ok' FROM pg_create_logical_replication_slot('other_db_slot', 'pgoutput');
\c :db
SELECT streamproc.create_pg_source('x', 'acc_changes', :'conninfo', 'acc_pub', 'public.accounts', slot => 'other_db_slot', snapshot => false);
SELECT pg_drop_replication_slot('other_db_slot');
SELECT streamproc.create_pg_source('acc_src', 'acc_changes', :'conninfo', 'acc_pub', 'public.accounts');
SELECT streamproc.create_pg_source('x', 'accounts', :'conninfo', 'acc_pub', 'public.accounts');
SELECT streamproc.create_pg_source('x', 'acc_changes', :'conninfo', NULL, 'public.accounts');
SELECT streamproc.create_stream('acc_other', 'nothing_alike int');
CREATE VIEW acc_other_n WITH (streamproc.continuous) AS SELECT count(*) AS n FROM acc_other;
SELECT streamproc.create_pg_source('x', 'acc_other', :'conninfo', 'acc_pub', 'public.accounts');
-- only the columns of a publication's column list are published
CREATE PUBLICATION acc_cols_pub FOR TABLE accounts (id, balance);
SELECT streamproc.create_stream('acc_owners', 'owner text');
SELECT streamproc.create_pg_source('x', 'acc_owners', :'conninfo', 'acc_cols_pub', 'public.accounts');
SELECT streamproc.drop_stream('acc_owners');
DROP PUBLICATION acc_cols_pub;
-- a view that cannot take rows back stands in the way
SELECT streamproc.create_stream('acc_max', 'id int, balance int');
CREATE VIEW acc_top WITH (streamproc.continuous) AS SELECT max(balance) AS top FROM acc_max;
SELECT streamproc.create_pg_source('x', 'acc_max', :'conninfo', 'acc_pub', 'public.accounts');
-- and once a pg source feeds a stream, such views are refused
CREATE VIEW acc_changes_top WITH (streamproc.continuous) AS SELECT max(balance) AS top FROM acc_changes;

-- connection strings: the password is never repeated
SELECT streamproc.create_pg_source('x', 'acc_changes', 'host=/nonexistent port=1 password=s3cret-pw', 'acc_pub', 'public.accounts');
SELECT streamproc.create_pg_source('x', 'acc_changes', 'host=/nonexistent password=s3cret pw', 'acc_pub', 'public.accounts');
SELECT streamproc.create_pg_source('x', 'acc_changes', 'postgresql://u:s3cret@/db?bogus=1', 'acc_pub', 'public.accounts');
SELECT streamproc.create_pg_source('x', 'acc_changes', 'host=x bogus', 'acc_pub', 'public.accounts');
SELECT streamproc.create_pg_source('x', 'acc_changes', :'conninfo' || ' replication=database', 'acc_pub', 'public.accounts');
SELECT streamproc.mask_conninfo('host=db1 port=5432 user=repl password=s3cret sslmode=require'),
       streamproc.mask_conninfo('postgresql://repl:s3cret@db1:5432/app'),
       streamproc.mask_conninfo('host=''a b'' password=x'),
       streamproc.mask_conninfo('password=s3cret pw');
-- what the sources view shows of a connection string with a password
UPDATE streamproc.source_defs SET conninfo = conninfo || ' password=s3cret' WHERE name = 'acc_new_src';
SELECT conninfo LIKE '%password=********%' AS masked, conninfo NOT LIKE '%s3cret%' AS hidden
  FROM streamproc.sources WHERE name = 'acc_new_src';
UPDATE streamproc.source_defs SET conninfo = replace(conninfo, ' password=s3cret', '') WHERE name = 'acc_new_src';

-- who may: superusers and streamproc_admin (with INSERT on the stream); a
-- non-superuser's source must authenticate with a password
CREATE ROLE sp_pg_user;
CREATE ROLE sp_pg_admin IN ROLE streamproc_admin;
GRANT INSERT ON acc_changes TO sp_pg_admin;
SET ROLE sp_pg_user;
SELECT streamproc.create_pg_source('x', 'acc_changes', :'conninfo', 'acc_pub', 'public.accounts');
RESET ROLE;
SET ROLE sp_pg_admin;
SELECT streamproc.create_pg_source('x', 'acc_new', :'conninfo', 'acc_pub', 'public.accounts');
SELECT streamproc.create_pg_source('x', 'acc_changes', :'conninfo', 'acc_pub', 'public.accounts');
RESET ROLE;
DROP OWNED BY sp_pg_admin;
DROP ROLE sp_pg_user, sp_pg_admin;

-- ---------------------------------------------------------------------------
-- drop_source: the slot goes with a source that made it, not with one it was given
-- ---------------------------------------------------------------------------
BEGIN;
SELECT streamproc.drop_source('acc_src');
ROLLBACK;
SELECT streamproc.drop_source('acc_src');
SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'streamproc_acc_src';
SELECT count(*) FROM streamproc.pg_source_rows r WHERE NOT EXISTS
       (SELECT 1 FROM streamproc.source_defs d WHERE d.id = r.source);
SELECT streamproc.drop_source('acc_new_src');
SELECT wait_for($$NOT (SELECT active FROM pg_replication_slots WHERE slot_name = 'my_acc_slot')$$);
SELECT pg_drop_replication_slot('my_acc_slot');
SELECT streamproc.drop_source('docs_src');
SELECT streamproc.drop_source('notes_src');
SELECT streamproc.drop_source('texts_src');
SELECT streamproc.drop_source('readings_src');
SELECT slot_name FROM pg_replication_slots;
SELECT name FROM streamproc.sources WHERE kind = 'pg';

DROP VIEW acc_by_owner, acc_all, acc_new_totals, acc_other_n, acc_top, doc_sizes, doc_ratio, note_sizes,
          readings_daily, text_counts;
SELECT streamproc.drop_stream('acc_changes');
SELECT streamproc.drop_stream('acc_new');
SELECT streamproc.drop_stream('acc_other');
SELECT streamproc.drop_stream('acc_max');
SELECT streamproc.drop_stream('doc_changes');
SELECT streamproc.drop_stream('note_changes');
SELECT streamproc.drop_stream('reading_changes');
SELECT streamproc.drop_stream('text_changes');
DROP PUBLICATION acc_pub, docs_pub, notes_pub, readings_pub, texts_pub;
DROP TABLE accounts, docs, notes, readings, texts;
DELETE FROM streamproc.dead_letters WHERE source IN ('docs_src', 'notes_src');
DROP FUNCTION wait_for(text), caught_up(text, pg_lsn), view_diff(regclass, text);
