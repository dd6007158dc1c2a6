# Exactly once under crashes, for Debezium change events: a source with
# format 'debezium' keeps consuming the change stream of a table
# accounts(id, owner, balance, updated_at) -- snapshot reads, creates, many
# updates (some moving a row to another owner, or to another hour), deletes
# with and without tombstones, re-creates of deleted ids -- while its
# workers are killed with SIGKILL, some in the middle of applying a batch,
# and while the server is stopped in immediate mode.  An update applied twice
# retracts its old row twice, a delete applied twice takes a row out that is
# no longer there: at the end every continuous view must equal, exactly, the
# same aggregate over the table's final state (EXCEPT ALL both ways).
#
# The changes are generated here from the seed, the final state of the table
# with them; each id's changes go, in order, to partition id % 4, with the
# id as key.  SP_TEST_SEED=N repeats a run's changes and choices.
use strict;
use warnings;
use IO::Handle;
use List::Util qw(min shuffle);
use POSIX qw(WNOHANG);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use StreamprocKafka;

my $t0 = time;
my $seed = $ENV{SP_TEST_SEED} // int(rand(1_000_000));
srand($seed);
diag("random seed $seed (SP_TEST_SEED=$seed repeats this run's changes and choices)");

my $PARTITIONS = 4;
my $kafka   = StreamprocKafka->new;
my $brokers = $kafka->brokers;
is($kafka->command("topic accounts $PARTITIONS"), 'ok', "a topic with $PARTITIONS partitions");

my $node = streamproc_node('debezium_crash', restart_after_crash => 1);

# Only count, sum and avg can take rows back (min and max are refused on a
# stream with a CDC source; see sql/retractions.sql), so: those, by owner,
# by hour and owner (an update that changes updated_at moves the row to
# another window), and over the whole table.  No row is ever late: the
# watermark trails the changes by a day, and their updated_at span less
# than half of one.
$node->safe_psql('postgres', qq{
    CREATE EXTENSION streamproc;
    SELECT streamproc.create_stream('accounts',
        'id int, owner text, balance numeric, updated_at timestamptz',
        event_time => 'updated_at', watermark_delay => '1 day');
    SELECT streamproc.create_view('accounts_by_owner', \$\$
        SELECT owner, count(*) AS n, count(balance) AS with_balance, sum(balance) AS total,
               avg(balance) AS mean, sum(id) AS id_sum,
               count(*) FILTER (WHERE balance < 0) AS overdrawn
          FROM accounts GROUP BY owner \$\$);
    SELECT streamproc.create_view('accounts_hourly', \$\$
        SELECT streamproc.tumble(updated_at, '1 hour') AS hour, owner, count(*) AS n,
               sum(balance) AS total
          FROM accounts GROUP BY 1, 2 \$\$);
    SELECT streamproc.create_view('accounts_total', \$\$
        SELECT count(*) AS n, count(balance) AS with_balance, sum(balance) AS total,
               avg(balance) AS mean, sum(id) AS id_sum
          FROM accounts \$\$);
    -- small batches: many commits per second, so a crash lands between
    -- and inside them
    SELECT streamproc.create_kafka_source('accounts_src', 'accounts', '$brokers', 'accounts',
                                          format => 'debezium', parallelism => 2,
                                          batch_size => 300, batch_timeout => '20 ms');
});

# ---------------------------------------------------------------- the changes

# The table as the changes leave it: id => [owner, balance in cents, updated_at
# in ms since 1970], undef for NULL.
my %table;
# messages per partition, and the latest updated_at each partition has seen
my (@per_partition, @max_time);
# what the generator did, for the diagnostics and the checks that it did it
my %did;

my @OWNERS = qw(alice bob carol dave erin frank grace heidi);
my $EPOCH_MS = 1_767_225_600_000;    # 2026-01-01 00:00:00 UTC

