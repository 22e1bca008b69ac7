#!/bin/bash
# The sweep on a real Slurm cluster: starts a one-node cluster on this
# machine from Debian's packages (munged, slurmctld, slurmd; installed
# when missing and root), with every file in a temporary folder, submits
# a small experiment on synthetic data with `prunebench slurm --submit`
# (a dense array of 2 tasks, a cells array of 3 shards after it), waits
# for both, and checks that every cell is in runs.jsonl exactly once,
# from this node, with bitwise the numbers and final models of the same
# experiment run locally with `prunebench run` (same seeds, one thread
# per cell). Then loses two cells and submits again: only their seeds and
# shards run, and each cell is still there once. Stops the daemons it
# started, by their pids. Where they cannot start (not root, no packages,
# a container that forbids it) it says so on a line of its own and exits
# 77 (skipped).
set -u

builddir=${PB_BUILDDIR:-.}
pb="$builddir/prunebench"
plugdir=${PB_TEST_PLUGIN_DIR:-$builddir/plugins/.libs}
wait_max=${PB_SLURM_WAIT:-900}     # seconds for the jobs of one submission
PATH=$PATH:/usr/sbin:/sbin          # the daemons, for users whose PATH lacks them

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "not ok - $*"; exit 1; }
ok() { echo "ok - $*"; }
log() { echo "# $*"; }

[ -x "$pb" ] || skip "no $pb"
[ -d "$plugdir" ] || skip "no plugin folder $plugdir"
. "$(dirname "$0")/../testlib.sh"
. "$(dirname "$0")/tiny-experiment.sh"

# ---- the packages -------------------------------------------------------
packages="munge slurmctld slurmd slurm-client"
missing=
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	[ "$(id -u)" -eq 0 ] || skip "Slurm packages missing ($missing) and not root to install them"
	command -v apt-get > /dev/null || skip "Slurm packages missing ($missing) and no apt-get"
	log "installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	{ timeout 600 apt-get update -qq &&
	  timeout 900 apt-get install -y -qq --no-install-recommends $missing; } \
		> /dev/null 2>&1 || skip "cannot install$missing with apt-get"
fi
for c in munged slurmctld slurmd sbatch squeue scontrol sinfo scancel; do
	command -v "$c" > /dev/null || skip "no $c in PATH ($PATH)"
done
[ "$(id -u)" -eq 0 ] || skip "not root: slurmd must run as root to start jobs"

# ---- the cluster ------------------------------------------------------------
tmp=$(mktemp -d /tmp/pbslurmXXXXXX)
chmod 700 "$tmp"
daemons=
jobs_=
cleanup() {
	# Jobs first (their processes belong to slurmd's steps), then the
	# daemons we started, newest first, by pid; then the folder.
	[ -n "$jobs_" ] && scancel $jobs_ 2> /dev/null && sleep 2
	for pid in $daemons; do
		kill "$pid" 2> /dev/null
	done
	for pid in $daemons; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2> /dev/null || break
			sleep 0.2
		done
		kill -0 "$pid" 2> /dev/null && kill -KILL "$pid" 2> /dev/null
	done
	[ -n "${PB_KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
started() { daemons="$1 $daemons"; }

tail_of() { tail -n 5 "$1" 2> /dev/null | tr '\n' '|'; }

# munge: a fresh key and a socket of our own.
dd if=/dev/urandom of="$tmp/munge.key" bs=1024 count=1 2> /dev/null
chmod 400 "$tmp/munge.key"
munged -F -f --key-file="$tmp/munge.key" --socket="$tmp/munge.sock" \
	--pid-file="$tmp/munged.pid" --log-file="$tmp/munged.log" \
	--seed-file="$tmp/munged.seed" > "$tmp/munged.out" 2>&1 &
started $!
for _ in $(seq 50); do
	[ -S "$tmp/munge.sock" ] && break
	sleep 0.2
done
[ -S "$tmp/munge.sock" ] || skip "munged does not start: $(tail_of "$tmp/munged.out")"

# Two free ports: a connection that succeeds means one is taken.
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		(exec 3<> "/dev/tcp/127.0.0.1/$p") 2> /dev/null && continue
		(exec 3<> "/dev/tcp/127.0.0.1/$((p + 1))") 2> /dev/null && continue
		echo "$p"
		return
	done
	echo 36817
}
port=$(free_port)
host=$(hostname -s)
node=$(slurmd -C 2> /dev/null | head -n 1)
case $node in
NodeName=*) ;;
*) skip "slurmd -C does not describe this machine: $node" ;;
esac
mkdir -p "$tmp/state" "$tmp/spool"
cat > "$tmp/slurm.conf" <<EOF
ClusterName=pbtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge.sock
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=pbtest Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$tmp/slurm.conf
slurmctld -D -i -f "$SLURM_CONF" > "$tmp/slurmctld.out" 2>&1 &
started $!
slurmd -D -f "$SLURM_CONF" > "$tmp/slurmd.out" 2>&1 &
started $!
state=
for _ in $(seq 150); do
	state=$(sinfo -h -o %t 2> /dev/null | head -n 1)
	[ "$state" = idle ] && break
	sleep 0.2
