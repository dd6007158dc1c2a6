-- Kafka sources: background workers consume a topic of the mock cluster into
-- a stream's continuous views, exactly once, with bad messages set aside.
CREATE EXTENSION IF NOT EXISTS streamproc;
\getenv brokers KAFKA_BROKERS

\i sql/include/wait_for.sql

SELECT streamproc.create_stream('ks_bids', 'auction bigint, price bigint, ts timestamptz, note jsonb',
                                event_time => 'ts', watermark_delay => '5 seconds');
CREATE VIEW bid_totals WITH (streamproc.continuous) AS
SELECT streamproc.tumble(ts, '10 seconds') AS w, auction,
       count(*) AS n, sum(price) AS total, max(price) AS top
  FROM ks_bids GROUP BY 1, 2;
-- emit 'final' with retention: a watermark still held back by partitions
-- that have not delivered must not expire anything
CREATE VIEW bid_closed WITH (streamproc.continuous, streamproc.emit = 'final', streamproc.retention = '1 hour') AS
SELECT streamproc.tumble(ts, '10 seconds') AS w, count(*) AS n FROM ks_bids GROUP BY 1;
-- a view whose expression fails on some rows (price 0)
CREATE VIEW bid_ratios WITH (streamproc.continuous) AS
SELECT auction, sum(1000 / price) AS r FROM ks_bids GROUP BY auction;

-- the same rows into a table, to compare with
CREATE TABLE bids_expected (auction bigint, price bigint, ts timestamptz, note jsonb);

-- 200 good messages over two partitions, keyed by auction
SELECT count(streamproc.kafka_produce(:'brokers', 'bids_json',
         json_build_object('auction', g % 7, 'price', 10 + g % 13,
                           'ts', '2026-01-01 10:00:00+00'::timestamptz + g * interval '100 ms',
                           'note', CASE WHEN g % 50 = 0 THEN json_build_object('tags', json_build_array(g)) END)::text,
         (g % 7)::text, g % 2))
  FROM generate_series(1, 200) g;
INSERT INTO bids_expected
SELECT g % 7, 10 + g % 13, '2026-01-01 10:00:00+00'::timestamptz + g * interval '100 ms',
       CASE WHEN g % 50 = 0 THEN jsonb_build_object('tags', jsonb_build_array(g)) END
  FROM generate_series(1, 200) g;

-- and bad ones: each must end up in dead_letters, and nothing else be lost
SELECT streamproc.kafka_produce(:'brokers', 'bids_json', v, 'bad', 0) >= 0 AS produced
  FROM unnest(ARRAY[
    '{"auction": 1, "price": 5, "ts": "2026-01-01 10:00:01+00"',        -- truncated JSON
    '[1, 2, 3]',                                                          -- not an object
    '{"auction": "one", "price": 5, "ts": "2026-01-01 10:00:01+00"}',    -- bad bigint
    '{"auction": 1, "price": 5}',                                         -- no event time
    '{"auction": 1, "price": 0, "ts": "2026-01-01 11:00:00+00"}',        -- 1000 / 0 in bid_ratios: its hour-on time must not count
    '{"auction": 1, "price": 5, "ts": "infinity"}',                       -- event time not finite
    '{"auction": 1, "price": 5, "ts": "2026-01-01 10:00:03+00", "pad": "' || repeat('x', 2000) || '"}'  -- too large
  ]) WITH ORDINALITY AS m(v, i) ORDER BY i;
SELECT streamproc.kafka_produce(:'brokers', 'bids_json', NULL, 'tombstone', 1) >= 0 AS produced;
ALTER SYSTEM SET streamproc.max_message_size = '1kB';
SELECT pg_reload_conf();

SELECT streamproc.create_kafka_source('bids_src', 'ks_bids', :'brokers', 'bids_json',
                                      batch_size => 50,
                                      options => '{"client.rack": "r1", "sasl.password": "hunter2"}');

