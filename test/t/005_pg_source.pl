# Exactly once from PostgreSQL logical replication under crashes.  An
# upstream server runs a random workload of inserts, updates (amounts,
# owners, i.e. rows moving between groups, and primary keys) and deletes
# while a pg source on a second server streams the table into a view; the
# source's worker is killed with SIGKILL again and again (the postmaster
# then reinitializes, as after any crash) and the server is stopped once in
# immediate mode.  At the end the view must equal the same GROUP BY over
# the upstream table exactly.  Then the upstream goes away: the source
# shows state error, and recovers when it is back.  Last, a table is
# copied while a workload changes it and the copying worker is killed:
# every change lands in the copy or in the stream, once.
#
# SP_TEST_SEED=N repeats a run's choices.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use StreamprocKafka qw(wait_until create_kill_applying_worker streamproc_node crash_source_node);

my $t0 = time;
my $seed = $ENV{SP_TEST_SEED} // int(rand(1_000_000));
srand($seed);
diag("random seed $seed (SP_TEST_SEED=$seed repeats this run's choices)");

# ---------------------------------------------------------------- upstream
my $up = PostgreSQL::Test::Cluster->new('upstream');
$up->init(allows_streaming => 'logical');
$up->start;
$up->safe_psql('postgres', q{
    CREATE TABLE accounts (id int PRIMARY KEY, owner int NOT NULL, amount int NOT NULL, pad text);
    INSERT INTO accounts SELECT g, g % 20, g % 97, repeat('p', g % 50) FROM generate_series(1, 3000) g;
    CREATE SEQUENCE new_ids START 100000;
    CREATE PUBLICATION pub FOR TABLE accounts;

    -- n transactions of 1 to 4 random changes each, committed one by one
    CREATE PROCEDURE workload(n int, seed float8, pause float8) LANGUAGE plpgsql AS $$
    DECLARE
        victim int;
        r float8;
    BEGIN
        PERFORM setseed(seed);
        FOR t IN 1..n LOOP
            FOR c IN 1..1 + floor(random() * 4)::int LOOP
                r := random();
                SELECT id INTO victim FROM accounts ORDER BY id
                 OFFSET floor(random() * (SELECT count(*) FROM accounts)) LIMIT 1;
                IF r < 0.30 OR victim IS NULL THEN        -- a new row
                    INSERT INTO accounts VALUES (nextval('new_ids'), floor(random() * 20)::int,
                                                 floor(random() * 100)::int, 'new');
                ELSIF r < 0.50 THEN                       -- an amount changes
                    UPDATE accounts SET amount = floor(random() * 100)::int WHERE id = victim;
                ELSIF r < 0.70 THEN                       -- the row moves to another group
                    UPDATE accounts SET owner = floor(random() * 20)::int WHERE id = victim;
                ELSIF r < 0.80 THEN                       -- the key changes (and the group)
                    UPDATE accounts SET id = nextval('new_ids'), owner = floor(random() * 20)::int
                     WHERE id = victim;
                ELSIF r < 0.85 THEN                       -- a column the stream lacks
                    UPDATE accounts SET pad = md5(random()::text) WHERE id = victim;
                ELSE
                    DELETE FROM accounts WHERE id = victim;
                END IF;
            END LOOP;
            COMMIT;
            IF pause > 0 THEN PERFORM pg_sleep(pause); END IF;
        END LOOP;
    END
    $$;
});

# ---------------------------------------------------------------- downstream
# a killed worker makes the postmaster reinitialize and start everything
# again, as in production
my $node = streamproc_node('downstream', restart_after_crash => 1);

my $conninfo = sprintf('host=%s port=%d dbname=postgres', $up->host, $up->port);
$node->safe_psql('postgres', qq{
    CREATE EXTENSION streamproc;
    SELECT streamproc.create_stream('accounts', 'id int, owner int, amount int');
    SELECT streamproc.create_view('by_owner', \$\$
        SELECT owner, count(*) AS accounts, sum(amount) AS total FROM accounts GROUP BY owner \$\$);
    SELECT streamproc.create_view('overall', \$\$
        SELECT count(*) AS accounts, sum(amount) AS total, avg(amount) AS mean FROM accounts \$\$);
    SELECT streamproc.create_pg_source('accounts_src', 'accounts', '$conninfo', 'pub', 'public.accounts');
});

# kill_applying_worker(seconds): SIGKILLs the worker caught applying a batch
# (see StreamprocKafka.pm; the Kafka test uses it too)
create_kill_applying_worker($node);

# the source's committed LSN is past the upstream's LSN $mark
sub caught_up_query
{
    my ($mark, $source) = @_;
    $source //= 'accounts_src';
    return qq{SELECT coalesce(lsn > '$mark', false) FROM streamproc.sources WHERE name = '$source'};
}