sub pick_owner
{
    my $dice = rand;
    # a rare owner, whose group keeps emptying and coming back, and NULL
    return 'mallory' if $dice < 0.015;
    return undef if $dice < 0.03;
    return $OWNERS[ int(rand(@OWNERS)) ];
}

sub pick_balance
{
    return rand() < 0.05 ? undef : int(rand(2_000_000)) - 200_000;
}

sub json_str { return defined $_[0] ? qq{"$_[0]"} : 'null' }

sub iso_time
{
    my ($ms) = @_;
    my @t = gmtime(int($ms / 1000));
    return sprintf('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ',
        $t[5] + 1900, $t[4] + 1, @t[ 3, 2, 1, 0 ], $ms % 1000);
}

# exact decimal text of a balance in cents
sub money
{
    my ($cents) = @_;
    return undef unless defined $cents;
    return sprintf('%s%d.%02d', $cents < 0 ? '-' : '', int(abs($cents) / 100), abs($cents) % 100);
}

# a row image as Debezium writes it; updated_at either as epoch
# milliseconds or as an ISO string, balance as a number or a string
sub row_json
{
    my ($id, $row) = @_;
    return 'null' unless $row;
    my ($owner, $cents, $ms) = @$row;
    my $balance = money($cents) // 'null';
    $balance = qq{"$balance"} if defined $cents && rand() < 0.3;
    my $time = rand() < 0.5 ? $ms : qq{"} . iso_time($ms) . qq{"};
    return sprintf('{"id":%d,"owner":%s,"balance":%s,"updated_at":%s}', $id, json_str($owner), $balance, $time);
}

# one change event as the line kcat reads: "key<TAB>value" (an empty value
# is a tombstone); bare or wrapped as JsonConverter with schemas writes it
sub envelope
{
    my ($op, $id, $before, $after, $ms) = @_;
    my $payload = sprintf(
        '{"before":%s,"after":%s,"source":{"connector":"postgresql","db":"bank","table":"accounts","lsn":%d},'
          . '"op":"%s","ts_ms":%d,"transaction":null}',
        row_json($id, $before), row_json($id, $after), $ms, $op, $ms);
    $payload = qq({"schema":{"type":"struct","name":"bank.public.accounts.Envelope","optional":false},)
      . qq("payload":$payload})
      if rand() < 0.5;
    return "$id\t$payload";
}

# Generate $count changes to the ids $lo..$hi, beginning with a snapshot of
# $snapshot rows; returns [partition, line] in the order to produce them.
# Each call's ids are its own, so that producers running side by side keep
# each id's changes in order.  $clock is the updated_at of the next change.
sub changes
{
    my (%a) = @_;
    my (@live, %where, @deleted);
    my $next_id = $a{lo};
    my @out;
    # $ms: the updated_at of the row the change writes (a delete writes
    # none: the time of the row it removes was seen before)
    my $emit = sub {
        my ($id, $line, $ms) = @_;
        my $p = $id % $PARTITIONS;
        push @out, [ $p, $line ];
        $per_partition[$p]++;
        $max_time[$p] = $ms if defined $ms && (!defined $max_time[$p] || $ms > $max_time[$p]);
        return;
    };
    my $add = sub { my ($id) = @_; $where{$id} = @live; push @live, $id; return };
    my $remove = sub {
        my ($id) = @_;
        my $i = delete $where{$id};
        my $last = pop @live;
        if ($last != $id) { $live[$i] = $last; $where{$last} = $i }
        return;
    };
    for my $n (1 .. $a{count})
    {
        my $ms = ${ $a{clock} } += 500 + int(rand(1000));
        my $dice = rand;
        if ($n <= $a{snapshot} || !@live || ($dice < 0.22 && ($next_id <= $a{hi} || @deleted)))
        {
            my $id;
            if ($n > $a{snapshot} && @deleted && ($next_id > $a{hi} || rand() < 0.5))
            {
                $id = splice(@deleted, int(rand(@deleted)), 1);
                $did{recreates}++;
            }
            else
            {
                $id = $next_id++;
            }
            my $row = [ pick_owner(), pick_balance(), $ms ];
            my $op = $n <= $a{snapshot} ? 'r' : 'c';
            $did{$op}++;
            $emit->($id, envelope($op, $id, undef, $row, $ms), $ms);
            $table{$id} = $row;
            $add->($id);
        }
        elsif ($dice < 0.82)
        {
            my $id = $live[ int(rand(@live)) ];
            my $before = $table{$id};
            my $after = [@$before];
            $after->[2] = $ms;
            if (rand() < 0.35)
            {
                $after->[0] = pick_owner();
                $did{owner_changes}++;
            }
            $after->[1] = pick_balance() if rand() < 0.8;
            $did{u}++;
            $emit->($id, envelope('u', $id, $before, $after, $ms), $ms);
            $table{$id} = $after;
        }
        else
        {
            my $id = $live[ int(rand(@live)) ];
            $did{d}++;
            $emit->($id, envelope('d', $id, $table{$id}, undef, $ms));
            # Debezium's tombstone, for log compaction
            if (rand() < 0.3)
            {
                $emit->($id, "$id\t");
                $did{tombstones}++;
            }
            delete $table{$id};
            $remove->($id);
            push @deleted, $id;
        }
    }
    return \@out;
}

