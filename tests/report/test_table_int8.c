/* The int8 columns of the table: "top-1 int8" beside top-1 after FT and
 * "size int8+zlib" beside the sizes, only when a row was quantized; the
 * footnote names the rows that kept float activations; the CSV and the
 * plot data carry the numbers; records of schema 2 without the int8 keys
 * give tables without the columns. */
#include "report/runs_fixture.h"

static char *table_md(const spec *s, int n)
{
	char *dir = tu_temp_dir(), path[600], *md;
	pb_error err = { 0 };
	FILE *f;
	size_t len = 0;

	snprintf(path, sizeof path, "%s/runs.jsonl", dir);
	f = fopen(path, "w");
	for (int i = 0; i < n; i++)
		put_line(f, &s[i]);
	fclose(f);
	f = open_memstream(&md, &len);
	if (pb_table_write_ex(dir, NULL, f, NULL, &err))
		fail_msg("%s", err.msg);
	fclose(f);
	{
		char csv[700];
		FILE *c;
		char line[4096];

		snprintf(csv, sizeof csv, "%s/table.csv", dir);
		c = fopen(csv, "r");
		assert_non_null(fgets(line, sizeof line, c));
		assert_non_null(strstr(line, ",acc_int8_pct,acc_int8_sd,"
				       "size_int8_mib,size_int8_zlib_mib\n"));
		fclose(c);
	}
	tu_rm_tree(dir);
	return md;
}

static void test_columns(void **state)
{
	const char *q8 = "\"quantize\": \"int8\", \"acc_int8\": 0.9105, "
			 "\"size_int8_mib\": 0.08, \"size_int8_zlib_mib\": "
			 "0.0312";
	const char *w8 = "\"quantize\": \"int8-weights\", \"acc_int8\": 0.71,"
			 " \"size_int8_mib\": 0.06, \"size_int8_zlib_mib\": "
			 "0.05";
	spec s[] = {
		{ "dense", "dense", NULL, NULL, 0, 1, "ok", 0.92, 0.92, q8 },
		{ "prune", "magnitude", "sparsity=0.75", "sparsity", 0.75, 1,
		  "ok", 0.8, 0.912, q8 },
		{ "prune", "l1", "macs=0.5", "macs", 0.5, 1, "ok", 0.5, 0.71,
		  w8 },
	};
	char *md = table_md(s, 3);

	(void)state;
	assert_non_null(strstr(md, "| top-1 after FT (%) | top-1 int8 (%) |"
			       " n |"));
	assert_non_null(strstr(md, "| size MiB (dense / sparse / compr.) | "
			       "size int8+zlib (MiB) |"));
	assert_non_null(strstr(md, "| 91.20 | 91.05 | 1 |"));
	assert_non_null(strstr(md, "| 0.0312 |"));
	assert_non_null(strstr(md, "Top-1 int8: the final model quantized"));
	assert_non_null(strstr(md, "Weights only (activations float): l1 @ "
			       "macs=0.5."));
	free(md);
	/* Without int8 cells: no such columns, no such footnote. */
	s[0].extra = s[1].extra = s[2].extra = NULL;
	md = table_md(s, 3);
	assert_null(strstr(md, "int8"));
	assert_non_null(strstr(md, "Sizes: MiB of the checkpoint files"));
	free(md);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_columns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
