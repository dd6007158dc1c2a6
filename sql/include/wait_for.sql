-- Included by the tests that wait for background workers (\i sql/include/wait_for.sql, from the directory pg_regress runs in).
-- wait (up to 60 s) until a condition holds; true if it did
CREATE FUNCTION wait_for(cond text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    ok boolean;
BEGIN
    FOR i IN 1..1200 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXECUTE 'SELECT (' || cond || ')' INTO ok;
        IF ok THEN RETURN true; END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RAISE WARNING 'timed out waiting for: %', cond;
    RETURN false;
END
$$;
