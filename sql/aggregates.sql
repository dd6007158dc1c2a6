-- Aggregates: core ones, hll, tdigest, user-defined, latest/earliest.
-- Each view must equal the same query over a plain table holding the same rows.
CREATE EXTENSION IF NOT EXISTS streamproc;
CREATE EXTENSION IF NOT EXISTS hll;
CREATE EXTENSION IF NOT EXISTS tdigest;

\i sql/include/view_diff.sql

SELECT streamproc.create_stream('m', 'k int, i int, b bigint, n numeric, f float8, t text, ok bool, ts timestamptz, j jsonb');
CREATE TABLE m_t (k int, i int, b bigint, n numeric, f float8, t text, ok bool, ts timestamptz, j jsonb);

SELECT streamproc.create_view('agg_core', $$
    SELECT k, count(*) AS c, count(i) AS ci, sum(i) AS si, sum(b) AS sb, sum(n) AS sn,
           avg(i) AS ai, avg(n) AS an, min(i) AS mini, max(b) AS maxb, min(t) AS mint, max(t) AS maxt,
           min(ts) AS mints, max(ts) AS maxts, min(n) AS minn, bool_and(ok) AS band, bool_or(ok) AS bor,
           every(ok) AS ev, bit_and(i) AS bitand, bit_or(i) AS bitor
      FROM m GROUP BY k$$);
SELECT streamproc.create_view('agg_float', $$
    SELECT k, sum(f) AS sf, avg(f) AS af, stddev(f) AS sd, stddev_pop(n) AS sdp, variance(n) AS var,
           var_pop(f) AS vp, corr(f, i) AS co, regr_slope(f, i) AS slope, covar_samp(f, i) AS cov
      FROM m GROUP BY k$$);
SELECT streamproc.create_view('agg_pick', $$
    SELECT k, streamproc.latest(t, ts) AS lt, streamproc.earliest(t, ts) AS et,
           streamproc.latest(j, ts) AS lj, streamproc.earliest(n, ts) AS en, streamproc.latest(i, ts) AS li
      FROM m GROUP BY k$$);
SELECT streamproc.create_view('agg_approx', $$
    SELECT k, hll_cardinality(hll_add_agg(hll_hash_integer(i))) AS distinct_i,
           tdigest_percentile(f, 100, 0.5) AS median_f, count(*) AS c
      FROM m GROUP BY k$$);

-- a user-defined aggregate with a combine function
CREATE FUNCTION pair_acc(int8[], int) RETURNS int8[] LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT ARRAY[$1[1] + 1, $1[2] + $2] $$;
CREATE FUNCTION pair_add(int8[], int8[]) RETURNS int8[] LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT ARRAY[$1[1] + $2[1], $1[2] + $2[2]] $$;
CREATE FUNCTION pair_mean(int8[]) RETURNS numeric LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT CASE WHEN $1[1] = 0 THEN NULL ELSE round($1[2]::numeric / $1[1], 6) END $$;
CREATE AGGREGATE my_mean(int) (SFUNC = pair_acc, STYPE = int8[], INITCOND = '{0,0}',
    COMBINEFUNC = pair_add, FINALFUNC = pair_mean);
CREATE AGGREGATE my_mean_nocombine(int) (SFUNC = pair_acc, STYPE = int8[], INITCOND = '{0,0}',
    FINALFUNC = pair_mean);
SELECT streamproc.create_view('agg_udf', $$SELECT k, my_mean(i) AS mm, count(*) AS c FROM m GROUP BY k$$);
SELECT streamproc.create_view('bad', $$SELECT k, my_mean_nocombine(i) FROM m GROUP BY k$$);

-- 600 rows, unique timestamps, some NULLs; small batches force many merges
SELECT setseed(0.25);
INSERT INTO m_t
SELECT (random() * 9)::int,
       CASE WHEN random() < 0.1 THEN NULL ELSE (random() * 1000)::int END,
       (random() * 1e12)::bigint,
       CASE WHEN random() < 0.1 THEN NULL ELSE round((random() * 100)::numeric, 3) END,
       random() * 100,
       CASE WHEN random() < 0.1 THEN NULL ELSE md5(g::text) END,
       random() < 0.8,
       '2024-01-01'::timestamptz + (g * 37 % 600) * interval '1 second',
       jsonb_build_object('g', g)
  FROM generate_series(1, 600) g;
SET streamproc.batch_size = 17;
INSERT INTO m SELECT * FROM m_t WHERE ts < '2024-01-01 00:05:00+00';
SET streamproc.batch_size = 1;
INSERT INTO m SELECT * FROM m_t WHERE ts >= '2024-01-01 00:05:00+00' AND ts < '2024-01-01 00:06:00+00';
RESET streamproc.batch_size;
INSERT INTO m SELECT * FROM m_t WHERE ts >= '2024-01-01 00:06:00+00';

SELECT view_diff('agg_core', $$
    SELECT k, count(*), count(i), sum(i), sum(b), sum(n), avg(i), avg(n), min(i), max(b), min(t), max(t),
           min(ts), max(ts), min(n), bool_and(ok), bool_or(ok), every(ok), bit_and(i), bit_or(i)
      FROM m_t GROUP BY k$$) AS core_diff;

