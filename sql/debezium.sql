-- format => 'debezium': Kafka messages are Debezium change events; c and r
-- insert "after", d retracts "before", u does both, and the views equal the
-- plain query over the table the events describe.
CREATE EXTENSION IF NOT EXISTS streamproc;
\getenv brokers KAFKA_BROKERS

\i sql/include/wait_for.sql

-- ---------------------------------------------------------------------
-- hand-written events, one partition, in order
-- ---------------------------------------------------------------------
SELECT streamproc.create_stream('dbz_orders',
    'id int, customer text, amount numeric, ts timestamptz, day date, local timestamp(0), meta jsonb');
CREATE VIEW dbz_by_customer WITH (streamproc.continuous) AS
SELECT customer, count(*) AS n, sum(amount) AS total, avg(amount) AS mean, count(meta) AS with_meta
  FROM dbz_orders GROUP BY customer;
-- an expression that fails for amount 0 (division by zero)
CREATE VIEW dbz_ratio WITH (streamproc.continuous) AS
SELECT customer, sum(100 / amount) AS r FROM dbz_orders GROUP BY customer;
-- Debezium's encodings of time: epoch milliseconds, days, ISO strings
CREATE VIEW dbz_times WITH (streamproc.continuous) AS
SELECT id, ts, day, local, count(*) AS n FROM dbz_orders GROUP BY id, ts, day, local;

-- the Kafka Connect schema of the orders table's events, as JsonConverter
-- writes it with schemas.enable: it names the logical types of the fields
\set schema '{"type": "struct", "fields": [{"type": "struct", "fields": [{"type": "int32", "optional": false, "field": "id"}, {"type": "string", "optional": true, "field": "customer"}, {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "version": 1, "parameters": {"scale": "2", "connect.decimal.precision": "10"}, "field": "amount"}, {"type": "int64", "optional": true, "name": "io.debezium.time.NanoTimestamp", "version": 1, "field": "ts"}, {"type": "int32", "optional": true, "name": "io.debezium.time.Date", "version": 1, "field": "day"}, {"type": "int64", "optional": true, "name": "io.debezium.time.MicroTimestamp", "version": 1, "field": "local"}], "optional": true, "name": "srv.public.orders.Value", "field": "before"}, {"type": "struct", "fields": [{"type": "int32", "optional": false, "field": "id"}, {"type": "string", "optional": true, "field": "customer"}, {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "version": 1, "parameters": {"scale": "2", "connect.decimal.precision": "10"}, "field": "amount"}, {"type": "int64", "optional": true, "name": "io.debezium.time.NanoTimestamp", "version": 1, "field": "ts"}, {"type": "int32", "optional": true, "name": "io.debezium.time.Date", "version": 1, "field": "day"}, {"type": "int64", "optional": true, "name": "io.debezium.time.MicroTimestamp", "version": 1, "field": "local"}], "optional": true, "name": "srv.public.orders.Value", "field": "after"}, {"type": "struct", "fields": [{"type": "string", "optional": false, "field": "connector"}, {"type": "int64", "optional": true, "field": "lsn"}, {"type": "int64", "optional": true, "field": "local"}], "optional": false, "name": "io.debezium.connector.postgresql.Source", "field": "source"}, {"type": "string", "optional": false, "field": "op"}, {"type": "int64", "optional": true, "field": "ts_ms"}], "optional": false, "name": "srv.public.orders.Envelope", "version": 1}'

