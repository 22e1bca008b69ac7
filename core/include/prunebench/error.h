/* Error reporting shared by every prunebench function.
 *
 * Functions return 0 on success or a negative PB_E* code, and fill the
 * caller's pb_error with a message that says what went wrong, where
 * (file:line when the problem comes from a file) and what to do. */
#ifndef PRUNEBENCH_ERROR_H
#define PRUNEBENCH_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
	PB_OK = 0,
	PB_EINVAL = -1,   /* bad argument or value */
	PB_ENOMEM = -2,   /* allocation failed */
	PB_EIO = -3,      /* file missing, unreadable or unwritable */
	PB_EFORMAT = -4,  /* file exists but its contents are wrong */
	PB_EPARSE = -5,   /* malformed INI or option text */
	PB_EMISMATCH = -6,/* checkpoint does not fit the model, ABI mismatch */
	PB_ENOTFOUND = -7,/* named layer, plugin, section... does not exist */
	PB_EDIVERGED = -8,/* training produced NaN or inf */
	PB_EIMPOSSIBLE = -9 /* a target that cannot be reached */
};

#define PB_ERROR_MSG_MAX 1024

typedef struct pb_error {
	int code;
	char msg[PB_ERROR_MSG_MAX];
} pb_error;

/* Sets err (if not NULL) and returns code, so callers can write
 * `return pb_error_set(err, PB_EIO, "...", ...);`. */
int pb_error_set(pb_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepends context ("loading x.ckpt: ") to an existing message. */
int pb_error_prefix(pb_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void pb_error_clear(pb_error *err);

/* A short name for a code ("I/O error", "parse error"). */
const char *pb_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
