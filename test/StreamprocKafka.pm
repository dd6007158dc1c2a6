# StreamprocKafka — what the Kafka TAP tests share: a private mock Kafka
# cluster (test/kafka/mock_kafka) driven through its standard input, the
# Nexmark-style bid generator (bench/kafka/bidgen), polling with a deadline
# of our own, a cluster with streamproc preloaded, and a way to kill a
# source worker in the middle of a batch (which the PostgreSQL source's
# test uses too).
#
# test/run copies both programs where the tests' user can run them and
# passes their paths in MOCK_KAFKA and BIDGEN; run by hand from the top of
# the checkout, the programs built by make are used.
package StreamprocKafka;

use strict;
use warnings;
use Carp;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use Exporter 'import';
our @EXPORT = qw(bidgen_produce bidgen_start bidgen_running bidgen_finish bidgen_print wait_until log_since
  streamproc_node create_kill_applying_worker crash_source_node only_our_crashes
  committed_messages view_against_query);

my $MOCK_KAFKA = $ENV{MOCK_KAFKA} // 'test/kafka/mock_kafka';
my $BIDGEN     = $ENV{BIDGEN}     // 'bench/kafka/bidgen';

# Every test's bids start here, so runs are reproducible.
our $START = '2026-11-22T10:00:00Z';

# ---------------------------------------------------------------- mock Kafka

# Start a mock cluster of $brokers brokers (ids 1..$brokers); it lives until
# stop() or the end of the test.
sub new
{
    my ($class, %args) = @_;
    my $self = bless { in => '', out => '', err => '' }, $class;
    my $brokers = $args{brokers} // 1;

    -x $MOCK_KAFKA
      or BAIL_OUT("mock Kafka cluster $MOCK_KAFKA not found (run make, or set MOCK_KAFKA)");
    $self->{run} = IPC::Run::start(
        [ $MOCK_KAFKA, '-b', $brokers ],
        '<', \$self->{in}, '>', \$self->{out}, '2>', \$self->{err});
    $self->{bootstrap} = $self->_line;
    $self->{bootstrap} =~ /:\d+/
      or BAIL_OUT("mock_kafka did not start: $self->{bootstrap} $self->{err}");
    return $self;
}

# the bootstrap address, "127.0.0.1:PORT,..."
sub brokers { return $_[0]->{bootstrap} }

# Send one command ("topic NAME N", "down ID", "up ID"); returns its answer
# ("ok" or "error: ...").
sub command
{
    my ($self, $cmd) = @_;
    $self->{in} .= "$cmd\n";
    return $self->_line;
}