done
[ "$state" = idle ] || skip "the Slurm daemons do not start (node state '$state'): slurmctld: $(tail_of "$tmp/slurmctld.log") slurmd: $(tail_of "$tmp/slurmd.log")"
ok "cluster up: node $host, $(sinfo -h -o '%c CPUs, %m MB'), controller port $port"

# ---- the experiment, on Slurm -------------------------------------------------
tiny_experiment "$tmp" cache
out=$tmp/results

submit() {
	"$pb" slurm "${1:-$tmp/exp.ini}" --plugin-dir "$plugdir" --shards 3 \
		--cpus-per-task 1 --inner-threads 1 --time 0:30:00 --submit \
		> "$tmp/ids" 2> "$tmp/submit.err" ||
		{ cat "$tmp/submit.err"; fail "prunebench slurm --submit"; }
	sed 's/^/# /' "$tmp/submit.err"
	dense=$(sed -n 's/^dense \([0-9]*\)$/\1/p' "$tmp/ids")
	cells=$(sed -n 's/^cells \([0-9]*\)$/\1/p' "$tmp/ids")
	[ -n "$dense" ] && [ -n "$cells" ] || fail "no job ids: $(cat "$tmp/ids")"
	jobs_="$dense $cells"
	ok "submitted: dense models job $dense, cells job $cells"
}

# Waits for both jobs to leave the queue; every task must have completed
# with exit code 0 (with an argument: but one cells task, which must have
# failed with exit code 1).
wait_jobs() {
	local t0=$SECONDS
	while squeue -h -o %F | grep -qx "$dense\|$cells"; do
		[ $((SECONDS - t0)) -lt "$wait_max" ] ||
			fail "jobs $dense and $cells still queued after ${wait_max}s: $(squeue -h)"
		sleep 1
	done
	log "jobs $dense (dense) and $cells (cells) done in $((SECONDS - t0))s"
	scontrol -o show job "$dense" > "$tmp/state.txt"
	scontrol -o show job "$cells" >> "$tmp/state.txt"
	sed 's/.*\(JobId=[0-9]* \).*\(ArrayTaskId=[0-9]*\).*\(JobState=[A-Z]*\).*\(ExitCode=[0-9:]*\).*\(NodeList=[^ ]*\).*/\1\2 \3 \4 \5/' \
		"$tmp/state.txt" | sed 's/^/# /'
	if [ -n "${1:-}" ]; then
		grep "JobId=$dense " "$tmp/state.txt" | grep -v 'JobState=COMPLETED' |
			grep -q . && fail "a dense task did not complete"
		[ "$(grep -c "JobId=$cells .*JobState=FAILED.*ExitCode=1:0" "$tmp/state.txt")" -eq 1 ] ||
			fail "not one cells task failed with exit code 1"
		[ "$(grep "JobId=$cells " "$tmp/state.txt" | grep -vc 'JobState=COMPLETED')" -eq 1 ] ||
			fail "the other cells tasks did not complete"
		ok "the failing cell's task failed (exit code 1), the others completed"
		return
	fi
	if grep -v 'JobState=COMPLETED' "$tmp/state.txt" | grep -q .; then
		for f in "$out"/slurm/*.log; do
			echo "---- $f"
			tail -n 20 "$f"
		done
		fail "a task did not complete"
	fi
	grep -q 'ExitCode=[1-9]' "$tmp/state.txt" && fail "a task exited with an error"
	ok "every task completed with exit code 0"
}

submit
wait_jobs
n_tasks=$(wc -l < "$tmp/state.txt")
[ "$n_tasks" -eq 5 ] || fail "$n_tasks tasks, expected 2 dense and 3 cells"
for f in "$out"/slurm/dense-"$dense"_0.log "$out"/slurm/dense-"$dense"_1.log \
	 "$out"/slurm/cells-"$cells"_{0,1,2}.log; do
	[ -s "$f" ] || fail "no log $f"
	log "$(basename "$f"): $(head -n 1 "$f")"
done
grep -h "dense seed" "$out"/slurm/dense-*.log | sed 's/^/# /'

# Every cell once, ok, from this node.
jsonl=$out/runs.jsonl
check_once() {
	local lines unique
	lines=$(wc -l < "$jsonl")
	unique=$(sed 's/.*"id":"\([^"]*\)".*/\1/' "$jsonl" | sort -u | wc -l)
	log "runs.jsonl: $lines lines, $unique cells of $N_CELLS"
	[ "$unique" -eq "$N_CELLS" ] || fail "$unique cells recorded, expected $N_CELLS"
	[ "$lines" -eq "$N_CELLS" ] || fail "$lines lines for $N_CELLS cells: duplicated"
	[ "$(grep -c '"status":"ok"' "$jsonl")" -eq "$N_CELLS" ] || fail "cells not ok"
	[ "$(grep -c "\"host\":\"$(hostname)\"" "$jsonl")" -eq "$N_CELLS" ] ||
		fail "lines without this node as host"
	ok "every cell in runs.jsonl exactly once, ok, with this node as host"
}
check_once

