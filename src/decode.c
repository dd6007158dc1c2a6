/*
 * decode.c — message formats: one message payload → the rows of a stream
 * it stands for (one, or for a Debezium change event up to two weighted
 * ones).
 *
 *   payload ──► size, NUL and encoding check (the database's encoding)
 *     │
 *     ├──► copied once into the decoder's scratch buffer
 *     │
 *     ▼  one pass of the format's scanner over the payload, which finds
 *        each column's value and NUL-terminates it in the copy, at the
 *        same offsets (JSON strings and quoted CSV fields are unescaped in
 *        place: unescaping never lengthens them)
 *     │
 *     ▼  only once the whole message is known to be well formed: each
 *        column's type input function, in column order
 *   values[] / nulls[]
 *
 * The scanners read the caller's payload and write only the copy, so a
 * value's terminator may overwrite a separator the scanner has yet to read.
 * Per message nothing is allocated but what the input functions return
 * (and error messages); the scratch buffer grows to the largest message.
 *
 * json: an object whose keys are column names (exact, case-sensitive
 * match; unknown keys are ignored, the last of duplicate keys wins, missing
 * keys and null are NULL).  Keys are looked up in a hash table built at
 * create time, after a cheaper guess: the key that followed the previous
 * one in the last message (producers tend to write keys in one order).
 * Strings are unescaped, numbers and true/false passed as their text; json
 * and jsonb columns (and domains over them) take any value's JSON text as
 * is, other columns refuse objects and arrays.  The whole message is
 * validated (RFC 8259), nested values too, without recursion.
 *
 * csv: one RFC 4180 record, fields in column order; an unquoted empty
 * field is NULL, "" the empty string; a final line break is ignored.
 *
 * text: the whole payload is the value of the stream's only column.
 *
 * debezium: a change event, {"before": row, "after": row, "op": ...}, bare
 * or under "payload" (Kafka Connect's JsonConverter with schemas.enable).
 * The envelope is scanned by the same scanner; "before" and "after" are
 * rows as in json, each into its own vals/kinds arrays:
 *
 *   op c, r ──► after  (+1)
 *   op d    ──► before (−1)
 *   op u    ──► before (−1), after (+1)
 *
 * A row image the change needs but does not carry makes the message
 * malformed (for "before": the source table lacks REPLICA IDENTITY FULL).
 * A tombstone (no value, or a null "payload") stands for no rows: the
 * delete before it did the work.  (In the other formats, a message without
 * a value is malformed.)
 * A JSON number for a timestamp, timestamptz or date column is Debezium's
 * epoch encoding (see epoch_value()), and a string for a field the schema
 * calls a Decimal is its base64 encoding; everything else as in json.  The
 * message's schema, when it has one, gives the fields' logical types
 * (scan_schema()); it is read once per distinct schema text.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/int.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "port/pg_bitutils.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "decode.h"

typedef enum SpFormat
{
	SP_FORMAT_JSON,
	SP_FORMAT_CSV,
	SP_FORMAT_TEXT,
	SP_FORMAT_DEBEZIUM
} SpFormat;

/* what a message gave a column */
typedef enum ValueKind
{
	VK_ABSENT = 0,				/* no such key; unquoted empty CSV field */
	VK_NULL,					/* JSON null */
	VK_TEXT,					/* input function text */
	VK_NUMBER,					/* input function text, a JSON number */
	VK_OBJECT,					/* JSON object (raw text) */
	VK_ARRAY					/* JSON array (raw text) */
} ValueKind;

/* column types a Debezium epoch number is accepted for */
#define TEMPORAL_NONE			0
#define TEMPORAL_TIMESTAMP		1
#define TEMPORAL_TIMESTAMPTZ	2
#define TEMPORAL_DATE			3

typedef struct SpColumn
{
	const char *name;
	int			namelen;
	uint32		hash;			/* of name, see key_hash() */
	int			attno;			/* index into values[] and nulls[] */
	bool		is_json;		/* json, jsonb or a domain over them */
	bool		strict;			/* NULL in, NULL out: no call needed */
	uint8		temporal;		/* TEMPORAL_*: how a debezium number reads */
	bool		plain;			/* the base type itself, no typmod */
	SpInputKind direct;			/* converted without fmgr, or not */
	const char *typname;		/* for messages */
	Oid			typioparam;
	int32		typmod;
	FmgrInfo	input;
} SpColumn;

struct SpDecoder
{
	SpFormat	format;
	MemoryContext cxt;
	int			natts;
	int			ncols;			/* columns not dropped */
	SpColumn   *cols;			/* in stream order */
	int			encoding;		/* the database's */
	Oid			from_utf8;		/* UTF8 → database encoding, if needed */

	/* json keys → cols: open addressing, column index + 1, 0 is empty */
	int16	   *slots;
	uint32		slotmask;
	int16	   *next_key;		/* [col + 1]: the key that followed col's last time */

	/* one message */
	char	  **vals;			/* per column, into buf */
	uint8	   *kinds;			/* per column, ValueKind */
	char	  **img_vals[4];	/* debezium: before/after, of the envelope */
	uint8	   *img_kinds[4];	/* and of its "payload" (see Envelope) */
	uint8	   *units;			/* debezium: UNIT_* per column, this message */
	uint8	   *no_units;		/* all UNIT_NONE: a message without schema */
	uint8	   *schema_units;	/* what the last schema read said */
	int32	   *schema_scales;	/* Decimal: the scale */
	uint8	   *pending_units;	/* the struct being read */
	int32	   *pending_scales;
	char	   *schema_text;	/* the last schema read, as it was */
	int			schema_len;		/* 0: none */
	int			schema_size;
	char	   *buf;			/* the payload's copy */
	Size		bufsize;
	char	   *stack;			/* closers of the nested values being skipped */
	int			stacksize;
	const char *column;			/* whose input function is running */
};

/* one message being scanned */
typedef struct Scan
{
	SpDecoder  *d;
	const char *start;
	const char *end;
	char	   *copy;			/* d->buf, same offsets as start */
	char	  **vals;			/* where the row being scanned goes */
	uint8	   *kinds;
	const char *errpos;
	const char *errmsg;
	bool		syntax;			/* errmsg is about JSON syntax */
} Scan;

#define COPY_AT(s, p)	((s)->copy + ((p) - (s)->start))

static const char *
fail(Scan *s, const char *p, const char *msg)
{
	s->errpos = p;
	s->errmsg = msg;
	s->syntax = true;
	return NULL;
}

/* the token at p, for messages */
static const char *
describe(const char *p, const char *end)
{
	const char *q = p;

	if (p >= end)
		return "end of input";
	while (q < end && q - p < 32 &&
		   ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
			(*q >= '0' && *q <= '9') || *q == '_'))
		q++;
	if (q > p)
		return psprintf("\"%.*s\"", (int) (q - p), p);
	if ((uint8) *p >= 0x20 && (uint8) *p < 0x7f)
		return psprintf("'%c'", *p);
	return psprintf("byte 0x%02x", (uint8) *p);
}

/* ------------------------------------------------------------------------
 * JSON scanning
 * ------------------------------------------------------------------------
 */

static inline const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

#define BYTES(c)	(UINT64CONST(0x0101010101010101) * (uint8) (c))

/*
 * The first '"', '\\' or control character at or after p, or end.  Eight
 * bytes at a time: a byte b is flagged when b ^ '"' or b ^ '\\' is zero or
 * b < 0x20; borrows only carry upwards from a flagged byte, so the lowest
 * flag is exact.
 */