SELECT streamproc.kafka_produce(:'brokers', 'dbz_orders_topic', v, k, 0) >= 0 AS produced
  FROM (VALUES
    -- 1: insert, bare envelope; ts 2026-01-01 10:00:00 UTC in ms, day in days since 1970
    (1, '1', '{"before": null, "after": {"id": 1, "customer": "alice", "amount": 10.5, "ts": 1767261600000,
              "day": 20454, "local": 1767261600999}, "source": {"connector": "postgresql", "lsn": 1},
      "op": "c", "ts_ms": 1767261600123, "transaction": null}'),
    -- 2: snapshot read, wrapped in schema/payload, values as strings
    (2, '2', '{"schema": {"type": "struct", "fields": [{"type": "struct", "field": "before"}], "optional": false,
               "name": "srv.public.orders.Envelope"},
      "payload": {"before": null, "after": {"id": 2, "customer": "bob", "amount": "20", "ts": "2026-01-01T10:00:01Z",
                  "day": "2026-01-02", "local": "2026-01-01 10:00:01"}, "op": "r", "ts_ms": 2}}'),
    (3, '3', '{"before": null, "after": {"id": 3, "customer": "carol", "amount": 5, "ts": 1767261602000,
              "meta": {"tags": ["new"]}}, "op": "c"}'),
    (4, '4', '{"before": null, "after": {"id": 4, "customer": "dave", "amount": 4, "ts": 1767261603000}, "op": "c"}'),
    -- 5: carol's order moves to alice: carol's group is gone
    (5, '3', '{"payload": {"before": {"id": 3, "customer": "carol", "amount": 5, "ts": 1767261602000,
                                      "meta": {"tags": ["new"]}},
                           "after": {"id": 3, "customer": "alice", "amount": 7, "ts": 1767261602000},
                           "op": "u", "ts_ms": 5}}'),
    -- 6: bob's amount changes, same group
    (6, '2', '{"before": {"id": 2, "customer": "bob", "amount": 20, "ts": "2026-01-01T10:00:01Z",
                         "day": "2026-01-02", "local": "2026-01-01 10:00:01"},
              "after": {"id": 2, "customer": "bob", "amount": 25, "ts": "2026-01-01T10:00:01Z", "meta": {"vip": true},
                        "day": "2026-01-02", "local": "2026-01-01 10:00:01"}, "op": "u"}'),
    -- 7: alice's first order is deleted, then its tombstone (a null value)
    (7, '1', '{"before": {"id": 1, "customer": "alice", "amount": 10.5, "ts": 1767261600000, "day": 20454,
                         "local": 1767261600999},
              "after": null, "op": "d", "ts_ms": 7}'),
    (8, '1', NULL),
    -- 9: a tombstone as JsonConverter with schemas writes it
    (9, '1', '{"schema": null, "payload": null}'),
    -- 10: a date in milliseconds
    (10, '10', '{"after": {"id": 10, "customer": "erin", "amount": 1, "day": 1767225600000,
                          "local": 1767261600999}, "op": "c"}'),
    -- with the schema: a Decimal (123.45, then -1.50) in base64, nanoseconds,
    -- days and microseconds (rounded by timestamp(0))
    (10.1, '11', '{"schema": ' || :'schema' || ', "payload": {"before": null, "after": {"id": 11, "customer": "frank",
                 "amount": "MDk=", "ts": 1767261604000000000, "day": 20455, "local": 1767261604500000},
                 "source": {"connector": "postgresql", "lsn": 11}, "op": "c", "ts_ms": 11}}'),
    (10.2, '12', '{"schema": ' || :'schema' || ', "payload": {"before": null, "after": {"id": 12, "customer": "frank",
                 "amount": "/2o=", "ts": 1767261605000000000, "day": 20455, "local": 1767261605000000},
                 "source": {"connector": "postgresql", "lsn": 12}, "op": "c", "ts_ms": 12}}'),
    -- bad events: each becomes a dead letter, with nothing applied
    (11, 'bad', 'not json'),
    (12, 'bad', '{"before": null, "after": {"id": 9, "customer": "zed", "amount": 1}}'),
    (13, 'bad', '{"op": "x", "after": {"id": 9, "customer": "zed", "amount": 1}}'),
    (14, 'bad', '{"op": "c", "before": null}'),
    (15, 'bad', '{"op": "c", "after": null}'),
    (16, 'bad', '{"op": "u", "before": null, "after": {"id": 4, "customer": "zed", "amount": 1}}'),
    (17, 'bad', '{"op": "d", "after": null}'),
    (18, 'bad', '{"op": "t", "ts_ms": 18}'),
    (19, 'bad', '{"op": "c", "after": [1, 2]}'),
    (20, 'bad', '{"op": 1, "after": {"id": 9}}'),
    (21, 'bad', '{"op": "c", "after": {"id": "nine", "customer": "zed"}}'),
    (22, 'bad', '{"op": "c", "after": {"id": 9, "customer": {"name": "zed"}}}'),
    (23, 'bad', '[{"op": "c"}]'),
    (24, 'bad', '{"op": "c", "after": {"id": 9, "ts": 1.5}}'),
    (25, 'bad', '{"op": "c", "after": {"id": 9, "ts": 99999999999999999}}'),
    (25.1, 'bad', '{"schema": ' || :'schema' || ', "payload": {"after": {"id": 9, "amount": "#!"}, "op": "c"}}'),
    -- an update whose new row fails to decode: the old row stays
    (26, '4', '{"op": "u", "before": {"id": 4, "customer": "dave", "amount": 4, "ts": 1767261603000},
                           "after": {"id": 4, "customer": "dave", "amount": "lots", "ts": 1767261603000}}'),
    -- an update whose new row a view refuses (100 / 0): the old row stays too
    (27, '4', '{"op": "u", "before": {"id": 4, "customer": "dave", "amount": 4, "ts": 1767261603000},
                           "after": {"id": 4, "customer": "dave", "amount": 0, "ts": 1767261603000}}'),
    (28, '4', '{"op": "u", "before": {"id": 4, "customer": "dave", "amount": 4, "ts": 1767261603000},
                           "after": {"id": 4, "customer": "dave", "amount": 8, "ts": 1767261603000}}')
  ) AS m(i, k, v) ORDER BY i;

