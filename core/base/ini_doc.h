/* One INI text read with inih into a document: its sections in file order,
 * each with its keys, values and line numbers. The model and experiment
 * parsers read the document section by section and report through
 * pbi_ini_err, so every message is "FILE:LINE: ...".
 *
 * Debian's inih (r55) calls the handler without a line number, so the text
 * is fed through our own line reader, which counts lines and notes section
 * headers itself. That also catches what the handler cannot see: a section
 * given twice, and sections without keys.
 *
 * Internal (pbi_ prefix, not exported). */
#ifndef PB_INI_DOC_H
#define PB_INI_DOC_H

#include <stddef.h>

#include "prunebench/error.h"

typedef struct pbi_ini_key {
	char *name, *value;
	int line;
	int used;    /* 0 after reading; for the caller's unknown-key checks */
} pbi_ini_key;

typedef struct pbi_ini_section {
	char *name;
	int line;
	pbi_ini_key *keys;
	int n_keys, cap_keys;
} pbi_ini_section;

typedef struct pbi_ini_doc pbi_ini_doc;

/* What differs between the file formats. */
typedef struct pbi_ini_rules {
	/* Called for every section header before it is stored; first_line
	 * is the line of an earlier section of the same name, or 0. Reports
	 * its own error with pbi_ini_err and returns -1 to refuse the name.
	 * If it accepts a repeated name (or is NULL), the reader refuses it
	 * with "section [NAME] is given twice (first at line N)". */
	int (*section_ok)(pbi_ini_doc *d, const char *name, int line,
			  int first_line);
	/* Ends "'KEY' is outside any section; put it under ...". */
	const char *key_home;
} pbi_ini_rules;

struct pbi_ini_doc {
	const char *source;          /* FILE in the messages */
	pb_error *err;
	const pbi_ini_rules *rules;
	const char *text;
	size_t pos;
	int line;                    /* lines read so far */
	pbi_ini_section *secs;
	int n_secs, cap_secs;
	int err_line;                /* 0 until the first error */
	int err_code;
};

/* Reads text (NULL reads as empty) into d, which needs no set-up and is
 * released with pbi_ini_free even on failure. source names the text in
 * messages (NULL: "<string>"). Returns 0, or -1 with the error in err
 * and d->err_code. */
int pbi_ini_read(pbi_ini_doc *d, const char *text, const char *source,
		 const pbi_ini_rules *rules, pb_error *err);
void pbi_ini_free(pbi_ini_doc *d);

const pbi_ini_section *pbi_ini_find(const pbi_ini_doc *d, const char *name);

/* Sets the document's error to "SOURCE:LINE: message" unless it has one
 * already (later errors are usually consequences of the first). A line
 * below 1 counts as line 1. Returns -1 for the caller to pass on. */
int pbi_ini_err(pbi_ini_doc *d, int code, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* 1 if s is non-empty and has only letters, digits and characters of
 * also (e.g. "_-"). */
int pbi_ini_name_ok(const char *s, const char *also);

/* Typed values of key k of section s, range-checked, with the message
 * "FILE:LINE: [section] key = 'value' is not ..." on failure. */
int pbi_ini_long(pbi_ini_doc *d, const pbi_ini_section *s,
		 const pbi_ini_key *k, long lo, long hi, long *out);
int pbi_ini_double(pbi_ini_doc *d, const pbi_ini_section *s,
		   const pbi_ini_key *k, double lo, double hi, double *out);
int pbi_ini_bool(pbi_ini_doc *d, const pbi_ini_section *s,
		 const pbi_ini_key *k, int *out);

#endif