static inline const char *
find_string_stop(const char *p, const char *end)
{
#ifndef WORDS_BIGENDIAN
	while (end - p >= 8)
	{
		uint64		w;
		uint64		q;
		uint64		b;
		uint64		hit;

		memcpy(&w, p, 8);
		q = w ^ BYTES('"');
		b = w ^ BYTES('\\');
		hit = (((q - BYTES(1)) & ~q) |
			   ((b - BYTES(1)) & ~b) |
			   ((w - BYTES(0x20)) & ~w)) & BYTES(0x80);
		if (hit)
			return p + pg_rightmost_one_pos64(hit) / 8;
		p += 8;
	}
#endif
	while (p < end && (uint8) *p >= 0x20 && *p != '"' && *p != '\\')
		p++;
	return p;
}

static int
hex4(const char *p)
{
	int			v = 0;
	int			i;

	for (i = 0; i < 4; i++)
	{
		char		c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/*
 * \uXXXX at p (the backslash), or a surrogate pair: the code point.  A
 * lone surrogate is valid JSON (RFC 8259 section 8.2) but no character:
 * *cp is left a surrogate, which put_codepoint() refuses.
 */
static const char *
scan_unicode_escape(Scan *s, const char *p, pg_wchar *cp)
{
	int			hi;
	int			lo;

	if (s->end - p < 6 || (hi = hex4(p + 2)) < 0)
		return fail(s, p, "\\u must be followed by four hexadecimal digits");
	*cp = hi;
	if (hi >= 0xD800 && hi <= 0xDBFF && s->end - p >= 12 &&
		p[6] == '\\' && p[7] == 'u' &&
		(lo = hex4(p + 8)) >= 0xDC00 && lo <= 0xDFFF)
	{
		*cp = surrogate_pair_to_codepoint(hi, lo);
		return p + 12;
	}
	return p + 6;
}

/*
 * Write code point cp, from an escape of srclen bytes at p, to *w in the
 * database encoding.  Never more than srclen bytes, so unescaping in place
 * is safe.  A key (unmatchable not NULL) that cannot be text is no column's
 * name; a value that cannot is an error.
 */
static bool
put_codepoint(Scan *s, const char *p, int srclen, pg_wchar cp, char **w,
			  bool *unmatchable)
{
	SpDecoder  *d = s->d;
	unsigned char utf8[MAX_MULTIBYTE_CHAR_LEN + 1];
	unsigned char conv[MAX_UNICODE_EQUIVALENT_STRING * MAX_CONVERSION_GROWTH + 1];
	int			len;
	int			outlen;
	bool		character = (cp != 0 && !is_utf16_surrogate_first(cp) &&
							 !is_utf16_surrogate_second(cp));

	if (cp < 0x80 && character)
	{
		*(*w)++ = (char) cp;
		return true;
	}
	if (character && d->encoding == PG_UTF8)
	{
		unicode_to_utf8(cp, (unsigned char *) *w);
		*w += pg_utf_mblen((unsigned char *) *w);
		return true;
	}
	if (character && OidIsValid(d->from_utf8))
	{
		unicode_to_utf8(cp, utf8);
		len = pg_utf_mblen(utf8);
		if (pg_do_encoding_conversion_buf(d->from_utf8, PG_UTF8, d->encoding,
										  utf8, len, conv, sizeof(conv),
										  true) == len &&
			(outlen = strlen((char *) conv)) <= srclen)
		{
			memcpy(*w, conv, outlen);
			*w += outlen;
			return true;
		}
	}
	if (unmatchable != NULL)
	{
		*unmatchable = true;
		return true;
	}
	if (cp == 0)
		fail(s, p, "\\u0000 cannot be converted to text");
	else if (is_utf16_surrogate_first(cp))
		fail(s, p, "Unicode high surrogate must be followed by a low surrogate");
	else if (is_utf16_surrogate_second(cp))
		fail(s, p, "Unicode low surrogate must follow a high surrogate");
	else
		fail(s, p, psprintf("Unicode escape value U+%04X cannot be converted to the server encoding \"%s\"",
							cp, GetDatabaseEncodingName()));
	return false;
}

/*
 * A string, p just past its opening quote.  With out, the unescaped text is
 * written from *out (the copy of p) on, and *out left at its end.  Returns
 * the position after the closing quote, or NULL.
 */
static const char *
scan_string(Scan *s, const char *p, char **out, bool *unmatchable)
{
	const char *end = s->end;
	char	   *w = out ? *out : NULL;
	bool		lagging = false;	/* w is behind the copy of p */

	for (;;)
	{
		const char *q = find_string_stop(p, end);
		pg_wchar	cp;
		char		c;

		if (w != NULL)
		{
			if (lagging)
				memcpy(w, p, q - p);
			w += q - p;
		}
		p = q;
		if (p >= end)
			return fail(s, p, "unterminated string");
		if (*p == '"')
			break;
		if (*p != '\\')
			return fail(s, p, psprintf("control character U+%04X must be escaped in a string",
									   (unsigned int) (uint8) *p));
		if (end - p < 2)
			return fail(s, end, "unterminated string");
		switch (p[1])
		{
			case '"':
			case '\\':
			case '/':
				c = p[1];
				break;
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case 'n':
				c = '\n';
				break;
			case 'r':
				c = '\r';
				break;
			case 't':
				c = '\t';
				break;
			case 'u':
				q = scan_unicode_escape(s, p, &cp);
				if (q == NULL)
					return NULL;
				if (w != NULL && !put_codepoint(s, p, q - p, cp, &w, unmatchable))
					return NULL;
				p = q;
				lagging = true;
				continue;
			default:
				return fail(s, p, psprintf("invalid escape sequence \"\\%s\" in string",
										   (uint8) p[1] >= 0x20 && (uint8) p[1] < 0x7f ?
										   psprintf("%c", p[1]) :
										   psprintf("x%02x", (uint8) p[1])));
		}
		if (w != NULL)
			*w++ = c;
		p += 2;
		lagging = true;
	}
	if (out)
		*out = w;
	return p + 1;
}

static inline bool
is_digit(const char *p, const char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static const char *
scan_number(Scan *s, const char *p)
{
	const char *end = s->end;

	if (*p == '-')
		p++;
	if (!is_digit(p, end))
		return fail(s, p, "invalid number: expected a digit after '-'");
	if (*p == '0')
	{
		p++;
		if (is_digit(p, end))
			return fail(s, p - 1, "invalid number: leading zeros are not allowed");
	}
	else
		while (is_digit(p, end))
			p++;
	if (p < end && *p == '.')
	{
		p++;
		if (!is_digit(p, end))
			return fail(s, p, "invalid number: expected a digit after the decimal point");
		while (is_digit(p, end))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(p, end))
			return fail(s, p, "invalid number: expected a digit in the exponent");
		while (is_digit(p, end))
			p++;
	}
	return p;
}

/* a number, true, false or null at p */
static const char *
scan_bare(Scan *s, const char *p, bool *is_null)
{
	const char *end = s->end;

	*is_null = false;
	switch (*p)
	{
		case 't':
			if (end - p >= 4 && memcmp(p, "true", 4) == 0)
				return p + 4;
			break;
		case 'f':
			if (end - p >= 5 && memcmp(p, "false", 5) == 0)
				return p + 5;
			break;
		case 'n':
			if (end - p >= 4 && memcmp(p, "null", 4) == 0)
			{
				*is_null = true;
				return p + 4;
			}
			break;
		case '-':
		case '0':
		case '1':
		case '2':
		case '3':
		case '4':
		case '5':
		case '6':
		case '7':
		case '8':
		case '9':
			return scan_number(s, p);
	}
	return fail(s, p, psprintf("expected a value, found %s", describe(p, end)));
}

/* an object key and its colon, validated only; returns the value's position */
static const char *
scan_member_key(Scan *s, const char *p)
{
	const char *end = s->end;

	if (p >= end || *p != '"')
		return fail(s, p, psprintf("expected a string to begin an object key, found %s",
								   describe(p, end)));
	p = scan_string(s, p + 1, NULL, NULL);
	if (p == NULL)
		return NULL;
	p = skip_ws(p, end);
	if (p >= end || *p != ':')
		return fail(s, p, psprintf("expected ':' after object key, found %s",
								   describe(p, end)));
	return skip_ws(p + 1, end);
}

/*
 * Validate the object or array at p; returns the position after it.
 * Iterative, the closers of the open containers on d->stack.
 */
static const char *
skip_nested(Scan *s, const char *p)
{
	SpDecoder  *d = s->d;
	const char *end = s->end;
	int			depth = 0;
	bool		is_null;

	for (;;)
	{
		/* p is at a value */
		if (p >= end)
			return fail(s, p, "unexpected end of input, expected a value");
		if (*p == '{' || *p == '[')
		{
			char		closer = (*p == '{') ? '}' : ']';

			if (depth == d->stacksize)
			{
				d->stack = repalloc(d->stack, d->stacksize * 2);
				d->stacksize *= 2;
			}
			d->stack[depth++] = closer;
			p = skip_ws(p + 1, end);
			if (p < end && *p == closer)
			{
				p++;
				depth--;
			}
			else
			{
				if (closer == '}')
					p = scan_member_key(s, p);
				if (p == NULL)
					return NULL;
				continue;
			}
		}
		else if (*p == '"')
			p = scan_string(s, p + 1, NULL, NULL);
		else
			p = scan_bare(s, p, &is_null);
		if (p == NULL)
			return NULL;

		/* after a value: close containers until a ',' */
		for (;;)
		{
			char		closer;

			if (depth == 0)
				return p;
			closer = d->stack[depth - 1];
			p = skip_ws(p, end);
			if (p < end && *p == closer)
			{
				p++;
				depth--;
				continue;
			}
			if (p >= end || *p != ',')
				return fail(s, p, psprintf("expected ',' or '%c', found %s",
										   closer, describe(p, end)));
			p = skip_ws(p + 1, end);
			if (p < end && *p == closer)
				return fail(s, p, "trailing comma");
			if (closer == '}')
				p = scan_member_key(s, p);
			break;
		}
		if (p == NULL)
			return NULL;
	}
}

/* validate the value at p, whatever it is */
static const char *
skip_value(Scan *s, const char *p)
{
	bool		is_null;

	if (*p == '{' || *p == '[')
		return skip_nested(s, p);
	if (*p == '"')
		return scan_string(s, p + 1, NULL, NULL);
	return scan_bare(s, p, &is_null);
}

/*
 * The hash of a key: its length and its first and last (up to) eight bytes,
 * enough to tell column names apart; equal hashes are compared in full.
 */
static inline uint32
key_hash(const char *key, int len)
{
	uint64		a = 0;
	uint64		b = 0;
	uint64		h;

	if (len >= 8)
	{
		memcpy(&a, key, 8);
		memcpy(&b, key + len - 8, 8);
	}
	else if (len >= 4)
	{
		uint32		x;
		uint32		y;

		memcpy(&x, key, 4);
		memcpy(&y, key + len - 4, 4);
		a = x;
		b = y;
	}
	else if (len > 0)
		a = (uint8) key[0] | ((uint8) key[len / 2] << 8) | ((uint8) key[len - 1] << 16);
	h = (a * UINT64CONST(0x9E3779B97F4A7C15)) ^ (b * UINT64CONST(0xC2B2AE3D27D4EB4F)) ^ len;
	return (uint32) (h ^ (h >> 32));
}

/* the column named key, or -1 */
static inline int
lookup_key(SpDecoder *d, const char *key, int len)
{
	uint32		h;
	uint32		i;

	if (len == 0 || len >= NAMEDATALEN)
		return -1;
	h = key_hash(key, len);
	for (i = h & d->slotmask;; i = (i + 1) & d->slotmask)
	{
		int			slot = d->slots[i];
		SpColumn   *c;

		if (slot == 0)
			return -1;
		c = &d->cols[slot - 1];
		if (c->hash == h && c->namelen == len && memcmp(c->name, key, len) == 0)
			return slot - 1;
	}
}

/* the value of column col at p: in s->vals/kinds, NUL-terminated in the copy */
static const char *
scan_column_value(Scan *s, const char *p, int col)
{
	SpDecoder  *d = s->d;
	const char *q;
	ValueKind	kind;
	bool		is_null;

	switch (*p)
	{
		case '"':
			if (!d->cols[col].is_json)
			{
				char	   *w = COPY_AT(s, p + 1);

				q = scan_string(s, p + 1, &w, NULL);
				if (q == NULL)
					return NULL;
				*w = '\0';
				s->vals[col] = COPY_AT(s, p + 1);
				s->kinds[col] = VK_TEXT;
				return q;
			}
			q = scan_string(s, p + 1, NULL, NULL);
			kind = VK_TEXT;
			break;
		case '{':
			q = skip_nested(s, p);
			kind = VK_OBJECT;
			break;
		case '[':
			q = skip_nested(s, p);
			kind = VK_ARRAY;
			break;
		default:
			q = scan_bare(s, p, &is_null);
			kind = is_null ? VK_NULL :
				(*p == '-' || (*p >= '0' && *p <= '9')) ? VK_NUMBER : VK_TEXT;
			break;
	}
	if (q == NULL)
		return NULL;
	*COPY_AT(s, q) = '\0';
	s->vals[col] = COPY_AT(s, p);
	s->kinds[col] = kind;
	return q;
}

/*
 * The next item of the object or array being read (closer '}' or ']'): *pp
 * is at its opener (first) or just after the previous item.  Returns 1
 * with *pp at the item, 0 with *pp after the container, or -1 with s's
 * error set.
 */
static pg_attribute_always_inline int
next_item(Scan *s, const char **pp, bool first, char closer)
{
	const char *end = s->end;
	const char *p = skip_ws(first ? *pp + 1 : *pp, end);

	if (p < end && *p == closer)
	{
		*pp = p + 1;
		return 0;
	}
	if (!first)
	{
		if (p >= end || *p != ',')
		{
			fail(s, p, psprintf(closer == '}' ?
								"expected ',' or '}' after object member, found %s" :
								"expected ',' or ']', found %s",
								describe(p, end)));
			return -1;
		}
		p = skip_ws(p + 1, end);
		if (p < end && *p == closer)
		{
			fail(s, p, "trailing comma");
			return -1;
		}
	}
	*pp = p;
	return 1;
}

/*
 * The next member of the object being read, as next_item: 1 with the key
 * (in the copy, unescaped; *keylen -1 if it cannot be text) and *pp at the
 * value.
 */
static pg_attribute_always_inline int
next_member(Scan *s, const char **pp, bool first, char **key, int *keylen)
{
	const char *end = s->end;
	const char *p;
	char	   *w;
	bool		unmatchable = false;
	int			r = next_item(s, pp, first, '}');

	if (r <= 0)
		return r;
	p = *pp;
	if (p >= end || *p != '"')
	{
		fail(s, p, psprintf("expected a string to begin an object key, found %s",
							describe(p, end)));
		return -1;
	}
	*key = w = COPY_AT(s, p + 1);
	p = scan_string(s, p + 1, &w, &unmatchable);
	if (p == NULL)
		return -1;
	*keylen = unmatchable ? -1 : w - *key;
	p = skip_ws(p, end);
	if (p >= end || *p != ':')
	{
		fail(s, p, psprintf("expected ':' after object key, found %s", describe(p, end)));
		return -1;
	}
	p = skip_ws(p + 1, end);
	if (p >= end)
	{
		fail(s, p, "unexpected end of input, expected a value");
		return -1;
	}
	*pp = p;
	return 1;
}

/* the next element of the array being read, as next_item */
static int
next_element(Scan *s, const char **pp, bool first)
{
	int			r = next_item(s, pp, first, ']');

	if (r > 0 && *pp >= s->end)
	{
		fail(s, *pp, "unexpected end of input, expected a value");
		return -1;
	}
	return r;
}

/*
 * The object at p (its '{'), a row: each member whose key names a column
 * goes to s->vals/s->kinds, the others are only validated.  Returns the
 * position after the object, or NULL.
 */
static const char *
scan_row_object(Scan *s, const char *p)
{
	SpDecoder  *d = s->d;
	int			prev = -1;		/* the last column whose key was seen */
	char	   *key;
	int			len;
	int			r;
	bool		first = true;

	memset(s->kinds, VK_ABSENT, d->ncols);
	while ((r = next_member(s, &p, first, &key, &len)) > 0)
	{
		/* messages of a topic usually have their keys in one order */
		int			col = d->next_key[prev + 1];

		first = false;
		if (len < 0)
			col = -1;
		else if (col < 0 || d->cols[col].namelen != len ||
				 memcmp(d->cols[col].name, key, len) != 0)
		{
			col = lookup_key(d, key, len);
			if (col >= 0)
				d->next_key[prev + 1] = col;
		}
		if (col >= 0)
			prev = col;
		p = col < 0 ? skip_value(s, p) : scan_column_value(s, p, col);
		if (p == NULL)
			return NULL;
	}
	return r < 0 ? NULL : p;
}

/* the message's first value must be an object; false if not */
static bool
expect_object(Scan *s, const char *p)
{
	const char *end = s->end;

	if (p < end && *p == '{')
		return true;
	fail(s, p, p >= end ? "message is empty, expected a JSON object" :
		 *p == '[' ? "message is a JSON array, expected a JSON object" :
		 psprintf("expected a JSON object, found %s", describe(p, end)));
	s->syntax = (p < end && *p != '[');
	return false;
}

/* nothing but white space after the message's object at p */
static bool
expect_end(Scan *s, const char *p)
{
	p = skip_ws(p, s->end);
	if (p < s->end)
	{
		fail(s, p, psprintf("unexpected %s after the JSON object", describe(p, s->end)));
		return false;
	}
	return true;
}

static bool
decode_json(SpDecoder *d, Scan *s)
{
	const char *p = skip_ws(s->start, s->end);

	if (!expect_object(s, p))
		return false;
	s->vals = d->vals;
	s->kinds = d->kinds;
	p = scan_row_object(s, p);
	return p != NULL && expect_end(s, p);
}

/* a row's value for a column that is not json cannot be an object or array */
static bool
check_nested(SpDecoder *d, const uint8 *kinds, const char *image, char **error)
{
	int			i;

	for (i = 0; i < d->ncols; i++)
	{
		SpColumn   *c = &d->cols[i];

		if (kinds[i] >= VK_OBJECT && !c->is_json)
		{
			*error = psprintf("%s%scolumn \"%s\" of type %s cannot take a JSON %s",
							  image ? image : "", image ? ": " : "",
							  c->name, c->typname,
							  kinds[i] == VK_OBJECT ? "object" : "array");
			return false;
		}
	}
	return true;
}

/* ------------------------------------------------------------------------
 * Debezium change events
 * ------------------------------------------------------------------------
 */

/*
 * One level of a change event: the message's object, or the object under
 * its "payload".  The row images of level l are scanned into
 * d->img_vals[2 * l] (before) and d->img_vals[2 * l + 1] (after).
 */
typedef struct Envelope
{
	const char *op;				/* NUL-terminated in the copy; NULL: none */
	uint8		before;			/* VK_ABSENT, VK_NULL or VK_OBJECT */
	uint8		after;
	uint8		payload;		/* level 0 only, likewise */
} Envelope;

/* the envelope is sound JSON so far, but not a change event */
static const char *
malformed(Scan *s, const char *msg)
{
	s->errmsg = msg;
	s->syntax = false;
	return NULL;
}

#define KEY_IS(key, len, lit) \
	((len) == sizeof(lit) - 1 && memcmp((key), (lit), sizeof(lit) - 1) == 0)

/* the string at p (its quote), unescaped and NUL-terminated in the copy */
static const char *
scan_text(Scan *s, const char *p, char **text, int *len)
{
	char	   *w = COPY_AT(s, p + 1);

	*text = w;
	p = scan_string(s, p + 1, &w, NULL);
	if (p != NULL)
	{
		*w = '\0';
		*len = w - *text;
	}
	return p;
}

/*
 * The array at p (its '['): each element that is an object is read by
 * each(), the others are only validated.  Returns the position after the
 * array, or NULL.
 */
static const char *
scan_objects(Scan *s, const char *p, const char *(*each) (Scan *s, const char *p))
{
	int			r;
	bool		first = true;

	while ((r = next_element(s, &p, first)) > 0)
	{
		first = false;
		p = *p == '{' ? each(s, p) : skip_value(s, p);
		if (p == NULL)
			return NULL;
	}
	return r < 0 ? NULL : p;
}

/*
 * The message's Kafka Connect schema (JsonConverter, schemas.enable): the
 * logical types of the row images' fields say how their values are
 * encoded.  Only these matter here:
 *
 *   {"type": "struct", "fields": [
 *       {"type": "struct", "field": "before" | "after", "fields": [
 *           {"type": "int64", "field": "ts", "name": "io.debezium.time.MicroTimestamp"},
 *           {"type": "bytes", "field": "price", "name": "org.apache.kafka.connect.data.Decimal",
 *            "parameters": {"scale": "2"}}, ...]}, ...]}
 *
 * A topic's messages usually all carry the same schema: its text is kept,
 * and a message whose schema is the same bytes is not read again.
 */
#define UNIT_NONE		0		/* no logical type we know: the defaults */
#define UNIT_MILLIS		1		/* epoch number in milliseconds */
#define UNIT_MICROS		2
#define UNIT_NANOS		3
#define UNIT_DAYS		4
#define UNIT_DECIMAL	5		/* base64 two's complement, d->schema_scales[col] */

static uint8
logical_unit(const char *name)
{
	if (strcmp(name, "io.debezium.time.Timestamp") == 0 ||
		strcmp(name, "org.apache.kafka.connect.data.Timestamp") == 0)
		return UNIT_MILLIS;
	if (strcmp(name, "io.debezium.time.MicroTimestamp") == 0)
		return UNIT_MICROS;
	if (strcmp(name, "io.debezium.time.NanoTimestamp") == 0)
		return UNIT_NANOS;
	if (strcmp(name, "io.debezium.time.Date") == 0 ||
		strcmp(name, "org.apache.kafka.connect.data.Date") == 0)
		return UNIT_DAYS;
	if (strcmp(name, "org.apache.kafka.connect.data.Decimal") == 0)
		return UNIT_DECIMAL;
	return UNIT_NONE;
}

/* one field of a row image's struct: its column's unit goes to d->pending */
static const char *
scan_schema_column(Scan *s, const char *p)
{
	SpDecoder  *d = s->d;
	int			col = -1;
	uint8		unit = UNIT_NONE;
	int32		scale = 0;
	char	   *key;
	int			len;
	int			r;
	bool		first = true;

	while ((r = next_member(s, &p, first, &key, &len)) > 0)
	{
		char	   *text;
		int			tlen;

		first = false;
		if (*p == '"' && KEY_IS(key, len, "field"))
		{
			p = scan_text(s, p, &text, &tlen);
			if (p != NULL)
				col = lookup_key(d, text, tlen);
		}
		else if (*p == '"' && KEY_IS(key, len, "name"))
		{
			p = scan_text(s, p, &text, &tlen);
			if (p != NULL)
				unit = logical_unit(text);
		}
		else if (*p == '{' && KEY_IS(key, len, "parameters"))
		{
			bool		pfirst = true;

			while ((r = next_member(s, &p, pfirst, &key, &len)) > 0)
			{
				const char *q = skip_value(s, p);

				pfirst = false;
				/* "2" as Kafka Connect writes it, or 2: atoi stops at the end */
				if (q != NULL && KEY_IS(key, len, "scale"))
					scale = atoi(COPY_AT(s, p) + (*p == '"'));
				p = q;
				if (p == NULL)
					return NULL;
			}
			if (r < 0)
				return NULL;
		}
		else
			p = skip_value(s, p);
		if (p == NULL)
			return NULL;
	}
	if (r < 0)
		return NULL;
	if (col >= 0)
	{
		d->pending_units[col] = unit;
		d->pending_scales[col] = Max(scale, 0);
	}
	return p;
}

/* a field of the envelope's struct: "before" and "after" give the units */
static const char *
scan_schema_field(Scan *s, const char *p)
{
	SpDecoder  *d = s->d;
	bool		image = false;
	bool		fields = false;
	char	   *key;
	int			len;
	int			r;
	bool		first = true;

	while ((r = next_member(s, &p, first, &key, &len)) > 0)
	{
		first = false;
		if (*p == '"' && KEY_IS(key, len, "field"))
		{
			char	   *text;
			int			tlen;

			p = scan_text(s, p, &text, &tlen);
			image = (p != NULL && (strcmp(text, "before") == 0 || strcmp(text, "after") == 0));
		}
		else if (*p == '[' && KEY_IS(key, len, "fields"))
		{
			memset(d->pending_units, UNIT_NONE, d->ncols);
			fields = true;
			p = scan_objects(s, p, scan_schema_column);
		}
		else
			p = skip_value(s, p);
		if (p == NULL)
			return NULL;
	}
	if (r < 0)
		return NULL;
	if (image && fields)
	{
		memcpy(d->schema_units, d->pending_units, d->ncols);
		memcpy(d->schema_scales, d->pending_scales, sizeof(int32) * d->ncols);
	}
	return p;
}

/* the "schema" member at p: sets d->units for this message */
static const char *
scan_schema(Scan *s, const char *p)
{
	SpDecoder  *d = s->d;
	const char *start = p;
	char	   *key;
	int			len;
	int			r;
	bool		first = true;

	if (*p != '{')
		return skip_value(s, p);
	if (d->schema_len > 0 && s->end - p >= d->schema_len &&
		memcmp(p, d->schema_text, d->schema_len) == 0)
	{
		d->units = d->schema_units;
		return p + d->schema_len;
	}
	d->schema_len = 0;
	memset(d->schema_units, UNIT_NONE, d->ncols);
	while ((r = next_member(s, &p, first, &key, &len)) > 0)
	{
		first = false;
		p = *p == '[' && KEY_IS(key, len, "fields") ?
			scan_objects(s, p, scan_schema_field) : skip_value(s, p);
		if (p == NULL)
			return NULL;
	}
	if (r < 0)
		return NULL;

	/* remember it for the next message */
	if (p - start > d->schema_size)
	{
		if (d->schema_text)
			pfree(d->schema_text);
		d->schema_size = Max(p - start, 2 * d->schema_size);
		d->schema_text = MemoryContextAlloc(d->cxt, d->schema_size);
	}
	memcpy(d->schema_text, start, p - start);
	d->schema_len = p - start;
	d->units = d->schema_units;
	return p;
}

/* "before" or "after" at p: a row into image img, or null */
static const char *
scan_image(Scan *s, const char *p, int img, uint8 *kind, const char *name)
{
	bool		is_null;

	if (*p == '{')
	{
		s->vals = s->d->img_vals[img];
		s->kinds = s->d->img_kinds[img];
		*kind = VK_OBJECT;
		return scan_row_object(s, p);
	}
	if (*p == 'n')
	{
		p = scan_bare(s, p, &is_null);
		*kind = VK_NULL;
		return p;
	}
	return malformed(s, psprintf("\"%s\" must be a JSON object or null, found %s",
								 name, describe(p, s->end)));
}

/*
 * The object at p (its '{'), level 0 or 1 of a change event: "before",
 * "after" and "op" are taken, at level 0 also "payload" and "schema";
 * other members ("source", "ts_ms", "transaction", ...) are only validated.
 */
static const char *
scan_envelope(Scan *s, const char *p, Envelope *envs, int level)
{
	Envelope   *env = &envs[level];
	char	   *key;
	int			len;
	int			r;
	bool		first = true;
	bool		is_null;

	while ((r = next_member(s, &p, first, &key, &len)) > 0)
	{
		first = false;
		if (KEY_IS(key, len, "before"))
			p = scan_image(s, p, 2 * level, &env->before, "before");
		else if (KEY_IS(key, len, "after"))
			p = scan_image(s, p, 2 * level + 1, &env->after, "after");
		else if (KEY_IS(key, len, "op"))
		{
			char	   *text;
			int			tlen;

			if (*p != '"')
				return malformed(s, psprintf("\"op\" must be a string, found %s", describe(p, s->end)));
			p = scan_text(s, p, &text, &tlen);
			env->op = text;
		}
		else if (level == 0 && KEY_IS(key, len, "payload"))
		{
			if (*p == '{')
			{
				env->payload = VK_OBJECT;
				p = scan_envelope(s, p, envs, 1);
			}
			else if (*p == 'n')
			{
				env->payload = VK_NULL;
				p = scan_bare(s, p, &is_null);
			}
			else
				return malformed(s, psprintf("\"payload\" must be a JSON object or null, found %s",
											 describe(p, s->end)));
		}
		else if (level == 0 && KEY_IS(key, len, "schema"))
			p = scan_schema(s, p);
		else
			p = skip_value(s, p);
		if (p == NULL)
			return NULL;
	}
	return r < 0 ? NULL : p;
}

/*
 * A change event: the row images it stands for, as indexes into
 * d->img_vals, and their weights.  Returns how many (0 for the null
 * "payload" of a tombstone written with its schema), or -1 with s's error
 * or *error set.
 */
static int
decode_debezium(SpDecoder *d, Scan *s, int *imgs, int *weights, char **error)
{
	Envelope	envs[2] = {{0}};
	Envelope   *env = &envs[0];
	int			level = 0;
	const char *p = skip_ws(s->start, s->end);
	const char *op;
	bool		need_before;
	bool		need_after;
	int			n = 0;

	d->units = d->no_units;
	if (!expect_object(s, p))
		return -1;
	p = scan_envelope(s, p, envs, 0);
	if (p == NULL || !expect_end(s, p))
		return -1;

	/* bare, or under "payload" */
	if (env->op == NULL && env->payload == VK_OBJECT)
	{
		env = &envs[1];
		level = 1;
	}
	else if (env->op == NULL && env->payload == VK_NULL)
		return 0;
	op = env->op;
	if (op == NULL)
	{
		malformed(s, "not a Debezium change event: no \"op\" member (nor a \"payload\" object with one)");
		return -1;
	}
	need_before = (strcmp(op, "u") == 0 || strcmp(op, "d") == 0);
	need_after = (strcmp(op, "u") == 0 || strcmp(op, "c") == 0 || strcmp(op, "r") == 0);
	if (!need_before && !need_after)
	{
		malformed(s, strcmp(op, "t") == 0 ?
				  "Debezium truncate event (op \"t\") cannot be applied: it does not carry the rows it removed" :
				  psprintf("unknown Debezium op \"%.32s\" (expected \"c\", \"r\", \"u\" or \"d\")", op));
		return -1;
	}
	if (need_after && env->after != VK_OBJECT)
	{
		malformed(s, psprintf("Debezium \"%s\" event has %s \"after\" row: the row to insert is missing",
							  op, env->after == VK_NULL ? "a null" : "no"));
		return -1;
	}
	if (need_before && env->before != VK_OBJECT)
	{
		malformed(s, psprintf("Debezium \"%s\" event has %s \"before\" row: the data needed to retract the old row is missing "
							  "(the source table needs REPLICA IDENTITY FULL)",
							  op, env->before == VK_NULL ? "a null" : "no"));
		return -1;
	}

	/* retraction first: an update takes the old row out, then puts the new one in */
	if (need_before)
	{
		if (!check_nested(d, d->img_kinds[2 * level], "\"before\"", error))
			return -1;
		imgs[n] = 2 * level;
		weights[n++] = -1;
	}
	if (need_after)
	{
		if (!check_nested(d, d->img_kinds[2 * level + 1], "\"after\"", error))
			return -1;
		imgs[n] = 2 * level + 1;
		weights[n++] = 1;
	}
	return n;
}

/* ------------------------------------------------------------------------
 * CSV
 * ------------------------------------------------------------------------
 */

static bool
decode_csv(SpDecoder *d, Scan *s, char **error)
{
	const char *p = s->start;
	const char *end = s->end;
	int			nfields = 0;

	/* one record, perhaps with its line break */
	if (end > p && end[-1] == '\n')
	{
		end--;
		if (end > p && end[-1] == '\r')
			end--;
	}
	for (;;)
	{
		const char *field = p;
		ValueKind	kind = VK_TEXT;

		if (p < end && *p == '"')
		{
			char	   *w = COPY_AT(s, p);

			p++;
			for (;;)
			{
				const char *q = memchr(p, '"', end - p);

				if (q == NULL)
				{
					*error = psprintf("invalid CSV at byte %d: unterminated quoted field",
									  (int) (field - s->start));
					return false;
				}
				memcpy(w, p, q - p);
				w += q - p;
				p = q + 1;
				if (p < end && *p == '"')
				{
					*w++ = '"';
					p++;
					continue;
				}
				break;
			}
			*w = '\0';
			if (p < end && *p != ',')
			{
				*error = psprintf("invalid CSV at byte %d: expected ',' or the end of the record after a closing quote, found %s",
								  (int) (p - s->start), describe(p, end));
				return false;
			}
		}
		else
		{
			while (p < end && *p != ',')
			{
				if (*p == '"' || *p == '\n' || *p == '\r')
				{
					*error = psprintf("invalid CSV at byte %d: %s",
									  (int) (p - s->start),
									  *p == '"' ?
									  "quote in an unquoted field (quote the field and double the quote)" :
									  "line break in an unquoted field (a message holds one record; quote fields that contain line breaks)");
					return false;
				}
				p++;
			}
			*COPY_AT(s, p) = '\0';
			if (p == field)
				kind = VK_ABSENT;
		}
		if (nfields < d->ncols)
		{
			d->vals[nfields] = COPY_AT(s, field);
			d->kinds[nfields] = kind;
		}
		nfields++;
		if (p >= end)
			break;
		p++;					/* the comma */
	}
	if (nfields != d->ncols)
	{
		*error = psprintf("CSV record has %d field%s, expected %d (one per column of the stream)",
						  nfields, nfields == 1 ? "" : "s", d->ncols);
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------------
 * Decoder
 * ------------------------------------------------------------------------
 */

SpDecoder *
sp_decoder_create(const char *format, TupleDesc desc, MemoryContext cxt)
{
	SpDecoder  *d;
	SpFormat	fmt;
	MemoryContext old;
	int			ncols = 0;
	int			nslots = 8;
	int			i;

	if (strcmp(format, "json") == 0)
		fmt = SP_FORMAT_JSON;
	else if (strcmp(format, "csv") == 0)
		fmt = SP_FORMAT_CSV;
	else if (strcmp(format, "text") == 0)
		fmt = SP_FORMAT_TEXT;
	else if (strcmp(format, "debezium") == 0)
		fmt = SP_FORMAT_DEBEZIUM;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown message format \"%s\"", format),
				 errhint("The formats are \"json\", \"csv\", \"text\" and \"debezium\".")));

	for (i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			ncols++;
	if (fmt == SP_FORMAT_TEXT && ncols != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("format \"text\" needs a stream with exactly one column"),
				 errdetail("The stream has %d columns.", ncols),
				 errhint("Use format \"json\" or \"csv\" for a stream of several columns.")));

	old = MemoryContextSwitchTo(cxt);
	d = palloc0(sizeof(SpDecoder));
	d->format = fmt;
	d->cxt = cxt;
	d->natts = desc->natts;
	d->ncols = ncols;
	d->cols = palloc0(sizeof(SpColumn) * Max(ncols, 1));
	d->encoding = GetDatabaseEncoding();
	if (d->encoding != PG_UTF8 && d->encoding != PG_SQL_ASCII)
		d->from_utf8 = FindDefaultConversionProc(PG_UTF8, d->encoding);

	while (nslots < 2 * ncols)
		nslots *= 2;
	d->slots = palloc0(sizeof(int16) * nslots);
	d->slotmask = nslots - 1;

	ncols = 0;
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		SpColumn   *c = &d->cols[ncols];
		Oid			base;
		Oid			func;
		uint32		slot;

		if (att->attisdropped)
			continue;
		base = getBaseType(att->atttypid);
		c->name = pstrdup(NameStr(att->attname));
		c->namelen = strlen(c->name);
		c->hash = key_hash(c->name, c->namelen);
		c->attno = i;
		c->is_json = (base == JSONOID || base == JSONBOID);
		c->typname = format_type_be(att->atttypid);
		c->typmod = att->atttypmod;
		getTypeInputInfo(att->atttypid, &func, &c->typioparam);
		fmgr_info_cxt(func, &c->input, cxt);
		c->strict = c->input.fn_strict;
		c->temporal = base == TIMESTAMPOID ? TEMPORAL_TIMESTAMP :
			base == TIMESTAMPTZOID ? TEMPORAL_TIMESTAMPTZ :
			base == DATEOID ? TEMPORAL_DATE : TEMPORAL_NONE;
		c->plain = (base == att->atttypid && att->atttypmod < 0);
		c->direct = sp_input_kind(att->atttypid, att->atttypmod);

		for (slot = c->hash & d->slotmask; d->slots[slot] != 0;
			 slot = (slot + 1) & d->slotmask)
			;
		d->slots[slot] = ncols + 1;
		ncols++;
	}

	d->next_key = palloc(sizeof(int16) * (ncols + 1));
	for (i = 0; i <= ncols; i++)
		d->next_key[i] = i < ncols ? i : -1;
	d->vals = palloc0(sizeof(char *) * Max(ncols, 1));
	d->kinds = palloc0(Max(ncols, 1));
	if (fmt == SP_FORMAT_DEBEZIUM)
	{
		for (i = 0; i < 4; i++)
		{
			d->img_vals[i] = palloc0(sizeof(char *) * Max(ncols, 1));
			d->img_kinds[i] = palloc0(Max(ncols, 1));
		}
		d->no_units = palloc0(Max(ncols, 1));
		d->schema_units = palloc0(Max(ncols, 1));
		d->pending_units = palloc0(Max(ncols, 1));
		d->schema_scales = palloc0(sizeof(int32) * Max(ncols, 1));
		d->pending_scales = palloc0(sizeof(int32) * Max(ncols, 1));
		d->units = d->no_units;
	}
	d->bufsize = 1024;
	d->buf = palloc(d->bufsize);
	d->stacksize = 64;
	d->stack = palloc(d->stacksize);
	MemoryContextSwitchTo(old);
	return d;
}

