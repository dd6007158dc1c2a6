# Exactly once under crashes: a Kafka source with two workers keeps
# consuming while a worker is killed with SIGKILL (the postmaster then
# reinitializes, like after any crash) and while the whole server is stopped
# in immediate mode, again and again, with messages produced all along.  At
# the end every continuous view must equal the same GROUP BY over exactly
# the messages produced (EXCEPT ALL both ways), with nothing set aside.
#
# SP_TEST_SEED=N repeats a run's choices (which worker, when, which rounds
# stop the server).
use strict;
use warnings;
use List::Util qw(shuffle);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use StreamprocKafka;

my $t0 = time;
my $seed = $ENV{SP_TEST_SEED} // int(rand(1_000_000));
srand($seed);
diag("random seed $seed (SP_TEST_SEED=$seed repeats this run's choices)");

# A cluster of our own, so that no other test's messages are in the topic.
my $kafka   = StreamprocKafka->new;
my $brokers = $kafka->brokers;
is($kafka->command('topic bids 4'), 'ok', 'a topic with 4 partitions');

# A killed worker makes the postmaster reinitialize and start everything
# again, as in production.
my $node = streamproc_node('exactly_once', restart_after_crash => 1);

# Event time with a delay far larger than the bids' spread: no bid is ever
# late, so the views must count every one, and the watermark is checked too.
$node->safe_psql('postgres', qq{
    CREATE EXTENSION streamproc;
    SELECT streamproc.create_stream('bids',
        'auction bigint, bidder bigint, price bigint, channel text, url text,
         date_time timestamptz, extra text',
        event_time => 'date_time', watermark_delay => '1 hour');
    SELECT streamproc.create_view('bids_10s', \$\$
        SELECT auction, streamproc.tumble(date_time, '10 seconds') AS window_start,
               count(*) AS bids, sum(price) AS total, max(price) AS max_price
          FROM bids GROUP BY auction, window_start \$\$);
    SELECT streamproc.create_view('bids_by_channel', \$\$
        SELECT channel, count(*) AS bids, sum(price) AS total
          FROM bids GROUP BY channel \$\$);
    -- small batches: many commits per second, so a crash lands between
    -- and inside them
    SELECT streamproc.create_kafka_source('bids_src', 'bids', '$brokers', 'bids',
                                          parallelism => 2, batch_size => 500);
});

# Every chunk of bids is (seed, count); bidgen is deterministic, so the
# reference table is built from the same list at the end.
my @chunks;
my $produced = 0;

# A background producer at a steady rate for the whole run: messages keep
# arriving while workers die, restart and catch up.
my $BACKGROUND = 20_000;
my $bg = bidgen_start(brokers => $brokers, topic => 'bids', partitions => 4,
                      count => $BACKGROUND, seed => 1000, rate => 800);
push @chunks, [ 1000, $BACKGROUND ];

# rows the source has committed (applied or set aside)
sub committed
{
    return $node->safe_psql('postgres',
        q{SELECT coalesce(sum(rows_in) + sum(dead_letters), 0) FROM streamproc.source_partitions});
}

# kill_applying_worker(seconds): SIGKILLs a worker caught applying a batch
# (see StreamprocKafka.pm)
create_kill_applying_worker($node);

# Ten rounds: start producing a chunk of 4000 bids at 10 000 bids/s, wait
# until the source is applying it, then crash while bids still arrive.  Two
# random rounds stop the server in immediate mode; the others kill -9 a
# source worker: in half of them (in random order) one caught applying a
# batch, in the others a random one at a random moment.
my $ROUNDS = 10;
my $CHUNK  = 4_000;
my %immediate = map { $_ => 1 } (shuffle(1 .. $ROUNDS))[ 0, 1 ];
my @kill_modes = shuffle(('in a batch') x 4, ('at random') x 4);
my ($kills, $in_batch, $stops, $while_producing) = (0, 0, 0, 0);

for my $round (1 .. $ROUNDS)
{
    my $before = committed();
    my $chunk = bidgen_start(brokers => $brokers, topic => 'bids', partitions => 4,
                             count => $CHUNK, seed => $round, rate => 10_000);
    push @chunks, [ $round, $CHUNK ];

    # both workers up, and a batch committed since this round began
    defined wait_until($node, 'postgres', qq{
        SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'streamproc source') = 2
           AND (SELECT coalesce(sum(rows_in) + sum(dead_letters), 0) FROM streamproc.source_partitions) > $before})
      or BAIL_OUT("round $round: the source does not consume");

    my $log_offset = -s $node->logfile;
    if ($immediate{$round})
    {
        usleep(int(rand(300_000)));
        $while_producing += bidgen_running($chunk);
        $node->stop('immediate');
        $node->start;
        $stops++;
    }
    else
    {
        # (the function's own session goes down with the crash: no answer
        # is an answer)
        my ($rc, $victim) = (0, '');
        ($rc, $victim) = $node->psql('postgres', 'SELECT kill_applying_worker(2)')
          if (shift(@kill_modes) // 'at random') eq 'in a batch';
        if ($rc != 0 || $victim ne '')
        {
            $in_batch++;
        }
        else
        {
            usleep(int(rand(300_000)));
            my @pids = split /\n/, $node->safe_psql('postgres',
                q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'streamproc source'});
            $victim = $pids[ int(rand(@pids)) ];
            kill('KILL', $victim) or BAIL_OUT("round $round: could not kill $victim: $!");
        }
        $while_producing += bidgen_running($chunk);
        # SIGKILL: the postmaster reinitializes, like after any crash
        $node->wait_for_log(
            qr/terminated by signal 9.*all server processes terminated; reinitializing.*ready to accept connections/s,
            $log_offset);
        $kills++;
    }
    $produced += bidgen_finish($chunk);
}