# the next line the mock prints, waiting up to 30 s for it
sub _line
{
    my ($self) = @_;
    my $deadline = time + 30;
    my $line;
    until (defined($line = $self->{out} =~ s/^([^\n]*)\n// ? $1 : undef))
    {
        croak "mock_kafka did not answer (stderr: $self->{err})"
          if time > $deadline || !$self->{run}->pumpable;
        $self->{run}->pump_nb;
        usleep(10_000);
    }
    return $line;
}

sub stop
{
    my ($self) = @_;
    return unless $self->{run};
    # it keeps serving after its stdin closes: only a signal ends it
    $self->{run}->kill_kill(grace => 5);
    delete $self->{run};
    return;
}

sub DESTROY { $_[0]->stop }

# ---------------------------------------------------------------- bids

# the bidgen command line for chunk $args{seed} of $args{count} bids
sub _bidgen_args
{
    my (%args) = @_;
    return (
        '-n', $args{count}, '--seed', $args{seed},
        '--start', $args{start} // $START);
}

# Produce $args{count} bids (brokers, topic, count, seed, partitions: the
# partition of a bid is its auction modulo partitions).  Returns the number
# delivered; dies when bidgen fails.
sub bidgen_produce
{
    my (%args) = @_;
    my ($out, $err) = ('', '');
    -x $BIDGEN or BAIL_OUT("bid generator $BIDGEN not found (run make, or set BIDGEN)");
    my @cmd = (
        $BIDGEN, '-b', $args{brokers}, '-t', $args{topic},
        '-p', $args{partitions}, _bidgen_args(%args));
    IPC::Run::run(\@cmd, '>', \$out, '2>', \$err, IPC::Run::timeout(120))
      or croak "bidgen failed: $err";
    $err =~ /delivered=(\d+)/ or croak "bidgen said: $err";
    return $1;
}

# Start producing in the background, $args{rate} bids per second (same
# arguments as bidgen_produce); bidgen_finish waits for it.
sub bidgen_start
{
    my (%args) = @_;
    my $bg = { out => '', err => '' };
    -x $BIDGEN or BAIL_OUT("bid generator $BIDGEN not found (run make, or set BIDGEN)");
    $bg->{run} = IPC::Run::start(
        [
            $BIDGEN, '-b', $args{brokers}, '-t', $args{topic},
            '-p', $args{partitions}, '-r', $args{rate}, _bidgen_args(%args)
        ],
        '>', \$bg->{out}, '2>', \$bg->{err});
    return $bg;
}

# Is a background producer still producing?
sub bidgen_running
{
    my ($bg) = @_;
    return 0 unless $bg->{run}->pumpable;
    # pump_nb croaks once the pipes are closed: that is an answer too
    eval { $bg->{run}->pump_nb };
    return $bg->{run}->pumpable ? 1 : 0;
}

# Wait for a background producer; returns the number of bids delivered, or
# dies unless it delivered all it sent.
sub bidgen_finish
{
    my ($bg) = @_;
    $bg->{run}->finish or croak "bidgen failed: $bg->{err}";
    $bg->{err} =~ /delivered=(\d+)/ or croak "bidgen said: $bg->{err}";
    return $1;
}

# Append the very same bids as JSON lines to $file (bidgen is deterministic
# for the same seed, count and start).
sub bidgen_print
{
    my ($file, %args) = @_;
    my $err = '';
    IPC::Run::run([ $BIDGEN, '--print', _bidgen_args(%args) ],
        '>>', $file, '2>', \$err, IPC::Run::timeout(120))
      or croak "bidgen --print failed: $err";
    return;
}

# ---------------------------------------------------------------- polling

# Poll $sql on $node every 50 ms until it returns $expected ('t' by
# default), for at most $timeout seconds (default: the framework's 180).
# Returns the seconds it took, or undef on timeout (after a diag with the
# last answer).  Unlike poll_query_until, it says how long it took, so the
# tests can hold the extension to "within a few seconds".
sub wait_until
{
    my ($node, $db, $sql, $expected, $timeout) = @_;
    $expected //= 't';
    $timeout  //= $PostgreSQL::Test::Utils::timeout_default;
    my $t0 = time;
    my ($stdout, $stderr) = ('', '');
    while (1)
    {
        $node->psql($db, $sql, stdout => \$stdout, stderr => \$stderr);
        return time - $t0 if $stdout eq $expected;
        last if time - $t0 > $timeout;
        usleep(50_000);
    }
    diag("timed out after ${timeout}s waiting for\n$sql\nto return '$expected'; "
          . "last answer '$stdout', stderr '$stderr'");
    return undef;
}

# the server log from byte $offset on
sub log_since
{
    my ($node, $offset) = @_;
    return PostgreSQL::Test::Utils::slurp_file($node->logfile, $offset);
}

# ---------------------------------------------------------------- clusters and crashes

# A started cluster named $name with streamproc preloaded.  With
# restart_after_crash => 1, a killed process makes the postmaster
# reinitialize and start everything again, as in production (the test
# framework turns this off, so that any crash stops the server and the
# test with it).
sub streamproc_node
{
    my ($name, %args) = @_;
    my $node = PostgreSQL::Test::Cluster->new($name);
    $node->init;
    $node->append_conf('postgresql.conf', "shared_preload_libraries = 'streamproc'\n"
          . ($args{restart_after_crash} ? "restart_after_crash = on\n" : ''));
    $node->start;
    return $node;
}

# Create kill_applying_worker(seconds float8) RETURNS int in database $db
# (default postgres) of $node.  A batch is applied in a few milliseconds,
# too briefly for a kill sent from the test to land inside it by chance:
# the function waits, in the server, for a source worker to be applying a
# batch and SIGKILLs it at once (the server's user may run kill, and COPY TO
# PROGRAM runs it without a round trip).  It returns the pid, or NULL if no
# batch was seen within the time given; the session that calls it goes
# down with the crash.
sub create_kill_applying_worker
{
    my ($node, $db) = @_;
    $node->safe_psql($db // 'postgres', q{
    CREATE FUNCTION kill_applying_worker(seconds float8) RETURNS int LANGUAGE plpgsql AS $$
    DECLARE
        victim int;
        deadline timestamptz := clock_timestamp() + seconds * interval '1 second';
    BEGIN
        WHILE clock_timestamp() < deadline LOOP
            PERFORM pg_stat_clear_snapshot();
            SELECT pid INTO victim FROM pg_stat_activity
             WHERE backend_type = 'streamproc source' AND state = 'active'
               AND query = 'applying a batch'
             LIMIT 1;
            IF victim IS NOT NULL THEN
                EXECUTE format('COPY (SELECT) TO PROGRAM %L', 'kill -9 ' || victim);
                RETURN victim;
            END IF;
        END LOOP;
        RETURN NULL;
    END
    $$});
    return;
}

# One crash of $node (restart_after_crash on) while its source consumes in
# database postgres, and back up.  $how:
#   'immediate'   the server stops in immediate mode, after up to 0.3 s,
#                 and starts again;
#   'in a batch'  a worker caught applying a batch is SIGKILLed
#                 (kill_applying_worker, waiting up to timeout => seconds,
#                 default 2; create_kill_applying_worker first); if none is
#                 caught in time, as 'at random';
#   'at random'   a random source worker is SIGKILLed after up to 0.3 s.
# as_it_lands => sub { ... } runs as the crash lands (to see what was being
# produced then).  Returns what happened: 'immediate', 'in a batch' or 'at
# random'; or 'none' if there was no worker to kill and may_find_none =>
# 1 was given (else the test bails out).  After a SIGKILL it waits until
# the postmaster has reinitialized.
sub crash_source_node
{
    my ($node, $how, %args) = @_;
    my $log_offset = -s $node->logfile;

    if ($how eq 'immediate')
    {
        usleep(int(rand(300_000)));
        $args{as_it_lands}->() if $args{as_it_lands};
        $node->stop('immediate');
        $node->start;
        return 'immediate';
    }
    # (the function's own session goes down with the crash: no answer is
    # an answer)
    my ($rc, $victim) = (0, '');
    ($rc, $victim) = $node->psql('postgres', 'SELECT kill_applying_worker(' . ($args{timeout} // 2) . ')')
      if $how eq 'in a batch';
    my $caught = $how eq 'in a batch' && ($rc != 0 || $victim ne '');
    unless ($caught)
    {
        usleep(int(rand(300_000)));
        my @pids = split /\n/, $node->safe_psql('postgres',
            q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'streamproc source'});
        unless (@pids)
        {
            return 'none' if $args{may_find_none};
            BAIL_OUT('no source worker to kill');
        }
        $victim = $pids[ int(rand(@pids)) ];
        kill('KILL', $victim) or BAIL_OUT("could not kill $victim: $!");
    }
    $args{as_it_lands}->() if $args{as_it_lands};
    # SIGKILL: the postmaster reinitializes, like after any crash
    $node->wait_for_log(
        qr/terminated by signal 9.*all server processes terminated; reinitializing.*ready to accept connections/s,
        $log_offset);
    return $caught ? 'in a batch' : 'at random';
}

# The messages the Kafka sources of $node's database postgres have
# committed: rows and dead letters, over every partition.
sub committed_messages
{
    my ($node) = @_;
    return $node->safe_psql('postgres',
        q{SELECT coalesce(sum(rows_in) + sum(dead_letters), 0) FROM streamproc.source_partitions});
}

# The rows $view (a relation, or a parenthesized query with an alias) lacks
# and has in excess against $query (EXCEPT ALL both ways), in database
# postgres of $node: "missing|extra"; with nonempty => 1, "|t" follows if
# the view has rows.
sub view_against_query
{
    my ($node, $view, $query, %args) = @_;
    return $node->safe_psql('postgres', qq{
        SELECT (SELECT count(*) FROM (SELECT * FROM $view EXCEPT ALL $query) a),
               (SELECT count(*) FROM ($query EXCEPT ALL SELECT * FROM $view) b)}
          . ($args{nonempty} ? qq{, (SELECT count(*) FROM $view) > 0} : ''));
}

# Tests: the crashes in $node's log were ours only (SIGKILL, never another
# signal), with no PANIC or failed assertion.
sub only_our_crashes
{
    my ($node) = @_;
    my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
    my @signals = $log =~ /terminated by signal (\d+)/g;
    is_deeply([ grep { $_ != 9 } @signals ], [], 'no process died of anything but our SIGKILLs');
    unlike($log, qr/PANIC|TRAP:/, 'no PANIC, no failed assertion');
    return;
}

1;
