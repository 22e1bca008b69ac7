# Tests of sweeps over many tasks at once: shards and phases, runs.jsonl
# shared under a lock, the CLI's --shard/--phase and `prunebench slurm`,
# and the whole thing on a real one-node Slurm cluster started on
# localhost (skipped, exit 77, where its daemons cannot start).
check_PROGRAMS += \
	tests/cluster/test_shard \
	tests/cluster/test_runs_shared
tests_cluster_test_shard_SOURCES = tests/cluster/test_shard.c \
	tests/testutil.h tests/experiment/tiny.h
tests_cluster_test_shard_CFLAGS = $(TEST_CFLAGS)
tests_cluster_test_shard_LDADD = $(TEST_SHARED_LDADD)
tests_cluster_test_runs_shared_SOURCES = tests/cluster/test_runs_shared.c \
	tests/testutil.h
tests_cluster_test_runs_shared_CFLAGS = $(TEST_CFLAGS)
tests_cluster_test_runs_shared_LDADD = $(TEST_LDADD)
TESTS += tests/cluster/test_shards_cli.sh tests/cluster/test_slurm.sh
EXTRA_DIST += tests/cluster/test_shards_cli.sh tests/cluster/test_slurm.sh \
	tests/cluster/tiny-experiment.sh