# Two sets of ids: one changed at a steady rate by a background producer for
# most of the run, the other in chunks, one chunk per crash round.
my $ROUNDS = 12;
my $CHUNK  = 3_000;
my ($bg_clock, $fg_clock) = ($EPOCH_MS, $EPOCH_MS);
my $bg_changes = changes(lo => 1, hi => 600, count => 12_000, snapshot => 300, clock => \$bg_clock);
my $fg_changes = changes(lo => 10_001, hi => 12_000, count => $ROUNDS * $CHUNK, snapshot => 1_000,
                         clock => \$fg_clock);
my $messages = @$bg_changes + @$fg_changes;
diag(sprintf('%d messages: %s; %d rows left', $messages,
        join(', ', map { "$_ $did{$_}" } sort keys %did), scalar keys %table));

# ---------------------------------------------------------------- producing

# Produce [partition, line] messages with kcat, one process per partition,
# from a child process, at $rate messages per second (0: at once).  kcat
# exits once every message is stored, non-zero if any failed.  (A helper
# like this could move to StreamprocKafka.pm, beside bidgen_start.)
sub produce_start
{
    my ($msgs, $rate) = @_;
    my $pid = fork() // BAIL_OUT("fork: $!");
    return { pid => $pid } if $pid;

    # the child: no Test::More or Cluster END blocks, ever
    my $ok = eval {
        my @kcat;
        for my $p (0 .. $PARTITIONS - 1)
        {
            open($kcat[$p], '|-', 'kcat', '-P', '-b', $brokers, '-t', 'accounts', '-p', $p,
                 '-K', '\t', '-Z', '-X', 'enable.idempotence=true')
              or die "kcat: $!";
        }
        my $start = time;
        my $n = 0;
        for my $m (@$msgs)
        {
            print { $kcat[ $m->[0] ] } $m->[1], "\n" or die "write: $!";
            next unless $rate && ++$n % 50 == 0;
            $_->flush for @kcat;
            my $ahead = $start + $n / $rate - time;
            usleep(int($ahead * 1e6)) if $ahead > 0;
        }
        my $all = 1;
        close($_) or $all = 0 for @kcat;
        $all;
    };
    print STDERR "producer: $@" if $@;
    POSIX::_exit($ok ? 0 : 1);
}

# Is a producer still producing?
sub produce_running
{
    my ($pr) = @_;
    return 0 if defined $pr->{status};
    return 1 if waitpid($pr->{pid}, WNOHANG) == 0;
    $pr->{status} = $?;
    return 0;
}

