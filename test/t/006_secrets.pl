# Secrets stay secret while sources fail.  Kafka sources whose librdkafka
# options hold passwords (sasl.password, ssl.key.password,
# sasl.oauthbearer.config) and PostgreSQL sources whose connection strings
# hold passwords (password=, sslpassword=, a URI's user:password@) are run
# into failures: a broker that goes down, a port where nobody listens, a
# broker that refuses the SASL and SSL handshakes, an upstream server that
# refuses the password, an upstream server that is down.  Creations that
# must be refused are tried too.  Once the workers have failed and retried
# several times, every secret is looked for everywhere a user or an
# operator can read: the server log of every node, every relation (and
# every reporting function) of the streamproc schema, as a superuser, as a
# member of streamproc_admin and as a plain user, pg_stat_activity on both
# nodes, and the messages the clients got.  The one place a secret may be
# is the catalog row the worker reads it from: streamproc.source_defs
# (options for Kafka, conninfo for PostgreSQL), which only superusers may
# read.
#
# Not covered: a wrong SASL password.  The mock cluster of librdkafka
# 2.0.2 has no SASL at all (rdkafka_mock.h has no credentials, and its
# brokers answer no SaslHandshake), so the SASL sources here fail at the
# handshake, after librdkafka has loaded the credentials but before it
# sends them.  An oauthbearer.config that librdkafka cannot parse is among
# the creations refused: with enable.sasl.oauthbearer.unsecure.jwt,
# librdkafka 2.0.2 would crash in its own thread (and the server with it),
# its error quoting the config from the first word it does not know.  The
# Kafka sources' own retries: k_down's are librdkafka's
# reconnections (its worker keeps its partitions and waits for the broker),
# the others' are runs of the worker that fail and start over.
#
# The statements that carry a secret run with log_statement and
# log_min_error_statement off for their session (the framework logs every
# statement): a statement's own text is the client's, and PostgreSQL, not
# streamproc, would write it to the log, as it would ALTER ROLE ...
# PASSWORD or CREATE SUBSCRIPTION.  Everything else is searched as it is.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use StreamprocKafka qw(log_since streamproc_node);

my $t0 = time;

# ---------------------------------------------------------------- the secrets
# Distinctive values, none a part of another, new for every run.
my $r = join('', map { ('a' .. 'z', '0' .. '9')[ int(rand(36)) ] } 1 .. 12);
my %secret = (
    # in sources that exist while they fail: in source_defs, and nowhere else
    k_down_password    => "S3cretKafka-down-$r",
    k_down_sslkey      => "S3cretSslKey-down-$r",
    k_down_username    => "S3cretUser-down-$r",
    k_port_password    => "S3cretKafka-port-$r",
    k_sasl_password    => "S3cretKafka-sasl-$r",
    k_sasl_username    => "S3cretUser-sasl-$r",
    k_ssl_password     => "S3cretKafka-ssl-$r",
    k_ssl_sslkey       => "S3cretSslKey-ssl-$r",
    k_oauth_config     => "S3cretOauth-$r",
    pg_refused_password => "S3cretPg-refused-$r",
    pg_refused_sslpassword => "S3cretPgSsl-refused-$r",
    pg_down_password   => "S3cretPg-down-$r",
    # refused at creation, or never given to streamproc: nowhere at all
    rejected_oidc      => "S3cretOidc-$r",
    rejected_jwt       => "S3cretJwt-$r",
    rejected_nested    => "S3cretNested-$r",
    rejected_array     => "S3cretArray-$r",
    rejected_pg_wrong  => "S3cretPg-wrong-$r",
    rejected_pg_quote  => "S3cretPg-quote-$r",
    rejected_pg_uri    => "S3cretPg-uri-$r",
    upstream_changed   => "S3cretPg-changed-$r",
);
# where each secret belongs (the rest belong nowhere)
my %home = (
    (map { $_ => 'streamproc.source_defs.options' } grep { /^k_/ } keys %secret),
    (map { $_ => 'streamproc.source_defs.conninfo' } grep { /^pg_/ } keys %secret),
);

# ---------------------------------------------------------------- helpers
# (candidates for StreamprocKafka.pm: secret_psql, log_count,
# wait_for_log_count, readable_texts, secret_places)

