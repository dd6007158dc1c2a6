/*
 * source.c — the SQL side of sources: create_kafka_source, start_source,
 * stop_source, drop_source, what streamproc.sources shows of the running
 * workers, and the checks every kind's create function begins with
 * (create_pg_source: source_pg_sql.c).
 *
 * A source is a row of streamproc.source_defs; its progress (the next
 * offset of each Kafka partition, counters) is in streamproc.source_offsets
 * and is written only by its workers, in the transaction of each batch.
 * These functions change the catalog and wake the database's supervisor at
 * commit (supervisor.c), which starts or stops the workers within a second.
 *
 * Who may: superusers and members of the role streamproc_admin (created by
 * the install script if absent).  Options may hold secrets (sasl.password,
 * ...): they reach the workers, but every view shows them masked, and no
 * error message repeats an option's value.
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "catalog.h"
#include "decode.h"
#include "source.h"
#include "source_pg.h"
#include "view_compile.h"
#include "workers.h"

#define ADMIN_ROLE "streamproc_admin"

/* superuser, or a member of streamproc_admin */
static void
check_source_admin(const char *action)
{
	Oid			admin;

	if (superuser())
		return;
	admin = get_role_oid(ADMIN_ROLE, true);
	if (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s a source", action),
			 errhint("Only superusers and members of the role \"%s\" manage sources.", ADMIN_ROLE)));
}

/*
 * Option names whose values are secrets.  Anything that looks like a
 * password, secret, token, private key or credential.
 */
bool
sp_option_is_secret(const char *key)
{
	static const char *const words[] = {
		"password", "secret", "token", "jaas", "credential", "private",
		"key.pem", "oauthbearer.config", "sasl.username", NULL
	};
	char	   *lower = pstrdup(key);
	int			i;
	size_t		len = strlen(lower);

	for (i = 0; lower[i]; i++)
		lower[i] = pg_ascii_tolower((unsigned char) lower[i]);
	for (i = 0; words[i] != NULL; i++)
		if (strstr(lower, words[i]) != NULL)
			return true;
	/* ssl.key.location is a path; ssl.key itself is a key */
	return len >= 4 && strcmp(lower + len - 4, ".key") == 0;
}

/* validate source names: they name inputs and processes, keep them plain */
static void
check_source_name(const char *name)
{
	const char *p;

	if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid source name \"%s\"", name),
				 errdetail("A source name has 1 to %d characters.", NAMEDATALEN - 1)));
	for (p = name; *p; p++)
		if (!(isalnum((unsigned char) *p) || *p == '_' || *p == '-' || *p == '.'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("invalid source name \"%s\"", name),
					 errhint("Use letters, digits, \"_\", \"-\" and \".\".")));
}

/*
 * What every kind's create function (here, source_pg_sql.c) checks first:
 * none of its nargs arguments NULL but the one at optional (-1: none), the
 * extension, the caller's right to manage sources.
 */
void
sp_check_create_source(FunctionCallInfo fcinfo, const char *func, int nargs, int optional)
{
	int			i;

	for (i = 0; i < nargs; i++)
		if (PG_ARGISNULL(i) && i != optional)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %d of %s must not be NULL", i + 1, func)));
	sp_check_extension();
	check_source_admin("create");
}

/* a new source's name, and the stream it feeds: one the caller may insert into */
void
sp_check_source_stream(const char *name, Oid stream)
{
	check_source_name(name);
	if (!sp_is_stream(stream) || !sp_catalog_stream_exists(stream))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a stream", get_rel_name(stream) ? get_rel_name(stream) : "?"),
				 errhint("Create it with streamproc.create_stream().")));
	if (pg_class_aclcheck(stream, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FOREIGN_TABLE, get_rel_name(stream));
}

