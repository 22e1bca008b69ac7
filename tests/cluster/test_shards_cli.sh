#!/bin/bash
# The CLI of sweeps over many tasks: --shard and --phase errors; the
# cells phase refuses to start without its dense models; the dense phase
# by seed; three shard processes at once plus a second copy of one of
# them end with every cell exactly once in runs.jsonl, bitwise as an
# unsharded run; `prunebench slurm` writes a script bash accepts and
# prints the two sbatch commands, and nothing to submit once all is done.
set -u

builddir=${PB_BUILDDIR:-.}
srcdir=${PB_SRCDIR:-.}
pb="$builddir/prunebench"
[ -x "$pb" ] || { echo "no $pb; skipping"; exit 77; }
plugdir=${PB_TEST_PLUGIN_DIR:-$builddir/plugins/.libs}
[ -d "$plugdir" ] || { echo "no plugin folder $plugdir; skipping"; exit 77; }
. "$srcdir/tests/cluster/tiny-experiment.sh"

tmp=$(mktemp -d /tmp/pbshardsXXXXXX)
trap '[ -n "${PB_KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
tiny_experiment "$tmp" cache
fail() { echo "FAIL: $*"; exit 1; }

run() {
	"$pb" run "$tmp/exp.ini" --plugin-dir "$plugdir" --threads 2 \
		--inner-threads 1 --no-table "$@"
}

# Usage errors.
for bad in "--shard 2/2" "--shard 1" "--shard -1/2" "--shard 0/0" \
	   "--phase train"; do
	# shellcheck disable=SC2086
	run $bad --quiet 2> "$tmp/err"
	rc=$?
	[ $rc -eq 2 ] || fail "$bad: exit $rc, expected 2"
done

# The cells phase before the dense phase: an error that says what to do.
run --shard 0/3 2> "$tmp/err" && fail "cells phase ran without dense models"
grep -q -- "--phase dense" "$tmp/err" || { cat "$tmp/err"; fail "no hint"; }
ls "$tmp/cache"/*.ckpt 2>/dev/null && fail "the cells phase trained"

# The dense phase: seed 2, then shard 0 of 2 of the seeds (seed 1).
run --phase dense --seed 2 2> "$tmp/err" || { cat "$tmp/err"; fail "dense seed 2"; }
grep -q "1 dense model trained" "$tmp/err" || { cat "$tmp/err"; fail "seed 2 not trained"; }
run --phase dense --shard 0/2 2> "$tmp/err" || { cat "$tmp/err"; fail "dense 0/2"; }
grep -q "1 dense model trained, 0 loaded" "$tmp/err" || { cat "$tmp/err"; fail "seed 1 not trained"; }
[ -e "$tmp/out/runs.jsonl" ] && fail "the dense phase wrote runs.jsonl"

# Three shards at once, and shard 1 a second time beside them.
pids=
for s in 0 1 2 1; do
	run --shard $s/3 --quiet &
	pids="$pids $!"
done
for p in $pids; do
	wait "$p" || fail "a shard failed"
done
jsonl=$tmp/out/runs.jsonl
lines=$(wc -l < "$jsonl")
unique=$(sed 's/.*"id":"\([^"]*\)".*/\1/' "$jsonl" | sort -u | wc -l)
echo "cells $N_CELLS, lines $lines, unique ids $unique"
[ "$unique" -eq "$N_CELLS" ] || fail "$unique cells recorded of $N_CELLS"
[ "$lines" -eq "$N_CELLS" ] || fail "$lines lines for $N_CELLS cells"
grep -q '"status":"ok"' "$jsonl" || fail "no ok cell"
[ "$(grep -c '"host":"' "$jsonl")" -eq "$N_CELLS" ] || fail "lines without host"

# The same, unsharded, with a cache of its own: bitwise the same.
sed 's/^cache = cache$/cache = cache2/' "$tmp/exp.ini" > "$tmp/exp2.ini"
"$pb" run "$tmp/exp2.ini" --plugin-dir "$plugdir" --threads 2 \
	--inner-threads 1 --no-table --quiet --output "$tmp/whole" ||
	fail "the unsharded run"
stable_lines "$jsonl" > "$tmp/a"
stable_lines "$tmp/whole/runs.jsonl" > "$tmp/b"
diff "$tmp/a" "$tmp/b" > "$tmp/diff" || { head -c 3000 "$tmp/diff"; fail "numbers differ"; }
for f in "$tmp"/whole/cells/*.ckpt; do
	cmp -s "$f" "$tmp/out/cells/${f##*/}" || fail "${f##*/} differs"
done

# prunebench slurm: nothing to submit now; after removing two lines, the
# arrays hold only the seeds and shards of those cells.
"$pb" slurm "$tmp/exp.ini" --plugin-dir "$plugdir" --shards 3 \
	> "$tmp/cmds" 2> "$tmp/err" || { cat "$tmp/err"; fail "slurm"; }
grep -q "nothing to submit" "$tmp/err" || { cat "$tmp/err"; fail "all done"; }
[ -s "$tmp/cmds" ] && fail "commands printed with nothing to submit"
grep -v '"id":"l1-channels=0.5-s2-' "$jsonl" > "$tmp/j" && mv "$tmp/j" "$jsonl"
"$pb" slurm "$tmp/exp.ini" --plugin-dir "$plugdir" --shards 3 \
	--cpus-per-task 2 --time 0:10:00 --mem 1G --array-max 2 \
	> "$tmp/cmds" 2> "$tmp/err" || { cat "$tmp/err"; fail "slurm"; }
cat "$tmp/err"
cat "$tmp/cmds"
script=$tmp/out/slurm/cluster.sbatch
[ -x "$script" ] || fail "no script $script"
bash -n "$script" || fail "the script does not parse"
bash -n "$tmp/cmds" || fail "the commands do not parse"
grep -q '^#SBATCH --cpus-per-task=2$' "$script" || fail "cpus"
grep -q '^#SBATCH --time=0:10:00$' "$script" || fail "time"
grep -q '^#SBATCH --mem=1G$' "$script" || fail "mem"
grep -q -- '--array=1%2 ' "$tmp/cmds" || fail "dense array is not seed index 1"
grep -q -- 'afterok:${dense%%;\*}' "$tmp/cmds" || fail "no dependency"
grep -q 'dense-%A_%a.log' "$tmp/cmds" || fail "no dense log"
grep -q 'cells-%A_%a.log' "$tmp/cmds" || fail "no cells log"
# The one shard that has the missing cell.
shard=$(sed -n 's/.*--job-name=cluster-cells --array=\([0-9]*\)%2 .*/\1/p' "$tmp/cmds")
[ -n "$shard" ] || fail "the cells array is not one shard"
run --shard "$shard/3" --dry-run | grep -q '^todo .*l1-channels=0.5-s2-' ||
	fail "shard $shard does not hold the missing cell"
echo "ok"
