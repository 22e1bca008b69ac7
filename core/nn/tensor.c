#include <stdlib.h>
#include <string.h>

#include "prunebench/error.h"
#include "prunebench/tensor.h"

float *pb_falloc(size_t n)
{
	size_t bytes = n * sizeof(float);
	float *p;

	/* aligned_alloc wants a size that is a multiple of the alignment. */
	bytes = (bytes + PB_ALIGN - 1) / PB_ALIGN * PB_ALIGN;
	if (bytes == 0)
		bytes = PB_ALIGN;
	p = aligned_alloc(PB_ALIGN, bytes);
	if (p)
		memset(p, 0, bytes);
	return p;
}

void pb_ffree(float *p)
{
	free(p);
}

int pb_fensure(float **buf, size_t *cap, size_t n)
{
	float *p;

	if (*buf && *cap >= n)
		return 0;
	p = pb_falloc(n);
	if (!p)
		return PB_ENOMEM;
	pb_ffree(*buf);
	*buf = p;
	*cap = n;
	return 0;
}
