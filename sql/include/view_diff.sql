-- Included by the tests that compare a continuous view with a plain query (\i sql/include/view_diff.sql).
-- rows in the view but not in the query, plus rows in the query but not in the view (0: equal)
CREATE FUNCTION view_diff(v regclass, q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((TABLE %s EXCEPT ALL %s) UNION ALL (%s EXCEPT ALL TABLE %s)) d',
                   v, q, q, v) INTO n;
    RETURN n;
END $$;
