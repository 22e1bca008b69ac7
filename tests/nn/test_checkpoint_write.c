/* A model saved as a pair of files (pb_model_save in
 * core/nn/checkpoint_write.c): BASE.ckpt and BASE.ini load back into the
 * same model, shapes, state and masks; when either file cannot be
 * written the old pair stays as it was and no temporary file is left. */
#include "nn/mask.h"
#include "testutil.h"

#include <dirent.h>
#include <sys/syscall.h>

#include "prunebench/prunebench.h"

/* Shapes no shipped model has (conv1 as if pruned to 5 channels): only
 * the saved INI can rebuild it. */
static const char net[] =
	"[model]\nname = saved\ninput = 2x6x6\nclasses = 3\n"
	"[conv1]\ntype = conv\nout = 5\nkernel = 3\npad = 1\nbias = no\n"
	"[bn1]\ntype = bn\n[relu1]\ntype = relu\n"
	"[pool1]\ntype = maxpool\nkernel = 2\n"
	"[flat]\ntype = flatten\n[fc]\ntype = linear\nout = 3\n";

/* A model with seeded weights, BN state away from (1, 0, 0, 1), and a
 * mask on conv1 (every fourth weight pruned). */
static pb_model *make_model(unsigned long seed)
{
	pb_model *m = tu_parse_model(net, "saved.ini");
	pb_param *w;
	float *mk;

	tu_init_params(m, seed);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		if (p->kind != PB_PARAM_WEIGHT)
			tu_fill_uniform(p->data, p->n, 0.1f, 2.0f,
					seed * 100 + (unsigned long)i);
	}
	w = pb_model_find_param(m, "conv1.weight");
	assert_non_null(w);
	mk = pbi_mask_get(m, w, 1);
	assert_non_null(mk);
	for (size_t i = 0; i < w->n; i += 4)
		mk[i] = 0.0f;
	pbi_mask_apply(m);
	return m;
}

/* Entries in dir, and how many of them are temporary files. */
static int count_entries(const char *dir, int *tmp_files)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	*tmp_files = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		n++;
		if (strstr(e->d_name, ".tmp."))
			(*tmp_files)++;
	}
	closedir(d);
	return n;
}

/* The model of dir/saved.ini with the state of dir/saved.ckpt. */
static pb_model *load_pair(const char *dir)
{
	char ini[512], ckpt[512];
	pb_model *m = NULL;
	pb_error err = { 0 };

	snprintf(ini, sizeof ini, "%s/saved.ini", dir);
	snprintf(ckpt, sizeof ckpt, "%s/saved.ckpt", dir);
	if (pb_model_load(&m, ini, &err) || pb_checkpoint_load(m, ckpt, &err))
		fail_msg("%s", err.msg);
	return m;
}

/* Same layers, same tensors bit for bit, same masks. */
static void assert_same_model(pb_model *a, pb_model *b)
{
	assert_string_equal(pb_model_name(a), pb_model_name(b));
	assert_int_equal(pb_model_n_layers(a), pb_model_n_layers(b));
	assert_int_equal(pb_model_n_params(a), pb_model_n_params(b));
	for (int i = 0; i < pb_model_n_params(a); i++) {
		pb_param *p = pb_model_param(a, i), *q = pb_model_param(b, i);
		const float *mp = pbi_mask_get(a, p, 0);
		const float *mq = pbi_mask_get(b, q, 0);

		assert_string_equal(p->name, q->name);
		assert_int_equal(p->ndim, q->ndim);
		assert_memory_equal(p->shape, q->shape,
				    (size_t)p->ndim * sizeof *p->shape);
		assert_memory_equal(p->data, q->data, p->n * sizeof(float));
		assert_int_equal(mp != NULL, mq != NULL);
		if (mp)
			assert_memory_equal(mp, mq, p->n * sizeof(float));
	}
}

/* BASE with or without an extension names the same pair, and a second
 * save replaces both files. */
static void test_pair_loads_back(void **state)
{
	static const char *bases[] = { "saved", "saved.ckpt", "saved.ini" };
	char *dir = tu_temp_dir(), base[512];
	pb_error err = { 0 };
	int tmp;

	(void)state;
	for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
		pb_model *m = make_model(1 + i), *back;
		pb_param *w;

		snprintf(base, sizeof base, "%s/%s", dir, bases[i]);
		if (pb_model_save(m, base, &err))
			fail_msg("%s", err.msg);
		assert_int_equal(count_entries(dir, &tmp), 2);
		assert_int_equal(tmp, 0);
		back = load_pair(dir);
		assert_same_model(m, back);
		w = pb_model_find_param(back, "conv1.weight");
		assert_non_null(w);
		assert_int_equal(w->shape[0], 5);
		assert_non_null(pbi_mask_get(back, w, 0));
		pb_model_free(back);
		pb_model_free(m);
	}
	tu_rm_tree(dir);
}