SELECT streamproc.create_kafka_source('dbz_src', 'dbz_orders', :'brokers', 'dbz_orders_topic',
                                      format => 'debezium');
SELECT wait_for($$(SELECT rows_in + dead_letters = 31 FROM streamproc.sources WHERE name = 'dbz_src')$$);

SELECT * FROM dbz_by_customer ORDER BY customer;
SELECT * FROM dbz_ratio ORDER BY customer;
SELECT * FROM dbz_times ORDER BY id;
SELECT name, format, rows_in, dead_letters, lag FROM streamproc.sources WHERE name = 'dbz_src';
SELECT "offset", convert_from(key, 'UTF8') AS key, error
  FROM streamproc.dead_letters WHERE source = 'dbz_src' ORDER BY "offset";

-- the stream has a source that retracts: views that cannot are refused
CREATE VIEW dbz_top WITH (streamproc.continuous) AS
SELECT customer, max(amount) AS top FROM dbz_orders GROUP BY customer;

-- and a debezium source is refused on a stream whose views cannot retract
SELECT streamproc.create_stream('dbz_maxed', 'id int, amount numeric');
CREATE VIEW dbz_maxed_top WITH (streamproc.continuous) AS SELECT max(amount) AS top FROM dbz_maxed;
SELECT streamproc.create_kafka_source('dbz_maxed_src', 'dbz_maxed', :'brokers', 'dbz_maxed_topic',
                                      format => 'debezium');
SELECT streamproc.drop_stream('dbz_maxed', cascade => true);

-- ---------------------------------------------------------------------
-- a random workload: inserts, updates (moving rows between groups and
-- windows) and deletes on a table, as Debezium would send them with
-- REPLICA IDENTITY FULL, over three partitions keyed by id; the views must
-- equal the plain GROUP BY over the table
-- ---------------------------------------------------------------------
SELECT streamproc.create_stream('dbz_items',
    'id int, grp int, qty bigint, price numeric, ts timestamptz',
    event_time => 'ts', watermark_delay => '1 day');
CREATE VIEW dbz_items_by_grp WITH (streamproc.continuous) AS
SELECT grp, count(*) AS n, sum(qty) AS qty, sum(price) AS price, avg(price) AS mean
  FROM dbz_items GROUP BY grp;
CREATE VIEW dbz_items_by_window WITH (streamproc.continuous) AS
SELECT streamproc.tumble(ts, '10 minutes') AS w, grp % 3 AS g3, count(*) AS n, sum(qty) AS qty, avg(qty) AS mean
  FROM dbz_items GROUP BY 1, 2;

CREATE TABLE ref (id int PRIMARY KEY, grp int, qty bigint, price numeric, ts timestamptz);
SELECT set_config('dbz.brokers', :'brokers', false) IS NOT NULL AS brokers_set;

CREATE FUNCTION emit(op text, b ref, a ref, tombstone boolean DEFAULT false) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    id int := coalesce(a.id, b.id);
    envelope jsonb := jsonb_build_object('before', to_jsonb(b), 'after', to_jsonb(a), 'op', op,
                                         'ts_ms', 1767261600000, 'source', jsonb_build_object('table', 'ref'));
BEGIN
    -- half of them wrapped as with schemas.enable
    IF id % 2 = 0 THEN
        envelope := jsonb_build_object('schema', jsonb_build_object('type', 'struct'), 'payload', envelope);
    END IF;
    PERFORM streamproc.kafka_produce(current_setting('dbz.brokers'), 'dbz_items_topic', envelope::text,
                                     id::text, id % 3);
    IF tombstone THEN
        PERFORM streamproc.kafka_produce(current_setting('dbz.brokers'), 'dbz_items_topic', NULL,
                                         id::text, id % 3);
    END IF;
END
$$;

CREATE TABLE produced (n int);
DO $$
DECLARE
    r ref;
    n ref;
    next_id int := 1;
    messages int := 0;
    dice float8;