/* the payload fits in a C string of the database encoding */
static bool
check_payload(SpDecoder *d, const char *data, size_t len, char **error)
{
	int			ok;

	if (len >= MaxAllocSize)
	{
		*error = psprintf("message of %zu bytes is too large to decode", len);
		return false;
	}
	ok = pg_encoding_verifymbstr(d->encoding, data, (int) len);
	if (ok == (int) len)
		return true;
	if (data[ok] == '\0')
		*error = psprintf("message contains a NUL byte at byte %d", ok);
	else
	{
		StringInfoData bytes;
		int			i;

		initStringInfo(&bytes);
		for (i = ok; i < (int) len && i < ok + 4; i++)
			appendStringInfo(&bytes, " 0x%02x", (uint8) data[i]);
		*error = psprintf("invalid byte sequence for encoding \"%s\" at byte %d:%s",
						  pg_encoding_to_char(d->encoding), ok, bytes.data);
	}
	return false;
}

/* check the payload and copy it for scanning; false with *error if it is unfit */
static bool
begin_scan(SpDecoder *d, const char *data, size_t len, Scan *s, char **error)
{
	d->column = NULL;
	*error = NULL;
	if (!check_payload(d, data, len, error))
		return false;

	if (len + 1 > d->bufsize)
	{
		Size		size = d->bufsize;

		while (size < len + 1)
			size *= 2;
		pfree(d->buf);
		d->bufsize = Min(size, MaxAllocSize);
		d->buf = MemoryContextAlloc(d->cxt, d->bufsize);
	}
	memcpy(d->buf, data, len);
	d->buf[len] = '\0';
	s->d = d;
	s->start = data;
	s->end = data + len;
	s->copy = d->buf;
	s->vals = d->vals;
	s->kinds = d->kinds;
	s->errpos = NULL;
	s->errmsg = NULL;
	s->syntax = false;
	return true;
}

