/* Experiment INI files: expansion into cells, and every error with its
 * FILE:LINE and message. */
#include "testutil.h"

#include "experiment/tiny.h"

#include "prunebench/experiment.h"
#include "prunebench/plugin.h"


static char *dir;
static char ini_path[512];
static pb_plugin_path *sp;

static int setup(void **state)
{
	(void)state;
	dir = tu_temp_dir();
	tu_write_text(dir, "tiny.ini", tiny_model);
	snprintf(ini_path, sizeof ini_path, "%s/exp.ini", dir);
	sp = tu_plugin_path();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rm_tree(dir);
	pb_plugin_path_free(sp);
	return 0;
}

#define HEAD "[experiment]\nname = t\nmodel = tiny.ini\ndata = synthetic:100\n"

static pb_experiment *parse_ok(const char *text)
{
	pb_experiment *e = NULL;
	pb_error err = { 0 };
	int rc = pb_experiment_parse(&e, text, ini_path, sp, &err);

	if (rc)
		fail_msg("unexpected error: %s", err.msg);
	assert_non_null(e);
	return e;
}

/* The error must start with "exp.ini:LINE: " (after the folder) and
 * contain `what`. */
static void parse_err(const char *text, int line, const char *what)
{
	pb_experiment *e = NULL;
	pb_error err = { 0 };
	char want[700];
	int rc = pb_experiment_parse(&e, text, ini_path, sp, &err);

	assert_int_not_equal(rc, 0);
	assert_null(e);
	snprintf(want, sizeof want, "%s:%d: ", ini_path, line);
	if (strncmp(err.msg, want, strlen(want)) || !strstr(err.msg, what))
		fail_msg("expected '%s...%s', got '%s'", want, what, err.msg);
}

static void test_expansion(void **state)
{
	pb_experiment *e;
	pb_cell *cells;
	int n, k = 0;
	pb_error err = { 0 };
	char out[600];

	(void)state;
	e = parse_ok(HEAD "seeds = 1 2 3\n"
		     "[train]\nepochs = 2\n[finetune]\nepochs = 1\n"
		     "[prune.magnitude]\ntargets = sparsity=0.5 sparsity=0.9\n"
		     "scope = global\n"
		     "[prune.l1]\ntargets = macs=0.3\nlayer.conv2 = 0.5\n"
		     "norm = 2\n"
		     "[prune.l1s]\nplugin = l1\ntargets = macs=0.3\n"
		     "finetune = scratch\n");
	assert_int_equal(e->n_seeds, 3);
	assert_int_equal(e->dense.epochs, 2);
	assert_int_equal(e->finetune.epochs, 1);
	assert_int_equal(e->n_methods, 3);
	assert_int_equal(e->methods[0].scope, PB_SCOPE_GLOBAL);
	assert_int_equal(e->methods[1].targets[0].n_overrides, 1);
	assert_string_equal(e->methods[1].targets[0].overrides[0].layer,
			    "conv2");
	snprintf(out, sizeof out, "%s/results/t", dir);
	assert_string_equal(e->output, out);

	assert_int_equal(pb_experiment_cells(e, &cells, &n, &err), 0);
	/* 3 seeds x (dense + dense+ft) + 3 x (2 + 1 + 1) */
	assert_int_equal(n, 3 * 2 + 3 * 4);
	for (int s = 0; s < 3; s++) {
		assert_int_equal(cells[k].kind, PB_CELL_DENSE);
		assert_int_equal(cells[k++].seed, (unsigned long)(s + 1));
		assert_int_equal(cells[k].kind, PB_CELL_DENSE_FT);
		assert_string_equal(cells[k++].method, "dense+ft");
	}
	assert_int_equal(cells[k].kind, PB_CELL_PRUNE);
	assert_string_equal(cells[k].method, "magnitude");
	assert_int_equal(strncmp(cells[k].id, "magnitude-sparsity=0.5-s1-", 26),
			 0);
	assert_int_equal(strlen(cells[k].id), 26 + 8);
	assert_int_equal(cells[n - 1].kind, PB_CELL_SCRATCH);
	assert_int_equal(cells[n - 1].seed, 3);
	/* Ids are unique. */
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			assert_string_not_equal(cells[i].id, cells[j].id);
	free(cells);
	pb_experiment_free(e);
}

/* The hash follows the definition: an option change renames exactly the
 * cells of that method; the same text gives the same ids. */