# the upstream's answer and the view's, row by row
sub compare
{
    my ($what) = @_;
    my $expected = $up->safe_psql('postgres',
        'SELECT owner, count(*), sum(amount) FROM accounts GROUP BY owner ORDER BY owner');
    my $got = $node->safe_psql('postgres',
        'SELECT owner, accounts, total FROM by_owner WHERE accounts <> 0 ORDER BY owner');
    is($got, $expected, "$what: the view equals the GROUP BY over the upstream table");
    is($node->safe_psql('postgres', 'SELECT accounts, total, round(mean, 6) FROM overall'),
       $up->safe_psql('postgres', 'SELECT count(*), sum(amount), round(avg(amount), 6) FROM accounts'),
       "$what: so does the view over all rows");
    is($node->safe_psql('postgres', 'SELECT count(*), sum(n) FROM streamproc.pg_source_rows'),
       $up->safe_psql('postgres', 'SELECT count(*), count(*) FROM accounts'),
       "$what: the keyed copy holds every upstream row once");
}

# settle: a last change upstream, and wait for the source to commit it
sub settle
{
    my ($what) = @_;
    my $mark = $up->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
    $up->safe_psql('postgres', 'UPDATE accounts SET pad = pad WHERE id = (SELECT min(id) FROM accounts)');
    my $took = wait_until($node, 'postgres', caught_up_query($mark), 't', 60);
    ok(defined $took, "$what: the source caught up");
    return $took;
}

# the slot exists and the copy is in once the source has a position
ok(defined wait_until($node, 'postgres',
        q{SELECT lsn IS NOT NULL FROM streamproc.sources WHERE name = 'accounts_src'}, 't', 60),
   'the initial copy committed');
my $took = settle('initial copy');
compare('initial copy');
is($node->safe_psql('postgres', q{SELECT rows_in FROM streamproc.sources WHERE name = 'accounts_src'}),
   '3001', 'every existing row copied once (and the settling update)');

# ---------------------------------------------------------------- crashes
# The workload runs on the upstream for the whole crash phase.
my ($wl_out, $wl_err) = ('', '');
my $workload = IPC::Run::start(
    [ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $conninfo,
      '-c', sprintf('CALL workload(4000, %f, 0.003)', rand()) ],
    '>', \$wl_out, '2>', \$wl_err);

my $ROUNDS = 6;
my $stop_round = 1 + int(rand($ROUNDS));
my ($kills, $in_batch, $stops) = (0, 0, 0);
for my $round (1 .. $ROUNDS)
{
    # the worker is up and has committed something new since this round began
    my $mark = $up->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
    defined wait_until($node, 'postgres', caught_up_query($mark), 't', 60)
      or BAIL_OUT("round $round: the source does not apply changes");

    my $how = crash_source_node($node,
        $round == $stop_round ? 'immediate' : $round % 2 ? 'in a batch' : 'at random',
        may_find_none => 1);
    $stops++    if $how eq 'immediate';
    $kills++    if $how eq 'in a batch' || $how eq 'at random';
    $in_batch++ if $how eq 'in a batch';
}
ok($workload->finish, 'the workload ran to its end') or diag($wl_err);
diag("$kills kills ($in_batch of the worker caught applying a batch), $stops immediate stop");
cmp_ok($kills, '>=', 4, 'at least 4 workers killed');
is($stops, 1, 'one immediate stop');

