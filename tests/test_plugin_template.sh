#!/bin/bash
# The out-of-tree plugin workflow of README "Write your own pruner":
# plugins/template/template.c compiled on its own against the public
# headers (as `pkg-config --cflags prunebench` would give them), found
# with --plugin-dir, listed by `prunebench plugins`, and run by
# `prunebench prune`; plus the CLI's plugin and option refusals and the
# shipped plugins end to end.
set -u
bin=${PB_BUILDDIR:-.}/prunebench
src=${PB_SRCDIR:-$(dirname "$0")/..}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
CC=${CC:-cc}

command -v "$CC" >/dev/null || { echo "# no C compiler: skipped"; exit 77; }
command -v pkg-config >/dev/null && pkg-config --exists gsl ||
	{ echo "# no pkg-config gsl: skipped"; exit 77; }

check() { # description, command...
	local what=$1
	shift
	if "$@" >"$tmp/out" 2>"$tmp/err"; then
		echo "ok - $what"
	else
		echo "not ok - $what"
		sed 's/^/#   /' "$tmp/out" "$tmp/err"
		fails=$((fails + 1))
	fi
}
expect_fail() { # description, stderr pattern, command...
	local what=$1 pat=$2 rc
	shift 2
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [[ $rc -ne 0 ]] && grep -q -- "$pat" "$tmp/err"; then
		echo "ok - $what"
	else
		echo "not ok - $what (exit $rc, wanted failure and /$pat/)"
		sed 's/^/#   /' "$tmp/err"
		fails=$((fails + 1))
	fi
}
expect_out() { # description, stdout pattern
	if grep -q -- "$2" "$tmp/out"; then
		echo "ok - $1"
	else
		echo "not ok - $1 (no /$2/ in output)"
		sed 's/^/#   /' "$tmp/out"
		fails=$((fails + 1))
	fi
}

mkdir "$tmp/plug"
# The README's command, with the source tree's headers for pkg-config's.
check "template compiles out of tree (-Wall -Werror)" \
	"$CC" -std=c99 -Wall -Wextra -Werror -O2 -shared -fPIC \
	-I"$src/core/include" $(pkg-config --cflags gsl) \
	"$src/plugins/template/template.c" -o "$tmp/plug/template.so"

# A researcher's copy, renamed.
sed 's/\.name = "template"/.name = "mypruner"/' \
	"$src/plugins/template/template.c" >"$tmp/mypruner.c"
check "a renamed copy compiles" \
	"$CC" -std=c99 -Wall -Werror -shared -fPIC -I"$src/core/include" \
	$(pkg-config --cflags gsl) "$tmp/mypruner.c" -o "$tmp/plug/mypruner.so"

check "plugins --plugin-dir" "$bin" plugins --plugin-dir "$tmp/plug"
expect_out "lists the template" "^template 1.0  (channel)"
expect_out "from the given folder" "file: $tmp/plug/template.so"
expect_out "lists the renamed copy" "^mypruner 1.0  (channel)"
expect_out "lists magnitude" "^magnitude 1.0  (weight)"
expect_out "lists l1" "^l1 2.0  (channel)"
expect_out "shows l1's norm option" "norm .*integer .*default 1"
expect_out "shows citations" "cite: Li, Kadav"
expect_out "shows magnitude's options" "include_first .*yes/no"
check "plugins NAME" "$bin" plugins --plugin-dir "$tmp/plug" template
expect_out "template's options" "skip .*choice .*none|first|residual"

# A copy not renamed is refused by name, with the fix in the message.
cp "$tmp/plug/template.so" "$tmp/plug/copied.so"
"$bin" plugins --plugin-dir "$tmp/plug" >"$tmp/out" 2>&1
expect_out "refused file explained" "declares the name 'template'"
rm "$tmp/plug/copied.so"

model=$src/experiments/models/lenet5.ini
check "train a dense model" "$bin" train "$model" --data synthetic:256:5 \
	--epochs 1 --batch 32 --max-steps 3 --set val_size=32 --threads 2 \
	--out "$tmp/dense.ckpt" --quiet

check "prune with the out-of-tree template" "$bin" prune "$model" \
	"$tmp/dense.ckpt" --plugin template --plugin-dir "$tmp/plug" \
	--target channels=0.5 --opt noise=0.1 --no-latency --threads 2 \
	--quiet --out "$tmp/tp"
expect_out "template reached its target" "reached channels 0.5"
[[ -s $tmp/tp.ckpt && -s $tmp/tp.ini ]] &&
	echo "ok - pruned checkpoint and INI written" ||
	{ echo "not ok - pruned checkpoint and INI written"; fails=$((fails + 1)); }
check "metrics of the pruned model" "$bin" metrics "$tmp/tp.ini" \
	"$tmp/tp.ckpt" --no-latency --threads 2
check "the pruned model evaluates" "$bin" eval "$tmp/tp.ini" "$tmp/tp.ckpt" \
	--data synthetic:256:5 --threads 2

check "l1 at macs=0.5 with data and fine-tuning" "$bin" prune "$model" \
	"$tmp/dense.ckpt" --plugin l1 --target macs=0.5 --data synthetic:256:5 \
	--finetune-epochs 1 --set batch=32 --set val_size=32 --no-latency \
	--threads 2 --quiet --out "$tmp/l1"
expect_out "l1 prints accuracies" "test accuracy: dense"
expect_out "l1 prints the metrics table" "dense"
check "magnitude at sparsity=0.75 global" "$bin" prune "$model" \
	"$tmp/dense.ckpt" --plugin magnitude --target sparsity=0.75 \
	--scope global --no-latency --threads 2 --quiet --out "$tmp/mag.ckpt"
expect_out "magnitude reached" "reached sparsity 0.7"
[[ -s $tmp/mag.ckpt && -s $tmp/mag.ini ]] &&
	echo "ok - --out NAME.ckpt writes NAME.ckpt and NAME.ini" ||
	{ echo "not ok - --out NAME.ckpt"; fails=$((fails + 1)); }

prune() { "$bin" prune "$model" "$tmp/dense.ckpt" --no-latency --quiet \
	--out "$tmp/x" "$@"; }
expect_fail "plugin name with a slash" "contains '/'" prune --plugin ../l1 --target macs=0.5
expect_fail "plugin name with .." "contains '..'" prune --plugin .. --target macs=0.5
expect_fail "missing plugin lists the others" "available: .*l1" prune --plugin nosuch --target macs=0.5
expect_fail "unknown option names plugin and options" \
	"--opt: plugin 'l1' has no option 'nrom'; its options are: norm" \
	prune --plugin l1 --target macs=0.5 --opt nrom=2
expect_fail "option out of range" "out of range" prune --plugin l1 --target macs=0.5 --opt norm=3
expect_fail "option of the wrong type" "not an integer" prune --plugin l1 --target macs=0.5 --opt norm=two
expect_fail "bad choice" "is not one of none|first|residual" \
	prune --plugin template --plugin-dir "$tmp/plug" --target macs=0.5 --opt skip=all
expect_fail "weight pruner with a macs target" "sparsity=S" prune --plugin magnitude --target macs=0.5
expect_fail "bad target" "target" prune --plugin l1 --target speed=2

exit $((fails > 0))