static void test_hash_follows_definition(void **state)
{
	static const char a[] = HEAD "dense_ft = no\n"
		"[prune.l1]\ntargets = macs=0.3\nnorm = 1\n"
		"[prune.magnitude]\ntargets = sparsity=0.5\n";
	static const char b[] = HEAD "dense_ft = no\n"
		"[prune.l1]\ntargets = macs=0.3\nnorm = 2\n"
		"[prune.magnitude]\ntargets = sparsity=0.5\n";
	static const char c[] = HEAD "dense_ft = no\n[train]\nlr = 0.02\n"
		"[prune.l1]\ntargets = macs=0.3\nnorm = 1\n"
		"[prune.magnitude]\ntargets = sparsity=0.5\n";
	pb_experiment *ea = parse_ok(a), *ea2 = parse_ok(a), *eb = parse_ok(b),
		      *ec = parse_ok(c);
	pb_cell *ca, *ca2, *cb, *cc;
	int na, na2, nb, nc;
	pb_error err = { 0 };
	char ka[17], kc[17];

	(void)state;
	assert_int_equal(pb_experiment_cells(ea, &ca, &na, &err), 0);
	assert_int_equal(pb_experiment_cells(ea2, &ca2, &na2, &err), 0);
	assert_int_equal(pb_experiment_cells(eb, &cb, &nb, &err), 0);
	assert_int_equal(pb_experiment_cells(ec, &cc, &nc, &err), 0);
	assert_int_equal(na, 3);
	assert_int_equal(nb, 3);
	for (int i = 0; i < na; i++)
		assert_string_equal(ca[i].id, ca2[i].id);
	assert_string_equal(ca[0].id, cb[0].id);          /* dense */
	assert_string_not_equal(ca[1].id, cb[1].id);      /* l1 */
	assert_string_equal(ca[2].id, cb[2].id);          /* magnitude */
	/* A new dense recipe renames everything, and the dense cache key. */
	for (int i = 0; i < na; i++)
		assert_string_not_equal(ca[i].id, cc[i].id);
	pb_experiment_dense_key(ea, 1, ka);
	pb_experiment_dense_key(ec, 1, kc);
	assert_string_not_equal(ka, kc);
	free(ca);
	free(ca2);
	free(cb);
	free(cc);
	pb_experiment_free(ea);
	pb_experiment_free(ea2);
	pb_experiment_free(eb);
	pb_experiment_free(ec);
}

static void test_paths_relative_to_ini(void **state)
{
	pb_experiment *e;
	char want[700];

	(void)state;
	e = parse_ok(HEAD "output = ../out/x\ncache = c\n");
	snprintf(want, sizeof want, "%s/../out/x", dir);
	assert_string_equal(e->output, want);
	snprintf(want, sizeof want, "%s/c", dir);
	assert_string_equal(e->cache, want);
	snprintf(want, sizeof want, "%s/tiny.ini", dir);
	assert_string_equal(e->model_path, want);
	pb_experiment_free(e);
}

static void test_errors(void **state)
{
	(void)state;
	parse_err("[experiment]\nname = t\n", 1, "needs model");
	parse_err("[train]\nepochs = 1\n", 1, "no [experiment] section");
	parse_err(HEAD "[bogus]\nx = 1\n", 5, "unknown section [bogus]");
	parse_err(HEAD "colour = red\n", 5, "[experiment] unknown key 'colour'");
	parse_err("[experiment]\nname = t\nmodel = nope.ini\n", 3,
		  "does not exist");
	parse_err(HEAD "seeds = 1 x\n", 5, "seeds: 'x'");
	parse_err(HEAD "seeds = 1 1\n", 5, "given twice");
	parse_err(HEAD "threads = -1\n", 5, "out of range");
	parse_err(HEAD "latency = maybe\n", 5, "is not yes or no");
	parse_err("[experiment]\nname = t\nmodel = tiny.ini\n"
		  "data = mnist:nodir\n", 4, "does not exist");
	parse_err("[experiment]\nname = t\nmodel = tiny.ini\ndata = junk\n", 4,
		  "data:");
	parse_err("[experiment]\nname = a/b\nmodel = tiny.ini\n", 2, "name");
	parse_err(HEAD "[train]\nlr = fast\n", 6, "[train] lr");
	parse_err(HEAD "[train]\nwings = 2\n", 6, "unknown recipe key 'wings'");
	parse_err(HEAD "[finetune]\nval_size = 10\n", 6, "[experiment]");
	parse_err(HEAD "[prune.l1]\nscope = layer\n", 5, "needs targets");
	parse_err(HEAD "[prune.l1]\ntargets = macs=2\n", 6, "targets:");
	parse_err(HEAD "[prune.l1]\ntargets = sparsity=0.5\n", 6,
		  "does not suit plugin 'l1'");
	parse_err(HEAD "[prune.magnitude]\ntargets = macs=0.5\n", 6,
		  "does not suit plugin 'magnitude'");
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3\nscope = wide\n", 7,
		  "expected layer or global");
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3\nschedule = often\n", 7,
		  "iterative:N");
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3\nschedule = gradual\n",
		  5, "gradual needs a weight pruner");
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3\nlayer.conv9 = 0.5\n",
		  7, "no layer 'conv9'");
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3\nlayer.conv1 = 1.5\n",
		  7, "in [0, 1)");
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3\nflavour = 3\n", 7,
		  "flavour");
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3\nnorm = x\n", 7,
		  "norm");
	parse_err(HEAD "[prune.x]\nplugin = nosuchplugin\n"
		  "targets = macs=0.3\n", 6, "nosuchplugin");
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3\nfinetune = maybe\n", 7,
		  "scratch");
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3 macs=0.3\n", 6,
		  "given twice");
	parse_err(HEAD "[prune.lth]\ntargets = sparsity=0.5\nrewind = soon\n",
		  7, "is not a training point");
	parse_err(HEAD "[prune.lth]\ntargets = sparsity=0.5\nrewind = 1.5\n",
		  7, "is not a training point");
	parse_err(HEAD "[prune.lth]\ntargets = sparsity=0.5\n"
		  "matched_dense = often\n", 7, "is not yes or no");
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3\n[prune.l1]\n", 7,
		  "given twice");
	parse_err(HEAD "name = u\n", 5, "given twice");
	parse_err(HEAD "this is not ini\n", 5, "syntax error");
	parse_err("x = 1\n" HEAD, 1, "outside any section");
	parse_err(HEAD "[prune.magnitude]\ntargets = sparsity=0.5\n"
		  "schedule = gradual\ngradual_epochs = 9\n", 5,
		  "beyond the fine-tune");
}