static char *
scan_error(Scan *s)
{
	return s->syntax ?
		psprintf("invalid JSON at byte %d: %s", (int) (s->errpos - s->start), s->errmsg) :
		pstrdup(s->errmsg);
}

/* days between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch) */
#define UNIX_TO_PG_DAYS		(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE)

/* without a schema, a date number of at least this magnitude is milliseconds */
#define DATE_MS_THRESHOLD	INT64CONST(100000000)
#define MSECS_PER_DAY		(SECS_PER_DAY * INT64CONST(1000))

/* floor(a / b), b > 0 */
static inline int64
floor_div(int64 a, int64 b)
{
	return a / b - (a % b < 0 ? 1 : 0);
}

/* the two decimal digits at p */
static inline bool
two_digits(const char *p, int *v)
{
	if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
		return false;
	*v = (p[0] - '0') * 10 + (p[1] - '0');
	return true;
}

/*
 * The common case of a timestamptz in a message, parsed without the input
 * function: exactly "YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}](Z|+HH[:MM]|-HH[:MM])",
 * with a zone, so the session's time zone plays no part.  Anything else
 * (no zone, more digits, names, 'infinity', years beyond 9999) returns
 * false and goes through timestamptz_in, which gives the same result for
 * every string this accepts.
 */
