-- DROP DATABASE, ALTER DATABASE ... RENAME and CREATE DATABASE ... TEMPLATE
-- stop streamproc's processes in the database first, but only for a role
-- that may run the command: anyone else gets the command's own error and
-- the sources keep running.
CREATE EXTENSION IF NOT EXISTS streamproc;
\getenv brokers KAFKA_BROKERS
\i sql/include/wait_for.sql

SELECT streamproc.create_stream('sp_events', 'n int');
SELECT streamproc.kafka_produce(:'brokers', 'pause_events', '{"n": 1}', NULL, 0) >= 0 AS produced;
SELECT streamproc.create_kafka_source('pause_src', 'sp_events', :'brokers', 'pause_events');
SELECT wait_for($$EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'pause_src'
                                                        AND backend_type = 'streamproc source')$$);
SELECT pid AS worker_pid FROM pg_stat_activity WHERE application_name = 'pause_src' \gset

CREATE ROLE sp_pause_intruder LOGIN;
SET ROLE sp_pause_intruder;
\set VERBOSITY terse
SELECT current_database() AS db \gset
DROP DATABASE :"db";
ALTER DATABASE :"db" RENAME TO sp_pause_elsewhere;
ALTER DATABASE :"db" SET TABLESPACE pg_default;
CREATE DATABASE sp_pause_copy TEMPLATE :"db";
\set VERBOSITY default
RESET ROLE;

-- the same worker, still running (a pause would have stopped it)
SELECT pg_sleep(0.5);
SELECT pid = :worker_pid AS same_worker FROM pg_stat_activity
 WHERE application_name = 'pause_src' AND backend_type = 'streamproc source';
SELECT state FROM streamproc.sources WHERE name = 'pause_src';

DROP ROLE sp_pause_intruder;
SELECT streamproc.drop_source('pause_src');
SELECT streamproc.drop_stream('sp_events');
DROP FUNCTION wait_for(text);