$took = settle('after the crashes');
diag(sprintf('caught up %.1f s after the workload ended', $took // -1));
compare('after the crashes');
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamproc.dead_letters'), '0', 'no dead letters');

# ---------------------------------------------------------------- upstream down
$up->stop('immediate');
ok(defined wait_until($node, 'postgres',
        q{SELECT state = 'error' AND last_error ~ 'upstream|WAL stream|connection|terminat'
            FROM streamproc.sources WHERE name = 'accounts_src'}, 't', 30),
   'upstream down: the source is in error');
diag('while the upstream is down: ' . $node->safe_psql('postgres',
        q{SELECT last_error FROM streamproc.sources WHERE name = 'accounts_src'}));
# no busy loop: a handful of attempts in a few seconds, not thousands
my $attempts_before = () = slurp_file($node->logfile) =~ /could not connect to the upstream server/g;
sleep(3);
my $attempts_after = () = slurp_file($node->logfile) =~ /could not connect to the upstream server/g;
cmp_ok($attempts_after, '>', 0, 'the source tries to connect while the upstream is down');
cmp_ok($attempts_after - $attempts_before, '<=', 5, 'retries back off while the upstream is down');

$up->start;
$up->safe_psql('postgres', q{CALL workload(300, 0.25, 0)});
$took = settle('upstream back');
ok(defined wait_until($node, 'postgres',
        q{SELECT state FROM streamproc.sources WHERE name = 'accounts_src'}, 'running', 30),
   'upstream back: the source runs again');
compare('upstream back');

# ---------------------------------------------------------------- a crash in the copy
# A worker killed while it copies a table starts over with a new slot: the
# copy counts once.  Meanwhile the table changes: what the slot streams and
# what the copy (in the slot's snapshot) holds neither overlap nor leave a
# gap.  (With REPLICA IDENTITY FULL rows are kept under their values with a
# count, so a change both copied and streamed counts twice; under a key it
# would replace itself.)
$up->safe_psql('postgres', q{
    CREATE TABLE big (id int PRIMARY KEY, g int, v int);
    ALTER TABLE big REPLICA IDENTITY FULL;
    INSERT INTO big SELECT i, i % 7, i % 1000 FROM generate_series(1, 200000) i;
    CREATE PUBLICATION big_pub FOR TABLE big;

    -- n transactions, each an update (moving the row to another group), a
    -- delete and an insert
    CREATE PROCEDURE big_workload(n int, pause float8) LANGUAGE plpgsql AS $$
    DECLARE
        victim int;
    BEGIN
        FOR t IN 1..n LOOP
            victim := 1 + floor(random() * 200000)::int;
            UPDATE big SET g = (g + 1) % 7, v = v + 1 WHERE id = victim;
            victim := 1 + floor(random() * 200000)::int;
            DELETE FROM big WHERE id = victim;
            INSERT INTO big VALUES (200000 + t, t % 7, t % 1000);
            COMMIT;
            PERFORM pg_sleep(pause);
        END LOOP;
    END
    $$;
});
my $big_workload = IPC::Run::start(
    [ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $conninfo,
      '-c', 'CALL big_workload(4000, 0.002)' ],
    '>', \$wl_out, '2>', \$wl_err);
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', qq{
    SELECT streamproc.create_stream('big', 'id int, g int, v int');
    SELECT streamproc.create_view('big_g', \$\$ SELECT g, count(*) AS n, sum(v) AS v FROM big GROUP BY g \$\$);
    SELECT streamproc.create_pg_source('big_src', 'big', '$conninfo', 'big_pub', 'public.big');
});
my $copier = '';
for (my $i = 0; $i < 600 && $copier eq ''; $i++)
{
    $copier = $node->safe_psql('postgres', q{
        SELECT pid FROM pg_stat_activity
         WHERE backend_type = 'streamproc source' AND query = 'copying the table'
           AND application_name = 'big_src'});
    usleep(20_000) if $copier eq '';
}
isnt($copier, '', 'caught the worker copying the table');
usleep(int(rand(500_000)));
kill('KILL', $copier) if $copier ne '';
$node->wait_for_log(
    qr/terminated by signal 9.*all server processes terminated; reinitializing.*ready to accept connections/s,
    $log_offset);
ok(defined wait_until($node, 'postgres',
        q{SELECT lsn IS NOT NULL FROM streamproc.sources WHERE name = 'big_src'}, 't', 60),
   'the copy committed after the crash');
like(PostgreSQL::Test::Utils::slurp_file($node->logfile, $log_offset),
     qr/dropping replication slot "streamproc_big_src" left by an unfinished copy/,
     'the slot of the unfinished copy was made anew');
ok($big_workload->finish, 'the workload on the copied table ran to its end') or diag($wl_err);
my $big_mark = $up->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$up->safe_psql('postgres', 'UPDATE big SET v = v WHERE id = (SELECT min(id) FROM big)');
ok(defined wait_until($node, 'postgres', caught_up_query($big_mark, 'big_src'), 't', 60),
   'the source of the copied table caught up');
is($node->safe_psql('postgres', 'SELECT g, n, v FROM big_g ORDER BY g'),
   $up->safe_psql('postgres', 'SELECT g, count(*), sum(v) FROM big GROUP BY g ORDER BY g'),
   'the copy counted every row once');
is($node->safe_psql('postgres', q{
       SELECT count(*), sum(n) FROM streamproc.pg_source_rows r
         JOIN streamproc.source_defs d ON d.id = r.source WHERE d.name = 'big_src'}),
   $up->safe_psql('postgres', 'SELECT count(*), count(*) FROM big'),
   'the keyed copy of the copied table holds every upstream row once');

# ---------------------------------------------------------------- drop
$node->safe_psql('postgres', q{SELECT streamproc.drop_source('accounts_src')});
$node->safe_psql('postgres', q{SELECT streamproc.drop_source('big_src')});
is($up->safe_psql('postgres', 'SELECT count(*) FROM pg_replication_slots'), '0',
   'drop_source dropped the slots upstream');

diag(sprintf('%.1f s', time - $t0));
$node->stop;
$up->stop;
done_testing();