/*
 * librdkafka 2.0 takes the sasl.oauthbearer.config of its unsecured JWT
 * tokens as it is, then parses it in a consumer's background thread, where
 * a malformed one crashes the process (and so the whole server) and has its
 * text repeated in an error event.  Its grammar is checked here instead,
 * at creation and again before a worker makes its consumer (a restored or
 * edited catalog row), without repeating the value (it may hold a secret):
 * space-separated name=value pairs, each name once, principal required,
 * principalClaimName, scope and scopeClaimName (no '"' in their values),
 * lifeSeconds (a positive number of seconds) and extension_NAME (NAME in
 * letters, not "auth"; the value in printable ASCII).
 *
 * Returns 0 if the configuration is fine (or not used), the number of the
 * first bad item, or -1 if principal is missing.
 */
int
sp_kafka_jwt_problem(rd_kafka_conf_t *conf)
{
	static const char *const names[] = {
		"principal", "principalClaimName", "scope", "scopeClaimName", "lifeSeconds"
	};
	bool		seen[lengthof(names)] = {false};
	char		jwt[16];
	size_t		len = sizeof(jwt);
	char	   *config;
	char	   *save = NULL;
	char	   *pair;
	List	   *extensions = NIL;
	int			n = 0;

	if (rd_kafka_conf_get(conf, "enable.sasl.oauthbearer.unsecure.jwt", jwt, &len) != RD_KAFKA_CONF_OK ||
		strcmp(jwt, "true") != 0)
		return 0;
	len = 0;
	if (rd_kafka_conf_get(conf, "sasl.oauthbearer.config", NULL, &len) != RD_KAFKA_CONF_OK || len <= 1)
		return 0;
	config = palloc(len);
	(void) rd_kafka_conf_get(conf, "sasl.oauthbearer.config", config, &len);

	for (pair = strtok_r(config, " ", &save); pair; pair = strtok_r(NULL, " ", &save))
	{
		char	   *eq = strchr(pair, '=');
		const char *value;
		int			i;
		bool		ok = false;

		n++;
		if (eq == NULL || eq == pair)
			return n;
		*eq = '\0';
		value = eq + 1;
		if (strncmp(pair, "extension_", 10) == 0)
		{
			const char *name = pair + 10;
			const char *c;

			ok = name[0] != '\0' && strcmp(name, "auth") != 0 &&
				strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == strlen(name) &&
				!list_member(extensions, makeString((char *) name));
			for (c = value; ok && *c; c++)
				ok = *c >= 0x21 && *c <= 0x7e;
			extensions = lappend(extensions, makeString((char *) name));
		}
		for (i = 0; i < lengthof(names); i++)
		{
			if (strcmp(pair, names[i]) != 0)
				continue;
			ok = !seen[i] && value[0] != '\0' &&
				(strcmp(pair, "lifeSeconds") == 0
				 ? strspn(value, "0123456789") == strlen(value) && strlen(value) <= 9 && atoi(value) > 0
				 : strchr(value, '"') == NULL);
			seen[i] = true;
		}
		if (!ok)
			return n;
	}
	return seen[0] ? 0 : -1;
}

/* the error for a problem sp_kafka_jwt_problem found */
void
sp_kafka_jwt_error(int problem)
{
	if (problem < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Kafka option \"sasl.oauthbearer.config\": no principal"),
				 errhint("Unsecured JWT tokens need principal=NAME.")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid Kafka option \"sasl.oauthbearer.config\": item %d is not a setting of unsecured JWT tokens", problem),
			 errdetail("The value is not shown: the option holds a secret."),
			 errhint("Write space-separated name=value pairs, each name once: principal (required), principalClaimName, scope, scopeClaimName, lifeSeconds, extension_NAME.")));
}

/*
 * Check every option against librdkafka, so a misspelled setting fails at
 * creation rather than in a worker's log.  The value of a secret option is
 * never repeated.
 */
