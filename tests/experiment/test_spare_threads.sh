#!/bin/bash
# Spare cores: once a sweep has no cell left to start, the threads no
# worker uses go to the cells still running, inside their own trainings.
# Two cells on three threads: each starts with one, the third is spare
# from the start, so the later cell is granted it at once (and the other
# cell's, if it ends first) and its log says so. The numbers are the
# same bits as a sweep on one thread.
set -u

builddir=${PB_BUILDDIR:-.}
pb="$builddir/prunebench"
[ -x "$pb" ] || { echo "no $pb; skipping"; exit 77; }
plugdir=${PB_TEST_PLUGIN_DIR:-$builddir/plugins/.libs}
[ -d "$plugdir" ] || { echo "no plugin folder $plugdir; skipping"; exit 77; }

tmp=$(mktemp -d /tmp/pbspareXXXXXX)
trap '[ -n "${PB_KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

. "$(dirname "$0")/../testlib.sh"
tiny_model "$tmp/tiny.ini"

cat > "$tmp/exp.ini" <<'EXP'
[experiment]
name = spare
model = tiny.ini
data = synthetic:1200
seeds = 1
val_size = 200
cache = cache
latency = no
dense_ft = no
[train]
epochs = 1
batch = 50
[finetune]
epochs = 2
batch = 50
lr = 0.01
[prune.magnitude]
targets = sparsity=0.5 sparsity=0.8
scope = global
EXP

run() {
	"$pb" run "$tmp/exp.ini" --plugin-dir "$plugdir" --no-table --quiet \
		--only magnitude "$@"
}

# What a cell computed: every field but the clock's and the thread count.
numbers() {
	sed -e 's/"time_[a-z_]*": *[^,}]*//g' -e 's/"threads": *[0-9]*//g' \
	    -e 's/"finished": *"[^"]*"//g' "$1" | sort
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
numbers "$tmp/one/runs.jsonl" > "$tmp/one.txt"
numbers "$tmp/three/runs.jsonl" > "$tmp/three.txt"
same "the same numbers with the spare thread" "$tmp/one.txt" "$tmp/three.txt"
grep -c '"acc_after"' "$tmp/one.txt" | grep -qx 2 ||
	not_ok "two cells with an accuracy after fine-tuning"
finish
