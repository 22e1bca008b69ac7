# Tests of experiments: the INI, the record, one cell's pipeline, the
# sweep, resume after SIGKILL.
check_PROGRAMS += \
	tests/experiment/test_experiment_ini \
	tests/experiment/test_record \
	tests/experiment/test_cell \
	tests/experiment/test_sweep \
	tests/prune/test_schedule
tests_experiment_test_experiment_ini_SOURCES = \
	tests/experiment/test_experiment_ini.c tests/testutil.h
tests_experiment_test_experiment_ini_CFLAGS = $(TEST_CFLAGS)
tests_experiment_test_experiment_ini_LDADD = $(TEST_SHARED_LDADD)
tests_experiment_test_record_SOURCES = tests/experiment/test_record.c \
	tests/testutil.h
tests_experiment_test_record_CFLAGS = $(TEST_CFLAGS)
tests_experiment_test_record_LDADD = $(TEST_LDADD)
tests_experiment_test_cell_SOURCES = tests/experiment/test_cell.c \
	tests/testutil.h
tests_experiment_test_cell_CFLAGS = $(TEST_CFLAGS)
tests_experiment_test_cell_LDADD = $(TEST_SHARED_LDADD)
tests_experiment_test_sweep_SOURCES = tests/experiment/test_sweep.c \
	tests/testutil.h
tests_experiment_test_sweep_CFLAGS = $(TEST_CFLAGS)
tests_experiment_test_sweep_LDADD = $(TEST_SHARED_LDADD)
# The pruning schedules run by the cell pipeline, with stand-in callbacks.
tests_prune_test_schedule_SOURCES = tests/prune/test_schedule.c \
	tests/testutil.h
tests_prune_test_schedule_CFLAGS = $(TEST_CFLAGS)
tests_prune_test_schedule_LDADD = $(TEST_LDADD)
TESTS += tests/experiment/test_resume.sh
EXTRA_DIST += tests/experiment/test_resume.sh experiments/quickstart.ini \
	experiments/fmnist-vggs.ini