BEGIN
    PERFORM setseed(0.25);
    FOR i IN 1..3000 LOOP
        dice := random();
        r := NULL;
        IF dice >= 0.45 THEN
            SELECT * INTO r FROM ref WHERE id >= floor(random() * next_id) ORDER BY id LIMIT 1;
        END IF;
        IF r.id IS NULL THEN
            n := ROW(next_id, floor(random() * 12)::int, floor(random() * 100)::bigint,
                     round((random() * 1000)::numeric, 2),
                     '2026-01-01 10:00:00+00'::timestamptz + floor(random() * 3600) * interval '1 second');
            next_id := next_id + 1;
            INSERT INTO ref SELECT n.*;
            PERFORM emit('c', NULL, n);
            messages := messages + 1;
        ELSIF dice < 0.85 THEN
            n := r;
            IF random() < 0.5 THEN n.grp := floor(random() * 12)::int; END IF;
            IF random() < 0.5 THEN n.qty := floor(random() * 100)::bigint; END IF;
            IF random() < 0.3 THEN n.price := round((random() * 1000)::numeric, 2); END IF;
            IF random() < 0.3 THEN
                n.ts := '2026-01-01 10:00:00+00'::timestamptz + floor(random() * 3600) * interval '1 second';
            END IF;
            UPDATE ref SET grp = n.grp, qty = n.qty, price = n.price, ts = n.ts WHERE id = r.id;
            PERFORM emit('u', r, n);
            messages := messages + 1;
        ELSE
            DELETE FROM ref WHERE id = r.id;
            PERFORM emit('d', r, NULL, r.id % 4 = 0);
            messages := messages + 1 + CASE WHEN r.id % 4 = 0 THEN 1 ELSE 0 END;
        END IF;
    END LOOP;
    INSERT INTO produced VALUES (messages);
END
$$;
SELECT count(*) > 500 AS enough_rows, (SELECT n > 3000 FROM produced) AS enough_messages FROM ref;

SELECT streamproc.create_kafka_source('dbz_items_src', 'dbz_items', :'brokers', 'dbz_items_topic',
                                      format => 'debezium', parallelism => 2, batch_size => 500,
                                      batch_timeout => '20 ms');

SELECT wait_for($$(SELECT rows_in + dead_letters = (SELECT n FROM produced)
                     FROM streamproc.sources WHERE name = 'dbz_items_src')$$);
SELECT rows_in = (SELECT n FROM produced) AS all_applied, dead_letters
  FROM streamproc.sources WHERE name = 'dbz_items_src';

SELECT count(*) AS differing FROM (
  (SELECT * FROM dbz_items_by_grp
   EXCEPT ALL
   SELECT grp, count(*), sum(qty), sum(price), avg(price) FROM ref GROUP BY grp)
  UNION ALL
  (SELECT grp, count(*), sum(qty), sum(price), avg(price) FROM ref GROUP BY grp
   EXCEPT ALL
   SELECT * FROM dbz_items_by_grp)) d;
SELECT count(*) AS differing FROM (
  (SELECT * FROM dbz_items_by_window
   EXCEPT ALL
   SELECT date_bin('10 minutes', ts, 'epoch'), grp % 3, count(*), sum(qty), avg(qty) FROM ref GROUP BY 1, 2)
  UNION ALL
  (SELECT date_bin('10 minutes', ts, 'epoch'), grp % 3, count(*), sum(qty), avg(qty) FROM ref GROUP BY 1, 2
   EXCEPT ALL
   SELECT * FROM dbz_items_by_window)) d;
SELECT count(*) AS groups, sum(n) AS rows FROM dbz_items_by_grp;
-- retracted rows are event time seen too: each partition's latest, less a day
SELECT streamproc.watermark('dbz_items') BETWEEN '2025-12-31 10:00:00+00' AND '2025-12-31 11:00:00+00' AS watermark_ok;

-- leave nothing behind for the other tests
SELECT streamproc.drop_source('dbz_src');
SELECT streamproc.drop_source('dbz_items_src');
SELECT wait_for($$NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name IN ('dbz_src', 'dbz_items_src'))$$);
SELECT streamproc.drop_stream('dbz_orders', cascade => true);
SELECT streamproc.drop_stream('dbz_items', cascade => true);
DROP FUNCTION emit(text, ref, ref, boolean);
DROP TABLE ref, produced;
DROP FUNCTION wait_for(text);
DELETE FROM streamproc.dead_letters WHERE source IN ('dbz_src', 'dbz_items_src');
