/* A small, strict reader for prunebench's own JSON lines (runs.jsonl): one
 * object per line whose values are strings, numbers, null, booleans or
 * arrays of numbers. Any other well-formed JSON value (a nested object, an
 * array holding strings) is accepted and kept as PBJ_OTHER, so that a newer
 * writer's extra keys never break an older reader. Internal (pbi_ prefix). */
#ifndef PB_JSON_READ_H
#define PB_JSON_READ_H

#include <stddef.h>

typedef enum pbj_type {
	PBJ_NULL,
	PBJ_BOOL,
	PBJ_NUMBER,
	PBJ_STRING,
	PBJ_ARRAY,  /* array of numbers only */
	PBJ_OTHER   /* well-formed but not one of the above; ignored */
} pbj_type;

typedef struct pbj_value {
	pbj_type type;
	int boolean;
	double num;
	char *str;   /* PBJ_STRING: UTF-8, NUL-terminated (no embedded NUL) */
	double *arr; /* PBJ_ARRAY */
	int n_arr;
} pbj_value;

typedef struct pbj_member {
	char *key;
	pbj_value v;
} pbj_member;

typedef struct pbj_object {
	pbj_member *m;
	int n, cap;
} pbj_object;

/* Parses one line (len bytes; trailing blanks and newline allowed) that must
 * hold exactly one object. Duplicate keys are an error. On failure returns
 * -1, leaves *out empty and writes the reason with its byte column into
 * why. */
int pbi_json_parse_object(const char *text, size_t len, pbj_object *out,
			  char *why, size_t why_len);

void pbi_json_object_free(pbj_object *o);

/* The member named key, or NULL. */
const pbj_value *pbi_json_get(const pbj_object *o, const char *key);

/* Typed look-ups: a missing key or a null gives the fallback (NaN for
 * numbers, NULL for strings); a value of another type also gives the
 * fallback and sets *bad to 1 when bad is not NULL. */
double pbi_json_num(const pbj_object *o, const char *key, int *bad);
const char *pbi_json_str(const pbj_object *o, const char *key, int *bad);

#endif
