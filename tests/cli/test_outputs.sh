#!/bin/bash
# Outputs never overwrite inputs and are checked before the work that
# produces them (issue 12): `train --out` naming the model file (by any
# spelling), a folder, an empty name or a missing folder is refused at
# once and loses nothing; `prune --out P` whose P.ini or P.ckpt is an
# input likewise; a pruned pair is written as a pair.
set -u
bin=${PB_BUILDDIR:-.}/prunebench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../testlib.sh"

tiny_model "$tmp/tiny.ini"
cp "$tmp/tiny.ini" "$tmp/tiny.ini.orig"
mkdir "$tmp/sub"
train=("$bin" train "$tmp/tiny.ini" --data synthetic:200 --epochs 1
	--set batch=50 --set val_size=50 --threads 1 --quiet)

expect_fail "train --out the model file" any "would overwrite" \
	"${train[@]}" --out "$tmp/tiny.ini"
expect_fail "train --out the model file, spelled otherwise" any \
	"would overwrite" "${train[@]}" --out "$tmp/sub/../tiny.ini"
# The same file under another name: compared by device and inode.
ln "$tmp/tiny.ini" "$tmp/hardlink.ini"
ln -s "$tmp/tiny.ini" "$tmp/symlink.ini"
expect_fail "train --out a hard link to the model file" any \
	"would overwrite" "${train[@]}" --out "$tmp/hardlink.ini"
expect_fail "train --out a symbolic link to the model file" any \
	"would overwrite" "${train[@]}" --out "$tmp/symlink.ini"
same "the model file is untouched" "$tmp/tiny.ini" "$tmp/tiny.ini.orig"
start=$(date +%s)
expect_fail "train --out a folder" any "is a folder" "${train[@]}" --out "$tmp/sub"
expect_fail "train --out ''" any "empty" "${train[@]}" --out ""
expect_fail "train --out in a missing folder" any "does not exist" \
	"${train[@]}" --out "$tmp/nope/x.ckpt"
expect_fail "train --epochs 0" any "epochs = 0" "$bin" train "$tmp/tiny.ini" \
	--data synthetic:200 --epochs 0 --out "$tmp/x.ckpt"
# Refused before any training: well under the time of one epoch.
if (($(date +%s) - start <= 5)); then
	echo "ok - refused before training"
else
	not_ok "the refusals took $(($(date +%s) - start)) s"
fi

if "${train[@]}" --out "$tmp/dense.ckpt" >/dev/null 2>"$tmp/err"; then
	echo "ok - train"
else
	not_ok "train"
	sed 's/^/#   /' "$tmp/err"
fi
cp "$tmp/dense.ckpt" "$tmp/dense.ckpt.orig"
prune=("$bin" prune "$tmp/tiny.ini" "$tmp/dense.ckpt" --plugin magnitude
	--target sparsity=0.5 --no-latency --quiet)
expect_fail "prune --out whose .ini is the model file" any "is an input" \
	"${prune[@]}" --out "$tmp/tiny"
expect_fail "prune --out whose .ckpt is the dense checkpoint" any "is an input" \
	"${prune[@]}" --out "$tmp/sub/../dense.ckpt"
same "the model file is untouched" "$tmp/tiny.ini" "$tmp/tiny.ini.orig"
same "the dense checkpoint is untouched" "$tmp/dense.ckpt" \
	"$tmp/dense.ckpt.orig"
if "${prune[@]}" --out "$tmp/pruned" >/dev/null 2>"$tmp/err" &&
	[[ -f $tmp/pruned.ckpt && -f $tmp/pruned.ini ]] &&
	"$bin" eval "$tmp/pruned.ini" "$tmp/pruned.ckpt" \
		--data synthetic:200 >/dev/null 2>>"$tmp/err"; then
	echo "ok - prune writes a pair that loads"
else
	not_ok "prune writes a pair that loads"
	sed 's/^/#   /' "$tmp/err"
fi
# No temporary file is left behind.
if ls "$tmp" | grep -q '\.tmp\.'; then
	not_ok "temporary files left: $(ls "$tmp" | grep '\.tmp\.')"
else
	echo "ok - no temporary files left"
fi
finish
