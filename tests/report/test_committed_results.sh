#!/bin/bash
# The committed results say what their runs.jsonl says, and the
# comparisons meet the bar issue 17 set for them:
#
# - every results/NAME folder's table.md, table.csv, table.tex and plot
#   data regenerate byte for byte from its runs.jsonl with this build
#   (a change to the table code that moves a committed number fails
#   here, not silently in the next re-run);
# - the tables the README shows (`readme_tables`) are the committed
#   table.md's, line for line;
# - every cell of runs.jsonl is a cell of the experiment that writes to
#   that folder (a cell left over from an earlier recipe of the INI has
#   another id), ok or diverged, and a diverged cell is explained in the
#   README (named by its id);
# - a sweep with no cell left to run has n = its seeds in every row; the
#   comparisons given a bar in `dense_bar` must have no cell left, and
#   their dense baseline must reach that mean top-1.
set -u
. "$(dirname "$0")/../testlib.sh"
sweep_test committed
src=${PB_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}

# The sweeps that must be complete, and their dense baselines' bars (%).
declare -A dense_bar=([fmnist-vggs]=93.0 [fmnist-resnets]=93.0)
# The results whose whole table the README shows.
readme_tables=(quickstart fmnist-vggs fmnist-resnets)

# table_blocks FILE OUTDIR: each run of consecutive lines starting with
# "|" in FILE written to OUTDIR/N (1, 2, ...).
table_blocks() {
	mkdir -p "$2"
	awk -v out="$2" '
		/^\|/ { if (!in_t) { n++; in_t = 1 } print > (out "/" n); next }
		{ if (in_t) close(out "/" n); in_t = 0 }' "$1"
}
table_blocks "$src/README.md" "$tmp/readme"

# cell_ids: the ids of the runs.jsonl lines on stdin, one a line.
cell_ids() {
	grep -o '"id":"[^"]*"' | cut -d'"' -f4
}

# listed NAME LIST...: NAME is one of LIST.
listed() {
	local n=$1 x
	shift
	for x in "$@"; do [[ $x == "$n" ]] && return 0; done
	return 1
}

# md_col FILE NAME: the values of column NAME of a table.md, one a line,
# prefixed by the row's first column (labels hold no "|").
md_col() {
	awk -F' *\\| *' -v name="$2" '
		!/^\|/ { next }
		!c { for (i = 2; i < NF; i++) if ($i == name) c = i; next }
		/^\|:/ { next }
		{ print $2 "\t" $c }' "$1"
}

for runs in "$src"/results/*/runs.jsonl; do
	dir=$(dirname "$runs")
	name=$(basename "$dir")
	copy=$tmp/$name
	mkdir -p "$copy"
	cp "$runs" "$copy/"

	# The tables and the plot data.
	check "$name: prunebench table --plots" \
		"$pb" table "$copy" --plots --quiet
	for f in table.md table.csv table.tex; do
		[[ -f $dir/$f ]] || { not_ok "$name: $f is committed"; continue; }
		same "$name: $f regenerates byte for byte" "$dir/$f" "$copy/$f"
	done
	if [[ -d $dir/plots ]]; then
		# pareto*.dat are scripts/plots' own, from these.
		for f in "$dir"/plots/*; do
			[[ $f == */pareto* ]] && continue
			same "$name: plots/$(basename "$f") regenerates" \
				"$f" "$copy/plots/$(basename "$f")"
		done
	fi

	# The README shows these tables whole.
	if listed "$name" "${readme_tables[@]}"; then
		awk '/^\|/' "$dir/table.md" > "$tmp/want.table"
		found=no
		for b in "$tmp"/readme/*; do
			cmp -s "$b" "$tmp/want.table" && found=yes
		done
		[[ $found == yes ]] && echo "ok - $name: README shows the committed table" ||
			not_ok "$name: no table in the README is the committed table.md"
	fi

	# The experiment that writes here.
	ini=$(grep -l "^output *= *\.\./results/$name\$" "$src"/experiments/*.ini)
	[[ -n $ini && $(wc -l <<<"$ini") -eq 1 ]] ||
		{ not_ok "$name: one experiments/*.ini writes to it"; continue; }
	if ! "$pb" run "$ini" --dry-run --no-calibrate --output "$copy" \
		--plugin-dir "$plugdir" > "$tmp/dry" 2> "$tmp/dry.err"; then
		not_ok "$name: --dry-run of $(basename "$ini")"
		sed 's/^/#   /' "$tmp/dry.err"
		continue
	fi
	awk '$1 == "done" || $1 == "todo" { print $3 }' "$tmp/dry" |
		sort > "$tmp/ini.ids"
	cell_ids < "$runs" | sort > "$tmp/run.ids"
	stray=$(comm -13 "$tmp/ini.ids" "$tmp/run.ids")
	[[ -z $stray ]] && echo "ok - $name: every cell is one of $(basename "$ini")" ||
		not_ok "$name: cells not in $(basename "$ini"): $stray"
	dup=$(uniq -d "$tmp/run.ids")
	[[ -z $dup ]] && echo "ok - $name: no cell twice" ||
		not_ok "$name: cells recorded twice: $dup"

	bad=$(grep -v '"status":"ok"' "$runs" | grep -v '"status":"diverged"' |
		cell_ids)
	[[ -z $bad ]] && echo "ok - $name: every cell ok or diverged" ||
		not_ok "$name: cells failed or crashed: $bad"
	for id in $(grep '"status":"diverged"' "$runs" | cell_ids); do
		grep -qF -- "$id" "$src/README.md" &&
			echo "ok - $name: diverged $id explained in the README" ||
			not_ok "$name: diverged cell $id not explained in the README"
	done

	left=$(grep -c '^todo' "$tmp/dry")
	bar=${dense_bar[$name]:-}
	if [[ -n $bar ]]; then
		[[ $left -eq 0 ]] && echo "ok - $name: complete" ||
			not_ok "$name: $left cells of $(basename "$ini") not run"
	fi
	((left == 0)) || continue

	seeds=$(sed -n 's/^seeds *= *//p' "$ini" | wc -w)
	((seeds > 0)) || seeds=1
	short=$(md_col "$copy/table.md" n | awk -F'\t' -v s="$seeds" '$2 != s')
	[[ -z $short ]] && echo "ok - $name: every row has n = $seeds" ||
		not_ok "$name: rows without $seeds seeds: $short"
	if [[ -n $bar ]]; then
		dense=$(md_col "$copy/table.md" "top-1 after FT (%)" |
			awk -F'\t' '$1 == "dense" { print $2 + 0 }')
		awk -v d="$dense" -v b="$bar" 'BEGIN { exit !(d != "" && d + 0 >= b) }' &&
			echo "ok - $name: dense top-1 $dense% >= $bar%" ||
			not_ok "$name: dense top-1 '$dense'% under $bar%"
	fi
done
finish
