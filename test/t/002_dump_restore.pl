# A database with streams and continuous views survives pg_dump and restore
# into another database: its views keep their state and keep counting.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'streamproc'");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
    CREATE EXTENSION streamproc;
    CREATE TABLE dim (id int PRIMARY KEY, name text);
    INSERT INTO dim VALUES (1, 'one'), (2, 'two');
    -- a dropped column shifts attribute numbers in the restored stream
    SELECT streamproc.create_stream('s', 'junk int, k int, v int, ts timestamptz',
                                    event_time => 'ts', watermark_delay => '1 minute');
    ALTER FOREIGN TABLE s DROP COLUMN junk;
    ALTER FOREIGN TABLE s RENAME COLUMN ts TO at;
    SELECT streamproc.create_view('v', $$SELECT d.name, streamproc.tumble(s.at, '1 hour') AS w,
                                                count(*) AS n, sum(s.v) AS total
                                           FROM s JOIN dim d ON d.id = s.k GROUP BY 1, 2$$);
    SELECT streamproc.create_view('vf', $$SELECT streamproc.tumble(at, '1 hour') AS w, count(*) AS n
                                           FROM s GROUP BY w$$, emit => 'final');
    INSERT INTO s VALUES (1, 10, '2024-01-01 00:10+00'), (2, 20, '2024-01-01 00:20+00'),
                         (1, 5, '2024-01-01 02:00+00');
});
my $before = $node->safe_psql('src', 'SELECT name, w, n, total FROM v ORDER BY 1, 2');

my $dump = $node->basedir . '/src.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('src'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d', $node->connstr('dst'), '-f', $dump ],
                  'restore');

is($node->safe_psql('dst', 'SELECT name, w, n, total FROM v ORDER BY 1, 2'), $before, 'state restored');
is($node->safe_psql('dst', q{SELECT streamproc.watermark('s') AT TIME ZONE 'UTC'}),
   '2024-01-01 01:59:00', 'watermark restored');

# the restored views keep counting, and the event-time column is still the event time
$node->safe_psql('dst', q{INSERT INTO s VALUES (1, 1, '2024-01-01 00:30+00'), (2, 2, '2024-01-01 03:30+00')});
is($node->safe_psql('dst', q{SELECT n, total FROM v WHERE name = 'one' AND w = '2024-01-01 00:00+00'}),
   '1|10', 'a row for a window closed before the dump is late after the restore');
is($node->safe_psql('dst', q{SELECT n, total FROM v WHERE name = 'two' AND w = '2024-01-01 03:00+00'}),
   '1|2', 'new rows are counted');
is($node->safe_psql('dst', 'SELECT count(*) FROM streamproc.late_rows'), '2', 'late rows recorded');
is($node->safe_psql('dst', q{SELECT count(*) FROM vf}), '2', 'emit final sees the restored watermark');
my ($rc, $out, $err) = $node->psql('dst', q{INSERT INTO s VALUES (1, 1, NULL)});
like($err, qr/event-time column "at" of stream "s" must not be NULL/, 'event-time column known by name');

# and the source database is untouched
is($node->safe_psql('src', 'SELECT name, w, n, total FROM v ORDER BY 1, 2'), $before, 'source unchanged');

# restored over itself (every object gets a new OID in the same database)
my $archive = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $archive ], 'pg_dump -Fc');
# (--clean reports two ignored errors: it tries to drop each state table
# before the view that owns it; dropping the view then drops both.)
system_log('pg_restore', '--clean', '--if-exists', '-d', $node->connstr('src'), $archive);
is($node->safe_psql('src', 'SELECT name, w, n, total FROM v ORDER BY 1, 2'), $before, 'state after restore over itself');
$node->safe_psql('src', q{INSERT INTO s VALUES (2, 2, '2024-01-01 03:30+00')});
is($node->safe_psql('src', q{SELECT n, total FROM v WHERE name = 'two' AND w = '2024-01-01 03:00+00'}),
   '1|2', 'counting after restore over itself');

$node->stop;
done_testing();