static bool
fast_timestamptz(const char *str, TimestampTz *result)
{
	const char *p = str;
	int			y1, y2, mon, day, hour, min, sec;
	int			tzh = 0, tzm = 0, sign = 1;
	int64		frac = 0;
	int			digits = 0;
	struct pg_tm tm;
	int			tz;

	if (!two_digits(p, &y1) || !two_digits(p + 2, &y2) || p[4] != '-' ||
		!two_digits(p + 5, &mon) || p[7] != '-' || !two_digits(p + 8, &day) ||
		(p[10] != 'T' && p[10] != ' ') ||
		!two_digits(p + 11, &hour) || p[13] != ':' || !two_digits(p + 14, &min) ||
		p[16] != ':' || !two_digits(p + 17, &sec))
		return false;
	p += 19;
	if (*p == '.')
	{
		p++;
		while (*p >= '0' && *p <= '9')
		{
			if (++digits > 6)
				return false;
			frac = frac * 10 + (*p++ - '0');
		}
		if (digits == 0)
			return false;
		for (; digits < 6; digits++)
			frac *= 10;
	}
	if (*p == 'Z' && p[1] == '\0')
		p++;
	else if (*p == '+' || *p == '-')
	{
		sign = (*p == '-') ? -1 : 1;
		if (!two_digits(p + 1, &tzh))
			return false;
		p += 3;
		if (*p == ':')
			p++;
		if (*p != '\0')
		{
			if (!two_digits(p, &tzm))
				return false;
			p += 2;
		}
		if (*p != '\0')
			return false;
	}
	else
		return false;
	if (mon < 1 || mon > 12 || day < 1 || hour > 23 || min > 59 || sec > 59 ||
		tzh > 15 || tzm > 59 ||
		day > day_tab[isleap(y1 * 100 + y2)][mon - 1] || y1 * 100 + y2 < 1)
		return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y1 * 100 + y2;
	tm.tm_mon = mon;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	/* seconds west of UTC, as timestamptz_in counts them */
	tz = -sign * (tzh * SECS_PER_HOUR + tzm * SECS_PER_MINUTE);
	return tm2timestamp(&tm, (fsec_t) frac, &tz, result) == 0;
}

