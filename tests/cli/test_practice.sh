#!/bin/bash
# The practice commands end to end on synthetic data: quantize (the int8
# file evaluates to what quantize printed, sizes in the expected order),
# sensitivity (CSV, per-layer amounts, the same numbers with 1 and 2
# threads), histogram (data, script, picture), and their usage errors.
set -u
bin=${PB_BUILDDIR:-.}/prunebench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../testlib.sh"

data=synthetic:600:3
tiny_model "$tmp/tiny.ini"

check "train" "$bin" train "$tmp/tiny.ini" --data $data --epochs 2 --batch 40 \
	--set val_size=100 --threads 2 --out "$tmp/m.ckpt" --quiet
head -n 1 "$tmp/m.csv" | grep -q '^epoch,lr,train_loss,train_acc,val_loss,val_acc,sparsity,seconds$' ||
	not_ok "the training curve has a sparsity column"

check "quantize" "$bin" quantize "$tmp/tiny.ini" "$tmp/m.ckpt" --data $data \
	--val-size 100 --threads 2 --out "$tmp/q.ckpt"
cp "$tmp/out" "$tmp/quantize.out"
grep -q 'int8 (weights and activations): test top-1 float' "$tmp/quantize.out" ||
	not_ok "quantize prints both accuracies"
i8=$(sed -n 's/.*  int8 \([0-9.]*\)%.*/\1/p' "$tmp/quantize.out")
back=$(sed -n 's/.*loaded back: \([0-9.]*\)%.*/\1/p' "$tmp/quantize.out")
[[ -n $i8 && $i8 == "$back" ]] || not_ok "the file loaded back evaluates the same ($i8 vs $back)"
check "eval the int8 file" "$bin" eval "$tmp/tiny.ini" "$tmp/q.ckpt" --data $data --threads 2
grep -q "test accuracy $i8%.*int8 weights and activations" "$tmp/out" ||
	{ not_ok "eval of the int8 file gives $i8%"; cat "$tmp/out"; }
size() { awk -v k="$1" '$0 ~ "^  " k "  " { print $(NF - 2) }' "$tmp/quantize.out"; }
f32=$(size float32) z=$(size "float32 \\+ zlib") q8=$(size int8) q8z=$(size "int8 \\+ sparse \\+ zlib")
[[ -n $f32 && -n $q8z ]] && ((q8z < q8 && q8 < f32 && z < f32)) ||
	not_ok "sizes: int8+sparse+zlib $q8z < int8 $q8 < float32 $f32"
[[ $q8 -gt 0 ]] && [[ $(stat -c %s "$tmp/q.ckpt") -le $q8 ]] ||
	not_ok "the int8 file written (sparse) is no larger than the dense int8 one"
check "quantize weights only" "$bin" quantize "$tmp/tiny.ini" "$tmp/m.ckpt" --data $data \
	--val-size 100 --activations float --out "$tmp/w.ckpt"
grep -q 'int8 (weights only)' "$tmp/out" || not_ok "weights only said so"

check "prune" "$bin" prune "$tmp/tiny.ini" "$tmp/m.ckpt" --plugin magnitude \
	--target sparsity=0.75 --scope global --no-latency --quiet --out "$tmp/p"
check "quantize the pruned model" "$bin" quantize "$tmp/p.ini" "$tmp/p.ckpt" --data $data \
	--val-size 100 --out "$tmp/pq.ckpt"

for t in 1 2; do
	check "sensitivity with $t threads" "$bin" sensitivity "$tmp/tiny.ini" "$tmp/m.ckpt" \
		--plugin magnitude --data $data --val-size 100 --levels 0.3,0.6,0.9 \
		--max-drop 100 --target sparsity=0.5 --threads $t --quiet --out "$tmp/s$t"
	cp "$tmp/out" "$tmp/s$t.out"
done
same "sensitivity does not depend on the thread count" "$tmp/s1/sensitivity.csv" "$tmp/s2/sensitivity.csv"
grep -q '^conv1,36,0.3,' "$tmp/s1/sensitivity.csv" || not_ok "the CSV has conv1 at 0.3"
grep -q '^layer.conv2 = 0\.[0-9]*$' "$tmp/s1.out" || not_ok "per-layer amounts printed"
grep -q 'reaching sparsity=0.5' "$tmp/s1.out" || not_ok "the amounts reach the target"
[[ -s $tmp/s1/sensitivity.gp ]] || not_ok "sensitivity gnuplot script"
if command -v gnuplot >/dev/null; then
	[[ -s $tmp/s1/sensitivity.png ]] || not_ok "sensitivity.png drawn"
fi

check "histogram" "$bin" histogram "$tmp/p.ini" "$tmp/p.ckpt" --ref "$tmp/m.ckpt" \
	--ref-model "$tmp/tiny.ini" --out "$tmp/h"
for s in dense pruned final; do
	[[ -s $tmp/h/histograms/conv2.$s.dat ]] || not_ok "histogram data conv2.$s"
done
# GSL's format: lower, upper, count; 80 bins.
[[ $(wc -l <"$tmp/h/histograms/fc.final.dat") == 80 ]] || not_ok "80 bins"
grep -q 'pruned 75' "$tmp/out" || grep -q 'final 7[0-9]\.' "$tmp/out" ||
	not_ok "zeros counted"
if command -v gnuplot >/dev/null; then
	[[ -s $tmp/h/histograms.png ]] || not_ok "histograms.png drawn"
fi

expect_fail "quantize without --out" 2 "--out INT8.ckpt is required" \
	"$bin" quantize "$tmp/tiny.ini" "$tmp/m.ckpt"
expect_fail "quantize onto its input" 2 "is an input" \
	"$bin" quantize "$tmp/tiny.ini" "$tmp/m.ckpt" --out "$tmp/m.ckpt"
expect_fail "quantize bad activations" 2 "use int8 or float" \
	"$bin" quantize "$tmp/tiny.ini" "$tmp/m.ckpt" --out "$tmp/x.ckpt" --activations int4
expect_fail "sensitivity --target without --max-drop" 2 "needs --max-drop" \
	"$bin" sensitivity "$tmp/tiny.ini" "$tmp/m.ckpt" --plugin magnitude --target sparsity=0.5
expect_fail "sensitivity bad levels" 2 "increasing" \
	"$bin" sensitivity "$tmp/tiny.ini" "$tmp/m.ckpt" --plugin magnitude --levels 0.5,0.2
expect_fail "sensitivity unreachable target" 1 "allow a larger drop" \
	"$bin" sensitivity "$tmp/tiny.ini" "$tmp/m.ckpt" --plugin magnitude --data $data \
	--val-size 100 --levels 0.3 --max-drop 100 --target sparsity=0.5 --quiet --out "$tmp/s3"
expect_fail "histogram --ref-model without --ref" 2 "needs --ref" \
	"$bin" histogram "$tmp/tiny.ini" "$tmp/m.ckpt" --ref-model "$tmp/tiny.ini"
finish