SELECT wait_for($$(SELECT rows_in + dead_letters FROM streamproc.sources WHERE name = 'bids_src') = 208$$);

-- the view equals the plain query over the same rows
SELECT count(*) AS differing FROM (
  (SELECT * FROM bid_totals
   EXCEPT ALL
   SELECT date_bin('10 seconds', ts, 'epoch'), auction, count(*), sum(price), max(price)
     FROM bids_expected GROUP BY 1, 2)
  UNION ALL
  (SELECT date_bin('10 seconds', ts, 'epoch'), auction, count(*), sum(price), max(price)
     FROM bids_expected GROUP BY 1, 2
   EXCEPT ALL
   SELECT * FROM bid_totals)) d;
SELECT count(*) AS differing FROM (
  (SELECT * FROM bid_ratios EXCEPT ALL SELECT auction, sum(1000 / price) FROM bids_expected GROUP BY 1)
  UNION ALL
  (SELECT auction, sum(1000 / price) FROM bids_expected GROUP BY 1 EXCEPT ALL SELECT * FROM bid_ratios)) d;

SELECT * FROM bid_closed ORDER BY w;
SELECT name, rows_applied FROM streamproc.views WHERE name = 'bid_closed'::regclass;

SELECT partition, "offset", convert_from(key, 'UTF8') AS key, payload IS NULL AS no_payload, error
  FROM streamproc.dead_letters WHERE source = 'bids_src' ORDER BY partition, "offset";

SELECT name, kind, stream, state, workers, rows_in, dead_letters, lag, topic, format, options
  FROM streamproc.sources;
SELECT source, partition, committed_offset, high_watermark_offset, lag, rows_in, dead_letters, max_event_time
  FROM streamproc.source_partitions ORDER BY partition;

-- event time per partition: the watermark is the least partition maximum
-- minus the delay (partition 0 ends at 10:00:20, partition 1 at 10:00:19.9)
SELECT streamproc.watermark('ks_bids');

-- the worker, as pg_stat_activity shows it
SELECT backend_type, application_name FROM pg_stat_activity
 WHERE backend_type LIKE 'streamproc%' AND datname = current_database() ORDER BY 1, 2;

-- stopped: the worker goes away, and what is produced meanwhile waits
SELECT streamproc.stop_source('bids_src');
SELECT wait_for($$(SELECT workers = 0 AND state = 'stopped' FROM streamproc.sources WHERE name = 'bids_src')$$);
SELECT count(streamproc.kafka_produce(:'brokers', 'bids_json',
         json_build_object('auction', 100, 'price', g, 'ts', '2026-01-01 10:00:30+00')::text, '100', g % 2))
  FROM generate_series(1, 10) g;
SELECT pg_sleep(0.5);
SELECT count(*) AS late_auction_100 FROM bid_totals WHERE auction = 100;
SELECT streamproc.start_source('bids_src');
SELECT wait_for($$(SELECT n = 10 FROM bid_totals WHERE auction = 100)$$);
SELECT wait_for($$(SELECT workers = 1 AND state = 'running' FROM streamproc.sources WHERE name = 'bids_src')$$);
SELECT w, auction, n, total, top FROM bid_totals WHERE auction = 100;

-- a late bid in one batch with a bid in an open window (watermark 10:00:25):
-- the batch's least event time must make the source look for late rows
-- (produced while the source is stopped, so that they come in one batch)
SELECT streamproc.stop_source('bids_src');
SELECT wait_for($$(SELECT workers = 0 FROM streamproc.sources WHERE name = 'bids_src')$$);
SELECT count(streamproc.kafka_produce(:'brokers', 'bids_json',
         json_build_object('auction', 101, 'price', 7, 'ts', t)::text, '101', 0))
  FROM unnest(ARRAY['2026-01-01 10:00:21+00', '2026-01-01 10:00:05+00']) AS t;