/* The INI cannot be written (a folder stands where its temporary file
 * would go): the checkpoint written first is not published, both old
 * files keep their bytes, and its temporary file is gone. */
static void test_second_file_fails_keeps_old_pair(void **state)
{
	char *dir = tu_temp_dir(), base[512], ini[512], ckpt[512];
	char blocker[600];
	pb_model *a = make_model(1), *b = make_model(2), *back;
	pb_error err = { 0 };
	char *ckpt0, *ini0, *ckpt1, *ini1;
	size_t nc0, ni0, nc1, ni1;
	int tmp;

	(void)state;
	snprintf(base, sizeof base, "%s/saved", dir);
	snprintf(ini, sizeof ini, "%s/saved.ini", dir);
	snprintf(ckpt, sizeof ckpt, "%s/saved.ckpt", dir);
	if (pb_model_save(a, base, &err))
		fail_msg("%s", err.msg);
	ckpt0 = tu_slurp(ckpt, &nc0);
	ini0 = tu_slurp(ini, &ni0);

	snprintf(blocker, sizeof blocker, "%s.tmp.%ld.%ld", ini,
		 (long)getpid(), (long)syscall(SYS_gettid));
	assert_int_equal(mkdir(blocker, 0700), 0);
	assert_int_equal(pb_model_save(b, base, &err), PB_EIO);
	assert_non_null(strstr(err.msg, "model file"));
	assert_non_null(strstr(err.msg, ini));
	ckpt1 = tu_slurp(ckpt, &nc1);
	ini1 = tu_slurp(ini, &ni1);
	assert_int_equal(nc1, nc0);
	assert_memory_equal(ckpt1, ckpt0, nc0);
	assert_int_equal(ni1, ni0);
	assert_memory_equal(ini1, ini0, ni0);
	/* saved.ckpt, saved.ini and the folder in the way: no temporary
	 * checkpoint. */
	assert_int_equal(count_entries(dir, &tmp), 3);
	assert_int_equal(tmp, 1);
	back = load_pair(dir);
	assert_same_model(a, back);
	pb_model_free(back);

	/* Out of the way, the same save goes through. */
	assert_int_equal(rmdir(blocker), 0);
	if (pb_model_save(b, base, &err))
		fail_msg("%s", err.msg);
	back = load_pair(dir);
	assert_same_model(b, back);
	assert_int_equal(count_entries(dir, &tmp), 2);
	assert_int_equal(tmp, 0);
	pb_model_free(back);
	free(ckpt0);
	free(ini0);
	free(ckpt1);
	free(ini1);
	pb_model_free(a);
	pb_model_free(b);
	tu_rm_tree(dir);
}

/* The checkpoint cannot be written: nothing changes either. */
static void test_first_file_fails_keeps_old_pair(void **state)
{
	char *dir = tu_temp_dir(), base[512], ckpt[512], blocker[600];
	pb_model *a = make_model(1), *b = make_model(2), *back;
	pb_error err = { 0 };
	int tmp;

	(void)state;
	snprintf(base, sizeof base, "%s/saved", dir);
	snprintf(ckpt, sizeof ckpt, "%s/saved.ckpt", dir);
	if (pb_model_save(a, base, &err))
		fail_msg("%s", err.msg);
	snprintf(blocker, sizeof blocker, "%s.tmp.%ld.%ld", ckpt,
		 (long)getpid(), (long)syscall(SYS_gettid));
	assert_int_equal(mkdir(blocker, 0700), 0);
	assert_int_equal(pb_model_save(b, base, &err), PB_EIO);
	assert_non_null(strstr(err.msg, "checkpoint"));
	back = load_pair(dir);
	assert_same_model(a, back);
	pb_model_free(back);
	assert_int_equal(rmdir(blocker), 0);
	assert_int_equal(count_entries(dir, &tmp), 2);
	assert_int_equal(tmp, 0);

	/* A folder that does not exist: no files anywhere. */
	snprintf(base, sizeof base, "%s/no/saved", dir);
	assert_int_equal(pb_model_save(b, base, &err), PB_EIO);
	assert_non_null(strstr(err.msg, "/no/saved.ckpt"));
	assert_int_equal(count_entries(dir, &tmp), 2);
	pb_model_free(a);
	pb_model_free(b);
	tu_rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pair_loads_back),
		cmocka_unit_test(test_second_file_fails_keeps_old_pair),
		cmocka_unit_test(test_first_file_fails_keeps_old_pair),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
