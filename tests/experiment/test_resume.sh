#!/bin/sh
# A sweep killed with SIGKILL at several moments and re-run ends with every
# cell exactly once in runs.jsonl, and every line a complete JSON object.
set -u

. "$(dirname "$0")/../testlib.sh"
sweep_test resume
tiny_model "$tmp/tiny.ini"

cat > "$tmp/exp.ini" <<'EXP'
[experiment]
name = resume
model = tiny.ini
data = synthetic:1500
seeds = 1 2 3
val_size = 100
cache = cache
output = out
latency = no
[train]
epochs = 1
batch = 50
[finetune]
epochs = 3
batch = 50
lr = 0.01
[prune.magnitude]
targets = sparsity=0.5 sparsity=0.8
scope = global
[prune.l1]
targets = channels=0.25 channels=0.5
EXP

run() {
	"$pb" run "$tmp/exp.ini" --plugin-dir "$plugdir" --threads 2 \
		--inner-threads 1 --no-table --quiet "$@"
}

# Kill at a few moments: early, in the middle, late. exec, so that $! is
# prunebench itself (through libtool's wrapper script too).
for delay in 0.3 0.9 1.6; do
	(exec "$pb" run "$tmp/exp.ini" --plugin-dir "$plugdir" --threads 2 \
		--inner-threads 1 --no-table --quiet) & pid=$!
	sleep $delay
	kill -KILL $pid 2>/dev/null
	wait $pid 2>/dev/null
done
run || { echo "FAIL: the final run failed"; exit 1; }

jsonl="$tmp/out/runs.jsonl"
run --dry-run > "$tmp/list" || { echo "FAIL: --dry-run"; exit 1; }
total=$(grep -c '^\(todo\|done\) ' "$tmp/list")
done_=$(grep -c '^done ' "$tmp/list")
lines=$(wc -l < "$jsonl")
unique=$(sed 's/.*"id": *"\([^"]*\)".*/\1/' "$jsonl" | sort -u | wc -l)
echo "cells $total, done $done_, lines $lines, unique ids $unique"
[ "$total" -eq 18 ] || { echo "FAIL: expected 18 cells"; exit 1; }
[ "$done_" -eq "$total" ] || { echo "FAIL: cells left undone"; exit 1; }
[ "$lines" -eq "$total" ] || { echo "FAIL: $lines lines for $total cells"; exit 1; }
[ "$unique" -eq "$total" ] || { echo "FAIL: duplicated ids"; exit 1; }

if command -v python3 >/dev/null 2>&1; then
	python3 -c '
import json, sys
for n, line in enumerate(open(sys.argv[1]), 1):
    assert line.endswith("\n"), "line %d is cut" % n
    o = json.loads(line)
    assert o["schema"] == 2 and o["status"] in ("ok", "diverged", "failed"), n
' "$jsonl" || { echo "FAIL: invalid JSON line"; exit 1; }
else
	bad=$(grep -vc '^{"schema":2,"id":".*","finished":"[^"]*"}$' "$jsonl")
	[ "$bad" -eq 0 ] || { echo "FAIL: $bad malformed lines"; exit 1; }
fi
echo "ok"