SpInputKind
sp_input_kind(Oid type, int32 typmod)
{
	if (typmod >= 0)
		return SP_INPUT_CALL;
	switch (type)
	{
		case INT2OID:
			return SP_INPUT_INT2;
		case INT4OID:
			return SP_INPUT_INT4;
		case INT8OID:
			return SP_INPUT_INT8;
		case TEXTOID:
			return SP_INPUT_TEXT;
		case TIMESTAMPTZOID:
			return SP_INPUT_TIMESTAMPTZ;
		default:
			return SP_INPUT_CALL;
	}
}

bool
sp_input_direct(SpInputKind kind, char *str, Datum *value)
{
	TimestampTz ts;

	switch (kind)
	{
		case SP_INPUT_INT2:
			*value = Int16GetDatum(pg_strtoint16(str));
			return true;
		case SP_INPUT_INT4:
			*value = Int32GetDatum(pg_strtoint32(str));
			return true;
		case SP_INPUT_INT8:
			*value = Int64GetDatum(pg_strtoint64(str));
			return true;
		case SP_INPUT_TEXT:
			*value = PointerGetDatum(cstring_to_text(str));
			return true;
		case SP_INPUT_TIMESTAMPTZ:
			if (!fast_timestamptz(str, &ts))
				return false;
			*value = TimestampTzGetDatum(ts);
			return true;
		case SP_INPUT_CALL:
			break;
	}
	return false;
}

