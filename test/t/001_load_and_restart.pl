# streamproc must be preloaded; continuous view state survives restarts,
# including an immediate (crash) shutdown.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# --- without shared_preload_libraries: refused with a hint
my $bare = PostgreSQL::Test::Cluster->new('bare');
$bare->init;
$bare->append_conf('postgresql.conf', "shared_preload_libraries = ''");
$bare->start;
my ($rc, $out, $err) = $bare->psql('postgres', 'CREATE EXTENSION streamproc');
isnt($rc, 0, 'CREATE EXTENSION fails without preloading');
like($err, qr/streamproc must be loaded via shared_preload_libraries/, 'error names the cause');
like($err, qr/HINT:\s+Add streamproc to shared_preload_libraries/, 'error has a hint');
$bare->stop;

# --- preloaded: state lives in heap tables
my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'streamproc'");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION streamproc;
    SELECT streamproc.create_stream('s', 'k int, v int, ts timestamptz');
    SELECT streamproc.create_view('v', $$SELECT k, streamproc.tumble(ts, '1 minute') AS w,
                                           count(*) AS n, sum(v) AS total FROM s GROUP BY k, w$$);
    INSERT INTO s SELECT g % 10, g, '2024-01-01'::timestamptz + g * interval '1 second'
      FROM generate_series(1, 1000) g;
});
my $before = $node->safe_psql('postgres', 'SELECT sum(n), sum(total), count(*) FROM v');
is($before, '1000|500500|170', 'view before restart');

$node->restart;
is($node->safe_psql('postgres', 'SELECT sum(n), sum(total), count(*) FROM v'),
   $before, 'view survives a clean restart');

# committed batches survive a crash; an uncommitted one leaves no trace
$node->safe_psql('postgres', q{INSERT INTO s VALUES (1, 1000, '2024-01-01 00:00:00+00')});
my $bg = $node->background_psql('postgres');
$bg->query_safe('BEGIN');
$bg->query_safe(q{INSERT INTO s SELECT 1, 1, now() FROM generate_series(1, 5000)});
$node->stop('immediate');
eval { $bg->quit };
$node->start;
is($node->safe_psql('postgres', 'SELECT sum(n), sum(total) FROM v'),
   '1001|501500', 'after an immediate stop: committed rows counted once, uncommitted ones not at all');

# and the view keeps working after recovery
$node->safe_psql('postgres', q{INSERT INTO s VALUES (1, 1, '2024-01-01 00:00:00+00')});
is($node->safe_psql('postgres', 'SELECT sum(n) FROM v'), '1002', 'applies after recovery');

# watermarks and late rows are as durable as the views
$node->safe_psql('postgres', q{
    SELECT streamproc.create_stream('e', 'k int, ts timestamptz', event_time => 'ts', watermark_delay => '1 minute');
    SELECT streamproc.create_view('ev', $$SELECT k, streamproc.tumble(ts, '1 minute') AS w, count(*) AS n
                                            FROM e GROUP BY k, w$$, emit => 'final');
    INSERT INTO e VALUES (1, '2024-01-01 00:00:10+00'), (1, '2024-01-01 00:05:00+00');
    INSERT INTO e VALUES (1, '2024-01-01 00:00:20+00');
});
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', q{SELECT streamproc.watermark('e') AT TIME ZONE 'UTC'}),
   '2024-01-01 00:04:00', 'watermark survives an immediate stop');
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamproc.late_rows'), '1', 'late row survives');
is($node->safe_psql('postgres', q{SELECT n FROM ev}), '1', 'closed window is final');
$node->safe_psql('postgres', q{INSERT INTO e VALUES (1, '2024-01-01 00:00:30+00')});
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamproc.late_rows'), '2',
   'rows behind the recovered watermark are late');

$node->stop;
done_testing();
