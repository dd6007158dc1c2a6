-- COPY ... FROM into a stream: streamproc reads the rows itself (PostgreSQL's
-- reader, its own conversions, no executor).  Every row must arrive exactly
-- as COPY into a table with the same columns reads it, whatever the format,
-- options and types; what it does not handle goes through PostgreSQL's COPY.
CREATE EXTENSION IF NOT EXISTS streamproc;
SET TimeZone = 'America/New_York';

CREATE DOMAIN small_pos AS int CHECK (VALUE BETWEEN 1 AND 99);
SELECT streamproc.create_stream('cp',
    'i2 int2, i4 int4, i8 int8, t text, ts timestamptz, n numeric(8,2), vc varchar(5),
     b bool, j jsonb, d date, sp small_pos, ts0 timestamp');
CREATE TABLE cp_table (i2 int2, i4 int4, i8 int8, t text, ts timestamptz, n numeric(8,2),
    vc varchar(5), b bool, j jsonb, d date, sp small_pos, ts0 timestamp);
-- every row, whole, with how often it came
SELECT streamproc.create_view('cp_all',
    $$SELECT i2, i4, i8, t, ts, n, vc, b, j, d, sp, ts0, count(*) AS c
      FROM cp GROUP BY i2, i4, i8, t, ts, n, vc, b, j, d, sp, ts0$$);
CREATE VIEW cp_diff AS
    (SELECT i2, i4, i8, t, ts, n, vc, b, j, d, sp, ts0, c FROM cp_all
     EXCEPT ALL
     SELECT i2, i4, i8, t, ts, n, vc, b, j, d, sp, ts0, count(*) FROM cp_table
     GROUP BY i2, i4, i8, t, ts, n, vc, b, j, d, sp, ts0)
    UNION ALL
    (SELECT i2, i4, i8, t, ts, n, vc, b, j, d, sp, ts0, count(*) FROM cp_table
     GROUP BY i2, i4, i8, t, ts, n, vc, b, j, d, sp, ts0
     EXCEPT ALL
     SELECT i2, i4, i8, t, ts, n, vc, b, j, d, sp, ts0, c FROM cp_all);

-- A file of raw lines, written verbatim (a CSV "quote" and delimiter that
-- never occur), then copied into the stream and into the table.
CREATE TEMP TABLE lines (n serial, line text);
CREATE FUNCTION write_lines(path text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($c$COPY (SELECT line FROM lines ORDER BY n) TO %L
                   WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')$c$, path);
    TRUNCATE lines;
END $$;

-- text format: tabs, \N, backslash escapes, integer edge values and spaces,
-- every timestamptz spelling (offsets, none: the session's zone, a DST gap
-- and overlap, zone names, infinity, more than 6 fractional digits)
INSERT INTO lines (line) VALUES
 (E'1\t32767\t2147483647\tplain\t2024-03-10 01:59:59.5+00\t12.5\tab\tt\t{"a": 1}\t2024-01-01\t5\t2024-01-01 00:00:00'),
 (E'-32768\t-2147483648\t-9223372036854775808\ttab\\there\t2024-03-10 02:30:00\t-0.01\tabcde\tfalse\t[1, 2]\t2024-02-29\t99\t2024-02-29 23:59:59.999999'),
 (E'\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N'),
 (E' 7\t+8\t  9223372036854775807 \tnew\\nline\t2024-07-01T12:00:00Z\t1e2\t\t1\tnull\t2024-12-31\t1\tinfinity'),
 (E'3\t4\t5\tback\\\\slash \\101\\x42\tinfinity\t0\tx\tno\t"s"\t-infinity\t2\t-infinity'),
 (E'3\t4\t5\tzones\t2024-11-03 01:30:00\t0\tx\ton\t{}\t2024-11-03\t2\t2024-11-03 01:30:00'),
 (E'3\t4\t5\tzones\t2024-11-03 01:30:00-04\t0\tx\ton\t{}\t2024-11-03\t2\t2024-11-03 01:30:00.5'),
 (E'3\t4\t5\tzones\t2024-11-03 01:30:00.123456+05:30\t0\tx\ton\t{}\t2024-11-03\t2\tepoch'),
 (E'3\t4\t5\tzones\t2024-11-03 01:30:00.1234567+0530\t0\tx\ton\t{}\t2024-11-03\t2\t2024-11-03'),
 (E'3\t4\t5\tzones\tJan 5 2024 10:00 PST\t0\tx\ton\t{}\t2024-11-03\t2\t2024-01-05'),
 (E'3\t4\t5\tzones\t2024-01-05 10:00:00 Europe/Paris\t0\tx\ton\t{}\t2024-11-03\t2\t2024-01-05'),
 (E'3\t4\t5\tzones\t2024-01-05 10:00:00+14\t0\tx\ton\t{}\t2024-11-03\t2\t2024-01-05'),
 (E'3\t4\t5\tzones\t0044-03-15 12:00:00+00 BC\t0\tx\ton\t{}\t2024-11-03\t2\t2024-01-05'),
 (E'3\t4\t5\tzones\t10000-01-01 00:00:00+00\t0\tx\ton\t{}\t2024-11-03\t2\t2024-01-05');
SELECT write_lines('/tmp/streamproc_regress_copy_text.txt');
COPY cp FROM '/tmp/streamproc_regress_copy_text.txt';
\echo :ROW_COUNT
COPY cp_table FROM '/tmp/streamproc_regress_copy_text.txt';
SELECT count(*) AS differ FROM cp_diff;
SELECT i2, i4, i8, t, ts, ts0, c FROM cp_all ORDER BY t, ts NULLS FIRST;

-- csv: header, quoting, quoted NULL string, FORCE_NULL, FORCE_NOT_NULL,
-- another delimiter, quote and escape, a column list (the rest NULL)
INSERT INTO lines (line) VALUES
 ('i4;t;ts;vc;j'),
 ('1;"semi;colon";2024-05-01 00:00:00+02;"";"{""k"": ""v""}"'),
 ('2;NULL;2024-05-01 00:00:00+02;;NULL'),
 ('3;"";2024-05-01 00:00:00+02;"x";"NULL"'),
 ('4;"multi'),
 ('line";2024-05-01 00:00:00+02;NULL;[]');
SELECT write_lines('/tmp/streamproc_regress_copy.csv');
COPY cp (i4, t, ts, vc, j) FROM '/tmp/streamproc_regress_copy.csv'
    WITH (FORMAT csv, HEADER match, DELIMITER ';', NULL 'NULL', FORCE_NOT_NULL (t), FORCE_NULL (j));
\echo :ROW_COUNT
COPY cp_table (i4, t, ts, vc, j) FROM '/tmp/streamproc_regress_copy.csv'
    WITH (FORMAT csv, HEADER match, DELIMITER ';', NULL 'NULL', FORCE_NOT_NULL (t), FORCE_NULL (j));
SELECT count(*) AS differ FROM cp_diff;
SELECT i4, t, ts, vc, j, c FROM cp_all WHERE i2 IS NULL AND i4 IS NOT NULL ORDER BY i4;
COPY cp (i4, t) FROM STDIN WITH (FORMAT csv, QUOTE '''', ESCAPE '\');
10,'it\'s'
11,'a,b'
\.
COPY cp_table (i4, t) FROM STDIN WITH (FORMAT csv, QUOTE '''', ESCAPE '\');
10,'it\'s'
11,'a,b'
\.
SELECT count(*) AS differ FROM cp_diff;

-- what PostgreSQL's COPY does for us: binary, WHERE, FREEZE (refused)
COPY (SELECT 20::int2, 21, 22::int8, 'bin', '2024-01-01 00:00:00+00'::timestamptz, 1.5, 'bin',
             true, '{}'::jsonb, '2024-01-01'::date, 3, '2024-01-01'::timestamp)
    TO '/tmp/streamproc_regress_copy.bin' WITH (FORMAT binary);
COPY cp FROM '/tmp/streamproc_regress_copy.bin' WITH (FORMAT binary);
COPY cp_table FROM '/tmp/streamproc_regress_copy.bin' WITH (FORMAT binary);
COPY cp (i4, t) FROM STDIN WITH (FORMAT csv) WHERE i4 > 30;
30,skipped
31,kept
\.
\echo :ROW_COUNT
INSERT INTO cp_table (i4, t) VALUES (31, 'kept');
SELECT count(*) AS differ FROM cp_diff;
COPY cp FROM STDIN WITH (FREEZE);
\.

-- a column default: the rows go through PostgreSQL's COPY, defaults applied
SELECT streamproc.create_stream('cp_def', 'a int, b int DEFAULT 42');
SELECT streamproc.create_view('cp_def_v', 'SELECT a, b, count(*) FROM cp_def GROUP BY a, b');
COPY cp_def (a) FROM STDIN;
1
2
\.
SELECT * FROM cp_def_v ORDER BY a;

-- a stream attached as a partition: PostgreSQL's COPY checks the bound
SELECT streamproc.create_stream('cp_part', 'k int, t text');
CREATE TABLE cp_parted (k int, t text) PARTITION BY RANGE (k);
ALTER TABLE cp_parted ATTACH PARTITION cp_part FOR VALUES FROM (0) TO (10);
COPY cp_part FROM STDIN;
20	out of bounds
\.
COPY cp_part FROM STDIN;
5	in bounds
\.
\echo :ROW_COUNT
ALTER TABLE cp_parted DETACH PARTITION cp_part;
DROP TABLE cp_parted;

-- a row trigger on the stream: PostgreSQL's COPY fires it for each row
CREATE FUNCTION cp_part_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'row % %', NEW.k, NEW.t;
    RETURN NEW;
END $$;
CREATE TRIGGER cp_part_seen BEFORE INSERT ON cp_part FOR EACH ROW EXECUTE FUNCTION cp_part_seen();
COPY cp_part FROM STDIN;
6	fired
7	twice
\.
\echo :ROW_COUNT
DROP TRIGGER cp_part_seen ON cp_part;
DROP FUNCTION cp_part_seen();

-- text no view reads is not converted; the views still get what they read
SELECT streamproc.create_stream('cp_narrow', 'k int, note text, v int, u int, label text');
SELECT streamproc.create_view('cp_narrow_v', 'SELECT k, sum(v) AS v, count(*) FROM cp_narrow GROUP BY k');
COPY cp_narrow FROM STDIN WITH (FORMAT csv);
1,a note,10,0,x
1,"quoted, ""note""",5,0,y
\.
-- an unread integer is still checked
COPY cp_narrow FROM STDIN WITH (FORMAT csv);
2,n,1,notanint,z
\.
-- a view that reads label: later COPYs fill it
SELECT streamproc.create_view('cp_narrow_l', 'SELECT label, count(*) FROM cp_narrow GROUP BY label');
COPY cp_narrow FROM STDIN WITH (FORMAT csv);
3,n,1,0,lbl
\.
-- a view of whole rows reads every column
SELECT streamproc.create_view('cp_narrow_row', 'SELECT cp_narrow::text AS r, count(*) FROM cp_narrow GROUP BY 1');
COPY cp_narrow FROM STDIN WITH (FORMAT csv);
4,"note, 4",4,4,l4
\.
SELECT * FROM cp_narrow_v ORDER BY k;
SELECT * FROM cp_narrow_l ORDER BY label;
SELECT * FROM cp_narrow_row;

-- bad input: an ERROR that names the line and column, and nothing of the
-- COPY is kept (the statement's batches roll back with it)
SELECT sum(c) AS rows_before FROM cp_all;
COPY cp (i4, t) FROM STDIN WITH (FORMAT csv);
1,fine
x,bad
\.
COPY cp (i2) FROM STDIN;
32768
\.
COPY cp (i8) FROM STDIN;
9223372036854775808
\.
COPY cp (vc) FROM STDIN;
toolong
\.
COPY cp (sp) FROM STDIN;
100
\.
COPY cp (ts) FROM STDIN;
2024-13-01 00:00:00+00
\.
COPY cp (ts) FROM STDIN;
2024-02-30 00:00:00+00
\.
COPY cp (i4, t) FROM STDIN WITH (FORMAT csv);
1,a,extra
\.
COPY cp (i4, t) FROM STDIN WITH (FORMAT csv);
1
\.
COPY cp (nosuch) FROM STDIN;
\.
COPY cp FROM STDIN WITH (FORMAT nosuch);
\.
-- a bad row after a full batch: the batch already applied rolls back too
SET streamproc.batch_size = 2;
COPY cp (i4, t) FROM STDIN WITH (FORMAT csv);
1,one
2,two
3,three
oops,four
\.
RESET streamproc.batch_size;
SELECT sum(c) AS rows_after FROM cp_all;

-- an event-time stream: the fast timestamptz path feeds the watermark
SELECT streamproc.create_stream('cp_et', 'k int, at timestamptz', event_time => 'at');
SELECT streamproc.create_view('cp_et_v',
    $$SELECT k, streamproc.tumble(at, '1 hour') AS w, count(*) FROM cp_et GROUP BY k, w$$);
COPY cp_et FROM STDIN WITH (FORMAT csv);
1,2024-01-01 00:10:00+00
1,2024-01-01 00:20:00Z
2,2024-01-01T01:30:00.5+01:00
\.
SELECT * FROM cp_et_v ORDER BY k, w;
SELECT watermark FROM streamproc.streams WHERE stream = 'cp_et'::regclass;
COPY cp_et FROM STDIN WITH (FORMAT csv);
3,
\.
COPY cp_et FROM STDIN WITH (FORMAT csv);
3,infinity
\.

-- privileges: INSERT on the columns copied; a file needs pg_read_server_files
CREATE ROLE copy_writer;
GRANT USAGE ON SCHEMA public TO copy_writer;
GRANT INSERT (i4, t) ON cp TO copy_writer;
SET ROLE copy_writer;
COPY cp (i4, t) FROM STDIN WITH (FORMAT csv);
40,granted
\.
COPY cp (i4, t, i8) FROM STDIN WITH (FORMAT csv);
41,not granted,1
\.
COPY cp (i4, t) FROM '/tmp/streamproc_regress_copy.csv' WITH (FORMAT csv);
COPY cp (i4, t) FROM PROGRAM 'cat /dev/null' WITH (FORMAT csv);
RESET ROLE;
SELECT i4, t, c FROM cp_all WHERE i4 = 40;
-- a read-only transaction
BEGIN READ ONLY;
COPY cp (i4) FROM STDIN;
\.
ROLLBACK;

-- a plain table and COPY TO are untouched
COPY cp_table (i4) FROM STDIN;
50
\.
COPY (SELECT i4, t FROM cp_table WHERE i4 IN (10, 50) ORDER BY i4) TO STDOUT WITH (FORMAT csv);
COPY cp TO STDOUT;

SELECT streamproc.drop_stream('cp', true);
SELECT streamproc.drop_stream('cp_def', true);
SELECT streamproc.drop_stream('cp_et', true);
SELECT streamproc.drop_stream('cp_part');
SELECT streamproc.drop_stream('cp_narrow', true);
REVOKE USAGE ON SCHEMA public FROM copy_writer;
DROP ROLE copy_writer;
DROP TABLE cp_table;
DROP FUNCTION write_lines(text);
DROP DOMAIN small_pos;
