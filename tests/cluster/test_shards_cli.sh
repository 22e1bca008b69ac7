#!/bin/bash
# The CLI of sweeps over many tasks: --shard and --phase errors; the
# cells phase refuses to start without its dense models; the dense phase
# by seed; three shard processes at once plus a second copy of one of
# them end with every cell exactly once in runs.jsonl, bitwise as an
# unsharded run; `prunebench slurm` writes a script bash accepts and
# prints the two sbatch commands, only for what is missing, and nothing
# to submit once all is done.
set -u

. "$(dirname "$0")/../testlib.sh"
sweep_test shards
. "$(dirname "$0")/tiny-experiment.sh"
tiny_experiment "$tmp" cache
jsonl=$tmp/results/runs.jsonl

run=("$pb" run "$tmp/exp.ini" --plugin-dir "$plugdir" --threads 2
	--inner-threads 1 --no-table)

for bad in "--shard 2/2" "--shard 1" "--shard -1/2" "--shard 0/0" \
	   "--phase train"; do
	# shellcheck disable=SC2086
	expect_fail "run $bad: a usage error" 2 "" "${run[@]}" $bad --quiet
done

expect_fail "the cells phase without the dense models says to run the dense phase" \
	1 "run the dense phase first: prunebench run .* --phase dense --seed" \
	"${run[@]}" --shard 0/3
if ls "$tmp/cache"/*.ckpt > /dev/null 2>&1; then
	not_ok "the cells phase trained nothing"
else
	echo "ok - the cells phase trained nothing"
fi

# check's own output goes to $tmp/out and $tmp/err: keep what to grep.
check "the dense phase of seed 2" "${run[@]}" --phase dense --seed 2
cp "$tmp/err" "$tmp/said"
check "... trains one dense model" grep -q "1 dense model trained" "$tmp/said"
check "the dense phase of shard 0 of 2 (seed 1)" "${run[@]}" --phase dense --shard 0/2
cp "$tmp/err" "$tmp/said"
check "... trains the other one" grep -q "1 dense model trained, 0 loaded" "$tmp/said"
if [ -e "$jsonl" ]; then
	not_ok "the dense phase records no cell"
else
	echo "ok - the dense phase records no cell"
fi

# Three shards at once, and shard 1 a second time beside them.
pids=
k=0
for s in 0 1 2 1; do
	k=$((k + 1))
	"${run[@]}" --shard $s/3 > "$tmp/shard$k.out" 2>&1 &
	pids="$pids $!"
done
all_ok=1
for p in $pids; do
	wait "$p" || all_ok=0
done
if [ $all_ok = 1 ]; then
	echo "ok - four shard processes at once"
else
	not_ok "four shard processes at once"
	cat "$tmp"/shard*.out
fi
lines=$(wc -l < "$jsonl")
unique=$(sed 's/.*"id":"\([^"]*\)".*/\1/' "$jsonl" | sort -u | wc -l)
echo "# $N_CELLS cells: $lines lines, $unique ids"
check "every cell recorded" test "$unique" -eq "$N_CELLS"
check "... once" test "$lines" -eq "$N_CELLS"
check "... ok" test "$(grep -c '"status":"ok"' "$jsonl")" -eq "$N_CELLS"
check "... with its host" test "$(grep -c "\"host\":\"$(hostname)\"" "$jsonl")" -eq "$N_CELLS"
grep -h "not recorded twice" "$tmp"/shard*.out | sed 's/^/# /'

# The same, unsharded, with a cache of its own: bitwise the same.
sed 's/^cache = cache$/cache = cache2/' "$tmp/exp.ini" > "$tmp/exp2.ini"
check "the same experiment unsharded" "$pb" run "$tmp/exp2.ini" \
	--plugin-dir "$plugdir" --threads 2 --inner-threads 1 --no-table \
	--quiet --output "$tmp/whole"
stable_lines "$jsonl" > "$tmp/a"
stable_lines "$tmp/whole/runs.jsonl" > "$tmp/b"
check "sharded and unsharded records are the same but for times and host" \
	diff "$tmp/a" "$tmp/b"