SELECT streamproc.start_source('bids_src');
SELECT wait_for($$(SELECT count(*) = 2 FROM streamproc.late_rows WHERE "row" ->> 'auction' = '101')$$);
SELECT view, "row" ->> 'ts' AS ts, watermark FROM streamproc.late_rows
 WHERE "row" ->> 'auction' = '101' ORDER BY view::text;
SELECT w, auction, n FROM bid_totals WHERE auction = 101;

-- a stream cannot be dropped from under its sources
SELECT streamproc.drop_stream('ks_bids');

-- ---------------------------------------------------------------------
-- csv and text
-- ---------------------------------------------------------------------
SELECT streamproc.create_stream('ks_clicks', 'page text, ms int, at timestamptz');
CREATE VIEW click_stats WITH (streamproc.continuous) AS
SELECT page, count(*) AS n, sum(ms) AS ms, count(at) AS with_time FROM ks_clicks GROUP BY page;
SELECT streamproc.kafka_produce(:'brokers', 'clicks_csv', v, NULL, 0) >= 0 AS produced
  FROM unnest(ARRAY['/home,120,2026-01-01 10:00:00+00', '"/a,b",30,', '/home,80,2026-01-01 10:00:01+00',
                    '/home,oops,', '/only-two,1', E'"/multi\nline",5,']) WITH ORDINALITY AS m(v, i) ORDER BY i;
SELECT streamproc.create_kafka_source('clicks_src', 'ks_clicks', :'brokers', 'clicks_csv', format => 'csv');
SELECT wait_for($$(SELECT rows_in + dead_letters = 6 FROM streamproc.sources WHERE name = 'clicks_src')$$);
SELECT * FROM click_stats ORDER BY page;
SELECT "offset", error FROM streamproc.dead_letters WHERE source = 'clicks_src' ORDER BY "offset";

SELECT streamproc.create_stream('ks_lines', 'line text');
CREATE VIEW line_stats WITH (streamproc.continuous) AS
SELECT line, count(*) AS n FROM ks_lines GROUP BY line;
SELECT count(streamproc.kafka_produce(:'brokers', 'lines_text', CASE WHEN g % 3 = 0 THEN 'fizz' ELSE 'plain' END, NULL, 0))
  FROM generate_series(1, 30) g;
SELECT streamproc.create_kafka_source('lines_src', 'ks_lines', :'brokers', 'lines_text', format => 'text',
                                      start => 'earliest', parallelism => 1, batch_size => 7,
                                      batch_timeout => '10 ms');
SELECT wait_for($$(SELECT rows_in = 30 FROM streamproc.sources WHERE name = 'lines_src')$$);
SELECT * FROM line_stats ORDER BY line;

-- ---------------------------------------------------------------------
-- start => 'latest': only what is produced after the source began
-- ---------------------------------------------------------------------
SELECT streamproc.create_stream('ks_news', 'line text');
CREATE VIEW news_count WITH (streamproc.continuous) AS SELECT count(*) AS n FROM ks_news;
SELECT streamproc.kafka_produce(:'brokers', 'news_text', 'old', NULL, 0) >= 0 AS produced;
SELECT streamproc.create_kafka_source('news_src', 'ks_news', :'brokers', 'news_text', format => 'text', start => 'latest');
SELECT wait_for($$EXISTS (SELECT 1 FROM streamproc.source_partitions WHERE source = 'news_src')$$);
SELECT streamproc.kafka_produce(:'brokers', 'news_text', 'new', NULL, 0) >= 0 AS produced;
SELECT wait_for($$(SELECT n = 1 FROM news_count)$$);
SELECT * FROM news_count;

-- ---------------------------------------------------------------------
-- idle partitions: one silent for idle_timeout stops holding the watermark back
-- ---------------------------------------------------------------------
SELECT streamproc.create_stream('ks_idle', 'k int, ts timestamptz', event_time => 'ts',
                                idle_timeout => '2 seconds');
