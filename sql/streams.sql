-- Streams: creating, writing with INSERT and COPY, reading, dropping.
CREATE EXTENSION IF NOT EXISTS streamproc;

SELECT streamproc.create_stream('clicks', 'user_id int, url text, ts timestamptz');
SELECT streamproc.create_stream('public.typed',
    'i int2, b bigint, n numeric(10,2), f float8, t text, vc varchar(8), bo bool,
     j jsonb, a int[], u uuid, ip inet, d date, iv interval, by bytea');
SELECT stream, event_time, watermark_delay FROM streamproc.streams ORDER BY stream::text;

-- a stream is a relation you can write to; it keeps nothing
INSERT INTO clicks VALUES (1, '/a', '2024-01-01 00:00:00+00');
INSERT INTO clicks VALUES (2, '/b', '2024-01-01 00:00:01+00'), (3, '/c', '2024-01-01 00:00:02+00');
INSERT INTO clicks SELECT g, '/g', '2024-01-01'::timestamptz + g * interval '1 s' FROM generate_series(1, 100) g;
INSERT INTO clicks VALUES (4, '/r', '2024-01-01') RETURNING user_id, url;
COPY clicks FROM STDIN WITH (FORMAT csv);
7,/copy,2024-01-01 00:00:00+00
8,/copy,2024-01-01 00:00:01+00
\.
SELECT count(*) FROM clicks;
SELECT * FROM clicks;

-- any column type
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
SELECT streamproc.create_stream('feelings', 'm mood, p posint, loc point');
INSERT INTO typed VALUES (1, 2, 3.14, 1.5, 'x', 'short', true, '{"a": [1, 2]}', '{1,2}',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10.0.0.1/8', '2024-01-02', '1 day', '\x00ff');
INSERT INTO feelings VALUES ('happy', 3, '(1,2)');
INSERT INTO feelings VALUES ('happy', -1, '(1,2)');   -- domain checks still apply

-- only INSERT and COPY
UPDATE clicks SET url = 'x';
DELETE FROM clicks;
TRUNCATE clicks;

-- errors
SELECT streamproc.create_stream('clicks', 'x int');
CREATE TABLE plain_table (x int);
SELECT streamproc.create_stream('plain_table', 'x int');
SELECT streamproc.create_stream('bad_cols', 'x int, y nosuchtype');
SELECT streamproc.create_stream('bad_cols', 'x int) SERVER other (y int');
SELECT streamproc.create_stream('bad_cols', '');
SELECT streamproc.create_stream('nosuchschema.s', 'x int');
SELECT streamproc.create_stream('bad_et', 'x int, ts timestamptz', event_time => 'nope');
SELECT streamproc.create_stream('bad_et', 'x int, ts timestamp', event_time => 'ts');
SELECT streamproc.create_stream('bad_delay', 'x int', watermark_delay => '-1 s');
SELECT streamproc.create_stream('bad_idle', 'x int', idle_timeout => '0 s');
SELECT streamproc.create_stream(NULL, 'x int');
SET streamproc.no_such_setting = 1;

-- event-time settings are recorded
SELECT streamproc.create_stream('timed', 'x int, ts timestamptz',
    event_time => 'ts', watermark_delay => '5 seconds', idle_timeout => '1 minute');
SELECT stream, event_time, watermark_delay, idle_timeout FROM streamproc.streams WHERE stream = 'timed'::regclass;

-- dropping
SELECT streamproc.drop_stream('plain_table');
SELECT streamproc.drop_stream('nosuch');
SELECT streamproc.drop_stream('timed');
SELECT streamproc.drop_stream('typed');
SELECT streamproc.drop_stream('feelings');
DROP FOREIGN TABLE clicks;          -- plain DDL works too
SELECT count(*) FROM streamproc.stream_defs;
DROP TABLE plain_table;
DROP DOMAIN posint;
DROP TYPE mood;
