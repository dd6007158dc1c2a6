# The life of Kafka source workers: they appear when a source is created,
# go and come back with stop_source/start_source, leave with drop_source,
# survive a clean restart, show their rate, ride out a broker outage, and
# get out of the way of DROP DATABASE and DROP EXTENSION.  After each step the view must equal
# the same GROUP BY over the messages produced so far: nothing lost, nothing
# counted twice.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use StreamprocKafka;

my $t0 = time;

# A cluster of our own: the outage below must not disturb other tests.  One
# broker, whose id is 1.
my $kafka   = StreamprocKafka->new(brokers => 1);
my $brokers = $kafka->brokers;
is($kafka->command('topic bids 4'), 'ok', 'a topic with 4 partitions');

# restart_after_crash stays off (the framework's default): a crash of any
# process stops the server, and the test with it.
my $node = streamproc_node('workers');

$node->safe_psql('postgres', q{
    CREATE EXTENSION streamproc;
    SELECT streamproc.create_stream('bids',
        'auction bigint, bidder bigint, price bigint, channel text, url text,
         date_time timestamptz, extra text');
    SELECT streamproc.create_view('bid_counts', $$
        SELECT auction, count(*) AS bids, sum(price) AS total, max(price) AS max_price
          FROM bids GROUP BY auction $$);
    -- what was produced, to compare with
    CREATE TABLE bids_raw (j jsonb);
    CREATE VIEW bids_ref AS
    SELECT (j->>'auction')::bigint AS auction, (j->>'price')::bigint AS price FROM bids_raw;
});

# Load the bids of chunk $seed into bids_raw.
sub record_bids
{
    my ($seed, $count) = @_;
    my $file = $node->basedir . "/bids_$seed.json";
    bidgen_print($file, seed => $seed, count => $count);
    $node->safe_psql('postgres', "COPY bids_raw FROM '$file'");
    return;
}

# Produce a chunk of bids, and load the same bids into bids_raw.
my $total = 0;
sub produce
{
    my ($seed, $count) = @_;
    $total += bidgen_produce(brokers => $brokers, topic => 'bids', partitions => 4,
                             count => $count, seed => $seed);
    record_bids($seed, $count);
    return;
}

# Wait until the source has applied everything produced, then compare.
sub caught_up_and_exact
{
    my ($what) = @_;
    ok(defined wait_until($node, 'postgres', qq{
            SELECT rows_in + dead_letters >= $total AND lag = 0
              FROM streamproc.sources WHERE name = 'bids_src'}),
       "$what: the source caught up");
    is($node->safe_psql('postgres', q{SELECT rows_in, dead_letters FROM streamproc.sources WHERE name = 'bids_src'}),
       "$total|0", "$what: every message counted once");
    is(view_against_query($node, 'bid_counts',
            'SELECT auction, count(*), sum(price), max(price) FROM bids_ref GROUP BY 1'),
       '0|0', "$what: the view equals the GROUP BY over the messages produced");
    return;
}

# how many processes of a kind are connected to a database
sub procs
{
    my ($type, $db, $extra) = @_;
    return qq{SELECT count(*) FROM pg_stat_activity
               WHERE backend_type = 'streamproc $type' AND datname = '$db' } . ($extra // '');
}

# ------------------------------------------------------------ create
produce(1, 5000);
my $t = time;
$node->safe_psql('postgres', qq{
    SELECT streamproc.create_kafka_source('bids_src', 'bids', '$brokers', 'bids',
                                          parallelism => 2, batch_size => 1000)});
my $took = wait_until($node, 'postgres', procs('source', 'postgres'), '2', 10);
ok(defined $took, 'parallelism 2 on 4 partitions: two source workers');
diag(sprintf('workers up %.1f s after create_kafka_source', $took // -1));
cmp_ok($took // 99, "<", 4, "the workers start within a second or so of create_kafka_source");
is($node->safe_psql('postgres', procs('source', 'postgres', q{AND application_name = 'bids_src'})),
   '2', 'the workers are named after their source (application_name)');
is($node->safe_psql('postgres', procs('supervisor', 'postgres')), '1', 'a supervisor in the database');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'streamproc launcher'}),
   '1', 'a launcher');
is($node->safe_psql('postgres', q{SELECT state, workers FROM streamproc.sources WHERE name = 'bids_src'}),
   'running|2', 'streamproc.sources: running, two workers');
caught_up_and_exact('after create');

# ------------------------------------------------------------ stop, start
$node->safe_psql('postgres', q{SELECT streamproc.stop_source('bids_src')});
$took = wait_until($node, 'postgres', procs('source', 'postgres'), '0', 10);
ok(defined $took, 'stop_source: the workers are gone within seconds');
diag(sprintf('workers gone %.1f s after stop_source', $took // -1));
cmp_ok($took // 99, '<', 4, 'the workers stop within a second or so of stop_source');
is($node->safe_psql('postgres', q{SELECT state, workers FROM streamproc.sources WHERE name = 'bids_src'}),
   'stopped|0', 'streamproc.sources: stopped');

# what is produced meanwhile waits in Kafka
my $applied = $total;
produce(2, 5000);
sleep(1);
is($node->safe_psql('postgres', q{SELECT rows_in FROM streamproc.sources WHERE name = 'bids_src'}),
   $applied, 'a stopped source consumes nothing');

$node->safe_psql('postgres', q{SELECT streamproc.start_source('bids_src')});
$took = wait_until($node, 'postgres', procs('source', 'postgres'), '2', 10);
ok(defined $took, 'start_source: the workers are back within seconds');
diag(sprintf('workers back %.1f s after start_source', $took // -1));
cmp_ok($took // 99, '<', 4, 'the workers start within a second or so of start_source');
caught_up_and_exact('after stop and start');

# ------------------------------------------------------------ clean restart
$node->restart;
ok(defined wait_until($node, 'postgres', procs('source', 'postgres'), '2', 30),
   'after a restart the source runs again');
produce(3, 5000);
caught_up_and_exact('after a restart');

# ------------------------------------------------------------ a worker ends
# A worker that exits (here: terminated) is started again by the supervisor,
# from the committed offsets.
my $victim = $node->safe_psql('postgres',
    q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'streamproc source' ORDER BY pid LIMIT 1});
$node->safe_psql('postgres', "SELECT pg_terminate_backend($victim)");
$took = wait_until($node, 'postgres', procs('source', 'postgres', "AND pid <> $victim"), '2', 30);
ok(defined $took, 'a terminated worker is started again');
diag(sprintf('worker replaced %.1f s after pg_terminate_backend', $took // -1));
produce(4, 2000);
caught_up_and_exact('after a worker was terminated');

# ------------------------------------------------------------ rates
# While bids arrive at a steady 2000 a second, streamproc.sources shows the
# rate at which the workers apply them (measured once a second), and 0 once
# they have stopped coming.
my $bg = bidgen_start(brokers => $brokers, topic => 'bids', partitions => 4,
                      count => 8000, seed => 6, rate => 2000);
ok(defined wait_until($node, 'postgres', q{
        SELECT rows_per_sec BETWEEN 500 AND 8000 FROM streamproc.sources WHERE name = 'bids_src'}, 't', 30),
   'rows_per_sec shows the rate while bids arrive');
diag(sprintf('rows_per_sec while 2000 bids/s arrive: %s',
    $node->safe_psql('postgres', q{SELECT round(rows_per_sec) FROM streamproc.sources WHERE name = 'bids_src'})));
$total += bidgen_finish($bg);
record_bids(6, 8000);
caught_up_and_exact('after a steady stream');
ok(defined wait_until($node, 'postgres', q{
        SELECT rows_per_sec = 0 FROM streamproc.sources WHERE name = 'bids_src'}, 't', 10),
   'rows_per_sec is 0 once the bids have stopped');

# ------------------------------------------------------------ broker outage
my @pids_before = split /\n/, $node->safe_psql('postgres',
    q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'streamproc source' ORDER BY pid});
my $log_offset = -s $node->logfile;
is($kafka->command('down 1'), 'ok', 'broker 1 down');
$t = time;
ok(defined wait_until($node, 'postgres', q{
        SELECT state = 'error' AND last_error IS NOT NULL AND last_error_at IS NOT NULL
          FROM streamproc.sources WHERE name = 'bids_src'}, 't', 60),
   'streamproc.sources shows the outage: state error, with the error');
diag(sprintf('state error %.1f s after the broker went down; last_error: %s', time - $t,
    $node->safe_psql('postgres', q{SELECT last_error FROM streamproc.sources WHERE name = 'bids_src'})));
# stay down a little: a worker that gave up and restarted in a loop would show
sleep(3);
is($node->safe_psql('postgres', q{SELECT state FROM streamproc.sources WHERE name = 'bids_src'}),
   'error', 'still in error while the broker is down');

is($kafka->command('up 1'), 'ok', 'broker 1 up');
produce(5, 5000);
$t = time;
ok(defined wait_until($node, 'postgres', q{SELECT state FROM streamproc.sources WHERE name = 'bids_src'}, 'running', 60),
   'running again once the broker is back');
diag(sprintf('running again %.1f s after the broker came back (and the bids were produced)', time - $t));
caught_up_and_exact('after the outage');

my $outage_log = log_since($node, $log_offset);
unlike($outage_log, qr/terminated by signal/, 'no process crashed during the outage');
my $assigns = () = $outage_log =~ /consuming topic/g;
my $errors  = () = $outage_log =~ /\bERROR: /g;
my $lines   = () = $outage_log =~ /\n/g;
cmp_ok($assigns, '<=', 4, 'the workers did not restart in a loop (few "consuming topic" lines)');
# a worker that failed and retried without backing off would log an ERROR
# per attempt: hundreds in these seconds
cmp_ok($errors, '<=', 30, 'the workers back off while the broker is down (few ERROR lines)');
my @pids_after = split /\n/, $node->safe_psql('postgres',
    q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'streamproc source' ORDER BY pid});
is("@pids_after", "@pids_before", 'the workers rode out the outage: the same processes');
diag(sprintf('during the outage: %d "consuming topic" lines, %d ERROR lines, %d log lines in all; workers %s',
    $assigns, $errors, $lines,
    "@pids_before" eq "@pids_after" ? 'kept their pids' : "changed (@pids_before -> @pids_after)"));

# A source whose broker stays down must still stop when told to: its
# workers check once a second whether the brokers answer again, and that
# check must not wait for as long as the broker is down.
is($kafka->command('down 1'), 'ok', 'broker 1 down again');
ok(defined wait_until($node, 'postgres', q{SELECT state FROM streamproc.sources WHERE name = 'bids_src'}, 'error', 60),
   'in error again');
sleep(3);    # a few of those checks, with the broker down
$node->safe_psql('postgres', q{SELECT streamproc.stop_source('bids_src')});
$took = wait_until($node, 'postgres', procs('source', 'postgres'), '0', 15);
ok(defined $took, 'stop_source while the broker is down: the workers are gone');
diag(sprintf('workers gone %.1f s after stop_source, the broker down', $took // -1));
is($kafka->command('up 1'), 'ok', 'broker 1 up again');
$node->safe_psql('postgres', q{SELECT streamproc.start_source('bids_src')});
ok(defined wait_until($node, 'postgres', q{SELECT state FROM streamproc.sources WHERE name = 'bids_src'}, 'running', 60),
   'running again after start_source');
caught_up_and_exact('after stopping during an outage');

# ------------------------------------------------------------ drop_source
# (a source of its own in a second database, so that bids_src keeps running;
# other_src, with batches of 10, takes a few seconds to read the topic)
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', qq{
    CREATE EXTENSION streamproc;
    SELECT streamproc.create_stream('bids', 'auction bigint, price bigint');
    SELECT streamproc.create_view('n', \$\$SELECT count(*) AS n FROM bids\$\$);
    SELECT streamproc.create_kafka_source('drop_me', 'bids', '$brokers', 'bids', parallelism => 2);
    SELECT streamproc.create_kafka_source('other_src', 'bids', '$brokers', 'bids', batch_size => 10);
});
ok(defined wait_until($node, 'other', q{
        SELECT s.lag > 0 AND s.lag = (SELECT sum(p.lag) FROM streamproc.source_partitions p WHERE p.source = s.name)
          FROM streamproc.sources s WHERE s.name = 'other_src'}, 't', 30),
   'while other_src catches up, streamproc.sources and source_partitions show its lag');
ok(defined wait_until($node, 'other', procs('source', 'other', q{AND application_name = 'drop_me'}), '2', 10),
   'second database: two workers for drop_me');
$node->safe_psql('other', q{SELECT streamproc.drop_source('drop_me')});
$took = wait_until($node, 'other', procs('source', 'other', q{AND application_name = 'drop_me'}), '0', 10);
ok(defined $took, 'drop_source: its workers are gone within seconds');
diag(sprintf('workers gone %.1f s after drop_source', $took // -1));
cmp_ok($took // 99, '<', 4, 'the workers stop within a second or so of drop_source');
is($node->safe_psql('other', q{SELECT count(*) FROM streamproc.sources WHERE name = 'drop_me'}),
   '0', 'and so is the source');

# ------------------------------------------------------------ DROP DATABASE
ok(defined wait_until($node, 'other', q{SELECT rows_in + dead_letters FROM streamproc.sources WHERE name = 'other_src'}, $total, 60),
   'second database: its source consumes the topic');
my $dropped_at = time;
my ($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE other');
is($rc, 0, 'DROP DATABASE of a database with a running source succeeds') or diag($err);
diag(sprintf('DROP DATABASE took %.1f s', time - $dropped_at));
is($node->safe_psql('postgres', procs('source', 'postgres')), '2', 'the source of the first database runs on');

# ------------------------------------------------------------ DROP EXTENSION
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', 'DROP EXTENSION streamproc CASCADE');
$took = wait_until($node, 'postgres',
    q{SELECT count(*) FROM pg_stat_activity
       WHERE backend_type IN ('streamproc source', 'streamproc supervisor') AND datname = 'postgres'},
    '0', 10);
ok(defined $took, 'DROP EXTENSION: the source workers and the supervisor are gone within seconds');
diag(sprintf('gone %.1f s after DROP EXTENSION', $took // -1));
cmp_ok($took // 99, '<', 4, 'they stop within a second or so of DROP EXTENSION');
sleep(3);
my @errors = log_since($node, $log_offset) =~ /^.*\bERROR: .*$/mg;
is(scalar(@errors), 0, 'no errors in the server log after DROP EXTENSION') or diag(join("\n", @errors));
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'streamproc launcher'}),
   '1', 'the launcher stays');

# The launcher keeps away from a dropped database for 10 s, then must
# forget it rather than try to connect.
sleep(12 - (time - $dropped_at)) if time - $dropped_at < 12;
unlike(log_since($node, 0), qr/database (?:"other"|\d+) does not exist/, 'the dropped database is forgotten');

unlike(slurp_file($node->logfile), qr/terminated by signal|PANIC|TRAP:/, 'no crash in the whole run');
$node->stop;
$kafka->stop;
diag(sprintf('%.0f s in all', time - $t0));
done_testing();
