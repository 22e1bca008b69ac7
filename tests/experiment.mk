# Tests of experiments: the INI, the record, one cell's pipeline, the
# sweep, pruning at initialisation through both, resume after SIGKILL.
# Pruners that crash inside prune or prune nothing, for the sweep's
# process isolation and its off-target warning.
noinst_LTLIBRARIES += tests/experiment/plugins/crash_segv.la \
	tests/experiment/plugins/crash_abort.la \
	tests/experiment/plugins/crash_exit.la \
	tests/experiment/plugins/prune_nothing.la
tests_experiment_plugins_crash_segv_la_SOURCES = \
	tests/experiment/plugins/misbehave.c
tests_experiment_plugins_crash_segv_la_CFLAGS = $(AM_CFLAGS) \
	-DCRASH_SEGV -DCRASH_NAME='"crash_segv"'
tests_experiment_plugins_crash_segv_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_experiment_plugins_crash_abort_la_SOURCES = \
	tests/experiment/plugins/misbehave.c
tests_experiment_plugins_crash_abort_la_CFLAGS = $(AM_CFLAGS) \
	-DCRASH_ABORT -DCRASH_NAME='"crash_abort"'
tests_experiment_plugins_crash_abort_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_experiment_plugins_crash_exit_la_SOURCES = \
	tests/experiment/plugins/misbehave.c
tests_experiment_plugins_crash_exit_la_CFLAGS = $(AM_CFLAGS) \
	-DCRASH_EXIT -DCRASH_NAME='"crash_exit"'
tests_experiment_plugins_crash_exit_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_experiment_plugins_prune_nothing_la_SOURCES = \
	tests/experiment/plugins/misbehave.c
tests_experiment_plugins_prune_nothing_la_CFLAGS = $(AM_CFLAGS) \
	-DCRASH_NAME='"prune_nothing"'
tests_experiment_plugins_prune_nothing_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)

check_PROGRAMS += \
	tests/experiment/test_experiment_ini \
	tests/experiment/test_record \
	tests/experiment/test_cell \
	tests/experiment/test_sweep \
	tests/experiment/test_sweep_lth \
	tests/experiment/test_isolation \
	tests/experiment/test_at_init \
	tests/experiment/test_trunk \
	tests/experiment/test_epochs \
	tests/prune/test_schedule
tests_experiment_test_experiment_ini_SOURCES = \
	tests/experiment/test_experiment_ini.c tests/testutil.h \
	tests/experiment/tiny.h
tests_experiment_test_experiment_ini_CFLAGS = $(TEST_CFLAGS)
tests_experiment_test_experiment_ini_LDADD = $(TEST_SHARED_LDADD)
tests_experiment_test_record_SOURCES = tests/experiment/test_record.c \
	tests/testutil.h
tests_experiment_test_record_CFLAGS = $(TEST_CFLAGS)
tests_experiment_test_record_LDADD = $(TEST_LDADD)
tests_experiment_test_cell_SOURCES = tests/experiment/test_cell.c \
	tests/testutil.h tests/experiment/tiny.h
tests_experiment_test_cell_CFLAGS = $(TEST_CFLAGS)
tests_experiment_test_cell_LDADD = $(TEST_SHARED_LDADD)
tests_experiment_test_sweep_SOURCES = tests/experiment/test_sweep.c \
	tests/experiment/sweep_test.h tests/testutil.h tests/experiment/tiny.h \
	tests/experiment/exp_fixture.h
tests_experiment_test_sweep_CFLAGS = $(TEST_CFLAGS)
tests_experiment_test_sweep_LDADD = $(TEST_SHARED_LDADD)
tests_experiment_test_sweep_lth_SOURCES = \
	tests/experiment/test_sweep_lth.c tests/experiment/sweep_test.h \
	tests/testutil.h tests/experiment/tiny.h \
	tests/experiment/exp_fixture.h
tests_experiment_test_sweep_lth_CFLAGS = $(TEST_CFLAGS)
tests_experiment_test_sweep_lth_LDADD = $(TEST_SHARED_LDADD)
tests_experiment_test_isolation_SOURCES = tests/experiment/test_isolation.c \
	tests/testutil.h tests/experiment/tiny.h
tests_experiment_test_isolation_CFLAGS = $(TEST_CFLAGS)
tests_experiment_test_isolation_LDADD = $(TEST_SHARED_LDADD)
tests_experiment_test_at_init_SOURCES = tests/experiment/test_at_init.c \
	tests/testutil.h tests/experiment/tiny.h \
	tests/experiment/exp_fixture.h
tests_experiment_test_at_init_CFLAGS = $(TEST_CFLAGS)
tests_experiment_test_at_init_LDADD = $(TEST_SHARED_LDADD)
# Trunks shared across targets: the same bits from the cache as computed.
tests_experiment_test_trunk_SOURCES = tests/experiment/test_trunk.c \
	tests/testutil.h tests/experiment/tiny.h \
	tests/experiment/exp_fixture.h
tests_experiment_test_trunk_CFLAGS = $(TEST_CFLAGS)
tests_experiment_test_trunk_LDADD = $(TEST_SHARED_LDADD)
# Epochs per cell and the dry run's figures.
tests_experiment_test_epochs_SOURCES = tests/experiment/test_epochs.c \
	tests/testutil.h tests/experiment/tiny.h
tests_experiment_test_epochs_CFLAGS = $(TEST_CFLAGS)
tests_experiment_test_epochs_LDADD = $(TEST_SHARED_LDADD)
# The pruning schedules run by the cell pipeline, with stand-in callbacks.
tests_prune_test_schedule_SOURCES = tests/prune/test_schedule.c \
	tests/testutil.h
tests_prune_test_schedule_CFLAGS = $(TEST_CFLAGS)
tests_prune_test_schedule_LDADD = $(TEST_LDADD)
TESTS += tests/experiment/test_resume.sh tests/cli/test_outputs.sh \
	tests/experiment/test_spare_threads.sh
EXTRA_DIST += tests/experiment/test_resume.sh tests/cli/test_outputs.sh \
	tests/experiment/test_spare_threads.sh experiments/quickstart.ini \
	experiments/fmnist-vggs.ini