/*
 * A JSON number for a timestamp, timestamptz or date column, as Debezium
 * and Kafka Connect encode those (for a timestamp without time zone, the
 * wall clock as if in UTC).  unit is the field's logical type from the
 * message's schema; without one, timestamps are milliseconds since
 * 1970-01-01 00:00 UTC and dates days since 1970-01-01, or milliseconds
 * when the magnitude is 10^8 or more (no date of that many days exists).
 * A domain, or a column with a precision, gets the value through its input
 * function as text, so that it is checked and rounded as usual.
 */
static Datum
epoch_value(SpColumn *c, const char *str, uint8 unit)
{
	char	   *endp;
	int64		n;
	Datum		v;
	char	   *text;

	errno = 0;
	n = strtoi64(str, &endp, 10);
	if (errno != 0 || *endp != '\0' || endp == str)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
				 errmsg("invalid number %s for type %s: expected an integer count since 1970-01-01",
						str, c->typname)));
	if (unit == UNIT_NONE)
		unit = c->temporal != TEMPORAL_DATE ? UNIT_MILLIS :
			(n <= -DATE_MS_THRESHOLD || n >= DATE_MS_THRESHOLD) ? UNIT_MILLIS : UNIT_DAYS;
	if (c->temporal == TEMPORAL_DATE)
	{
		int64		days;

		switch (unit)
		{
			case UNIT_DAYS:
				days = n;
				break;
			case UNIT_MILLIS:
				days = floor_div(n, MSECS_PER_DAY);
				break;
			case UNIT_MICROS:
				days = floor_div(n, USECS_PER_DAY);
				break;
			default:
				days = floor_div(n, USECS_PER_DAY * 1000);
				break;
		}
		days -= UNIX_TO_PG_DAYS;
		if (!IS_VALID_DATE(days))
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("date out of range: %s since 1970-01-01", str)));
		v = DateADTGetDatum((DateADT) days);
		if (c->plain)
			return v;
		text = DatumGetCString(DirectFunctionCall1(date_out, v));
	}
	else
	{
		int64		us;
		Timestamp	ts;
		bool		overflow;

		switch (unit)
		{
			case UNIT_DAYS:
				overflow = pg_mul_s64_overflow(n, USECS_PER_DAY, &us);
				break;
			case UNIT_MICROS:
				us = n;
				overflow = false;
				break;
			case UNIT_NANOS:
				us = floor_div(n, 1000);
				overflow = false;
				break;
			default:
				overflow = pg_mul_s64_overflow(n, 1000, &us);
				break;
		}
		if (overflow ||
			pg_sub_s64_overflow(us, UNIX_TO_PG_DAYS * USECS_PER_DAY, &ts) ||
			!IS_VALID_TIMESTAMP(ts))
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range: %s %s since 1970-01-01", str,
							unit == UNIT_DAYS ? "days" : unit == UNIT_MICROS ? "microseconds" :
							unit == UNIT_NANOS ? "nanoseconds" : "milliseconds")));
		v = TimestampGetDatum(ts);
		if (c->plain)
			return v;
		text = DatumGetCString(DirectFunctionCall1(c->temporal == TEMPORAL_TIMESTAMP ?
												   timestamp_out : timestamptz_out, v));
	}
	return InputFunctionCall(&c->input, text, c->typioparam, c->typmod);
}