# Wait for a producer; dies unless every message was stored.
sub produce_finish
{
    my ($pr) = @_;
    $pr->{status} //= waitpid($pr->{pid}, 0) == $pr->{pid} ? $? : -1;
    $pr->{status} == 0 or BAIL_OUT("a kcat producer failed (status $pr->{status})");
    return;
}

# ---------------------------------------------------------------- crashes

create_kill_applying_worker($node);

# about 15 s of background changes, while the rounds go on
my $bg = produce_start($bg_changes, 800);

# Each round: produce the next twelfth of the other ids' changes at 2000
# messages/s, wait until the source is applying them, then crash while
# changes still arrive.  One random round stops the server in immediate
# mode; the others kill -9 a source worker: in half of them (in random
# order) one caught applying a batch, in the others a random one at a random
# moment.
my $slice = int((@$fg_changes + $ROUNDS - 1) / $ROUNDS);    # tombstones make them more than the changes
my %immediate = map { $_ => 1 } (shuffle(1 .. $ROUNDS))[0];
my @kill_modes = shuffle(('in a batch') x 6, ('at random') x 5);
my ($kills, $in_batch, $stops, $while_producing) = (0, 0, 0, 0);

my $workers_up = q{SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'streamproc source'};
for my $round (1 .. $ROUNDS)
{
    # both workers back from the last crash before the chunk begins, so that
    # they apply it as it arrives rather than all at once
    defined wait_until($node, 'postgres', $workers_up)
      or BAIL_OUT("round $round: the source workers do not come back");
    my $before = committed_messages($node);
    my $chunk = produce_start([ @$fg_changes[ $slice * ($round - 1) .. min($slice * $round, @$fg_changes) - 1 ] ],
                              2_000);
    defined wait_until($node, 'postgres', qq{
        SELECT ($workers_up)
           AND (SELECT coalesce(sum(rows_in) + sum(dead_letters), 0) FROM streamproc.source_partitions) > $before})
      or BAIL_OUT("round $round: the source does not consume");

    my $how = crash_source_node($node,
        $immediate{$round} ? 'immediate' : (shift(@kill_modes) // 'at random'),
        timeout => 5, as_it_lands => sub { $while_producing += produce_running($chunk) });
    $how eq 'immediate' ? $stops++ : $kills++;
    $in_batch++ if $how eq 'in a batch';
    produce_finish($chunk);
}
produce_finish($bg);

# ---------------------------------------------------------------- the end

my $per_partition = join(' ', map { $_ // 0 } @per_partition[ 0 .. $PARTITIONS - 1 ]);
my $caught_up = wait_until($node, 'postgres', qq{
    SELECT sum(rows_in) + sum(dead_letters) >= $messages AND sum(lag) = 0 AND count(*) = $PARTITIONS
      FROM streamproc.source_partitions WHERE source = 'accounts_src'});
ok(defined $caught_up, 'the source caught up after the crashes');
diag(sprintf('%d kills (%d of a worker caught applying a batch), %d immediate stop, '
        . '%d of these crashes while a chunk was being produced; caught up %.1f s after the last crash',
        $kills, $in_batch, $stops, $while_producing, $caught_up // -1));
is($kills, $ROUNDS - 1, 'a worker killed in every other round');
is($stops, 1, 'one immediate stop');
cmp_ok($in_batch, '>=', 1, 'at least one worker killed while it was applying a batch');

# Every partition holds what was produced to it (kcat neither lost nor
# repeated a message) and the source committed each message once.
is($node->safe_psql('postgres', q{
        SELECT string_agg(high_watermark_offset::text, ' ' ORDER BY partition),
               string_agg(committed_offset::text, ' ' ORDER BY partition),
               string_agg((rows_in + dead_letters)::text, ' ' ORDER BY partition)
          FROM streamproc.source_partitions WHERE source = 'accounts_src'}),
    "$per_partition|$per_partition|$per_partition",
    'per partition: messages in Kafka, committed offset, and messages counted all equal the messages produced');
is($node->safe_psql('postgres', q{
        SELECT state, rows_in, dead_letters, lag FROM streamproc.sources WHERE name = 'accounts_src'}),
    "running|$messages|0|0", 'streamproc.sources: every message counted once, no dead letters');
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamproc.dead_letters'), '0', 'no dead letters');

# The table the changes leave behind.
my $file = $node->basedir . '/accounts.tsv';
open(my $fh, '>', $file) or die "$file: $!";
for my $id (sort { $a <=> $b } keys %table)
{
    my ($owner, $cents, $ms) = @{ $table{$id} };
    print $fh join("\t", $id, $owner // '\N', money($cents) // '\N', iso_time($ms)), "\n";
}
close($fh) or die "$file: $!";
$node->safe_psql('postgres', qq{
    CREATE TABLE accounts_ref (id int PRIMARY KEY, owner text, balance numeric, updated_at timestamptz);
    COPY accounts_ref FROM '$file';
});
my $rows = scalar keys %table;
my $no_owner   = grep { !defined $_->[0] } values %table;
my $no_balance = grep { !defined $_->[1] } values %table;
my %owners     = map { ($_->[0] // '') => 1 } values %table;
is($node->safe_psql('postgres', q{
        SELECT count(*), count(*) FILTER (WHERE owner IS NULL), count(*) FILTER (WHERE balance IS NULL),
               count(DISTINCT coalesce(owner, '')) FROM accounts_ref}),
   join('|', $rows, $no_owner, $no_balance, scalar keys %owners), 'the reference table holds the final state');
# and the changes did what this test is about, plenty of times
cmp_ok($did{$_} // 0, '>=', 500, "changes include $_") for qw(u d owner_changes);
cmp_ok($did{$_} // 0, '>=', 100, "changes include $_") for qw(recreates tombstones);
cmp_ok($no_owner * $no_balance, '>', 0, 'NULL owners and balances are left in the table');

# each view against the same aggregate over the final table (and not empty)
is(view_against_query($node, '(SELECT owner, n, with_balance, total, mean, id_sum, overdrawn FROM accounts_by_owner) v',
           q{SELECT owner, count(*), count(balance), sum(balance), avg(balance), sum(id),
                    count(*) FILTER (WHERE balance < 0)
               FROM accounts_ref GROUP BY owner}, nonempty => 1),
   '0|0|t', 'accounts_by_owner equals the GROUP BY over the final table');
is(view_against_query($node, '(SELECT hour, owner, n, total FROM accounts_hourly) v',
           q{SELECT date_bin('1 hour', updated_at, 'epoch'), owner, count(*), sum(balance)
               FROM accounts_ref GROUP BY 1, 2}, nonempty => 1),
   '0|0|t', 'accounts_hourly equals the GROUP BY over the final table');
is(view_against_query($node, '(SELECT n, with_balance, total, mean, id_sum FROM accounts_total) v',
           q{SELECT count(*), count(balance), sum(balance), avg(balance), sum(id) FROM accounts_ref}, nonempty => 1),
   '0|0|t', 'accounts_total equals the aggregate over the final table');
is($node->safe_psql('postgres', q{SELECT string_agg(name::text || ' ' || rows_applied || '/' || late_rows, ', '
                                                    ORDER BY name::text)
                                    FROM streamproc.views}),
   "accounts_by_owner $rows/0, accounts_hourly $rows/0, accounts_total $rows/0",
   'streamproc.views: each view holds the rows left in the table, no late rows');

# The watermark moved with the batches: the least partition maximum of
# updated_at, less a day.
my $least_max = (sort { $a <=> $b } @max_time)[0];
is($node->safe_psql('postgres', q{SELECT streamproc.watermark('accounts')}),
   $node->safe_psql('postgres',
       qq{SELECT 'epoch'::timestamptz + $least_max * interval '1 millisecond' - interval '1 day'}),
   'the watermark is where the changes put it');

only_our_crashes($node);

$node->stop;
$kafka->stop;
diag(sprintf('%.0f s in all', time - $t0));
done_testing();
