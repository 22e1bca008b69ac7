# Tests of the engine, one folder per folder of core/ and one program per
# module (tests/nn/test_conv_grad tests core/nn/layers/conv2d.c). They
# include testutil.h from tests/ and their folder's own helpers
# (tests/nn/gradcheck.h, tests/data/datafiles.h,
# tests/report/runs_fixture.h).

# base: atomic files, JSON reading.
check_PROGRAMS += \
	tests/base/test_file \
	tests/base/test_json_read
tests_base_test_file_SOURCES = tests/base/test_file.c tests/testutil.h
tests_base_test_file_CFLAGS = $(TEST_CFLAGS)
tests_base_test_file_LDADD = $(TEST_LDADD)
tests_base_test_json_read_SOURCES = tests/base/test_json_read.c \
	tests/testutil.h
tests_base_test_json_read_CFLAGS = $(TEST_CFLAGS)
tests_base_test_json_read_LDADD = $(TEST_LDADD)

# nn: layers against finite differences, the model graph (its gradients
# in training and in eval mode), its INI and sizes, checkpoints, masks,
# the fast conv paths.
check_PROGRAMS += \
	tests/nn/test_conv_grad \
	tests/nn/test_bn_grad \
	tests/nn/test_bn_sums \
	tests/nn/test_pool_grad \
	tests/nn/test_linear_grad \
	tests/nn/test_elementwise_grad \
	tests/nn/test_softmax_xent_grad \
	tests/nn/test_model_grad \
	tests/nn/test_model_eval_grad \
	tests/nn/test_model_ini \
	tests/nn/test_model_limits \
	tests/nn/test_model_info \
	tests/nn/test_checkpoint \
	tests/nn/test_checkpoint_write \
	tests/nn/test_conv_paths \
	tests/nn/test_sparse \
	tests/nn/test_fused \
	tests/nn/test_mask
GRADCHECK_SOURCES = tests/nn/gradcheck.h tests/testutil.h
tests_nn_test_conv_grad_SOURCES = tests/nn/test_conv_grad.c \
	$(GRADCHECK_SOURCES)
tests_nn_test_conv_grad_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_conv_grad_LDADD = $(TEST_LDADD)
tests_nn_test_bn_grad_SOURCES = tests/nn/test_bn_grad.c $(GRADCHECK_SOURCES)
tests_nn_test_bn_grad_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_bn_grad_LDADD = $(TEST_LDADD)
tests_nn_test_pool_grad_SOURCES = tests/nn/test_pool_grad.c \
	$(GRADCHECK_SOURCES)
tests_nn_test_pool_grad_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_pool_grad_LDADD = $(TEST_LDADD)
tests_nn_test_linear_grad_SOURCES = tests/nn/test_linear_grad.c \
	$(GRADCHECK_SOURCES)
tests_nn_test_linear_grad_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_linear_grad_LDADD = $(TEST_LDADD)
tests_nn_test_elementwise_grad_SOURCES = tests/nn/test_elementwise_grad.c \
	$(GRADCHECK_SOURCES)
tests_nn_test_elementwise_grad_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_elementwise_grad_LDADD = $(TEST_LDADD)
tests_nn_test_softmax_xent_grad_SOURCES = tests/nn/test_softmax_xent_grad.c \
	$(GRADCHECK_SOURCES)
tests_nn_test_softmax_xent_grad_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_softmax_xent_grad_LDADD = $(TEST_LDADD)
tests_nn_test_model_grad_SOURCES = tests/nn/test_model_grad.c tests/testutil.h
tests_nn_test_model_grad_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_model_grad_LDADD = $(TEST_LDADD)
tests_nn_test_model_eval_grad_SOURCES = tests/nn/test_model_eval_grad.c \
	tests/testutil.h
tests_nn_test_model_eval_grad_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_model_eval_grad_LDADD = $(TEST_LDADD)
tests_nn_test_model_limits_SOURCES = tests/nn/test_model_limits.c \
	tests/testutil.h
