-- Joins with ordinary tables: enrichment when rows arrive.
CREATE EXTENSION IF NOT EXISTS streamproc;
SELECT streamproc.create_stream('orders', 'order_id int, customer_id int, amount numeric');
CREATE TABLE customers (id int PRIMARY KEY, country text, tier text);
INSERT INTO customers VALUES (1, 'DE', 'gold'), (2, 'FR', 'silver'), (3, 'DE', 'silver');

SELECT streamproc.create_view('by_country', $$
    SELECT c.country, count(*) AS orders, sum(o.amount) AS revenue
      FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.country$$);
SELECT streamproc.create_view('by_tier', $$
    SELECT coalesce(c.tier, 'unknown') AS tier, count(*) AS orders
      FROM orders o LEFT JOIN customers c ON c.id = o.customer_id GROUP BY 1$$);
CREATE VIEW gold_only WITH (streamproc.continuous) AS
    SELECT o.customer_id, sum(o.amount) AS total FROM orders o, customers c
     WHERE c.id = o.customer_id AND c.tier = 'gold' GROUP BY o.customer_id;

INSERT INTO orders VALUES (1, 1, 10), (2, 2, 20), (3, 3, 30), (4, 99, 40);
SELECT * FROM by_country ORDER BY country;
SELECT * FROM by_tier ORDER BY tier;
SELECT * FROM gold_only ORDER BY customer_id;

-- the table is read when rows arrive: later changes affect later rows only
UPDATE customers SET country = 'IT', tier = 'gold' WHERE id = 2;
INSERT INTO customers VALUES (99, 'US', 'bronze');
INSERT INTO orders VALUES (5, 2, 5), (6, 99, 1);
SELECT * FROM by_country ORDER BY country;
SELECT * FROM by_tier ORDER BY tier;
SELECT * FROM gold_only ORDER BY customer_id;

-- joined tables cannot be dropped or changed under the view
DROP TABLE customers;
ALTER TABLE customers DROP COLUMN tier;
ALTER TABLE customers ALTER COLUMN country TYPE varchar(10);
-- the stream must be the preserved side of an outer join
SELECT streamproc.create_view('bad', $$SELECT c.country, count(o.order_id) FROM customers c LEFT JOIN orders o ON c.id = o.customer_id GROUP BY 1$$);
SELECT streamproc.create_view('bad', $$SELECT c.country, count(*) FROM orders o FULL JOIN customers c ON c.id = o.customer_id GROUP BY 1$$);

-- functions the view uses are looked up again when they change
CREATE FUNCTION region_of(country text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'EU' $$;
SELECT streamproc.create_view('by_region', $$
    SELECT region_of(c.country) AS region, count(*) AS n
      FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY 1$$);
INSERT INTO orders VALUES (10, 1, 1);
CREATE OR REPLACE FUNCTION region_of(country text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'World' $$;
INSERT INTO orders VALUES (11, 1, 1);
SELECT * FROM by_region ORDER BY region;
SELECT streamproc.drop_view('by_region');
DROP FUNCTION region_of(text);

-- joins through an ordinary view work too
CREATE VIEW big_customers AS SELECT id, country FROM customers WHERE tier = 'gold';
SELECT streamproc.create_view('big_orders', $$SELECT b.country, count(*) AS n FROM orders o JOIN big_customers b ON b.id = o.customer_id GROUP BY 1$$);
INSERT INTO orders VALUES (7, 1, 1), (8, 2, 1), (9, 3, 1);
SELECT * FROM big_orders ORDER BY country;

SELECT streamproc.drop_stream('orders', cascade => true);
DROP VIEW big_customers;
DROP TABLE customers;
