# Fuzzing (issue 12): one harness per reader of user files, in
# tests/fuzz/fuzz_NAME.c (see docs/testing.md, "Fuzzing").
#
# make check builds every harness with tests/fuzz/replay.c, a main() that
# feeds it each file of its seed corpus (tests/fuzz/corpus/NAME) and of
# its regressions (tests/fuzz/regressions/NAME: inputs that once crashed
# it), in this build and in the sanitizer build. configure
# --enable-fuzzing (CC=clang) also builds them with libFuzzer as
# tests/fuzz/fuzz_NAME; `make fuzz` runs each for FUZZ_TIME seconds
# through scripts/fuzz, which also sets up such a build by itself.
# The experiment harness opens plugins, so it links the shared library.
FUZZ_COMMON = tests/fuzz/fuzz_common.c tests/fuzz/fuzz_common.h
FUZZ_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/tests/fuzz \
	-DPB_SRCDIR='"$(abs_top_srcdir)"'

check_PROGRAMS += \
	tests/fuzz/replay_model \
	tests/fuzz/replay_experiment \
	tests/fuzz/replay_idx \
	tests/fuzz/replay_cifar10 \
	tests/fuzz/replay_checkpoint \
	tests/fuzz/replay_record \
	tests/fuzz/replay_options \
	tests/fuzz/replay_target \
	tests/fuzz/replay_data_spec
tests_fuzz_replay_model_SOURCES = tests/fuzz/fuzz_model.c \
	tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_model_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME='"model"'
tests_fuzz_replay_model_LDADD = $(TEST_LDADD)
tests_fuzz_replay_experiment_SOURCES = tests/fuzz/fuzz_experiment.c \
	tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_experiment_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME='"experiment"'
tests_fuzz_replay_experiment_LDADD = $(TEST_SHARED_LDADD)
tests_fuzz_replay_idx_SOURCES = tests/fuzz/fuzz_idx.c \
	tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_idx_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME='"idx"'
tests_fuzz_replay_idx_LDADD = $(TEST_LDADD)
tests_fuzz_replay_cifar10_SOURCES = tests/fuzz/fuzz_cifar10.c \
	tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_cifar10_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME='"cifar10"'
tests_fuzz_replay_cifar10_LDADD = $(TEST_LDADD)
tests_fuzz_replay_checkpoint_SOURCES = tests/fuzz/fuzz_checkpoint.c \
	tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_checkpoint_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME='"checkpoint"'
tests_fuzz_replay_checkpoint_LDADD = $(TEST_LDADD)
tests_fuzz_replay_record_SOURCES = tests/fuzz/fuzz_record.c \
	tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_record_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME='"record"'
tests_fuzz_replay_record_LDADD = $(TEST_LDADD)
tests_fuzz_replay_options_SOURCES = tests/fuzz/fuzz_options.c \
	tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_options_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME='"options"'
tests_fuzz_replay_options_LDADD = $(TEST_LDADD)
tests_fuzz_replay_target_SOURCES = tests/fuzz/fuzz_target.c \
	tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_target_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME='"target"'
tests_fuzz_replay_target_LDADD = $(TEST_LDADD)
tests_fuzz_replay_data_spec_SOURCES = tests/fuzz/fuzz_data_spec.c \
	tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_data_spec_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME='"data_spec"'
tests_fuzz_replay_data_spec_LDADD = $(TEST_LDADD)

# The generated seeds of the binary harnesses (committed; see
# make_seeds.c): make fuzz-seeds.
EXTRA_PROGRAMS = tests/fuzz/make_seeds
tests_fuzz_make_seeds_SOURCES = tests/fuzz/make_seeds.c $(FUZZ_COMMON)
tests_fuzz_make_seeds_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_make_seeds_LDADD = $(TEST_LDADD)
fuzz-seeds: tests/fuzz/make_seeds$(EXEEXT)
	tests/fuzz/make_seeds$(EXEEXT) $(top_srcdir)/tests/fuzz/corpus
.PHONY: fuzz-seeds

if FUZZING
FUZZERS = \
	tests/fuzz/fuzz_model \
	tests/fuzz/fuzz_experiment \
	tests/fuzz/fuzz_idx \
	tests/fuzz/fuzz_cifar10 \
	tests/fuzz/fuzz_checkpoint \
	tests/fuzz/fuzz_record \
	tests/fuzz/fuzz_options \
	tests/fuzz/fuzz_target \
	tests/fuzz/fuzz_data_spec
noinst_PROGRAMS = $(FUZZERS)
FUZZ_LINK_FLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_model_SOURCES = tests/fuzz/fuzz_model.c $(FUZZ_COMMON)
tests_fuzz_fuzz_model_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_model_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_model_LDADD = $(TEST_LDADD)
tests_fuzz_fuzz_experiment_SOURCES = tests/fuzz/fuzz_experiment.c $(FUZZ_COMMON)
tests_fuzz_fuzz_experiment_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_experiment_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_experiment_LDADD = $(TEST_SHARED_LDADD)
tests_fuzz_fuzz_idx_SOURCES = tests/fuzz/fuzz_idx.c $(FUZZ_COMMON)
tests_fuzz_fuzz_idx_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_idx_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_idx_LDADD = $(TEST_LDADD)
tests_fuzz_fuzz_cifar10_SOURCES = tests/fuzz/fuzz_cifar10.c $(FUZZ_COMMON)
tests_fuzz_fuzz_cifar10_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_cifar10_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_cifar10_LDADD = $(TEST_LDADD)
tests_fuzz_fuzz_checkpoint_SOURCES = tests/fuzz/fuzz_checkpoint.c $(FUZZ_COMMON)
tests_fuzz_fuzz_checkpoint_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_checkpoint_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_checkpoint_LDADD = $(TEST_LDADD)
tests_fuzz_fuzz_record_SOURCES = tests/fuzz/fuzz_record.c $(FUZZ_COMMON)
tests_fuzz_fuzz_record_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_record_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_record_LDADD = $(TEST_LDADD)
tests_fuzz_fuzz_options_SOURCES = tests/fuzz/fuzz_options.c $(FUZZ_COMMON)
tests_fuzz_fuzz_options_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_options_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_options_LDADD = $(TEST_LDADD)
tests_fuzz_fuzz_target_SOURCES = tests/fuzz/fuzz_target.c $(FUZZ_COMMON)
tests_fuzz_fuzz_target_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_target_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_target_LDADD = $(TEST_LDADD)
tests_fuzz_fuzz_data_spec_SOURCES = tests/fuzz/fuzz_data_spec.c $(FUZZ_COMMON)
tests_fuzz_fuzz_data_spec_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_data_spec_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_data_spec_LDADD = $(TEST_LDADD)

# make fuzz FUZZ_TIME=1800 FUZZ_ONLY="model idx"
fuzz: $(FUZZERS)
	$(top_srcdir)/scripts/fuzz --build-dir $(abs_top_builddir) \
		--time $(FUZZ_TIME) $(FUZZ_ONLY)
else
fuzz:
	@echo "make fuzz: this build has no fuzzers; configure with" \
		"CC=clang-14 --enable-fuzzing, or run scripts/fuzz" >&2; exit 1
endif
FUZZ_TIME = 60
FUZZ_ONLY =
.PHONY: fuzz
EXTRA_DIST += tests/fuzz.mk tests/fuzz
