# Tests of what practitioners do around a pruner (issue 15): int8
# quantization and checkpoint format 3's encodings, sizes as files,
# sensitivity scans and the methods made from them, the table's int8
# columns, and the commands quantize, sensitivity and histogram.
check_PROGRAMS += \
	tests/nn/test_quant \
	tests/prune/test_quantize \
	tests/experiment/test_sensitivity \
	tests/report/test_table_int8
tests_nn_test_quant_SOURCES = tests/nn/test_quant.c tests/testutil.h
tests_nn_test_quant_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_quant_LDADD = $(TEST_LDADD)
tests_prune_test_quantize_SOURCES = tests/prune/test_quantize.c \
	tests/testutil.h tests/experiment/tiny.h
tests_prune_test_quantize_CFLAGS = $(TEST_CFLAGS)
tests_prune_test_quantize_LDADD = $(TEST_LDADD)
tests_experiment_test_sensitivity_SOURCES = \
	tests/experiment/test_sensitivity.c tests/testutil.h \
	tests/experiment/tiny.h
tests_experiment_test_sensitivity_CFLAGS = $(TEST_CFLAGS)
tests_experiment_test_sensitivity_LDADD = $(TEST_SHARED_LDADD)
tests_report_test_table_int8_SOURCES = tests/report/test_table_int8.c \
	tests/report/runs_fixture.h tests/testutil.h
tests_report_test_table_int8_CFLAGS = $(TEST_CFLAGS)
tests_report_test_table_int8_LDADD = $(TEST_LDADD)

TESTS += tests/cli/test_practice.sh
EXTRA_DIST += tests/cli/test_practice.sh