/* What used to pass --dry-run and fail every cell after the dense
 * training, or run silently as something else than asked (issue 12). */
static void test_late_errors_caught_at_load(void **state)
{
	pb_experiment *e;

	(void)state;
	/* Per-layer overrides must name a layer the plugin can prune. */
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3\nlayer.relu1 = 0.5\n",
		  7, "'relu1' is a relu layer");
	parse_err(HEAD "[prune.magnitude]\ntargets = sparsity=0.5\n"
		  "layer.bn1 = 0.5\n", 7, "is a bn layer");
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3\nlayer.fc = 0.5\n", 7,
		  "cannot be removed");
	e = parse_ok(HEAD "[prune.magnitude]\ntargets = sparsity=0.5\n"
		     "layer.fc = 0.2\n[prune.l1]\ntargets = macs=0.3\n"
		     "layer.conv2 = 0.5\n");
	pb_experiment_free(e);
	/* A ramp that would fall instead of rise. */
	parse_err(HEAD "[prune.magnitude]\ntargets = sparsity=0.5\n"
		  "schedule = gradual\ngradual_initial = 0.9\n", 5,
		  "gradual_initial = 0.9 is not below the target "
		  "sparsity=0.5");
	/* One target, one spelling: 0.50 and 5e-1 are 0.5. */
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.5 macs=0.50\n", 6,
		  "'macs=0.5' is given twice (as macs=0.50)");
	e = parse_ok(HEAD "[prune.magnitude]\ntargets = sparsity=5e-1\n");
	assert_string_equal(e->methods[0].target_text[0], "sparsity=0.5");
	pb_experiment_free(e);
	/* stream = METHOD names another method with the same targets. */
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3\nstream = nope\n", 7,
		  "no such [prune.NAME]");
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3\nstream = l1\n", 7,
		  "its own streams");
	parse_err(HEAD "[prune.l1]\ntargets = macs=0.3\n[prune.l1b]\n"
		  "plugin = l1\ntargets = macs=0.5\nstream = l1\n", 10,
		  "target macs=0.5 is not one of l1's");
	e = parse_ok(HEAD "[prune.l1]\ntargets = macs=0.3 macs=0.5\n"
		     "[prune.l1b]\nplugin = l1\ntargets = macs=0.5\n"
		     "stream = l1\n");
	pb_experiment_free(e);
	/* Recipes that cannot train as written. */
	parse_err(HEAD "[train]\nlr = 0.1\nepochs = 0\n", 7, "epochs = 0");
	parse_err(HEAD "[finetune]\nepochs = 0\n", 6, "[finetune] epochs");
	parse_err(HEAD "[train]\nlr = 0.01\nmin_lr = 0.1\n", 7,
		  "min_lr = 0.1 is above lr = 0.01");
}

static void test_missing_file(void **state)
{
	pb_experiment *e = NULL;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(pb_experiment_load(&e, "/nonexistent/x.ini", sp, &err),
			 PB_EIO);
	assert_non_null(strstr(err.msg, "/nonexistent/x.ini"));
}

/* The shipped experiments load (their model files and plugins exist). */
static void test_shipped(void **state)
{
	const char *src = getenv("PB_SRCDIR");
	const char *names[] = { "quickstart.ini", "fmnist-vggs.ini",
				"fmnist-vggs-compact.ini", "fmnist-resnets.ini",
				"fmnist-resnets-compact.ini",
				"fmnist-vggs-sensitivity.ini" };
	char path[4096];

	(void)state;
	if (!src)
		src = PB_SRCDIR;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		pb_experiment *e = NULL;
		pb_error err = { 0 };
		snprintf(path, sizeof path, "%s/experiments/%s", src, names[i]);
		if (pb_experiment_load(&e, path, sp, &err)) {
			/* The Debian dataset may be absent on this machine. */
			if (strstr(err.msg, "data:"))
				continue;
			fail_msg("%s", err.msg);
		}
		assert_true(e->n_methods >= 2);
		pb_experiment_free(e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expansion),
		cmocka_unit_test(test_hash_follows_definition),
		cmocka_unit_test(test_paths_relative_to_ini),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_late_errors_caught_at_load),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_shipped),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
