# Tests of the plugin host (tests/plugin/: the loader, option validation,
# the context, the helpers of pruner.h, gradients outside training, the
# header on its own) and of every shipped pruner
# (tests/plugins/test_NAME.c).
#
# Test plugins are built like real ones (noinst with -rpath, as
# check_LTLIBRARIES would only give static archives): the refused and the
# old-header fixtures in tests/plugins/fixtures/.libs, and the template,
# shipped as source only, in tests/plugins/.libs.
noinst_LTLIBRARIES += tests/plugins/fixtures/bad_abi.la \
	tests/plugins/fixtures/bad_size.la tests/plugins/fixtures/no_entry.la \
	tests/plugins/fixtures/no_prune.la tests/plugins/fixtures/v1_size.la \
	tests/plugins/fixtures/pre_at_init.la \
	tests/plugins/template.la
TEST_PLUGIN_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-rpath /nowhere
tests_plugins_fixtures_bad_abi_la_SOURCES = tests/plugins/fixtures/bad_abi.c
tests_plugins_fixtures_bad_abi_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_fixtures_bad_size_la_SOURCES = tests/plugins/fixtures/bad_size.c
tests_plugins_fixtures_bad_size_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_fixtures_no_entry_la_SOURCES = tests/plugins/fixtures/no_entry.c
tests_plugins_fixtures_no_entry_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_fixtures_no_prune_la_SOURCES = tests/plugins/fixtures/no_prune.c
tests_plugins_fixtures_no_prune_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_fixtures_v1_size_la_SOURCES = tests/plugins/fixtures/v1_size.c
tests_plugins_fixtures_v1_size_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_fixtures_pre_at_init_la_SOURCES = \
	tests/plugins/fixtures/pre_at_init.c
tests_plugins_fixtures_pre_at_init_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_template_la_SOURCES = plugins/template/template.c
tests_plugins_template_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)

# The host. Programs that load plugins link the shared libprunebench.
check_PROGRAMS += \
	tests/plugin/test_loader \
	tests/plugin/test_options \
	tests/plugin/test_ctx \
	tests/plugin/test_helpers_target \
	tests/plugin/test_helpers_model \
	tests/plugin/test_ctx_grad \
	tests/plugin/test_abi_header
tests_plugin_test_loader_SOURCES = tests/plugin/test_loader.c tests/testutil.h
tests_plugin_test_loader_CFLAGS = $(TEST_CFLAGS)
tests_plugin_test_loader_LDADD = $(TEST_SHARED_LDADD)
tests_plugin_test_options_SOURCES = tests/plugin/test_options.c \
	tests/testutil.h
tests_plugin_test_options_CFLAGS = $(TEST_CFLAGS)
tests_plugin_test_options_LDADD = $(TEST_SHARED_LDADD)
tests_plugin_test_ctx_SOURCES = tests/plugin/test_ctx.c \
	tests/plugins/pruner_test.h tests/testutil.h
tests_plugin_test_ctx_CFLAGS = $(TEST_CFLAGS)
tests_plugin_test_ctx_LDADD = $(TEST_SHARED_LDADD)
HELPER_TEST_SOURCES = tests/plugin/helper_probe.h \
	tests/plugins/pruner_test.h tests/testutil.h
tests_plugin_test_helpers_target_SOURCES = \
	tests/plugin/test_helpers_target.c $(HELPER_TEST_SOURCES)
tests_plugin_test_helpers_target_CFLAGS = $(TEST_CFLAGS)
tests_plugin_test_helpers_target_LDADD = $(TEST_SHARED_LDADD)
tests_plugin_test_helpers_model_SOURCES = \
	tests/plugin/test_helpers_model.c $(HELPER_TEST_SOURCES)
tests_plugin_test_helpers_model_CFLAGS = $(TEST_CFLAGS)
tests_plugin_test_helpers_model_LDADD = $(TEST_SHARED_LDADD)
tests_plugin_test_ctx_grad_SOURCES = tests/plugin/test_ctx_grad.c \
	tests/plugins/pruner_test.h tests/testutil.h
tests_plugin_test_ctx_grad_CFLAGS = $(TEST_CFLAGS)
tests_plugin_test_ctx_grad_LDADD = $(TEST_SHARED_LDADD)
# The public header on its own, as an out-of-tree plugin compiles it.
tests_plugin_test_abi_header_SOURCES = tests/plugin/test_abi_header.c
tests_plugin_test_abi_header_CFLAGS = -std=c99 -pedantic -Wall -Wextra \
	-Werror $(SANITIZER_FLAGS)
tests_plugin_test_abi_header_LDADD = -lm

# One program per shipped pruner.
check_PROGRAMS += \
	tests/plugins/test_magnitude \
	tests/plugins/test_l1 \
	tests/plugins/test_slimming \
	tests/plugins/test_taylor \
	tests/plugins/test_lth \
	tests/plugins/test_thinet \
	tests/plugins/test_fpgm \
	tests/plugins/test_random \
	tests/plugins/test_snip \
	tests/plugins/test_synflow \
	tests/plugins/test_template
