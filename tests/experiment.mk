# Tests of experiments: the INI, the record, the sweep, resume.
check_PROGRAMS += \
	tests/test_experiment_ini \
	tests/test_runner
tests_test_experiment_ini_SOURCES = tests/test_experiment_ini.c tests/testutil.h
tests_test_experiment_ini_CFLAGS = $(TEST_CFLAGS)
tests_test_experiment_ini_LDADD = $(TEST_SHARED_LDADD)
tests_test_runner_SOURCES = tests/test_runner.c tests/testutil.h
tests_test_runner_CFLAGS = $(TEST_CFLAGS)
tests_test_runner_LDADD = $(TEST_SHARED_LDADD)
TESTS += tests/test_resume.sh
EXTRA_DIST += tests/test_resume.sh experiments/quickstart.ini \
	experiments/fmnist-vggs.ini
