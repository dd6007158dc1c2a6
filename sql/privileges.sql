-- Privileges: administration is for superusers (and roles granted the
-- functions); window functions are for everyone; continuous views are read
-- with ordinary GRANTs; the extension never gets in the way of other users.
CREATE EXTENSION IF NOT EXISTS streamproc;
SELECT streamproc.create_stream('priv_s', 'k int, v int');
SELECT streamproc.create_view('priv_v', $$SELECT k, sum(v) AS total FROM priv_s GROUP BY k$$);
INSERT INTO priv_s VALUES (1, 10), (1, 5), (2, 1);

CREATE ROLE sp_user;
GRANT CREATE ON SCHEMA public TO sp_user;
SET ROLE sp_user;
-- ordinary DDL of other users is untouched by the extension's drop trigger
CREATE TABLE sp_user_t (x int);
DROP TABLE sp_user_t;
-- window functions work for everyone
SELECT streamproc.tumble('2024-01-01 00:00:07+00', '5 seconds') = '2024-01-01 00:00:05+00' AS ok;
-- administration does not
SELECT streamproc.create_stream('mine', 'x int');
SELECT streamproc.create_view('mine_v', $$SELECT k, count(*) FROM priv_s GROUP BY k$$);
SELECT streamproc.drop_view('priv_v');
SELECT streamproc.drop_stream('priv_s');
SELECT streamproc.advance_watermark('priv_s', now());
CREATE VIEW mine_v2 WITH (streamproc.continuous) AS SELECT k, count(*) FROM priv_s GROUP BY k;
-- reading a view and writing a stream need ordinary grants
SELECT * FROM priv_v;
INSERT INTO priv_s VALUES (3, 3);
RESET ROLE;

GRANT SELECT ON priv_v TO sp_user;
GRANT INSERT ON priv_s TO sp_user;
GRANT USAGE ON FOREIGN SERVER streamproc TO sp_user;
SET ROLE sp_user;
INSERT INTO priv_s VALUES (3, 3);
SELECT * FROM priv_v ORDER BY k;
-- the state table itself stays private
SELECT count(*) > 0 FROM pg_class c WHERE c.relname LIKE 'state%' AND has_table_privilege(c.oid, 'SELECT');
RESET ROLE;

-- a role granted create_view makes its own views; their state stays the
-- extension's: the creator reads it through the view and cannot change it
GRANT EXECUTE ON FUNCTION streamproc.create_view(text, text, text, interval),
                          streamproc.drop_view(text) TO sp_user;
GRANT SELECT ON priv_s TO sp_user;
SET ROLE sp_user;
SELECT streamproc.create_view('user_v', $$SELECT k, count(*) AS n FROM priv_s GROUP BY k$$);
CREATE VIEW user_v2 WITH (streamproc.continuous) AS SELECT count(*) AS n FROM priv_s;
INSERT INTO priv_s VALUES (5, 5), (5, 6);
SELECT * FROM user_v ORDER BY k;
SELECT * FROM user_v2;
DO $$
BEGIN
    EXECUTE format('CREATE INDEX ON %s (k)', (SELECT c.oid::regclass FROM pg_class c
        WHERE c.relname LIKE 'state%' AND c.relkind = 'r' AND has_table_privilege(c.oid, 'SELECT') LIMIT 1));
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot change a state table: %', SQLSTATE;
END $$;
RESET ROLE;
-- losing SELECT on the stream stops the view's owner from reading it
REVOKE SELECT ON priv_s FROM sp_user;
INSERT INTO priv_s VALUES (6, 6);
-- column privileges are enough for the columns the view reads
GRANT SELECT (k) ON priv_s TO sp_user;
INSERT INTO priv_s VALUES (6, 6);
SET ROLE sp_user;
SELECT * FROM user_v ORDER BY k;
SELECT streamproc.drop_view('user_v');
DROP VIEW user_v2;
RESET ROLE;

SELECT streamproc.drop_stream('priv_s', cascade => true);
REVOKE ALL ON FUNCTION streamproc.create_view(text, text, text, interval), streamproc.drop_view(text) FROM sp_user;
REVOKE ALL ON SCHEMA public FROM sp_user;
REVOKE USAGE ON FOREIGN SERVER streamproc FROM sp_user;
DROP ROLE sp_user;
