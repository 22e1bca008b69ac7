# Shared by the shell tests: each check prints "ok - WHAT" or "not ok -
# WHAT" with the command's output indented, and counts failures in
# $fails; end a test with `finish`. Source it after setting $tmp (a
# scratch folder the test removes).
fails=0

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

finish() {
	exit $((fails > 0))
}
