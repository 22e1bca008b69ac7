# Tests of the plugin host and of every shipped pruner.
# The refused plugins are built like real ones (noinst with -rpath, as
# check_LTLIBRARIES would only give static archives).
noinst_LTLIBRARIES += tests/plugins/bad_abi.la tests/plugins/bad_size.la \
	tests/plugins/no_entry.la tests/plugins/no_prune.la
TEST_PLUGIN_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-rpath /nowhere
tests_plugins_bad_abi_la_SOURCES = tests/plugins/bad_abi.c
tests_plugins_bad_abi_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_bad_size_la_SOURCES = tests/plugins/bad_size.c
tests_plugins_bad_size_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_no_entry_la_SOURCES = tests/plugins/no_entry.c
tests_plugins_no_entry_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_no_prune_la_SOURCES = tests/plugins/no_prune.c
tests_plugins_no_prune_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
check_PROGRAMS += \
	tests/test_plugin_loader \
	tests/test_pruners \
	tests/test_abi_header \
	tests/test_thinet_fpgm_random \
	tests/test_train_pruners
tests_test_plugin_loader_SOURCES = tests/test_plugin_loader.c tests/testutil.h
tests_test_plugin_loader_CFLAGS = $(TEST_CFLAGS)
tests_test_plugin_loader_LDADD = $(TEST_SHARED_LDADD)
tests_test_pruners_SOURCES = tests/test_pruners.c tests/testutil.h
tests_test_pruners_CFLAGS = $(TEST_CFLAGS)
tests_test_pruners_LDADD = $(TEST_SHARED_LDADD)
tests_test_abi_header_SOURCES = tests/test_abi_header.c
tests_test_abi_header_CFLAGS = -std=c99 -pedantic -Wall -Wextra -Werror \
	$(SANITIZER_FLAGS)
tests_test_thinet_fpgm_random_SOURCES = tests/test_thinet_fpgm_random.c \
	tests/testutil.h
tests_test_thinet_fpgm_random_CFLAGS = $(TEST_CFLAGS)
tests_test_thinet_fpgm_random_LDADD = $(TEST_SHARED_LDADD)
tests_test_train_pruners_SOURCES = tests/test_train_pruners.c tests/testutil.h
tests_test_train_pruners_CFLAGS = $(TEST_CFLAGS)
tests_test_train_pruners_LDADD = $(TEST_SHARED_LDADD)
TESTS += tests/test_plugin_template.sh
EXTRA_DIST += tests/test_plugin_template.sh
