# Tests of the engine: nn, data, train, prune, report.
check_PROGRAMS += \
	tests/test_layers_grad \
	tests/test_model_grad \
	tests/test_model_ini \
	tests/test_model_info \
	tests/test_checkpoint \
	tests/test_data \
	tests/test_train \
	tests/test_determinism \
	tests/test_channel_groups \
	tests/test_surgery \
	tests/test_select_channels \
	tests/test_mask \
	tests/test_targets \
	tests/test_metrics \
	tests/test_json_read \
	tests/test_table \
	tests/test_conv_paths
tests_test_layers_grad_SOURCES = tests/test_layers_grad.c tests/testutil.h
tests_test_layers_grad_CFLAGS = $(TEST_CFLAGS)
tests_test_layers_grad_LDADD = $(TEST_LDADD)
tests_test_model_grad_SOURCES = tests/test_model_grad.c tests/testutil.h
tests_test_model_grad_CFLAGS = $(TEST_CFLAGS)
tests_test_model_grad_LDADD = $(TEST_LDADD)
tests_test_model_ini_SOURCES = tests/test_model_ini.c tests/testutil.h
tests_test_model_ini_CFLAGS = $(TEST_CFLAGS)
tests_test_model_ini_LDADD = $(TEST_LDADD)
tests_test_model_info_SOURCES = tests/test_model_info.c tests/testutil.h
tests_test_model_info_CFLAGS = $(TEST_CFLAGS)
tests_test_model_info_LDADD = $(TEST_LDADD)
tests_test_checkpoint_SOURCES = tests/test_checkpoint.c tests/testutil.h
tests_test_checkpoint_CFLAGS = $(TEST_CFLAGS)
tests_test_checkpoint_LDADD = $(TEST_LDADD)
tests_test_data_SOURCES = tests/test_data.c tests/testutil.h
tests_test_data_CFLAGS = $(TEST_CFLAGS)
tests_test_data_LDADD = $(TEST_LDADD)
tests_test_train_SOURCES = tests/test_train.c tests/testutil.h
tests_test_train_CFLAGS = $(TEST_CFLAGS)
tests_test_train_LDADD = $(TEST_LDADD)
tests_test_determinism_SOURCES = tests/test_determinism.c tests/testutil.h
tests_test_determinism_CFLAGS = $(TEST_CFLAGS)
tests_test_determinism_LDADD = $(TEST_LDADD)
tests_test_channel_groups_SOURCES = tests/test_channel_groups.c tests/testutil.h
tests_test_channel_groups_CFLAGS = $(TEST_CFLAGS)
tests_test_channel_groups_LDADD = $(TEST_LDADD)
tests_test_surgery_SOURCES = tests/test_surgery.c tests/testutil.h
tests_test_surgery_CFLAGS = $(TEST_CFLAGS)
tests_test_surgery_LDADD = $(TEST_LDADD)
tests_test_select_channels_SOURCES = tests/test_select_channels.c tests/testutil.h
tests_test_select_channels_CFLAGS = $(TEST_CFLAGS)
tests_test_select_channels_LDADD = $(TEST_LDADD)
tests_test_mask_SOURCES = tests/test_mask.c tests/testutil.h
tests_test_mask_CFLAGS = $(TEST_CFLAGS)
tests_test_mask_LDADD = $(TEST_LDADD)
tests_test_targets_SOURCES = tests/test_targets.c tests/testutil.h
tests_test_targets_CFLAGS = $(TEST_CFLAGS)
tests_test_targets_LDADD = $(TEST_LDADD)
tests_test_metrics_SOURCES = tests/test_metrics.c tests/testutil.h
tests_test_metrics_CFLAGS = $(TEST_CFLAGS)
tests_test_metrics_LDADD = $(TEST_LDADD)
tests_test_json_read_SOURCES = tests/test_json_read.c tests/testutil.h
tests_test_json_read_CFLAGS = $(TEST_CFLAGS)
tests_test_json_read_LDADD = $(TEST_LDADD)
tests_test_table_SOURCES = tests/test_table.c tests/testutil.h
tests_test_table_CFLAGS = $(TEST_CFLAGS)
tests_test_table_LDADD = $(TEST_LDADD)
tests_test_conv_paths_SOURCES = tests/test_conv_paths.c tests/testutil.h
tests_test_conv_paths_CFLAGS = $(TEST_CFLAGS)
tests_test_conv_paths_LDADD = $(TEST_LDADD)
TESTS += tests/test_cli.sh
EXTRA_DIST += tests/test_cli.sh
