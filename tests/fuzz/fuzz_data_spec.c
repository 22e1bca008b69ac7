/* Fuzzing data set specs (pb_data_spec_parse): "fashion-mnist:DIR",
 * "cifar10:DIR", "synthetic:N[:SEED]", as --data and an experiment's
 * `data` give them. Only the text is read here; loading the files a spec
 * names is the IDX and CIFAR-10 harnesses' part.
 *
 * A refused spec must say why; an accepted one must be one of the known
 * kinds with terminated fields, a folder for the file kinds and N in
 * range for synthetic. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "prunebench/data.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

static void check_spec(const pb_data_spec *s)
{
	int synthetic;

	if (!memchr(s->kind, '\0', sizeof s->kind) ||
	    !memchr(s->dir, '\0', sizeof s->dir))
		fuzz_fail("a field of the spec is not terminated");
	synthetic = !strcmp(s->kind, "synthetic");
	if (!synthetic && strcmp(s->kind, "fashion-mnist") &&
	    strcmp(s->kind, "mnist") && strcmp(s->kind, "cifar10"))
		fuzz_fail("accepted unknown kind '%s'", s->kind);
	if (synthetic && (s->synthetic_n < 5 || s->synthetic_n > 10000000))
		fuzz_fail("accepted synthetic N %d", s->synthetic_n);
	if (!synthetic && !s->dir[0])
		fuzz_fail("accepted %s without a folder", s->kind);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	pb_data_spec spec;
	pb_error err = { 0 };
	int rc;

	if (!text)
		return 0;
	rc = pb_data_spec_parse(&spec, text, &err);
	if (rc)
		fuzz_check_error(rc, &err, "pb_data_spec_parse");
	else
		check_spec(&spec);
	free(text);
	return 0;
}
