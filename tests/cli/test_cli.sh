#!/bin/bash
# End-to-end checks of the prunebench command line on synthetic data.
set -u
bin=${PB_BUILDDIR:-.}/prunebench
src=${PB_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../testlib.sh"

check "--version" "$bin" --version
grep -q '^prunebench [0-9]' "$tmp/out" || not_ok "version text"
check "--help" "$bin" --help
for c in train eval info; do
	check "$c --help" "$bin" "$c" --help
	grep -q "Usage: prunebench $c" "$tmp/out" || not_ok "$c usage text"
done

check "info vgg-s" "$bin" info "$src/experiments/models/vgg-s.ini"
# 77,786 parameters and 7,344,000 MACs: hand-checked in test_model_info.
grep -q 'total: 77786 parameters' "$tmp/out" || { not_ok "vgg-s params in info"; cat "$tmp/out"; }
grep -q ' 7344000 MACs' "$tmp/out" || not_ok "vgg-s MACs in info"

check "train on synthetic data" "$bin" train "$src/experiments/models/vgg-s.ini" \
	--data synthetic:512:3 --epochs 1 --batch 32 --threads 2 --seed 3 \
	--set val_size=64 --out "$tmp/m.ckpt" --quiet
grep -q 'test accuracy' "$tmp/out" || not_ok "train prints accuracy"
[[ -s $tmp/m.csv ]] || not_ok "training curve written"
# Training points for LTH's rewind: 448 images / 32 = 14 steps.
check "train --keep" "$bin" train "$src/experiments/models/vgg-s.ini" \
	--data synthetic:512:3 --epochs 1 --batch 32 --threads 2 --seed 3 \
	--set val_size=64 --out "$tmp/k.ckpt" --keep 0,5 --quiet
[[ -s $tmp/k.step0.ckpt && -s $tmp/k.step5.ckpt ]] || not_ok "train --keep writes k.step0.ckpt and k.step5.ckpt"
cmp -s "$tmp/k.step0.ckpt" "$tmp/k.step5.ckpt" && not_ok "points 0 and 5 differ"
check "prune lth from the kept point" "$bin" prune "$src/experiments/models/vgg-s.ini" "$tmp/k.ckpt" \
	--plugin lth --target sparsity=0.2 --opt rewind=5 --opt retrain_epochs=0 \
	--data synthetic:512:3 --set val_size=64 --out "$tmp/ticket" --no-latency --quiet
expect_fail "prune lth without the point" 1 "points kept (iterations): 0 5" "$bin" prune \
	"$src/experiments/models/vgg-s.ini" "$tmp/k.ckpt" --plugin lth --target sparsity=0.2 \
	--opt rewind=7 --opt retrain_epochs=0 --data synthetic:512:3 --set val_size=64 \
	--out "$tmp/ticket2" --no-latency --quiet
expect_fail "train --keep past the end" 1 "past the end" "$bin" train "$src/experiments/models/vgg-s.ini" \
	--data synthetic:512:3 --epochs 1 --batch 32 --threads 2 --set val_size=64 \
	--out "$tmp/k2.ckpt" --keep 15 --quiet
expect_fail "train --keep without --out" 2 "needs --out" "$bin" train "$src/experiments/models/vgg-s.ini" --keep 5
expect_fail "train --keep bad point" 1 "not a training point" "$bin" train "$src/experiments/models/vgg-s.ini" \
	--data synthetic:512:3 --set val_size=64 --out "$tmp/k3.ckpt" --keep soon --quiet
check "eval the checkpoint" "$bin" eval "$src/experiments/models/vgg-s.ini" "$tmp/m.ckpt" \
	--data synthetic:512:3 --threads 2
grep -q 'test accuracy' "$tmp/out" || not_ok "eval prints accuracy"

# bench --convs: a row per conv layer, each kernel timed (milliseconds
# per call above zero; GFLOP/s can print as 0.0 on a loaded machine).
check "bench --convs" "$bin" bench --convs --model "$src/experiments/models/resnet-s.ini" \
	--batch 2 --iters 1 --repeats 1 --no-peaks --tsv --threads 2
[[ $(grep -c '^conv' "$tmp/out") -eq 8 ]] || { not_ok "bench --convs: 8 conv rows for resnet-s"; cat "$tmp/out"; }
awk -F'\t' '/^conv/ && !($13 > 0 && $14 > 0 && $15 > 0) { bad = 1 } END { exit bad }' "$tmp/out" ||
	not_ok "bench --convs: every kernel timed"
grep -q $'^conv\tresnet-s\t2\tb2_sc_conv\t16\t28x28\t32\t1/2\t' "$tmp/out" || not_ok "bench --convs: the 1x1 stride-2 row"
expect_fail "bench --convs with --sparsity" 2 "two different tables" "$bin" bench --convs --sparsity 0.5

expect_fail "unknown command" 2 "unknown command" "$bin" frobnicate
expect_fail "missing model file" 1 "nope.ini" "$bin" info "$tmp/nope.ini"
expect_fail "bad option value" 2 "expected an integer" "$bin" train "$src/experiments/models/vgg-s.ini" --epochs many
expect_fail "unknown recipe key" 2 "unknown recipe key" "$bin" train "$src/experiments/models/vgg-s.ini" --set speed=11
expect_fail "bad data spec" 1 "fashion-mnist" "$bin" train "$src/experiments/models/vgg-s.ini" --data imagenet:/x
expect_fail "missing data folder" 1 "$tmp/nodata" "$bin" train "$src/experiments/models/vgg-s.ini" --data "fashion-mnist:$tmp/nodata"
head -c 100 "$tmp/m.ckpt" > "$tmp/short.ckpt"
expect_fail "truncated checkpoint" 1 "short.ckpt" "$bin" eval "$src/experiments/models/vgg-s.ini" "$tmp/short.ckpt" --data synthetic:64
expect_fail "checkpoint of another model" 1 "m.ckpt" "$bin" eval "$src/experiments/models/lenet5.ini" "$tmp/m.ckpt" --data synthetic:64

# `run --output` writes the sweep where it is told, not to the INI's output.
cat > "$tmp/exp.ini" <<EXP
[experiment]
name = clitest
model = $src/experiments/models/vgg-s.ini
data = synthetic:300:2
val_size = 60
cache = $tmp/cache
output = $tmp/default-out
latency = no
[train]
epochs = 1
batch = 32
[finetune]
epochs = 1
batch = 32
[prune.magnitude]
targets = sparsity=0.5
EXP
check "run --output" "$bin" run "$tmp/exp.ini" --output "$tmp/other" --threads 2 --quiet
[[ $(wc -l < "$tmp/other/runs.jsonl") -eq 3 ]] || not_ok "run --output: 3 cells in runs.jsonl"
[[ ! -e $tmp/default-out ]] || not_ok "run --output left the INI's output alone"
grep -q '^| magnitude' "$tmp/out" || not_ok "run prints the table"
# table --compare: one seed a side, so the difference and no test;
# nothing written (table.md keeps its time).
touch -d @0 "$tmp/other/table.md"
check "table --compare" "$bin" table "$tmp/other" --compare magnitude dense
grep -q '^| sparsity=0.5 | [0-9.]* (n = 1) | [0-9.]* (n = 1) | [-+][0-9.]* | — | — | — |$' "$tmp/out" ||
	{ not_ok "table --compare: the line at sparsity=0.5"; cat "$tmp/out"; }
[[ $(stat -c %Y "$tmp/other/table.md") == 0 ]] || not_ok "table --compare wrote table.md"
expect_fail "table --compare unknown row" 1 "no row 'l1' in the table; its rows: 'dense', 'dense + fine-tune', 'magnitude'" \
	"$bin" table "$tmp/other" --compare l1 dense
expect_fail "table --compare one row" 2 "needs two row labels" "$bin" table "$tmp/other" --compare dense
expect_fail "table --compare --plots" 2 "prints only the test" "$bin" table "$tmp/other" --compare dense magnitude --plots
: > "$tmp/afile"
expect_fail "run --output under a file" 1 "afile" "$bin" run "$tmp/exp.ini" --output "$tmp/afile/x" --quiet

# The sweep's own options for the cells it starts (--cell, --report-fd,
# --control-fd): bad values are refused before anything runs.
for fd in 1 x; do
	expect_fail "run --report-fd $fd" 2 "--report-fd '$fd': expected an integer in \[3, 65535\]" \
		"$bin" run "$tmp/exp.ini" --cell dense-s1 --report-fd "$fd"
	expect_fail "run --control-fd $fd" 2 "--control-fd '$fd': expected an integer in \[3, 65535\]" \
		"$bin" run "$tmp/exp.ini" --cell dense-s1 --report-fd 3 --control-fd "$fd" 3>/dev/null
done
expect_fail "run --report-fd without --cell" 2 "--report-fd is set by the sweep" \
	"$bin" run "$tmp/exp.ini" --report-fd 3 3>/dev/null
expect_fail "run --control-fd without --cell" 2 "--control-fd is set by the sweep" \
	"$bin" run "$tmp/exp.ini" --control-fd 3 3>/dev/null
expect_fail "run --cell without --report-fd" 2 "--cell needs --report-fd" "$bin" run "$tmp/exp.ini" --cell dense-s1
# A closed descriptor is refused up front (not after the cell's training,
# when its record could not be sent).
expect_fail "run --report-fd closed" 2 "--report-fd 9: not an open file descriptor" \
	"$bin" run "$tmp/exp.ini" --cell dense-s1 --report-fd 9 9>&-
expect_fail "run --control-fd closed" 2 "--control-fd 9: not an open file descriptor" \
	"$bin" run "$tmp/exp.ini" --cell dense-s1 --report-fd 3 --control-fd 9 3>/dev/null 9>&-

finish