# the background producer ends by itself, once it has sent its bids and
# has heard that every one was stored
$produced += bidgen_finish($bg);

my $caught_up = wait_until($node, 'postgres', qq{
    SELECT sum(rows_in) + sum(dead_letters) >= $produced AND sum(lag) = 0 AND count(*) = 4
      FROM streamproc.source_partitions WHERE source = 'bids_src'});
ok(defined $caught_up, 'the source caught up after the crashes');
diag(sprintf('%d kills (%d of a worker caught applying a batch), %d immediate stops, '
        . '%d of these crashes while a chunk was being produced; %d messages; caught up %.1f s after the last crash',
        $kills, $in_batch, $stops, $while_producing, $produced, $caught_up // -1));
cmp_ok($kills, '>=', 8, 'at least 8 workers killed');
is($stops, 2, 'two immediate stops');
cmp_ok($in_batch, '>=', 1, 'at least one worker killed while it was applying a batch');

is($node->safe_psql('postgres', q{
        SELECT sum(rows_in), sum(dead_letters), sum(committed_offset)
          FROM streamproc.source_partitions WHERE source = 'bids_src'}),
    "$produced|0|$produced",
    'every message applied once: rows and committed offsets add up to the messages produced');
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamproc.dead_letters'), '0', 'no dead letters');

# The same bids, from bidgen --print, into an ordinary table.
my $file = $node->basedir . '/bids.json';
bidgen_print($file, seed => $_->[0], count => $_->[1]) for @chunks;
$node->safe_psql('postgres', qq{
    CREATE TABLE bids_raw (j jsonb);
    COPY bids_raw FROM '$file';
    CREATE TABLE bids_ref AS
    SELECT (j->>'auction')::bigint AS auction, (j->>'bidder')::bigint AS bidder,
           (j->>'price')::bigint AS price, j->>'channel' AS channel, j->>'url' AS url,
           (j->>'date_time')::timestamptz AS date_time, j->>'extra' AS extra
      FROM bids_raw;
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM bids_ref'), $produced, 'reference table has every bid');

# missing|extra rows of a view compared with the plain query
sub compare
{
    my ($view, $query) = @_;
    return $node->safe_psql('postgres', qq{
        SELECT (SELECT count(*) FROM (SELECT * FROM $view EXCEPT ALL $query) a),
               (SELECT count(*) FROM ($query EXCEPT ALL SELECT * FROM $view) b)});
}
is(compare('(SELECT auction, window_start, bids, total, max_price FROM bids_10s) v',
           q{SELECT auction, date_bin('10 seconds', date_time, 'epoch'), count(*), sum(price), max(price)
               FROM bids_ref GROUP BY 1, 2}),
   '0|0', 'bids_10s equals the GROUP BY over the bids produced');
is(compare('(SELECT channel, bids, total FROM bids_by_channel) v',
           q{SELECT channel, count(*), sum(price) FROM bids_ref GROUP BY 1}),
   '0|0', 'bids_by_channel equals the GROUP BY over the bids produced');
is($node->safe_psql('postgres', q{SELECT (SELECT sum(bids) FROM bids_10s), (SELECT sum(bids) FROM bids_by_channel)}),
   "$produced|$produced", 'each view counted every message exactly once');
is($node->safe_psql('postgres', q{SELECT string_agg(rows_applied::text || '/' || late_rows, ' ' ORDER BY name::text)
                                    FROM streamproc.views}),
   "$produced/0 $produced/0", 'streamproc.views: rows applied, no late rows');

# The watermark moved with the batches, in the same transactions: the least
# partition maximum (a bid's partition is its auction modulo 4) less 1 hour.
is($node->safe_psql('postgres', q{
        SELECT streamproc.watermark('bids') = (SELECT min(m) - interval '1 hour'
                                                 FROM (SELECT max(date_time) AS m FROM bids_ref
                                                        GROUP BY auction % 4) p)}),
   't', 'the watermark is where the messages put it');

# Crashes were ours only: SIGKILL, never another signal, no PANIC or assertion.
my $log = slurp_file($node->logfile);
my @signals = $log =~ /terminated by signal (\d+)/g;
is_deeply([ grep { $_ != 9 } @signals ], [], 'no process died of anything but our SIGKILLs');
unlike($log, qr/PANIC|TRAP:/, 'no PANIC, no failed assertion');

$node->stop;
$kafka->stop;
diag(sprintf('%.0f s in all', time - $t0));
done_testing();