-- floating point: the merge order differs, so compare to 6 significant digits
CREATE FUNCTION r6(float8) RETURNS numeric LANGUAGE sql IMMUTABLE
    AS $$ SELECT round($1::numeric, 6 - floor(log(greatest(abs($1), 1e-12)))::int) $$;
SELECT count(*) AS float_diff FROM agg_float v JOIN (
    SELECT k, sum(f) AS sf, avg(f) AS af, stddev(f) AS sd, stddev_pop(n) AS sdp, variance(n) AS var,
           var_pop(f) AS vp, corr(f, i) AS co, regr_slope(f, i) AS slope, covar_samp(f, i) AS cov
      FROM m_t GROUP BY k) q USING (k)
 WHERE r6(v.sf) <> r6(q.sf) OR r6(v.af) <> r6(q.af) OR r6(v.sd) <> r6(q.sd)
    OR round(v.sdp, 10) <> round(q.sdp, 10) OR round(v.var, 10) <> round(q.var, 10)
    OR r6(v.vp) <> r6(q.vp) OR r6(v.co) <> r6(q.co) OR r6(v.slope) <> r6(q.slope) OR r6(v.cov) <> r6(q.cov);
SELECT count(*) AS float_groups FROM agg_float;

SELECT view_diff('agg_pick', $$
    SELECT k, (array_agg(t ORDER BY ts DESC))[1], (array_agg(t ORDER BY ts))[1],
           (array_agg(j ORDER BY ts DESC))[1], (array_agg(n ORDER BY ts))[1], (array_agg(i ORDER BY ts DESC))[1]
      FROM m_t GROUP BY k$$) AS pick_diff;

-- hll unions are exact merges of the same registers
SELECT view_diff('agg_approx', $$
    SELECT k, hll_cardinality(hll_add_agg(hll_hash_integer(i))), v.median_f, count(*)
      FROM m_t JOIN agg_approx v USING (k) GROUP BY k, v.median_f$$) AS hll_diff;
-- tdigest: close to the exact median
SELECT count(*) AS median_off FROM agg_approx v JOIN (
    SELECT k, percentile_cont(0.5) WITHIN GROUP (ORDER BY f) AS med FROM m_t GROUP BY k) q USING (k)
 WHERE abs(v.median_f - q.med) > 5;

SELECT view_diff('agg_udf', $$SELECT k, my_mean(i), count(*) FROM m_t GROUP BY k$$) AS udf_diff;

-- large states are stored compressed (TOAST) and must still merge
SELECT streamproc.create_stream('big', 'k int, p float8');
SELECT streamproc.create_view('big_v', $$
    SELECT k, tdigest_percentile(p, 100, 0.5) AS med, count(*) AS n,
           hll_cardinality(hll_add_agg(hll_hash_integer((p * 1e6)::int))) AS approx_distinct
      FROM big GROUP BY k$$);
SET streamproc.batch_size = 700;
INSERT INTO big SELECT 1, g / 5000.0 FROM generate_series(1, 5000) g;
INSERT INTO big SELECT 1, 0.5 FROM generate_series(1, 10);
RESET streamproc.batch_size;
SELECT k, round(med::numeric, 1) AS med, n, approx_distinct BETWEEN 4500 AND 5500 AS distinct_ok FROM big_v;
SELECT streamproc.drop_stream('big', cascade => true);

-- latest/earliest on their own, outside views, with ties and NULLs
SELECT streamproc.latest(v, ts), streamproc.earliest(v, ts)
  FROM (VALUES ('a', '2024-01-01'::timestamptz), ('b', '2024-01-03'), (NULL, '2024-01-02'), ('c', NULL)) x(v, ts);
SELECT streamproc.latest(v, ts) FROM (VALUES (1, NULL::timestamptz)) x(v, ts);

-- finalize/combine are callable by anyone: their arguments are checked
SELECT streamproc.finalize(5::int8, 'pg_catalog.count()'::regprocedure, '{}', NULL::text);
SELECT streamproc.finalize(5::int8, 'pg_catalog.count()'::regprocedure, '{}', NULL::int8);
SELECT streamproc.combine(x, 'pg_catalog.avg(int8)'::regprocedure, '{int8}') FROM (VALUES (5::int8)) v(x);
SELECT streamproc.finalize(5::int8, 'pg_catalog.sum(int4)'::regprocedure, '{text}', NULL::int8);
SELECT streamproc.finalize(5::int8, 'pg_catalog.int4pl(int4,int4)'::regprocedure, '{int4,int4}', NULL::int4);
SELECT g, streamproc.combine(s, a, '{numeric}') FROM (VALUES
    (1, '\x00'::bytea, 'pg_catalog.sum(numeric)'::regprocedure),
    (2, '\x00'::bytea, 'pg_catalog.avg(numeric)'::regprocedure)) v(g, s, a) GROUP BY g;
SELECT streamproc.finalize('\x0000000000000000000000170000000005'::bytea,
       'streamproc.latest(anyelement,timestamptz)', '{text,timestamptz}', NULL::text);

SELECT streamproc.drop_stream('m', cascade => true);
DROP TABLE m_t;
DROP AGGREGATE my_mean(int);
DROP AGGREGATE my_mean_nocombine(int);
DROP FUNCTION pair_acc(int8[], int), pair_add(int8[], int8[]), pair_mean(int8[]), r6(float8), view_diff(regclass, text);