PRUNER_TEST_SOURCES = tests/plugins/pruner_test.h tests/testutil.h
tests_plugins_test_magnitude_SOURCES = tests/plugins/test_magnitude.c \
	$(PRUNER_TEST_SOURCES)
tests_plugins_test_l1_SOURCES = tests/plugins/test_l1.c $(PRUNER_TEST_SOURCES)
tests_plugins_test_slimming_SOURCES = tests/plugins/test_slimming.c \
	$(PRUNER_TEST_SOURCES)
tests_plugins_test_taylor_SOURCES = tests/plugins/test_taylor.c \
	tests/plugins/taylor_test.h $(PRUNER_TEST_SOURCES)
tests_plugins_test_lth_SOURCES = tests/plugins/test_lth.c \
	$(PRUNER_TEST_SOURCES)
tests_plugins_test_thinet_SOURCES = tests/plugins/test_thinet.c \
	$(PRUNER_TEST_SOURCES)
tests_plugins_test_fpgm_SOURCES = tests/plugins/test_fpgm.c \
	$(PRUNER_TEST_SOURCES)
tests_plugins_test_random_SOURCES = tests/plugins/test_random.c \
	$(PRUNER_TEST_SOURCES)
tests_plugins_test_snip_SOURCES = tests/plugins/test_snip.c \
	$(PRUNER_TEST_SOURCES)
tests_plugins_test_synflow_SOURCES = tests/plugins/test_synflow.c \
	$(PRUNER_TEST_SOURCES)
tests_plugins_test_template_SOURCES = tests/plugins/test_template.c \
	$(PRUNER_TEST_SOURCES)
tests_plugins_test_magnitude_CFLAGS = $(TEST_CFLAGS)
tests_plugins_test_l1_CFLAGS = $(TEST_CFLAGS)
tests_plugins_test_slimming_CFLAGS = $(TEST_CFLAGS)
tests_plugins_test_taylor_CFLAGS = $(TEST_CFLAGS)
tests_plugins_test_lth_CFLAGS = $(TEST_CFLAGS)
tests_plugins_test_thinet_CFLAGS = $(TEST_CFLAGS)
tests_plugins_test_fpgm_CFLAGS = $(TEST_CFLAGS)
tests_plugins_test_random_CFLAGS = $(TEST_CFLAGS)
tests_plugins_test_snip_CFLAGS = $(TEST_CFLAGS)
tests_plugins_test_synflow_CFLAGS = $(TEST_CFLAGS)
tests_plugins_test_template_CFLAGS = $(TEST_CFLAGS)
tests_plugins_test_magnitude_LDADD = $(TEST_SHARED_LDADD)
tests_plugins_test_l1_LDADD = $(TEST_SHARED_LDADD)
tests_plugins_test_slimming_LDADD = $(TEST_SHARED_LDADD)
tests_plugins_test_taylor_LDADD = $(TEST_SHARED_LDADD)
tests_plugins_test_lth_LDADD = $(TEST_SHARED_LDADD)
tests_plugins_test_thinet_LDADD = $(TEST_SHARED_LDADD)
tests_plugins_test_fpgm_LDADD = $(TEST_SHARED_LDADD)
tests_plugins_test_random_LDADD = $(TEST_SHARED_LDADD)
tests_plugins_test_snip_LDADD = $(TEST_SHARED_LDADD)
tests_plugins_test_synflow_LDADD = $(TEST_SHARED_LDADD)
tests_plugins_test_template_LDADD = $(TEST_SHARED_LDADD)

# The out-of-tree workflow of the template and the CLI's plugin refusals.
TESTS += tests/test_plugin_template.sh
EXTRA_DIST += tests/test_plugin_template.sh

# lth's trainings against hand-worked schedules, and its reinit control.
check_PROGRAMS += tests/plugins/test_lth_schedule
tests_plugins_test_lth_schedule_SOURCES = tests/plugins/test_lth_schedule.c \
	$(PRUNER_TEST_SOURCES)
tests_plugins_test_lth_schedule_CFLAGS = $(TEST_CFLAGS)
tests_plugins_test_lth_schedule_LDADD = $(TEST_SHARED_LDADD)

# taylor's pruning phase (one fine-tune, the target, the planned length),
# apart from its importance estimates.
check_PROGRAMS += tests/plugins/test_taylor_phase
tests_plugins_test_taylor_phase_SOURCES = \
	tests/plugins/test_taylor_phase.c tests/plugins/taylor_test.h \
	$(PRUNER_TEST_SOURCES)
tests_plugins_test_taylor_phase_CFLAGS = $(TEST_CFLAGS)
tests_plugins_test_taylor_phase_LDADD = $(TEST_SHARED_LDADD)