same_models=1
for f in "$tmp"/whole/cells/*.ckpt; do
	cmp -s "$f" "$tmp/results/cells/${f##*/}" || same_models=0
done
check "... and so are the final models" test $same_models = 1

slurm=("$pb" slurm "$tmp/exp.ini" --plugin-dir "$plugdir" --shards 3)
check "prunebench slurm when every cell is done" "${slurm[@]}"
cp "$tmp/out" "$tmp/cmds"
cp "$tmp/err" "$tmp/said"
check "... says there is nothing to submit" grep -q "nothing to submit" "$tmp/said"
check "... and prints no command" test ! -s "$tmp/cmds"

# One cell lost: the arrays hold only its seed and its shard.
grep -v '"id":"l1-channels=0.5-s2-' "$jsonl" > "$tmp/j" && mv "$tmp/j" "$jsonl"
check "prunebench slurm with one cell missing" "${slurm[@]}" \
	--cpus-per-task 2 --time 0:10:00 --mem 1G --array-max 2
cp "$tmp/out" "$tmp/cmds"
sed 's/^/# /' "$tmp/cmds"
script=$tmp/results/slurm/cluster.sbatch
check "the script is written, executable" test -x "$script"
check "... and bash reads it" bash -n "$script"
check "... with the CPUs, time and memory" grep -q \
	'^#SBATCH --cpus-per-task=2$' "$script"
check "... time" grep -q '^#SBATCH --time=0:10:00$' "$script"
check "... memory" grep -q '^#SBATCH --mem=1G$' "$script"
check "the commands parse" bash -n "$tmp/cmds"
check "the dense array is seed index 1 only" grep -q -- \
	'--job-name=cluster-dense --array=1%2 ' "$tmp/cmds"
check "the cells wait for the dense array" grep -q -- \
	'"--dependency=afterok:${dense%%;\*}" --kill-on-invalid-dep=yes' "$tmp/cmds"
check "logs per task" grep -q 'dense-%A_%a.log.*cells-%A_%a.log' \
	<(tr '\n' ' ' < "$tmp/cmds")
shard=$(sed -n 's/.*--job-name=cluster-cells --array=\([0-9]*\)%2 .*/\1/p' "$tmp/cmds")
if [ -n "$shard" ]; then
	check "the cells array is the missing cell's shard" bash -c \
		"\"\$@\" --shard $shard/3 --dry-run | grep -q '^todo .*l1-channels=0.5-s2-'" \
		_ "${run[@]}"
else
	not_ok "the cells array is one shard"
fi
# A corrupt dense model in the cells phase: refused with the dense
# phase's command, never trained again (tasks at once would race).
dense2=$(ls "$tmp/cache"/dense-*-s2-*.ckpt 2> /dev/null | grep -v step | head -n1)
if [ -n "$dense2" ] && [ -n "$shard" ]; then
	cp "$dense2" "$tmp/dense2.good"
	printf 'garbage!' | dd of="$dense2" bs=1 seek=200 conv=notrunc 2> /dev/null
	cp "$dense2" "$tmp/dense2.bad"
	"${run[@]}" --shard "$shard/3" > "$tmp/said" 2>&1
	sed 's/^/# /' "$tmp/said" | tail -n 5
	check "a corrupt dense model in the cells phase is refused" grep -q \
		"unusable.*run the dense phase again: prunebench run .* --phase dense --seed 2" \
		"$tmp/said"
	check "... and not trained again" cmp -s "$dense2" "$tmp/dense2.bad"
	check "... nor is the cell recorded as done" test \
		"$(grep -c '"id":"l1-channels=0.5-s2-[^"]*","[^}]*"status":"ok"' "$jsonl")" -eq 0
	cp "$tmp/dense2.good" "$dense2"
	check "with the model put back, the cells phase runs the cell" \
		"${run[@]}" --shard "$shard/3" --quiet
	check "... once" test "$(grep -c '"id":"l1-channels=0.5-s2-' "$jsonl")" -le 2
	check "... ok" grep -q '"id":"l1-channels=0.5-s2-[^"]*".*"status":"ok"' "$jsonl"
else
	not_ok "the dense model of seed 2 is in the cache (${dense2:-none})"
fi
finish