static void
check_kafka_options(Jsonb *options)
{
	rd_kafka_conf_t *conf;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char		errstr[512];
	char	   *key = NULL;
	int			problem;

	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object of librdkafka settings"),
				 errhint("For example '{\"security.protocol\": \"SASL_SSL\"}'.")));

	conf = rd_kafka_conf_new();
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *value;

		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		value = sp_jsonb_scalar_text(&v);
		if (value == NULL)
		{
			rd_kafka_conf_destroy(conf);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must be a string, number or boolean", key)));
		}
		if (strcmp(key, "bootstrap.servers") == 0 || strcmp(key, "metadata.broker.list") == 0)
		{
			rd_kafka_conf_destroy(conf);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" cannot be set in options", key),
					 errhint("Pass the brokers as the brokers argument.")));
		}
		if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		{
			bool		secret = sp_option_is_secret(key);

			rd_kafka_conf_destroy(conf);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid Kafka option \"%s\"", key),
					 secret ? errdetail("The value was rejected (not shown: the option holds a secret).")
					 : errdetail("%s", errstr),
					 errhint("options are passed to librdkafka; see its CONFIGURATION.md for the settings.")));
		}
	}
	problem = sp_kafka_jwt_problem(conf);
	rd_kafka_conf_destroy(conf);
	if (problem != 0)
		sp_kafka_jwt_error(problem);
}

/* the text of a jsonb scalar as librdkafka wants it, or NULL */
char *
sp_jsonb_scalar_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		default:
			return NULL;
	}
}

PG_FUNCTION_INFO_V1(sp_create_kafka_source);

/*
 * streamproc.create_kafka_source(name, stream, brokers, topic, format,
 *     start, parallelism, batch_size, batch_timeout, options)
 */
Datum
sp_create_kafka_source(PG_FUNCTION_ARGS)
{
	char	   *name;
	Oid			stream;
	char	   *brokers;
	char	   *topic;
	char	   *format;
	char	   *start;
	int32		parallelism;
	int32		batch_size;
	Interval   *timeout;
	Jsonb	   *options;
	Relation	rel;
	Oid			types[10] = {TEXTOID, OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	INT4OID, INT4OID, INTERVALOID, JSONBOID};
	Datum		values[10];
	SpSavedUser su;
	int64		timeout_us;

	sp_check_create_source(fcinfo, "create_kafka_source", 10, -1);

	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	stream = PG_GETARG_OID(1);
	brokers = text_to_cstring(PG_GETARG_TEXT_PP(2));
	topic = text_to_cstring(PG_GETARG_TEXT_PP(3));
	format = text_to_cstring(PG_GETARG_TEXT_PP(4));
	start = text_to_cstring(PG_GETARG_TEXT_PP(5));
	parallelism = PG_GETARG_INT32(6);
	batch_size = PG_GETARG_INT32(7);
	timeout = PG_GETARG_INTERVAL_P(8);
	options = PG_GETARG_JSONB_P(9);

	sp_check_source_stream(name, stream);
	if (brokers[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("brokers must not be empty"),
				 errhint("Give a bootstrap list such as 'kafka1:9092,kafka2:9092'.")));
	if (topic[0] == '\0' || strlen(topic) > 249)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Kafka topic name \"%s\"", topic)));
	if (strcmp(start, "earliest") != 0 && strcmp(start, "latest") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid start \"%s\"", start),
				 errhint("Use 'earliest' (the whole topic) or 'latest' (messages produced from now on).")));
	if (parallelism < 1 || parallelism > 64)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parallelism must be between 1 and 64")));
	if (batch_size < 1 || batch_size > 1000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be between 1 and 1000000")));
	timeout_us = (int64) timeout->day * USECS_PER_DAY + timeout->time;
	if (timeout->month != 0 || timeout_us < 0 || timeout_us > USECS_PER_MINUTE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_timeout must be between 0 and 1 minute")));
	check_kafka_options(options);

	/* the format must fit the stream (text needs exactly one column) */
	rel = table_open(stream, AccessShareLock);
	(void) sp_decoder_create(format, RelationGetDescr(rel), CurrentMemoryContext);
	table_close(rel, AccessShareLock);
	/* Debezium's deletes and updates take rows back: every view must cope */
	if (strcmp(format, "debezium") == 0)
		sp_check_stream_retractable(stream);

	values[0] = CStringGetTextDatum(name);
	values[1] = ObjectIdGetDatum(stream);
	values[2] = CStringGetTextDatum(brokers);
	values[3] = CStringGetTextDatum(topic);
	values[4] = CStringGetTextDatum(format);
	values[5] = CStringGetTextDatum(start);
	values[6] = Int32GetDatum(parallelism);
	values[7] = Int32GetDatum(batch_size);
	values[8] = IntervalPGetDatum(timeout);
	values[9] = JsonbPGetDatum(options);

	sp_catalog_enter(&su);
	SPI_connect();
	sp_spi_run("SELECT 1 FROM streamproc.source_defs WHERE name = $1", 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("source \"%s\" already exists", name)));
	{
		Oid			t[11];
		Datum		v[11];

		memcpy(t, types, sizeof(types));
		memcpy(v, values, sizeof(values));
		t[10] = OIDOID;
		v[10] = ObjectIdGetDatum(GetUserId());
		sp_spi_run("INSERT INTO streamproc.source_defs"
				   " (name, kind, stream, brokers, topic, format, start, parallelism,"
				   "  batch_size, batch_timeout, options, owner)"
				   " VALUES ($1, 'kafka', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
				   11, t, v, NULL, SPI_OK_INSERT);
	}
	SPI_finish();
	sp_catalog_leave(&su);

	sp_request_kick_at_commit();
	PG_RETURN_VOID();
}

