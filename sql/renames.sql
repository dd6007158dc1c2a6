-- Renames do not break continuous views: views refer to objects, not names.
CREATE EXTENSION IF NOT EXISTS streamproc;
SET timezone = 'UTC';
SELECT streamproc.create_stream('rn', 'k int, v int, ts timestamptz', event_time => 'ts');
CREATE TABLE rn_dim (id int PRIMARY KEY, name text);
INSERT INTO rn_dim VALUES (1, 'one'), (2, 'two');
SELECT streamproc.create_view('rn_v', $$
    SELECT d.name, streamproc.tumble(r.ts, '1 minute') AS w, sum(r.v) AS total
      FROM rn r JOIN rn_dim d ON d.id = r.k GROUP BY d.name, w$$, emit => 'final');
INSERT INTO rn VALUES (1, 10, '2024-01-01 00:00:10'), (2, 20, '2024-01-01 00:00:20');

ALTER TABLE rn_dim RENAME COLUMN name TO label;
ALTER TABLE rn_dim RENAME TO rn_names;
ALTER FOREIGN TABLE rn RENAME TO rn_renamed;
ALTER FOREIGN TABLE rn_renamed RENAME COLUMN ts TO event_ts;
INSERT INTO rn_renamed VALUES (1, 5, '2024-01-01 00:00:30'), (1, 1, '2024-01-01 00:05:00');
-- the event-time column is still the event-time column
SELECT streamproc.watermark('rn_renamed');
INSERT INTO rn_renamed VALUES (1, 7, NULL);
SELECT * FROM rn_v ORDER BY name, w;
SELECT stream, event_time FROM streamproc.streams WHERE stream = 'rn_renamed'::regclass;
ALTER VIEW rn_v RENAME TO rn_view;
INSERT INTO rn_renamed VALUES (2, 2, '2024-01-01 00:06:00');
SELECT * FROM rn_view ORDER BY name, w;

SELECT streamproc.drop_stream('rn_renamed', cascade => true);
DROP TABLE rn_names;
