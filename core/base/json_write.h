/* One JSON object on one line: pbi_jw_begin, the pbi_jw_* members in
 * order, pbi_jw_end (adds "}\n"). Allocation failure is remembered and
 * reported by pbi_jw_end. Internal (pbi_ prefix). */
#ifndef PB_JSON_WRITE_H
#define PB_JSON_WRITE_H

#include <stddef.h>

#include "prunebench/error.h"

typedef struct pbi_jw {
	char *buf;
	size_t len, cap;
	int n;      /* members so far */
	int oom;
} pbi_jw;

void pbi_jw_begin(pbi_jw *j);
void pbi_jw_str(pbi_jw *j, const char *key, const char *val); /* NULL: null */
void pbi_jw_num(pbi_jw *j, const char *key, double v);       /* NaN: null */
void pbi_jw_int(pbi_jw *j, const char *key, long long v);
void pbi_jw_null(pbi_jw *j, const char *key);
void pbi_jw_bool(pbi_jw *j, const char *key, int v);       /* true/false */
/* An array of n numbers (%.6g; non-finite as 0); v NULL writes null. */
void pbi_jw_nums(pbi_jw *j, const char *key, const double *v, int n);
int pbi_jw_end(pbi_jw *j, pb_error *err);
void pbi_jw_free(pbi_jw *j);

#endif