CREATE VIEW idle_count WITH (streamproc.continuous) AS SELECT count(*) AS n FROM ks_idle;
SELECT streamproc.kafka_produce(:'brokers', 'idle_json', '{"k": 0, "ts": "2026-01-01 10:00:10+00"}', NULL, 0) >= 0 AS produced;
SELECT streamproc.kafka_produce(:'brokers', 'idle_json', '{"k": 1, "ts": "2026-01-01 10:00:05+00"}', NULL, 1) >= 0 AS produced;
SELECT streamproc.create_kafka_source('idle_src', 'ks_idle', :'brokers', 'idle_json');
SELECT wait_for($$(SELECT n = 2 FROM idle_count)$$);
SELECT streamproc.watermark('ks_idle') AS held_by_partition_1;
SELECT pg_sleep(3);
SELECT streamproc.kafka_produce(:'brokers', 'idle_json', '{"k": 0, "ts": "2026-01-01 10:00:20+00"}', NULL, 0) >= 0 AS produced;
SELECT wait_for($$(SELECT n = 3 FROM idle_count)$$);
SELECT streamproc.watermark('ks_idle') AS partition_1_idle;
SELECT partition, idle FROM streamproc.source_partitions WHERE source = 'idle_src' ORDER BY partition;
SELECT streamproc.drop_source('idle_src');
SELECT streamproc.drop_stream('ks_idle', cascade => true);

-- ---------------------------------------------------------------------
-- unreachable brokers: state error, a clear last error, no crash
-- ---------------------------------------------------------------------
SELECT streamproc.create_kafka_source('nowhere_src', 'ks_news', '127.0.0.1:1', 'news_text', format => 'text');
SELECT wait_for($$(SELECT state = 'error' AND last_error IS NOT NULL FROM streamproc.sources WHERE name = 'nowhere_src')$$);
SELECT streamproc.drop_source('nowhere_src');

-- ---------------------------------------------------------------------
-- bad definitions get clear errors
-- ---------------------------------------------------------------------
SELECT streamproc.create_kafka_source('bids_src', 'ks_bids', :'brokers', 'bids_json');
SELECT streamproc.create_kafka_source('x', 'bids_expected', :'brokers', 't');
SELECT streamproc.create_kafka_source('x', 'ks_bids', :'brokers', 't', format => 'xml');
SELECT streamproc.create_kafka_source('x', 'ks_bids', :'brokers', 't', format => 'text');
SELECT streamproc.create_kafka_source('x', 'ks_bids', :'brokers', 't', start => 'middle');
SELECT streamproc.create_kafka_source('x', 'ks_bids', :'brokers', 't', parallelism => 0);
SELECT streamproc.create_kafka_source('x', 'ks_bids', :'brokers', 't', batch_size => 0);
SELECT streamproc.create_kafka_source('x', 'ks_bids', :'brokers', 't', batch_timeout => '-1 s');
SELECT streamproc.create_kafka_source('x y', 'ks_bids', :'brokers', 't');
SELECT streamproc.create_kafka_source('x', 'ks_bids', '', 't');
SELECT streamproc.create_kafka_source('x', 'ks_bids', :'brokers', 't', options => '{"no.such.setting": "1"}');
SELECT streamproc.create_kafka_source('x', 'ks_bids', :'brokers', 't', options => '{"bootstrap.servers": "a:1"}');
SELECT streamproc.create_kafka_source('x', 'ks_bids', :'brokers', 't', options => '{"sasl.password": {"a": 1}}');
SELECT streamproc.create_kafka_source('x', 'ks_bids', :'brokers', 't', options => '{"security.protocol": "carrier-pigeon"}');
SELECT streamproc.create_kafka_source('x', 'ks_bids', :'brokers', 't', options => '[]');
-- unsecured JWT tokens: librdkafka 2.0 would parse the config only in the
-- worker (and crash on a bad one), so it is checked here, never repeated
PREPARE jwt_source(text) AS
SELECT streamproc.create_kafka_source('x', 'ks_bids', :'brokers', 't', options => jsonb_build_object(
         'security.protocol', 'SASL_PLAINTEXT', 'sasl.mechanisms', 'OAUTHBEARER',
         'enable.sasl.oauthbearer.unsecure.jwt', 'true', 'sasl.oauthbearer.config', $1));
