-- streamproc.kafka_produce(): one message to Kafka (the mock cluster of the
-- test run), its offset back, errors reported.
CREATE EXTENSION IF NOT EXISTS streamproc;
\getenv brokers KAFKA_BROKERS

SELECT streamproc.kafka_produce(:'brokers', 'produce_test', '{"a": 1}', 'key-1', 0) AS first_offset;
SELECT streamproc.kafka_produce(:'brokers', 'produce_test', 'second', NULL, 0) AS second_offset;
SELECT streamproc.kafka_produce(:'brokers', 'produce_test', NULL, 'tombstone', 0) AS tombstone_offset;
SELECT count(streamproc.kafka_produce(:'brokers', 'produce_test', 'm' || g, 'k' || g)) FROM generate_series(1, 500) g;

-- errors are reported, not swallowed
SELECT streamproc.kafka_produce(:'brokers', NULL, 'x');
SELECT streamproc.kafka_produce(:'brokers', 'produce_test', 'x', NULL, -1);
SELECT streamproc.kafka_produce('127.0.0.1:1', 'produce_test', 'nobody listens');

-- admin only
CREATE ROLE sp_nobody;
SET ROLE sp_nobody;
\set VERBOSITY terse
SELECT streamproc.kafka_produce(:'brokers', 'produce_test', 'x');
\set VERBOSITY default
SELECT streamproc.tumble('2024-01-01 00:00:07+00', '5 seconds') IS NOT NULL AS window_functions_for_everyone;
RESET ROLE;
DROP ROLE sp_nobody;