# Run SQL that carries a secret, with statement logging off for the
# session; returns ($rc, $stdout, $stderr).  VERBOSITY verbose: the client
# sees every field of an error.
my @client_messages;
sub secret_psql
{
    my ($node, $sql) = @_;
    my ($out, $err) = ('', '');
    my $rc = $node->psql('postgres',
        "SET log_statement = 'none';\nSET log_min_error_statement = 'panic';\n\\set VERBOSITY verbose\n$sql",
        stdout => \$out, stderr => \$err);
    push @client_messages, $out, $err;
    return ($rc, $out, $err);
}

# a SQL string literal (the values here need no more than this)
sub lit
{
    my ($s) = @_;
    $s =~ s/'/''/g;
    return "'$s'";
}

# options as a jsonb literal
sub options
{
    my (%o) = @_;
    return lit(JSON::PP->new->canonical->encode(\%o)) . '::jsonb';
}

# the number of lines of $node's log that match $re
sub log_count
{
    my ($node, $re) = @_;
    my @lines = grep { /$re/ } split /\n/, log_since($node, 0);
    return scalar @lines;
}

# What the test samples while it waits: pg_stat_activity of both nodes
# (the upstream only while it is up), each row as JSON text.
my %activity;    # "node: row" => 1
my $up_running = 0;
my ($node, $up);
sub sample_activity
{
    for my $n ([ 'downstream', $node, 1 ], [ 'upstream', $up, $up_running ])
    {
        my ($label, $pg, $running) = @$n;
        next unless $pg && $running;
        my ($out, $err) = ('', '');
        $pg->psql('postgres', q{
            SELECT row_to_json(a) FROM pg_stat_activity a WHERE pid <> pg_backend_pid()
            UNION ALL SELECT row_to_json(r) FROM pg_stat_replication r
            UNION ALL SELECT row_to_json(s) FROM pg_replication_slots s},
            stdout => \$out, stderr => \$err, on_error_stop => 0);
        $activity{"$label: $_"} = 1 for split /\n/, $out;
    }
    return;
}

# Poll until $check returns true, sampling pg_stat_activity meanwhile; at
# most $timeout seconds.  False (after a diag) on timeout.
sub poll_until
{
    my ($what, $timeout, $check) = @_;
    my $deadline = time + $timeout;
    while (1)
    {
        sample_activity();
        return 1 if $check->();
        last if time > $deadline;
        usleep(250_000);
    }
    diag("timed out after ${timeout}s waiting for $what");
    return 0;
}