tests_nn_test_model_limits_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_model_limits_LDADD = $(TEST_LDADD)
tests_nn_test_model_ini_SOURCES = tests/nn/test_model_ini.c tests/testutil.h
tests_nn_test_model_ini_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_model_ini_LDADD = $(TEST_LDADD)
tests_nn_test_model_info_SOURCES = tests/nn/test_model_info.c tests/testutil.h
tests_nn_test_model_info_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_model_info_LDADD = $(TEST_LDADD)
tests_nn_test_checkpoint_SOURCES = tests/nn/test_checkpoint.c tests/testutil.h
tests_nn_test_checkpoint_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_checkpoint_LDADD = $(TEST_LDADD)
tests_nn_test_checkpoint_write_SOURCES = tests/nn/test_checkpoint_write.c \
	tests/testutil.h
tests_nn_test_checkpoint_write_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_checkpoint_write_LDADD = $(TEST_LDADD)
tests_nn_test_conv_paths_SOURCES = tests/nn/test_conv_paths.c tests/testutil.h \
	tests/nn/epilogue.h
tests_nn_test_conv_paths_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_conv_paths_LDADD = $(TEST_LDADD)
tests_nn_test_sparse_SOURCES = tests/nn/test_sparse.c tests/testutil.h \
	tests/nn/epilogue.h
tests_nn_test_sparse_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_sparse_LDADD = $(TEST_LDADD)
tests_nn_test_bn_sums_SOURCES = tests/nn/test_bn_sums.c tests/testutil.h
tests_nn_test_bn_sums_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_bn_sums_LDADD = $(TEST_LDADD)
tests_nn_test_fused_SOURCES = tests/nn/test_fused.c tests/testutil.h
tests_nn_test_fused_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_fused_LDADD = $(TEST_LDADD)
tests_nn_test_mask_SOURCES = tests/nn/test_mask.c tests/testutil.h
tests_nn_test_mask_CFLAGS = $(TEST_CFLAGS)
tests_nn_test_mask_LDADD = $(TEST_LDADD)

# data: IDX, CIFAR-10 and synthetic sets, specs, data set operations.
check_PROGRAMS += \
	tests/data/test_idx \
	tests/data/test_cifar10 \
	tests/data/test_spec \
	tests/data/test_synthetic \
	tests/data/test_dataset
DATAFILES_SOURCES = tests/data/datafiles.h tests/testutil.h
tests_data_test_idx_SOURCES = tests/data/test_idx.c $(DATAFILES_SOURCES)
tests_data_test_idx_CFLAGS = $(TEST_CFLAGS)
tests_data_test_idx_LDADD = $(TEST_LDADD)
tests_data_test_cifar10_SOURCES = tests/data/test_cifar10.c \
	$(DATAFILES_SOURCES)
tests_data_test_cifar10_CFLAGS = $(TEST_CFLAGS)
tests_data_test_cifar10_LDADD = $(TEST_LDADD)
tests_data_test_spec_SOURCES = tests/data/test_spec.c $(DATAFILES_SOURCES)
tests_data_test_spec_CFLAGS = $(TEST_CFLAGS)
tests_data_test_spec_LDADD = $(TEST_LDADD)
tests_data_test_synthetic_SOURCES = tests/data/test_synthetic.c \
	$(DATAFILES_SOURCES)
tests_data_test_synthetic_CFLAGS = $(TEST_CFLAGS)
tests_data_test_synthetic_LDADD = $(TEST_LDADD)
tests_data_test_dataset_SOURCES = tests/data/test_dataset.c \
	$(DATAFILES_SOURCES)
tests_data_test_dataset_CFLAGS = $(TEST_CFLAGS)
tests_data_test_dataset_LDADD = $(TEST_LDADD)

# train: recipes, SGD and the loop, the stoppable trainer, determinism.
check_PROGRAMS += \
	tests/train/test_train \
	tests/train/test_trainer \
	tests/train/test_determinism
