#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "prunebench/error.h"

int pb_error_set(pb_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

int pb_error_prefix(pb_error *err, const char *fmt, ...)
{
	char old[PB_ERROR_MSG_MAX];
	size_t n;
	va_list ap;

	if (!err)
		return PB_EINVAL;
	memcpy(old, err->msg, sizeof old);
	old[sizeof old - 1] = '\0';
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	n = strlen(err->msg);
	/* Truncate the old message rather than the new context. */
	if (n < sizeof err->msg - 1) {
		size_t room = sizeof err->msg - 1 - n, len = strlen(old);
		if (len > room)
			len = room;
		memcpy(err->msg + n, old, len);
		err->msg[n + len] = '\0';
	}
	return err->code;
}

void pb_error_clear(pb_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

const char *pb_strerror(int code)
{
	switch (code) {
	case PB_OK: return "success";
	case PB_EINVAL: return "invalid argument";
	case PB_ENOMEM: return "out of memory";
	case PB_EIO: return "I/O error";
	case PB_EFORMAT: return "bad file format";
	case PB_EPARSE: return "parse error";
	case PB_EMISMATCH: return "mismatch";
	case PB_ENOTFOUND: return "not found";
	case PB_EDIVERGED: return "diverged";
	case PB_EIMPOSSIBLE: return "impossible target";
	default: return "unknown error";
	}
}
