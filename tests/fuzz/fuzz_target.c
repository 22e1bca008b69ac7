/* Fuzzing pruning targets as text (pb_target_parse), as --target and an
 * experiment's `targets` give them: "KIND=X[, scope=...][, LAYER=X]...".
 *
 * A refused target must say why. An accepted one must be in range (an
 * amount in [0, 1), at most PB_TARGET_MAX_OVERRIDES overrides with
 * terminated names) and its one spelling (pb_target_format, which names
 * cells and table rows) must parse back to the same kind and amount. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "prunebench/target.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

static void check_target(const pb_target *t)
{
	char buf[64];
	pb_target back;
	pb_error err = { 0 };

	if (!(t->amount >= 0.0 && t->amount < 1.0) ||
	    (t->scope != PB_SCOPE_LAYER && t->scope != PB_SCOPE_GLOBAL) ||
	    t->n_overrides < 0 || t->n_overrides > PB_TARGET_MAX_OVERRIDES)
		fuzz_fail("accepted target out of range: amount %g, %d "
			  "overrides", t->amount, t->n_overrides);
	for (int i = 0; i < t->n_overrides; i++) {
		const pb_target_override *o = &t->overrides[i];

		if (!memchr(o->layer, '\0', sizeof o->layer) || !o->layer[0] ||
		    !(o->amount >= 0.0 && o->amount < 1.0))
			fuzz_fail("override %d is malformed", i);
	}
	pb_target_format(t, buf, sizeof buf);
	if (pb_target_parse(&back, buf, &err))
		fuzz_fail("target formatted as '%s' does not parse back: %s",
			  buf, err.msg);
	if (back.kind != t->kind || back.amount != t->amount)
		fuzz_fail("target formatted as '%s' reads back as another "
			  "target (%g, was %g)", buf, back.amount, t->amount);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	pb_target t;
	pb_error err = { 0 };
	int rc;

	if (!text)
		return 0;
	rc = pb_target_parse(&t, text, &err);
	if (rc)
		fuzz_check_error(rc, &err, "pb_target_parse");
	else
		check_target(&t);
	free(text);
	return 0;
}