tests_train_test_train_SOURCES = tests/train/test_train.c tests/testutil.h
tests_train_test_train_CFLAGS = $(TEST_CFLAGS)
tests_train_test_train_LDADD = $(TEST_LDADD)
tests_train_test_trainer_SOURCES = tests/train/test_trainer.c tests/testutil.h
tests_train_test_trainer_CFLAGS = $(TEST_CFLAGS)
tests_train_test_trainer_LDADD = $(TEST_LDADD)
tests_train_test_determinism_SOURCES = tests/train/test_determinism.c \
	tests/testutil.h
tests_train_test_determinism_CFLAGS = $(TEST_CFLAGS)
tests_train_test_determinism_LDADD = $(TEST_LDADD)

# prune: channel groups, surgery, selection, targets, measurement, metrics.
check_PROGRAMS += \
	tests/prune/test_channel_groups \
	tests/prune/test_surgery \
	tests/prune/test_select_channels \
	tests/prune/test_targets \
	tests/prune/test_measure \
	tests/prune/test_metrics
tests_prune_test_channel_groups_SOURCES = tests/prune/test_channel_groups.c \
	tests/testutil.h
tests_prune_test_channel_groups_CFLAGS = $(TEST_CFLAGS)
tests_prune_test_channel_groups_LDADD = $(TEST_LDADD)
tests_prune_test_surgery_SOURCES = tests/prune/test_surgery.c tests/testutil.h
tests_prune_test_surgery_CFLAGS = $(TEST_CFLAGS)
tests_prune_test_surgery_LDADD = $(TEST_LDADD)
tests_prune_test_select_channels_SOURCES = tests/prune/test_select_channels.c \
	tests/testutil.h
tests_prune_test_select_channels_CFLAGS = $(TEST_CFLAGS)
tests_prune_test_select_channels_LDADD = $(TEST_LDADD)
tests_prune_test_targets_SOURCES = tests/prune/test_targets.c tests/testutil.h
tests_prune_test_targets_CFLAGS = $(TEST_CFLAGS)
tests_prune_test_targets_LDADD = $(TEST_LDADD)
tests_prune_test_measure_SOURCES = tests/prune/test_measure.c tests/testutil.h
tests_prune_test_measure_CFLAGS = $(TEST_CFLAGS)
tests_prune_test_measure_LDADD = $(TEST_LDADD)
tests_prune_test_metrics_SOURCES = tests/prune/test_metrics.c tests/testutil.h
tests_prune_test_metrics_CFLAGS = $(TEST_CFLAGS)
tests_prune_test_metrics_LDADD = $(TEST_LDADD)

# report: tables and their files.
check_PROGRAMS += \
	tests/report/test_table \
	tests/report/test_table_write \
	tests/report/test_table_compare
RUNS_FIXTURE_SOURCES = tests/report/runs_fixture.h tests/testutil.h
tests_report_test_table_SOURCES = tests/report/test_table.c \
	$(RUNS_FIXTURE_SOURCES)
tests_report_test_table_CFLAGS = $(TEST_CFLAGS)
tests_report_test_table_LDADD = $(TEST_LDADD)
tests_report_test_table_write_SOURCES = tests/report/test_table_write.c \
	$(RUNS_FIXTURE_SOURCES)
tests_report_test_table_write_CFLAGS = $(TEST_CFLAGS)
tests_report_test_table_write_LDADD = $(TEST_LDADD)
tests_report_test_table_compare_SOURCES = \
	tests/report/test_table_compare.c $(RUNS_FIXTURE_SOURCES)
tests_report_test_table_compare_CFLAGS = $(TEST_CFLAGS)
tests_report_test_table_compare_LDADD = $(TEST_LDADD)

# scripts/plots on a copy of the committed quickstart results.
TESTS += tests/report/test_plots.sh
EXTRA_DIST += tests/report/test_plots.sh

# The committed results: tables regenerate byte for byte, the README's
# tables are theirs, the comparisons complete (issue 17's bar).
TESTS += tests/report/test_committed_results.sh
EXTRA_DIST += tests/report/test_committed_results.sh

# cli: the prunebench program end to end.
TESTS += tests/cli/test_cli.sh
EXTRA_DIST += tests/cli/test_cli.sh tests/testlib.sh tests/experiment/tiny.h