# The same experiment locally, with a cache of its own (so the dense
# models are trained again too): bitwise the same.
sed 's/^cache = cache$/cache = cache-local/' "$tmp/exp.ini" > "$tmp/exp-local.ini"
"$pb" run "$tmp/exp-local.ini" --plugin-dir "$plugdir" --threads 2 \
	--inner-threads 1 --no-table --quiet --output "$tmp/local" ||
	fail "the local run"
compare() {
	stable_lines "$jsonl" > "$tmp/slurm.lines"
	stable_lines "$tmp/local/runs.jsonl" > "$tmp/local.lines"
	diff "$tmp/slurm.lines" "$tmp/local.lines" > "$tmp/diff" ||
		{ head -c 4000 "$tmp/diff"; fail "numbers differ from the local run"; }
	for f in "$tmp"/local/cells/*.ckpt; do
		cmp -s "$f" "$out/cells/${f##*/}" || fail "${f##*/} differs from the local run"
	done
	ok "$(wc -l < "$tmp/slurm.lines") cells: numbers, dense fingerprints and final models bitwise those of the local run"
}
compare

# Two cells lost (a timeout, say): submitting again runs only them.
grep -v '"id":"\(magnitude-sparsity=0.8-s1\|l1-channels=0.25-s2\)-' "$jsonl" > "$tmp/j"
mv "$tmp/j" "$jsonl"
[ "$(wc -l < "$jsonl")" -eq $((N_CELLS - 2)) ] || fail "the test removed the wrong lines"
submit
grep -q "2 of the cells to run" "$tmp/submit.err" || fail "not 2 cells to run"
ok "submitted again: 2 cells to run"
wait_jobs
check_once
compare
grep -h "already done" "$out"/slurm/cells-"$cells"_*.log | sed 's/^/# /'

# A cell that fails on its node: recorded once, failed, with the node
# and the message; its task fails (exit code 1), the others go on.
mkdir "$tmp/fail"
cp "$tmp/tiny.ini" "$tmp/fail/"
cat > "$tmp/fail/exp.ini" <<'EXP'
[experiment]
name = failing
model = tiny.ini
data = synthetic:600
seeds = 1
val_size = 100
cache = ../cache
output = out
latency = no
[train]
epochs = 1
batch = 50
[prune.l1]
targets = channels=0.5
min_keep = 7
EXP
out_ok=$out
out=$tmp/fail/out
submit "$tmp/fail/exp.ini"
wait_jobs failed
[ "$(grep -c . "$out/runs.jsonl")" -eq 3 ] || fail "not 3 lines: $(cat "$out/runs.jsonl")"
line=$(grep '"id":"l1-channels=0.5-s1-' "$out/runs.jsonl")
case $line in
*'"host":"'"$(hostname)"'"'*'"status":"failed","error":"plugin '"'l1'"' (prune): channels=0.5 cannot be reached'*) ;;
*) fail "the failed cell's line: $line" ;;
esac
ok "failed cell: $(echo "$line" | sed 's/.*\("host":"[^"]*"\).*\("status":"[^"]*","error":"[^;]*\).*/\1 \2/')"
out=$out_ok

# And once all is there, nothing to submit.
"$pb" slurm "$tmp/exp.ini" --plugin-dir "$plugdir" --shards 3 --submit \
	> "$tmp/ids" 2> "$tmp/submit.err" || fail "the last prunebench slurm"
grep -q "nothing to submit" "$tmp/submit.err" || fail "submitted with nothing to do"
ok "nothing to submit once every cell is there"
"$pb" table "$out" --quiet || fail "prunebench table"
ok "prunebench table"
