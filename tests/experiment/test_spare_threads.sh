#!/bin/bash
# Spare cores: once a sweep has no cell left to start, the threads no
# worker uses go to the cells still running, inside their own trainings.
# Two cells on three threads: each starts with one, the third is spare
# from the start, so the later cell is granted it at once (and the other
# cell's, if it ends first) and its log says so. The numbers are the
# same bits as a sweep on one thread.
set -u

. "$(dirname "$0")/../testlib.sh"
sweep_test spare
. "$(dirname "$0")/../cluster/tiny-experiment.sh"
tiny_experiment "$tmp" cache

# Seed 1's two magnitude cells.
run() {
	"$pb" run "$tmp/exp.ini" --plugin-dir "$plugdir" --no-table --quiet \
		--only magnitude --seed 1 "$@"
}

check "a sweep on one thread" run --output "$tmp/one" --threads 1
check "a sweep of two cells on three threads" \
	run --output "$tmp/three" --threads 3
if grep -q "finetune: spare cores, 2 threads" "$tmp"/three/cells/*.log; then
	echo "ok - a cell took the spare thread"
else
	not_ok "a cell took the spare thread"
	tail -n 3 "$tmp"/three/cells/*.log | sed 's/^/#   /'
fi
if grep -q "spare cores" "$tmp"/one/cells/*.log; then
	not_ok "a sweep on one thread has none to spare"
else
	echo "ok - a sweep on one thread has none to spare"
fi
stable_lines "$tmp/one/runs.jsonl" > "$tmp/one.txt"
stable_lines "$tmp/three/runs.jsonl" > "$tmp/three.txt"
same "the same numbers with the spare thread" "$tmp/one.txt" "$tmp/three.txt"
grep -c '"acc_after"' "$tmp/one.txt" | grep -qx 2 ||
	not_ok "two cells with an accuracy after fine-tuning"
finish
