# Shared by the shell tests: each check prints "ok - WHAT" or "not ok -
# WHAT" with the command's output indented, and counts failures in
# $fails; end a test with `finish`. Source it, then set $tmp (a scratch
# folder the test removes) or call sweep_test, before the first check.
fails=0

# sweep_test NAME: for a test that runs sweeps. Sets pb (the build
# folder's prunebench: $PB_BUILDDIR, else .) and plugdir (its plugins:
# $PB_TEST_PLUGIN_DIR, else the build's), skipping the test (exit 77)
# when either is missing, and tmp, a scratch folder /tmp/pbNAME...
# removed at exit unless PB_KEEP_TMP is set.
sweep_test() {
	builddir=${PB_BUILDDIR:-.}
	pb="$builddir/prunebench"
	[ -x "$pb" ] || { echo "no $pb; skipping"; exit 77; }
	plugdir=${PB_TEST_PLUGIN_DIR:-$builddir/plugins/.libs}
	[ -d "$plugdir" ] ||
		{ echo "no plugin folder $plugdir; skipping"; exit 77; }
	tmp=$(mktemp -d "/tmp/pb${1}XXXXXX")
	trap '[ -n "${PB_KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
}

# check WHAT COMMAND...: the command succeeds.
check() {
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

# expect_fail WHAT CODE PATTERN COMMAND...: the command exits with CODE
# (any non-zero status when CODE is "any") and its stderr matches PATTERN.
expect_fail() {
	local what=$1 code=$2 pat=$3 rc
	shift 3
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if { [[ $code == any ]] && ((rc != 0)) || [[ $rc == "$code" ]]; } &&
		grep -q -- "$pat" "$tmp/err"; then
		echo "ok - $what"
	else
		echo "not ok - $what (exit $rc, wanted $code and /$pat/)"
		sed 's/^/#   /' "$tmp/err"
		fails=$((fails + 1))
	fi
}

# same WHAT FILE COPY: the two files are byte for byte the same.
same() {
	if cmp -s "$2" "$3"; then
		echo "ok - $1"
	else
		echo "not ok - $1"
		fails=$((fails + 1))
	fi
}

# not_ok WHAT: a failure found by the test's own logic.
not_ok() {
	echo "not ok - $1"
	fails=$((fails + 1))
}

# tiny_model FILE: writes the tiny CNN the end-to-end tests train on
# synthetic data (two conv-bn-relu-maxpool blocks, 4 and 8 channels, then
# flatten and a linear layer): small enough that a sweep of it runs in
# seconds. Tests grep its layer names (conv1, conv2, fc), so keep them.
tiny_model() {
	cat >"$1" <<'MODEL'
[model]
name = tiny
input = 1x28x28
classes = 10
[conv1]
type = conv
out = 4
kernel = 3
pad = 1
bias = no
[bn1]
type = bn
[relu1]
type = relu
[pool1]
type = maxpool
kernel = 4
[conv2]
type = conv
out = 8
kernel = 3
pad = 1
bias = no
[bn2]
type = bn
[relu2]
type = relu
[pool2]
type = maxpool
kernel = 7
[flatten]
type = flatten
[fc]
type = linear
out = 10
MODEL
}

finish() {
	exit $((fails > 0))
}
