#!/bin/bash
# scripts/plots on a real results folder (a copy of the committed
# results/quickstart: its runs.jsonl and per-cell curves): the three
# comparison plots and one training-curve picture per cell, all PNG;
# the Pareto fronts of the MACs and speedup plots;
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

# The Pareto fronts, against a front found the slow way: a point is on
# it when no other point has as good an x (fewer MACs kept, or more
# speed) and as high a top-1, and is better in one of the two.
front_check() { # what, x column, low|high, the script's front file
	cat "$r"/plots/[0-9]*.dat "$r/plots/controls.dat" |
		awk -v c="$2" '!/^#/ && $c == $c + 0 { print $c, $4 }' >"$tmp/pts"
	awk -v better="$3" '{ x[NR] = $1; y[NR] = $2 }
		END {
			for (i = 1; i <= NR; i++) {
				dom = 0
				for (j = 1; j <= NR && !dom; j++) {
					xb = better == "low" ? x[j] < x[i] : x[j] > x[i]
					xe = x[j] == x[i]
					if ((xb || xe) && y[j] >= y[i] && (xb || y[j] > y[i]))
						dom = 1
				}
				if (!dom)
					print x[i], y[i]
			}
		}' "$tmp/pts" | sort -g -u -k1,1 >"$tmp/front"
	same "$1" "$tmp/front" "$4"
}
front_check "the Pareto front of top-1 and MACs kept" 1 low "$r/plots/pareto-macs.dat"
front_check "the Pareto front of top-1 and speedup" 7 high "$r/plots/pareto.dat"
# The quickstart's MACs front by hand: l1 at both targets, then the
# dense + fine-tune model (magnitude's rows keep every MAC).
awk '{ printf "%.1f %.2f\n", $1, $2 }' "$r/plots/pareto-macs.dat" >"$tmp/macs_front"
printf '49.9 91.12\n69.8 91.85\n100.0 92.14\n' >"$tmp/want_front"
same "the MACs front: l1, l1, dense + fine-tune" "$tmp/macs_front" "$tmp/want_front"

# Without gnuplot on the PATH: a hint, exit 0, nothing drawn.
mkdir "$tmp/bin" "$tmp/r2"
for t in bash env sed grep cat dirname; do ln -s "$(command -v $t)" "$tmp/bin/$t"; done
PATH=$tmp/bin "$src/scripts/plots" "$tmp/r2" >"$tmp/out" 2>"$tmp/err"
rc=$?
[[ $rc -eq 0 ]] && grep -q 'install gnuplot-nox' "$tmp/err" && [[ ! -e $tmp/r2/acc_vs_macs.png ]] &&
	echo "ok - without gnuplot: a hint" || not_ok "without gnuplot: a hint (exit $rc)"
finish