# wait until at least $n lines of $node's log match $re
sub wait_for_log_count
{
    my ($node, $re, $n, $what, $timeout) = @_;
    my $ok = poll_until($what, $timeout // 180, sub { log_count($node, $re) >= $n });
    ok($ok, $what) or diag('matching lines: ' . log_count($node, $re));
    return $ok;
}

# the text of a value decoded from JSON
sub text_of
{
    my ($v) = @_;
    return '' unless defined $v;
    return ref $v ? JSON::PP->new->canonical->encode($v) : "$v";
}

# Everything $role (undef: the superuser the test runs as) may read in the
# streamproc schema: every relation it may SELECT (the columns it may
# read), and every set-returning function without arguments it may call.
# Returns { "relation.column" => [ texts ] } and the names of what it read.
sub readable_texts
{
    my ($role) = @_;
    my %texts;
    my $set_role = defined $role ? "SET ROLE $role;\n" : '';
    my $rel_priv = defined $role ? "has_any_column_privilege('$role', c.oid, 'SELECT')" : 'true';
    my $col_priv = defined $role ? "has_column_privilege('$role', a.attrelid, a.attnum, 'SELECT')" : 'true';
    my $fn_priv  = defined $role ? "has_function_privilege('$role', p.oid, 'EXECUTE')" : 'true';
    my (@things, @read);
    for my $rel (split /\n/, $node->safe_psql('postgres', qq{
            SELECT c.oid::regclass::text || '|' ||
                   (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
                      FROM pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND $col_priv)
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'streamproc' AND c.relkind IN ('r', 'v', 'm', 'p', 'f') AND $rel_priv
             ORDER BY 1}))
    {
        my ($name, $cols) = split /\|/, $rel, 2;
        push @things, [ $name, "SELECT $cols FROM $name" ];
    }
    for my $fn (split /\n/, $node->safe_psql('postgres', qq{
            SELECT p.oid::regproc::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'streamproc' AND p.pronargs = 0 AND p.proretset AND $fn_priv
             ORDER BY 1}))
    {
        push @things, [ "$fn()", "SELECT * FROM $fn()" ];
    }
    for my $thing (@things)
    {
        my ($name, $query) = @$thing;
        my ($out, $err) = ('', '');
        my $rc = $node->psql('postgres', "${set_role}SELECT row_to_json(t) FROM ($query) t",
            stdout => \$out, stderr => \$err);
        # what the privileges seemed to allow but a function inside refuses
        next if $rc != 0 && $err =~ /permission denied/;
        die "reading $name: $err" if $rc != 0;
        push @read, $name;
        for my $line (split /\n/, $out)
        {
            my $row = decode_json($line);
            push @{ $texts{"$name.$_"} }, text_of($row->{$_}) for keys %$row;
        }
    }
    return (\%texts, \@read);
}

# { secret name => [ places ] } for the secrets found in $texts (as they
# are, or hex-encoded as bytea shows them)
sub secret_places
{
    my ($texts) = @_;
    my %found;
    for my $name (sort keys %secret)
    {
        my $hex = unpack('H*', $secret{$name});
        for my $place (sort keys %$texts)
        {
            push @{ $found{$name} }, $place
              if grep { index($_, $secret{$name}) >= 0 || index(lc $_, $hex) >= 0 } @{ $texts->{$place} };
        }
    }
    return \%found;
}

# The lines of a text that hold a secret: { secret name => [ lines ] }
sub secret_lines
{
    my ($text) = @_;
    my %found;
    for my $line (split /\n/, $text)
    {
        for my $name (sort keys %secret)
        {
            push @{ $found{$name} }, $line if index($line, $secret{$name}) >= 0;
        }
    }
    return \%found;
}

# no secret in $text; else a diag of the lines that hold one
sub no_secret_in
{
    my ($text, $what) = @_;
    my $found = secret_lines($text);
    ok(!%$found, "no secret in $what")
      or diag(join("\n", map { my $n = $_; map { "  $n: $_" } @{ $found->{$n} } } sort keys %$found));
    return;
}

# the searches find what they look for
ok(secret_lines("a line with $secret{k_oauth_config} in it")->{k_oauth_config},
   'the search finds a secret in a line');
ok(secret_places({ 'x.y' => [ '\\x' . unpack('H*', "..$secret{pg_down_password}..") ] })->{pg_down_password},
   'the search finds a secret in bytea as it is shown');

# ---------------------------------------------------------------- Kafka clusters
# A: the source reads from it until it goes down.  B: stays up, and refuses
# SASL and SSL (it speaks neither).  A port where nobody listens: reserved
# for the test, so no other node takes it.
my $kafka_a = StreamprocKafka->new(brokers => 1);
my $kafka_b = StreamprocKafka->new(brokers => 1);
is($kafka_a->command('topic events 1'), 'ok', 'cluster A: a topic');
is($kafka_b->command("topic $_ 1"), 'ok', "cluster B: topic $_") for qw(sasl_t ssl_t oauth_t);
my $closed = PostgreSQL::Test::Cluster::get_free_port();

# ---------------------------------------------------------------- upstream
# Password authentication (SCRAM) for the sources' roles, ahead of the
# framework's trust lines; TCP as well as the socket.
$up = PostgreSQL::Test::Cluster->new('secrets_upstream');
$up->init(allows_streaming => 'logical');
$up->append_conf('postgresql.conf', "listen_addresses = '127.0.0.1'\nlog_connections = on\n");
{
    my $hba = $up->data_dir . '/pg_hba.conf';
    my $old = slurp_file($hba);
    open(my $fh, '>', $hba) or die "could not write $hba: $!";
    print $fh "local all sp_refused scram-sha-256\n",
      "host all sp_refused 127.0.0.1/32 scram-sha-256\n",
      "host all sp_down 127.0.0.1/32 scram-sha-256\n",
      $old;
    close($fh);
}
$up->start;
$up_running = 1;
$up->safe_psql('postgres', q{
    CREATE TABLE accounts (id int PRIMARY KEY, owner int NOT NULL, amount int NOT NULL);
    INSERT INTO accounts SELECT g, g % 5, g FROM generate_series(1, 20) g;
    CREATE PUBLICATION pub FOR TABLE accounts;
});
{
    my ($rc, $out, $err) = secret_psql($up, sprintf(q{
        CREATE ROLE sp_refused LOGIN REPLICATION PASSWORD %s;
        CREATE ROLE sp_down LOGIN REPLICATION PASSWORD %s;
        GRANT SELECT ON accounts TO sp_refused, sp_down;},
        lit($secret{pg_refused_password}), lit($secret{pg_down_password})));
    is($rc, 0, 'upstream: the sources\' roles, with passwords') or diag($err);
}

# ---------------------------------------------------------------- downstream
$node = streamproc_node('secrets');
# Debug output of librdkafka (the k_down source asks for its connections,
# security and configuration) goes to the log at DEBUG1, as an operator
# looking into a failing source would have it.  Workers read the database's
# settings when they start.
$node->safe_psql('postgres', q{
    ALTER DATABASE postgres SET log_min_messages = debug1;
    CREATE EXTENSION streamproc;
    SELECT streamproc.create_stream('events', 'id int, v text');
    SELECT streamproc.create_stream('accounts_refused', 'id int, owner int, amount int');
    SELECT streamproc.create_stream('accounts_down', 'id int, owner int, amount int');
    CREATE ROLE sp_reader;
    CREATE ROLE sp_admin IN ROLE streamproc_admin;
});

my $brokers_a = $kafka_a->brokers;
my $brokers_b = $kafka_b->brokers;
my $sock_conninfo = sprintf('host=%s port=%d dbname=postgres user=sp_refused', $up->host, $up->port);
my $tcp = sprintf('127.0.0.1:%d', $up->port);

# ---------------------------------------------------------------- refused at creation
my @refused = (
    [
        'a secret option librdkafka does not accept',
        qq{SELECT streamproc.create_kafka_source('bad_oidc', 'events', '$brokers_b', 'events', options => }
          . options('sasl.oauthbearer.client.secret' => $secret{rejected_oidc}) . ')',
        qr/invalid Kafka option "sasl\.oauthbearer\.client\.secret".*DETAIL:  The value was rejected \(not shown/s
    ],
    [
        'an unsecured JWT config librdkafka cannot parse (it would crash the worker)',
        qq{SELECT streamproc.create_kafka_source('bad_jwt', 'events', '$brokers_b', 'events', options => }
          . options('security.protocol' => 'SASL_PLAINTEXT', 'sasl.mechanisms' => 'OAUTHBEARER',
                    'enable.sasl.oauthbearer.unsecure.jwt' => 'true',
                    'sasl.oauthbearer.config' => "principal=x bogus=$secret{rejected_jwt}") . ')',
        qr/invalid Kafka option "sasl\.oauthbearer\.config": item 2 .*DETAIL:  The value is not shown/s
    ],
    [
        'a secret option that is an object',
        qq{SELECT streamproc.create_kafka_source('bad_nested', 'events', '$brokers_b', 'events', options => }
          . options('sasl.password' => { value => $secret{rejected_nested} }) . ')',
        qr/option "sasl\.password" must be a string, number or boolean/
    ],
    [
        'a secret option that is an array',
        qq{SELECT streamproc.create_kafka_source('bad_array', 'events', '$brokers_b', 'events', options => }
          . options('ssl.key.password' => [ $secret{rejected_array} ]) . ')',
        qr/option "ssl\.key\.password" must be a string, number or boolean/
    ],
    [
        'a wrong password for the upstream server',
        sprintf(q{SELECT streamproc.create_pg_source('bad_password', 'accounts_refused', %s, 'pub', 'public.accounts')},
            lit("$sock_conninfo password=$secret{rejected_pg_wrong}")),
        qr/password authentication failed for user "sp_refused"/
    ],
    [
        'a connection string libpq cannot parse (an open quote)',
        sprintf(q{SELECT streamproc.create_pg_source('bad_quote', 'accounts_refused', %s, 'pub', 'public.accounts')},
            lit("$sock_conninfo password='$secret{rejected_pg_quote}")),
        qr/invalid connection string.*DETAIL:  libpq could not parse it \(its message is not shown/s
    ],
    [
        'a URI libpq cannot parse',
        sprintf(q{SELECT streamproc.create_pg_source('bad_uri', 'accounts_refused', %s, 'pub', 'public.accounts')},
            lit("postgresql://sp_refused:$secret{rejected_pg_uri}\@[$tcp/postgres")),
        qr/invalid connection string.*DETAIL:  libpq could not parse it \(its message is not shown/s
    ],
);
for my $case (@refused)
{
    my ($what, $sql, $expected) = @$case;
    my ($rc, $out, $err) = secret_psql($node, $sql);
    isnt($rc, 0, "refused at creation: $what");
    like($err, $expected, "refused at creation: $what: the error says why");
    no_secret_in($err, "the error the client got for $what");
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamproc.source_defs'), '0',
   'no refused source was created');

# ---------------------------------------------------------------- the sources
my $sasl = { 'security.protocol' => 'SASL_PLAINTEXT', 'sasl.mechanisms' => 'PLAIN' };
my ($rc, $out, $err) = secret_psql($node, join(";\n",
    qq{SELECT streamproc.create_kafka_source('k_down', 'events', '$brokers_a', 'events', options => }
      . options(
        debug              => 'generic,broker,security,conf',
        'sasl.username'    => $secret{k_down_username},
        'sasl.password'    => $secret{k_down_password},
        'ssl.key.password' => $secret{k_down_sslkey}) . ')',
    qq{SELECT streamproc.create_kafka_source('k_port', 'events', '127.0.0.1:$closed', 'port_t', options => }
      . options(%$sasl, 'sasl.username' => 'streamproc', 'sasl.password' => $secret{k_port_password}) . ')',
    qq{SELECT streamproc.create_kafka_source('k_sasl', 'events', '$brokers_b', 'sasl_t', options => }
      . options(%$sasl,
        'sasl.username' => $secret{k_sasl_username},
        'sasl.password' => $secret{k_sasl_password}) . ')',
    qq{SELECT streamproc.create_kafka_source('k_ssl', 'events', '$brokers_b', 'ssl_t', options => }
      . options(
        'security.protocol' => 'SASL_SSL', 'sasl.mechanisms' => 'SCRAM-SHA-512',
        'sasl.username'     => 'streamproc',
        'sasl.password'     => $secret{k_ssl_password},
        'ssl.key.password'  => $secret{k_ssl_sslkey}) . ')',
    # librdkafka's unsecured JWT (the OIDC settings are not in this build),
    # the secret in an extension of the token
    qq{SELECT streamproc.create_kafka_source('k_oauth', 'events', '$brokers_b', 'oauth_t', options => }
      . options(
        'security.protocol' => 'SASL_PLAINTEXT', 'sasl.mechanisms' => 'OAUTHBEARER',
        'enable.sasl.oauthbearer.unsecure.jwt' => 'true',
        'sasl.oauthbearer.config' => "principal=streamproc extension_traceId=$secret{k_oauth_config}") . ')',
    sprintf(q{SELECT streamproc.create_pg_source('pg_refused', 'accounts_refused', %s, 'pub', 'public.accounts')},
        lit("$sock_conninfo password=$secret{pg_refused_password} sslpassword=$secret{pg_refused_sslpassword}")),
    sprintf(q{SELECT streamproc.create_pg_source('pg_down', 'accounts_down', %s, 'pub', 'public.accounts')},
        lit("postgresql://sp_down:$secret{pg_down_password}\@$tcp/postgres")),
) . ';');
is($rc, 0, 'the sources are created') or diag($err);

# streamproc.sources shows the settings, masked
is($node->safe_psql('postgres', q{
        SELECT string_agg(name || ':' || (SELECT string_agg(key || '=' || value, ',' ORDER BY key)
                                            FROM jsonb_each_text(options)
                                           WHERE key ~ 'password|username|oauthbearer.config'), ' ' ORDER BY name)
          FROM streamproc.sources WHERE kind = 'kafka'}),
   'k_down:sasl.password=********,sasl.username=********,ssl.key.password=******** '
     . 'k_oauth:sasl.oauthbearer.config=******** '
     . 'k_port:sasl.password=********,sasl.username=******** '
     . 'k_sasl:sasl.password=********,sasl.username=******** '
     . 'k_ssl:sasl.password=********,sasl.username=********,ssl.key.password=********',
   'streamproc.sources shows the secret options masked');
is($node->safe_psql('postgres', q{SELECT conninfo FROM streamproc.sources WHERE name = 'pg_refused'}),
   sprintf('user=sp_refused password=******** dbname=postgres host=%s port=%d sslpassword=********', $up->host, $up->port),
   'streamproc.sources shows the keyword connection string masked');
like($node->safe_psql('postgres', q{SELECT conninfo FROM streamproc.sources WHERE name = 'pg_down'}),
     qr/^user=sp_down password=\*{8} dbname=postgres host=127\.0\.0\.1 port=\d+$/,
     'streamproc.sources shows the URI masked');

# the sources that can work do, before things go wrong
$node->safe_psql('postgres', qq{
    SELECT streamproc.kafka_produce('$brokers_a', 'events', '{"id": 1, "v": "a"}');
    SELECT streamproc.kafka_produce('$brokers_a', 'events', '{"id": 2, "v": "b"}');});
ok(poll_until('k_down to consume', 120, sub {
        $node->safe_psql('postgres', q{SELECT rows_in FROM streamproc.sources WHERE name = 'k_down'}) eq '2' }),
   'k_down consumes from cluster A');
ok(poll_until('the pg sources to copy the table', 120, sub {
        $node->safe_psql('postgres', q{
            SELECT count(*) FILTER (WHERE lsn IS NOT NULL AND rows_in = 20) FROM streamproc.sources WHERE kind = 'pg'}) eq '2' }),
   'both pg sources copied the upstream table with their passwords');

# ---------------------------------------------------------------- failures
# Kafka: cluster A goes down under k_down; the others fail from the start.
is($kafka_a->command('down 1'), 'ok', 'cluster A down');

# pg_refused: the upstream changes the password, and the walsender goes
{
    my ($rc, $out, $err) = secret_psql($up, sprintf(q{
        ALTER ROLE sp_refused PASSWORD %s;
        SELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication WHERE application_name = 'pg_refused';},
        lit($secret{upstream_changed})));
    is($rc, 0, 'upstream: a new password for sp_refused, and its walsender terminated') or diag($err);
}
wait_for_log_count($up, qr/FATAL: .*password authentication failed for user "sp_refused"/, 3,
    'pg_refused: the upstream refused its password three times');
wait_for_log_count($node,
    qr/ERROR: .*could not connect to the upstream server: .*password authentication failed for user "sp_refused"/, 3,
    'pg_refused: three ERRORs in the log');

# pg_down: the upstream goes (pg_refused then fails to connect too)
sample_activity();
$up_running = 0;
$up->stop('immediate');
wait_for_log_count($node,
    qr/ERROR: .*could not connect to the upstream server: connection to server at "127\.0\.0\.1", port ${\ $up->port} failed/, 3,
    'pg_down: three failed connections to the stopped upstream in the log');

# Kafka
# (librdkafka goes on trying, and logs a failure that repeats only once)
wait_for_log_count($node, qr/LOG: .*streamproc source "k_down": librdkafka FAIL: .*Connection refused/, 1,
    'k_down: librdkafka logs the refused connection to cluster A');
for my $k ([ 'k_port', 'port_t' ], [ 'k_sasl', 'sasl_t' ], [ 'k_ssl', 'ssl_t' ], [ 'k_oauth', 'oauth_t' ])
{
    my ($source, $topic) = @$k;
    wait_for_log_count($node, qr/ERROR: .*could not get metadata of Kafka topic "$topic"/, 2,
        "$source: two failed runs (ERROR in the log), a retry between them");
}
# (librdkafka's own messages reach the log only from a worker that polls,
# that is one that got its partitions: k_down)
wait_for_log_count($node, qr/DEBUG: .*streamproc source "k_down": librdkafka CONF: .*sasl\.password = /, 1,
    'k_down: librdkafka\'s debug output (its configuration) is in the log');

# every source shows its failure, with what the brokers said
my %last_error = (
    k_down     => qr/Kafka: .*(?:Connection refused|brokers are down)/,
    k_port     => qr/could not get metadata of Kafka topic "port_t".*last error: .*Connection refused/,
    k_sasl     => qr/could not get metadata of Kafka topic "sasl_t".*last error: .*SASL/,
    k_ssl      => qr/could not get metadata of Kafka topic "ssl_t".*last error: .*SSL/,
    k_oauth    => qr/could not get metadata of Kafka topic "oauth_t".*last error: .*OAUTHBEARER/,
    pg_refused => qr/could not connect to the upstream server/,
    pg_down    => qr/could not connect to the upstream server/,
);
for my $source (sort keys %last_error)
{
    ok(poll_until("last_error of $source", 60, sub {
            $node->safe_psql('postgres', qq{SELECT last_error FROM streamproc.sources WHERE name = '$source'})
              =~ $last_error{$source} }),
       "$source: streamproc.sources shows the failure in last_error");
}
diag("last errors:\n" . $node->safe_psql('postgres',
    q{SELECT name || ' [' || state || ']: ' || last_error FROM streamproc.sources ORDER BY name}));

# ---------------------------------------------------------------- the search
# The superuser reads everything: each secret of a source is where the
# worker reads it, and nowhere else; the others are nowhere.
{
    my ($texts, $read) = readable_texts(undef);
    ok((grep { $_ eq 'streamproc.source_defs' } @$read) && (grep { $_ eq 'streamproc.sources' } @$read),
       'the superuser reads source_defs and sources');
    diag('the superuser read ' . join(', ', @$read));
    my $found = secret_places($texts);
    for my $name (sort keys %secret)
    {
        is(join(', ', @{ $found->{$name} // [] }), $home{$name} // '',
           "$name: " . ($home{$name} ? "only in $home{$name}" : 'nowhere') . ' (superuser)');
    }
}
# Users who are not superusers read no secret, whatever they may read.
for my $role (qw(sp_admin sp_reader))
{
    my ($texts, $read) = readable_texts($role);
    ok((grep { $_ eq 'streamproc.sources' } @$read), "$role reads streamproc.sources");
    ok(!(grep { $_ eq 'streamproc.source_defs' } @$read), "$role may not read streamproc.source_defs");
    my $found = secret_places($texts);
    is(join('; ', map { "$_ in " . join(', ', @{ $found->{$_} }) } sort keys %$found), '',
       "no secret in anything $role may read in the streamproc schema");
    diag("$role read " . join(', ', @$read));
}
sample_activity();
no_secret_in(join("\n", sort keys %activity),
    'pg_stat_activity, pg_stat_replication and pg_replication_slots of either node, sampled while the sources failed ('
      . scalar(keys %activity) . ' distinct rows)');

# ---------------------------------------------------------------- drop
# Every source is dropped while its broker or upstream is still down (the
# workers must stop all the same).  Dropping a pg source whose upstream is
# down warns that its slot stays.
($rc, $out, $err) = secret_psql($node, join(";\n",
    map { "SELECT streamproc.drop_source('$_')" } qw(k_down k_port k_sasl k_ssl k_oauth pg_refused pg_down)) . ';');
is($rc, 0, 'every source dropped') or diag($err);
like($err, qr/WARNING: .*could not drop replication slot "streamproc_pg_down"/,
     'drop_source warns of the slot it could not drop');
ok(poll_until('the workers to go', 60, sub {
        $node->safe_psql('postgres',
            q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'streamproc source'}) eq '0' }),
   'the workers are gone');
{
    my ($texts) = readable_texts(undef);
    my $found = secret_places($texts);
    is(join('; ', map { "$_ in " . join(', ', @{ $found->{$_} }) } sort keys %$found), '',
       'after drop_source no secret is left in the streamproc schema');
}

# ---------------------------------------------------------------- logs and clients
$node->stop;
$kafka_a->stop;
$kafka_b->stop;
no_secret_in(join("\n", @client_messages), 'anything a client was told');
for my $n ([ 'downstream', $node ], [ 'upstream', $up ])
{
    my ($label, $pg) = @$n;
    my $log = slurp_file($pg->logfile);
    no_secret_in($log, "the $label server log (" . scalar(() = $log =~ /\n/g) . ' lines)');
}
unlike(slurp_file($node->logfile), qr/terminated by signal|PANIC|TRAP:/, 'no crash');

diag(sprintf('%.0f s in all', time - $t0));
done_testing();