/*
 * Kafka Connect's Decimal: the unscaled value, big-endian two's
 * complement, in base64; the scale is in the schema.  Returns its decimal
 * text.
 */
static char *
decimal_text(SpColumn *c, const char *str, int scale)
{
	int			len = strlen(str);
	int			maxbytes = pg_b64_dec_len(len) + 1;
	uint8	   *bytes = palloc(maxbytes);
	int			nbytes = pg_b64_decode(str, len, (char *) bytes, maxbytes);
	bool		negative;
	uint32	   *limbs;			/* base 10^9, least significant first */
	int			nlimbs = 0;
	StringInfoData out;
	char	   *digits;
	int			ndigits;
	int			i;

	if (nbytes <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid Decimal \"%s\" for type %s: expected the base64 of its unscaled value",
						str, c->typname)));
	negative = (bytes[0] & 0x80) != 0;
	if (negative)
	{
		/* two's complement: the magnitude is ~x + 1 */
		for (i = 0; i < nbytes; i++)
			bytes[i] = ~bytes[i];
		for (i = nbytes - 1; i >= 0; i--)
			if (++bytes[i] != 0)
				break;
	}
	limbs = palloc0(sizeof(uint32) * (nbytes * 8 / 29 + 2));
	for (i = 0; i < nbytes; i++)
	{
		uint64		carry = bytes[i];
		int			j;

		for (j = 0; j < nlimbs; j++)
		{
			uint64		x = (uint64) limbs[j] * 256 + carry;

			limbs[j] = (uint32) (x % 1000000000);
			carry = x / 1000000000;
		}
		if (carry > 0)
			limbs[nlimbs++] = (uint32) carry;
	}
	initStringInfo(&out);
	if (nlimbs == 0)
		appendStringInfoChar(&out, '0');
	else
	{
		appendStringInfo(&out, "%u", limbs[nlimbs - 1]);
		for (i = nlimbs - 2; i >= 0; i--)
			appendStringInfo(&out, "%09u", limbs[i]);
	}
	digits = out.data;
	ndigits = out.len;

	/* the decimal point scale digits from the right */
	initStringInfo(&out);
	if (negative)
		appendStringInfoChar(&out, '-');
	if (scale <= 0)
		appendStringInfoString(&out, digits);
	else if (ndigits > scale)
		appendStringInfo(&out, "%.*s.%s", ndigits - scale, digits, digits + ndigits - scale);
	else
	{
		appendStringInfoString(&out, "0.");
		for (i = ndigits; i < scale; i++)
			appendStringInfoChar(&out, '0');
		appendStringInfoString(&out, digits);
	}
	return out.data;
}

/* a well-formed row's values: each column's input function, in column order */
static void
convert_row(SpDecoder *d, char **vals, const uint8 *kinds, Datum *values, bool *nulls)
{
	int			i;

	for (i = 0; i < d->natts; i++)
	{
		values[i] = (Datum) 0;
		nulls[i] = true;
	}
	for (i = 0; i < d->ncols; i++)
	{
		SpColumn   *c = &d->cols[i];
		char	   *str = kinds[i] >= VK_TEXT ? vals[i] : NULL;

		if (str == NULL && c->strict)
			continue;
		d->column = c->name;
		nulls[c->attno] = (str == NULL);
		if (d->format == SP_FORMAT_DEBEZIUM && str != NULL)
		{
			if (kinds[i] == VK_NUMBER && c->temporal != TEMPORAL_NONE)
			{
				values[c->attno] = epoch_value(c, str, d->units[i]);
				continue;
			}
			if (kinds[i] == VK_TEXT && d->units[i] == UNIT_DECIMAL)
				str = decimal_text(c, str, d->schema_scales[i]);
		}
		if (str != NULL && sp_input_direct(c->direct, str, &values[c->attno]))
			continue;
		values[c->attno] = InputFunctionCall(&c->input, str, c->typioparam, c->typmod);
	}
	d->column = NULL;
}

/* json, csv or text: the message's one row */
static bool
decode_row(SpDecoder *d, const char *data, size_t len, Datum *values,
		   bool *nulls, char **error)
{
	Scan		s;

	if (!begin_scan(d, data, len, &s, error))
		return false;

	switch (d->format)
	{
		case SP_FORMAT_JSON:
			if (!decode_json(d, &s))
			{
				*error = scan_error(&s);
				return false;
			}
			if (!check_nested(d, d->kinds, NULL, error))
				return false;
			break;
		case SP_FORMAT_CSV:
			if (!decode_csv(d, &s, error))
				return false;
			break;
		case SP_FORMAT_TEXT:
			d->vals[0] = d->buf;
			d->kinds[0] = VK_TEXT;
			break;
		case SP_FORMAT_DEBEZIUM:
			pg_unreachable();
	}

	/* the message is well formed: convert */
	convert_row(d, d->vals, d->kinds, values, nulls);
	return true;
}

int
sp_decode_changes(SpDecoder *d, const char *data, size_t len, Datum **values,
				  bool **nulls, int *weights, char **error)
{
	Scan		s;
	int			imgs[2];
	int			n;
	int			i;

	if (data == NULL)
	{
		/* no value: for Debezium the tombstone after a delete, which did the work */
		d->column = NULL;
		*error = d->format == SP_FORMAT_DEBEZIUM ? NULL : pstrdup("message has no value");
		return *error ? -1 : 0;
	}
	if (d->format != SP_FORMAT_DEBEZIUM)
	{
		if (!decode_row(d, data, len, values[0], nulls[0], error))
			return -1;
		weights[0] = 1;
		return 1;
	}
	if (!begin_scan(d, data, len, &s, error))
		return -1;
	n = decode_debezium(d, &s, imgs, weights, error);
	if (n < 0)
	{
		if (*error == NULL)
			*error = scan_error(&s);
		return -1;
	}
	for (i = 0; i < n; i++)
		convert_row(d, d->img_vals[imgs[i]], d->img_kinds[imgs[i]], values[i], nulls[i]);
	return n;
}

const char *
sp_decoder_column(SpDecoder *d)
{
	return d->column;
}