/* the id of a source by name, or an error */
static int32
source_id(const char *name, bool lock)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	int32		id;

	values[0] = CStringGetTextDatum(name);
	sp_spi_run(lock ? "SELECT id FROM streamproc.source_defs WHERE name = $1 FOR UPDATE"
			   : "SELECT id FROM streamproc.source_defs WHERE name = $1",
			   1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("source \"%s\" does not exist", name),
				 errhint("streamproc.sources lists the sources.")));
	id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return id;
}

static void
set_enabled(const char *name, bool enabled)
{
	SpSavedUser su;
	Oid			types[2] = {INT4OID, BOOLOID};
	Datum		values[2];

	sp_catalog_enter(&su);
	SPI_connect();
	values[0] = Int32GetDatum(source_id(name, true));
	values[1] = BoolGetDatum(enabled);
	sp_spi_run("UPDATE streamproc.source_defs SET enabled = $2 WHERE id = $1",
			   2, types, values, NULL, SPI_OK_UPDATE);
	SPI_finish();
	sp_catalog_leave(&su);
	sp_request_kick_at_commit();
}

PG_FUNCTION_INFO_V1(sp_start_source);

/* streamproc.start_source(name text) */
Datum
sp_start_source(PG_FUNCTION_ARGS)
{
	sp_check_extension();
	check_source_admin("start");
	set_enabled(text_to_cstring(PG_GETARG_TEXT_PP(0)), true);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(sp_stop_source);

/* streamproc.stop_source(name text) */
Datum
sp_stop_source(PG_FUNCTION_ARGS)
{
	sp_check_extension();
	check_source_admin("stop");
	set_enabled(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(sp_drop_source);

/*
 * streamproc.drop_source(name text): its position and its event-time
 * inputs go with it (they would hold the stream's watermark back forever);
 * its dead letters stay.
 */
Datum
sp_drop_source(PG_FUNCTION_ARGS)
{
	char	   *name;
	SpSavedUser su;
	Oid			types[2] = {INT4OID, TEXTOID};
	Datum		values[2];

	sp_check_extension();
	check_source_admin("drop");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	sp_catalog_enter(&su);
	SPI_connect();
	values[0] = Int32GetDatum(source_id(name, true));
	values[1] = CStringGetTextDatum(psprintf("%s:", name));
	/* a pg source's worker stops and its slot goes now (source_pg_sql.c) */
	sp_pg_source_before_drop(DatumGetInt32(values[0]));
	sp_spi_run("DELETE FROM streamproc.stream_inputs i USING streamproc.source_defs s"
			   " WHERE s.id = $1 AND i.stream = s.stream AND pg_catalog.starts_with(i.input, $2)",
			   2, types, values, NULL, SPI_OK_DELETE);
	sp_spi_run("DELETE FROM streamproc.source_defs WHERE id = $1",
			   1, types, values, NULL, SPI_OK_DELETE);
	SPI_finish();
	sp_catalog_leave(&su);
	sp_request_kick_at_commit();
	PG_RETURN_VOID();
}

/* names of the sources feeding a stream (for drop_stream) */
List *
sp_catalog_stream_sources(Oid stream)
{
	SpSavedUser su;
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(stream)};
	List	   *names = NIL;
	MemoryContext caller = CurrentMemoryContext;
	uint64		i;

	sp_catalog_enter(&su);
	SPI_connect();
	sp_spi_run("SELECT name FROM streamproc.source_defs WHERE stream = $1 ORDER BY name",
			   1, types, values, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *n = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		MemoryContext old = MemoryContextSwitchTo(caller);

		names = lappend(names, pstrdup(n));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	sp_catalog_leave(&su);
	return names;
}

/*
 * Does a source that retracts rows (debezium, PostgreSQL logical
 * replication) feed the stream?  Its views must then be able to take rows
 * back (create_view checks).
 */
bool
sp_stream_has_retracting_source(Oid stream)
{
	return sp_catalog_lookup("SELECT 1 FROM streamproc.source_defs"
							 " WHERE stream = $1 AND (kind = 'pg' OR format = 'debezium')",
							 stream, NULL);
}

PG_FUNCTION_INFO_V1(sp_mask_options);

/* streamproc.mask_options(jsonb): secrets replaced by "********" */
Datum
sp_mask_options(PG_FUNCTION_ARGS)
{
	Jsonb	   *in = PG_GETARG_JSONB_P(0);
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbValue *res = NULL;
	JsonbIteratorToken tok;
	bool		secret = false;

	if (!JB_ROOT_IS_OBJECT(in) || JB_ROOT_IS_SCALAR(in))
		PG_RETURN_JSONB_P(in);
	it = JsonbIteratorInit(&in->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			secret = sp_option_is_secret(pnstrdup(v.val.string.val, v.val.string.len));
			res = pushJsonbValue(&state, tok, &v);
		}
		else if (tok == WJB_VALUE && secret)
		{
			JsonbValue	masked;

			masked.type = jbvString;
			masked.val.string.val = "********";
			masked.val.string.len = 8;
			res = pushJsonbValue(&state, tok, &masked);
		}
		else
			res = pushJsonbValue(&state, tok, tok == WJB_END_OBJECT ? NULL : &v);
	}
	PG_RETURN_JSONB_P(JsonbValueToJsonb(res));
}

PG_FUNCTION_INFO_V1(sp_source_workers);

/*
 * streamproc.source_workers(): the source workers running in this
 * database, as they report themselves in shared memory.
 */
Datum
sp_source_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (sp_shared == NULL)
		PG_RETURN_VOID();

	LWLockAcquire(sp_shared->lock, LW_SHARED);
	for (i = 0; i < sp_shared->nslots; i++)
	{
		SpWorkerSlot *w = &sp_shared->workers[i];
		Datum		values[7];
		bool		nulls[7] = {false};

		if (w->pid == 0 || w->dboid != MyDatabaseId)
			continue;
		values[0] = Int32GetDatum(w->source_id);
		values[1] = Int32GetDatum(w->worker_index);
		values[2] = Int32GetDatum(w->pid);
		values[3] = BoolGetDatum(w->in_error);
		if (w->last_error_at != 0)
		{
			values[4] = CStringGetTextDatum(w->last_error);
			values[5] = TimestampTzGetDatum(w->last_error_at);
		}
		else
			nulls[4] = nulls[5] = true;
		values[6] = Float8GetDatum(w->rows_per_sec);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(sp_shared->lock);
	PG_RETURN_VOID();
}
