# Exactly once under crashes: a Kafka source with two workers keeps
# consuming while a worker is killed with SIGKILL (the postmaster then
# reinitializes, like after any crash) and while the whole server is stopped
# in immediate mode, again and again, with messages produced all along.
# Malformed messages of every kind come interleaved with the bids, in
# explicit partitions, so that the crashes land in batches that set some
# aside.  At the end every continuous view must equal the same GROUP BY over
# exactly the good messages produced (EXCEPT ALL both ways), and
# streamproc.dead_letters must hold each malformed message exactly once, at
# the partition and offset where it is in the topic, counted as a dead
# letter and not as a row.
#
# SP_TEST_SEED=N repeats a run's choices (which worker, when, which rounds
# stop the server).
use strict;
use warnings;
use IPC::Run;
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

# the malformed messages are produced and read back with kcat
my $KCAT = $ENV{KCAT} // 'kcat';
system("$KCAT -V >/dev/null 2>&1") == 0
  or BAIL_OUT("kcat not found (install kcat, or set KCAT)");

# A cluster of our own, so that no other test's messages are in the topic.
my $kafka   = StreamprocKafka->new;
my $brokers = $kafka->brokers;
is($kafka->command('topic bids 4'), 'ok', 'a topic with 4 partitions');

# A killed worker makes the postmaster reinitialize and start everything
# again, as in production.
my $node = streamproc_node('exactly_once', restart_after_crash => 1);

# Event time with a delay far larger than the bids' spread: no bid is ever
# late, so the views must count every one, and the watermark is checked too.
# bids_by_channel divides by the price (a bid's is at least 100): a message
# with a zero price decodes, but the view cannot take it.
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
        SELECT channel, count(*) AS bids, sum(price) AS total,
               sum(1000000 / price) AS inverse
          FROM bids GROUP BY channel \$\$);
    -- small batches: many commits per second, so a crash lands between
    -- and inside them
    SELECT streamproc.create_kafka_source('bids_src', 'bids', '$brokers', 'bids',
                                          parallelism => 2, batch_size => 500);
});

# ---------------------------------------------------------------- malformed messages