EXECUTE jwt_source('principal=x s3cr3t=1');
EXECUTE jwt_source('scope=a,b lifeSeconds=60');
EXECUTE jwt_source('principal=x lifeSeconds=-5');
EXECUTE jwt_source('principal=x extension_auth=y');
EXECUTE jwt_source('principal=x principal=y');
EXECUTE jwt_source('principal=a"b');
EXECUTE jwt_source('principal=');
EXECUTE jwt_source('principal=x bare');
EXECUTE jwt_source('principal=x lifeSeconds=0');
EXECUTE jwt_source('principal=x lifeSeconds=1234567890');
EXECUTE jwt_source('principal=x extension_a1=y');
EXECUTE jwt_source('principal=x extension_t=é');
EXECUTE jwt_source('principal=x extension_t=1 extension_t=2');
BEGIN;
EXECUTE jwt_source('principalClaimName=azp principal=admin scopeClaimName=roles scope=r1,r2 lifeSeconds=600 extension_traceId=123 extension_empty=');
ROLLBACK;
-- the config is librdkafka's own when unsecured JWT tokens are off
BEGIN;
SELECT streamproc.create_kafka_source('x', 'ks_bids', :'brokers', 't',
         options => '{"sasl.oauthbearer.config": "anything goes"}');
ROLLBACK;
DEALLOCATE jwt_source;
SELECT streamproc.start_source('no_such_source');
SELECT streamproc.stop_source('no_such_source');
SELECT streamproc.drop_source('no_such_source');

-- only superusers and members of streamproc_admin manage sources; anyone
-- may look, and secrets are masked for everyone
CREATE ROLE sp_source_user;
CREATE ROLE sp_source_admin IN ROLE streamproc_admin;
GRANT INSERT ON ks_bids TO sp_source_admin;
SET ROLE sp_source_user;
SELECT streamproc.create_kafka_source('x', 'ks_bids', :'brokers', 't');
SELECT streamproc.stop_source('bids_src');
SELECT name, options FROM streamproc.sources WHERE name = 'bids_src';
SELECT count(*) FROM streamproc.dead_letters;
SELECT count(*) FROM streamproc.source_defs;
RESET ROLE;
SET ROLE sp_source_admin;
SELECT streamproc.create_kafka_source('admin_src', 'ks_bids', :'brokers', 'bids_json', start => 'latest');
SELECT streamproc.drop_source('admin_src');
RESET ROLE;
DROP OWNED BY sp_source_admin;
DROP ROLE sp_source_user, sp_source_admin;

-- ---------------------------------------------------------------------
-- drop: sources go, and with them their workers
-- ---------------------------------------------------------------------
SELECT streamproc.drop_source('bids_src');
SELECT streamproc.drop_stream('ks_lines', cascade => true);
SELECT wait_for($$NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name IN ('bids_src', 'lines_src'))$$);
SELECT name FROM streamproc.sources ORDER BY name;
SELECT count(*) AS inputs_left FROM streamproc.stream_inputs WHERE input LIKE 'bids_src:%';
SELECT streamproc.drop_source('clicks_src');
SELECT streamproc.drop_source('news_src');
SELECT wait_for($$NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'streamproc source' AND datname = current_database())$$);

-- leave nothing behind for the other tests
ALTER SYSTEM RESET streamproc.max_message_size;
SELECT pg_reload_conf();
SELECT streamproc.drop_stream('ks_bids', cascade => true);
SELECT streamproc.drop_stream('ks_clicks', cascade => true);
SELECT streamproc.drop_stream('ks_news', cascade => true);
DROP TABLE bids_expected;
DROP FUNCTION wait_for(text);
DELETE FROM streamproc.dead_letters;
