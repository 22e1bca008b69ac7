/* Writing a model definition back as INI text that pb_model_load reads to
 * the same graph; pruned models (changed channel counts) are saved this
 * way. Keys at their defaults are left out except the ones a reader looks
 * for first (out, kernel, pad), so the files stay short and readable. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "nn/model_impl.h"

/* The shortest decimal that reads back as the same float. */
static void fmt_float(char *buf, size_t n, float v)
{
	for (int prec = 6; prec <= 9; prec++) {
		snprintf(buf, n, "%.*g", prec, (double)v);
		if (strtof(buf, NULL) == v)
			return;
	}
}

static void write_input(FILE *f, const pb_model *m, int i)
{
	const pb_layer_info *li = &m->nodes[i].info;
	const char *a, *b;

	if (li->type == PB_LAYER_ADD) {
		a = li->inputs[0] < 0 ? "input" : m->nodes[li->inputs[0]].name;
		b = li->inputs[1] < 0 ? "input" : m->nodes[li->inputs[1]].name;
		fprintf(f, "inputs = %s, %s\n", a, b);
		return;
	}
	/* The default input is the previous layer (the model input for the
	 * first one). */
	if (li->inputs[0] == i - 1)
		return;
	fprintf(f, "input = %s\n",
		li->inputs[0] < 0 ? "input" : m->nodes[li->inputs[0]].name);
}

static void write_params(FILE *f, const pb_layer_info *li)
{
	char buf[32];

	switch (li->type) {
	case PB_LAYER_CONV:
		fprintf(f, "out = %d\nkernel = %d\n", li->out_c, li->kernel);
		if (li->stride != 1)
			fprintf(f, "stride = %d\n", li->stride);
		fprintf(f, "pad = %d\n", li->pad);
		if (!li->has_bias)
			fputs("bias = no\n", f);
		break;
	case PB_LAYER_LINEAR:
		fprintf(f, "out = %d\n", li->out_c);
		if (!li->has_bias)
			fputs("bias = no\n", f);
		break;
	case PB_LAYER_BN:
		if (li->eps != 1e-5f) {
			fmt_float(buf, sizeof buf, li->eps);
			fprintf(f, "eps = %s\n", buf);
		}
		if (li->momentum != 0.1f) {
			fmt_float(buf, sizeof buf, li->momentum);
			fprintf(f, "momentum = %s\n", buf);
		}
		break;
	case PB_LAYER_MAXPOOL:
	case PB_LAYER_AVGPOOL:
		if (li->type == PB_LAYER_AVGPOOL && li->global) {
			fputs("global = yes\n", f);
			break;
		}
		fprintf(f, "kernel = %d\n", li->kernel);
		if (li->stride != li->kernel)
			fprintf(f, "stride = %d\n", li->stride);
		break;
	case PB_LAYER_DROPOUT:
		fmt_float(buf, sizeof buf, li->p);
		fprintf(f, "p = %s\n", buf);
		break;
	default:
		break;
	}
}

static void write_model(FILE *f, const pb_model *m)
{
	/* inih reads lines of at most 198 characters: a long path is left
	 * out rather than making the file unreadable. */
	if (strlen(m->source) < 120)
		fprintf(f, "; written by prunebench from %s\n\n", m->source);
	else
		fputs("; written by prunebench\n\n", f);
	fprintf(f, "[model]\nname = %s\ninput = %dx%dx%d\nclasses = %d\n",
		m->name, m->in_c, m->in_h, m->in_w, m->classes);
	for (int i = 0; i < m->n_nodes; i++) {
		const pb_layer_info *li = &m->nodes[i].info;
		fprintf(f, "\n[%s]\ntype = %s\n", li->name,
			pb_layer_type_name(li->type));
		write_input(f, m, i);
		write_params(f, li);
	}
}

int pb_model_write_ini(const pb_model *m, const char *path, pb_error *err)
{
	pbi_atomic a;
	int rc;

	if ((rc = pbi_atomic_begin(&a, path, "model file", err)))
		return rc;
	write_model(a.f, m);
	return pbi_atomic_commit(&a, err);
}

void pbi_model_ini_print(FILE *f, const pb_model *m)
{
	write_model(f, m);
}