# The kinds of malformed message, each with the error it must be set aside
# with (a POSIX regular expression on streamproc.dead_letters.error).  A
# message carries its tag (BAD-n, n unique in the run) so it can be found
# in the topic.  The zero price comes years after every bid: a message the
# view refuses must not move the watermark, which is checked exactly.
my $START = $StreamprocKafka::START;
my @BAD_KINDS = (
    [ 'invalid JSON', '^invalid JSON',
      sub { qq({"auction":1,"bidder":1,"price":100,"channel":"$_[0]","date_time":"$START") } ],
    [ 'a word for a bigint', '^column "auction": invalid input syntax for type bigint',
      sub { qq({"auction":"$_[0]","bidder":1,"price":100,"channel":"x","date_time":"$START"}) } ],
    [ 'an object for the event time', 'column "date_time" .*cannot take a JSON object',
      sub { qq({"auction":1,"bidder":1,"price":100,"channel":"$_[0]","date_time":{"at":"$START"}}) } ],
    [ 'a word for the event time', '^column "date_time": invalid input syntax for type timestamp with time zone',
      sub { qq({"auction":1,"bidder":1,"price":100,"channel":"x","date_time":"$_[0]"}) } ],
    [ 'no event time', '^event-time column "date_time" is missing or null',
      sub { qq({"auction":1,"bidder":1,"price":100,"channel":"$_[0]"}) } ],
    [ 'not UTF-8', 'UTF8',
      sub { qq({"auction":1,"bidder":1,"price":100,"channel":"$_[0] \xff\xfe","date_time":"$START"}) } ],
    [ 'a zero price (the view divides by it)', 'division by zero',
      sub { qq({"auction":1,"bidder":1,"price":0,"channel":"$_[0]","date_time":"2030-01-01T00:00:00Z"}) } ],
);

# every malformed message produced: [ tag, partition, kind, payload ]
my @bad;

# A program that reads "PARTITION<TAB>PAYLOAD" lines from a file and
# produces each payload to its partition with one kcat per partition, one
# message every INTERVAL microseconds; it fails if any kcat does (kcat exits
# non-zero when a message could not be delivered).
my $BAD_PRODUCER = <<'EOS';
use strict;
use warnings;
use IO::Handle;
use Time::HiRes qw(usleep);
my ($kcat, $brokers, $topic, $file, $interval) = @ARGV;
my %kcat;
open(my $in, '<:raw', $file) or die "$file: $!";
while (my $line = <$in>)
{
    my ($partition, $payload) = split /\t/, $line, 2;
    unless ($kcat{$partition})
    {
        open($kcat{$partition}, '|-', $kcat, '-P', '-b', $brokers, '-t', $topic,
             '-p', $partition, '-X', 'enable.idempotence=true')
          or die "could not run $kcat: $!";
        binmode($kcat{$partition});
        $kcat{$partition}->autoflush(1);
    }
    print { $kcat{$partition} } $payload;
    usleep($interval);
}
my $ok = 1;
close($_) or $ok = 0 for values %kcat;
exit($ok ? 0 : 1);
EOS

# Start producing $count malformed messages in the background, one every
# $interval microseconds, to partitions 0..3 in turn, the kinds in turn (4
# and 7 are coprime: every kind goes to every partition); bad_finish waits
# for them.  (With $BAD_PRODUCER, this pair could join bidgen_start and
# bidgen_finish in StreamprocKafka.pm.)
sub bad_start
{
    my ($count, $interval) = @_;
    my $file = $node->basedir . '/bad_' . scalar(@bad) . '.txt';
    open(my $fh, '>:raw', $file) or die "$file: $!";
    for (1 .. $count)
    {
        my $n         = scalar(@bad);
        my $tag       = "BAD-$n";
        my $partition = $n % 4;
        my $kind      = $n % @BAD_KINDS;
        my $payload   = $BAD_KINDS[$kind][2]->($tag);
        print $fh "$partition\t$payload\n";
        push @bad, [ $tag, $partition, $kind, $payload ];
    }
    close($fh);
    my $p = { out => '', err => '' };
    $p->{run} = IPC::Run::start(
        [ $^X, '-e', $BAD_PRODUCER, $KCAT, $brokers, 'bids', $file, $interval ],
        '>', \$p->{out}, '2>', \$p->{err});
    return $p;
}

sub bad_finish
{
    my ($p) = @_;
    $p->{run}->finish or die "producing malformed messages failed: $p->{err}";
    return;
}

# ---------------------------------------------------------------- the run

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

# kill_applying_worker(seconds): SIGKILLs a worker caught applying a batch
# (see StreamprocKafka.pm)
create_kill_applying_worker($node);

# Ten rounds: start producing a chunk of 4000 bids at 10 000 bids/s, and 80
# malformed messages at 100/s beside them (a few in every batch, for longer
# than the chunk lasts), wait until the source is applying them, then crash
# while messages still arrive.
# Two random rounds stop the server in immediate mode; the others kill -9 a
# source worker: in half of them (in random order) one caught applying a
# batch, in the others a random one at a random moment.
my $ROUNDS = 10;
my $CHUNK  = 4_000;
my $BAD    = 80;
my %immediate = map { $_ => 1 } (shuffle(1 .. $ROUNDS))[ 0, 1 ];
my @kill_modes = shuffle(('in a batch') x 4, ('at random') x 4);
my ($kills, $in_batch, $stops, $while_producing, $while_bad) = (0, 0, 0, 0, 0);

for my $round (1 .. $ROUNDS)
{
    my $before = committed_messages($node);
    my $chunk = bidgen_start(brokers => $brokers, topic => 'bids', partitions => 4,
                             count => $CHUNK, seed => $round, rate => 10_000);
    push @chunks, [ $round, $CHUNK ];
    my $malformed = bad_start($BAD, 10_000);

    # both workers up, and a batch committed since this round began
    defined wait_until($node, 'postgres', qq{
        SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'streamproc source') = 2
           AND (SELECT coalesce(sum(rows_in) + sum(dead_letters), 0) FROM streamproc.source_partitions) > $before})
      or BAIL_OUT("round $round: the source does not consume");

    my $how = crash_source_node($node,
        $immediate{$round} ? 'immediate' : (shift(@kill_modes) // 'at random'),
        as_it_lands => sub {
            $while_producing += bidgen_running($chunk);
            $while_bad += bidgen_running($malformed);    # (a bidgen's check fits)
        });
    $how eq 'immediate' ? $stops++ : $kills++;
    $in_batch++ if $how eq 'in a batch';
    $produced += bidgen_finish($chunk);
    bad_finish($malformed);
}

# the background producer ends by itself, once it has sent its bids and
# has heard that every one was stored
$produced += bidgen_finish($bg);
my $nbad = scalar(@bad);
my $messages = $produced + $nbad;

my $caught_up = wait_until($node, 'postgres', qq{
    SELECT sum(rows_in) + sum(dead_letters) >= $messages AND sum(lag) = 0 AND count(*) = 4
      FROM streamproc.source_partitions WHERE source = 'bids_src'});
ok(defined $caught_up, 'the source caught up after the crashes');
diag(sprintf('%d kills (%d of a worker caught applying a batch), %d immediate stops, '
        . '%d of these crashes while a chunk was being produced, %d while malformed messages were; '
        . '%d bids and %d malformed messages; caught up %.1f s after the last crash',
        $kills, $in_batch, $stops, $while_producing, $while_bad, $produced, $nbad, $caught_up // -1));
cmp_ok($kills, '>=', 8, 'at least 8 workers killed');
is($stops, 2, 'two immediate stops');
cmp_ok($in_batch, '>=', 1, 'at least one worker killed while it was applying a batch');

is($node->safe_psql('postgres', q{
        SELECT sum(rows_in), sum(dead_letters), sum(committed_offset)
          FROM streamproc.source_partitions WHERE source = 'bids_src'}),
    "$produced|$nbad|$messages",
    'every message taken once: the good ones as rows, the others as dead letters, and the offsets add up');
is($node->safe_psql('postgres', q{SELECT rows_in, dead_letters FROM streamproc.sources WHERE name = 'bids_src'}),
    "$produced|$nbad", 'streamproc.sources counts the bids as rows and the malformed messages as dead letters');
my %per_partition;
$per_partition{ $_->[1] }++ for @bad;
is($node->safe_psql('postgres', q{
        SELECT string_agg(partition || ':' || dead_letters, ' ' ORDER BY partition)
          FROM streamproc.source_partitions WHERE source = 'bids_src'}),
    join(' ', map { "$_:" . ($per_partition{$_} // 0) } 0 .. 3),
    'each partition counts the malformed messages produced to it');

# ---------------------------------------------------------------- the topic, read back

# Every message of the topic, read back with kcat: where each malformed
# message landed (its partition and offset) is known from Kafka itself, not
# from the extension.
my ($topic_out, $topic_err) = ('', '');
IPC::Run::run([ $KCAT, '-C', '-b', $brokers, '-t', 'bids', '-o', 'beginning', '-e', '-q',
                '-f', "%p\t%o\t%s\n" ],
    '>', \$topic_out, '2>', \$topic_err, IPC::Run::timeout(180))
  or BAIL_OUT("kcat could not read the topic back: $topic_err");
my (%landed, $in_topic);
for my $line (split /\n/, $topic_out)
{
    $in_topic++;
    my ($partition, $offset, $payload) = split /\t/, $line, 3;
    push @{ $landed{$1} }, [ $partition, $offset, $payload ] if $payload =~ /(BAD-\d+)/;
}
is($in_topic, $messages, 'the topic holds every message produced');
# [ tag, the partitions where it is ] against [ tag, the partition it was sent to ]
is_deeply(
    [ map { my $tag = $_->[0]; [ $tag, map { $_->[0] } @{ $landed{$tag} // [] } ] } @bad ],
    [ map { [ $_->[0], $_->[1] ] } @bad ],
    'each malformed message is in the topic once, in the partition it was sent to');

# What streamproc.dead_letters must hold: each malformed message, at its
# partition and offset, with its payload and an error of its kind.
my $ref_file = $node->basedir . '/dead_letters_ref.tsv';
open(my $ref, '>', $ref_file) or die "$ref_file: $!";
for my $b (@bad)
{
    for my $l (@{ $landed{ $b->[0] } // [] })
    {
        print $ref join("\t", $b->[0], @{ $BAD_KINDS[ $b->[2] ] }[ 0, 1 ],
                        $l->[0], $l->[1], unpack('H*', $l->[2])) . "\n";
    }
}
close($ref);
$node->safe_psql('postgres', qq{
    CREATE TABLE dead_letters_ref (tag text, kind text, error text, partition int, "offset" bigint, payload text);
    COPY dead_letters_ref FROM '$ref_file';
});
is($node->safe_psql('postgres', q{
        SELECT count(*), count(DISTINCT (partition, "offset")) FROM streamproc.dead_letters}),
   "$nbad|$nbad", 'streamproc.dead_letters holds one row per malformed message, no position twice');
is($node->safe_psql('postgres', q{
        SELECT (SELECT count(*) FROM (SELECT source, topic, partition, "offset", encode(payload, 'hex')
                                        FROM streamproc.dead_letters
                                      EXCEPT ALL
                                      SELECT 'bids_src', 'bids', partition, "offset", payload
                                        FROM dead_letters_ref) extra),
               (SELECT count(*) FROM (SELECT 'bids_src', 'bids', partition, "offset", payload
                                        FROM dead_letters_ref
                                      EXCEPT ALL
                                      SELECT source, topic, partition, "offset", encode(payload, 'hex')
                                        FROM streamproc.dead_letters) missing)}),
   '0|0', 'streamproc.dead_letters holds exactly the malformed messages, with their partitions, offsets and payloads');
is($node->safe_psql('postgres', q{
        SELECT string_agg(r.tag || ': ' || coalesce(d.error, 'no dead letter'), E'\n' ORDER BY r.partition, r."offset")
          FROM dead_letters_ref r
          LEFT JOIN streamproc.dead_letters d USING (partition, "offset")
         WHERE d.error IS NULL OR d.error !~ r.error}),
   '', 'each malformed message was set aside for what is wrong with it');
note($node->safe_psql('postgres', q{
        SELECT string_agg(format('%s: %s dead letters, e.g. %s', kind, n, error), E'\n' ORDER BY kind)
          FROM (SELECT DISTINCT ON (r.kind) r.kind, d.error, count(*) OVER (PARTITION BY r.kind) AS n
                  FROM dead_letters_ref r JOIN streamproc.dead_letters d USING (partition, "offset")
                 ORDER BY r.kind, d.id) e}));

# ---------------------------------------------------------------- the views

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

# each view against the plain query over the bids produced
is(view_against_query($node, '(SELECT auction, window_start, bids, total, max_price FROM bids_10s) v',
           q{SELECT auction, date_bin('10 seconds', date_time, 'epoch'), count(*), sum(price), max(price)
               FROM bids_ref GROUP BY 1, 2}),
   '0|0', 'bids_10s equals the GROUP BY over the bids produced');
is(view_against_query($node, '(SELECT channel, bids, total, inverse FROM bids_by_channel) v',
           q{SELECT channel, count(*), sum(price), sum(1000000 / price) FROM bids_ref GROUP BY 1}),
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

only_our_crashes($node);

$node->stop;
$kafka->stop;
diag(sprintf('%.0f s in all', time - $t0));
done_testing();
