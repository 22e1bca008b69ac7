#!/bin/bash
# scripts/plots on a real results folder (a copy of the committed
# results/quickstart: its runs.jsonl and per-cell curves): the three
# comparison plots and one training-curve picture per cell, all PNG;
# the plot data `prunebench table --plots` writes for them (one series
# per method, the dense and dense + fine-tune controls as points); and,
# without gnuplot, a hint instead of a failure. Skipped (exit 77) where
# gnuplot is not installed.
set -u
bin=${PB_BUILDDIR:-.}/prunebench
src=${PB_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../testlib.sh"

command -v gnuplot >/dev/null 2>&1 || { echo "SKIP: gnuplot is not installed"; exit 77; }

r=$tmp/quickstart
mkdir -p "$r/cells"
cp "$src/results/quickstart/runs.jsonl" "$r/"
cp "$src"/results/quickstart/cells/*.csv "$r/cells/"
n_cells=$(grep -c . "$r/runs.jsonl")

check "scripts/plots" env PRUNEBENCH="$bin" "$src/scripts/plots" "$r"
is_png() { [[ -s $1 ]] && [[ $(head -c 8 "$1" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]]; }
for p in acc_vs_macs acc_vs_params acc_vs_speedup; do
	is_png "$r/$p.png" && echo "ok - $p.png is a PNG" || not_ok "$p.png is a PNG"
done
n_png=$(find "$r/curves" -name '*.png' 2>/dev/null | wc -l)
[[ $n_png -eq $n_cells ]] && echo "ok - a curve per cell ($n_png)" ||
	not_ok "a curve per cell: $n_png pictures for $n_cells cells"
for f in "$r"/curves/*.png; do
	is_png "$f" || not_ok "$f is a PNG"
done
# The data behind them: magnitude and l1 as series, two targets each,
# ordered by MACs kept; the controls as points.
cut -f2,3 "$r/plots/series.txt" | sort > "$tmp/series"
printf 'l1\tprune\nmagnitude\tprune\n' > "$tmp/want"
same "one series per method" "$tmp/series" "$tmp/want"
for f in $(cut -f1 "$r/plots/series.txt"); do
	[[ $(grep -vc '^#' "$r/plots/$f") -eq 2 ]] || not_ok "$f holds the method's two targets"
	sort -s -g -k1,1 -c <(grep -v '^#' "$r/plots/$f") 2>/dev/null ||
		not_ok "$f is ordered by MACs kept"
done
grep -q '"dense"' "$r/plots/controls.dat" && grep -q '"dense + fine-tune"' "$r/plots/controls.dat" &&
	echo "ok - the controls as points" || not_ok "the controls as points"

# Without gnuplot on the PATH: a hint, exit 0, nothing drawn.
mkdir "$tmp/bin" "$tmp/r2"
for t in bash env sed grep cat dirname; do ln -s "$(command -v $t)" "$tmp/bin/$t"; done
PATH=$tmp/bin "$src/scripts/plots" "$tmp/r2" >"$tmp/out" 2>"$tmp/err"
rc=$?
[[ $rc -eq 0 ]] && grep -q 'install gnuplot-nox' "$tmp/err" && [[ ! -e $tmp/r2/acc_vs_macs.png ]] &&
	echo "ok - without gnuplot: a hint" || not_ok "without gnuplot: a hint (exit $rc)"
finish
