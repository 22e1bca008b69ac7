# Sourced by the cluster tests, after tests/testlib.sh (for tiny_model):
# a tiny model and a small experiment on synthetic data (2 seeds; weight,
# channel and scratch cells; lth with a rewind point of the dense
# training, so the dense phase keeps one).
#
#   tiny_experiment DIR CACHE    writes DIR/tiny.ini and DIR/exp.ini
#   N_CELLS                      its number of cells
N_CELLS=16

tiny_experiment() {
	tiny_model "$1/tiny.ini"
	cat > "$1/exp.ini" <<EXP
[experiment]
name = cluster
model = tiny.ini
data = synthetic:1200
seeds = 1 2
val_size = 100
cache = $2
output = results
latency = no
[train]
epochs = 2
batch = 50
[finetune]
epochs = 2
batch = 50
lr = 0.01
[prune.magnitude]
targets = sparsity=0.5 sparsity=0.8
scope = global
[prune.l1]
targets = channels=0.25 channels=0.5
[prune.l1-scratch]
plugin = l1
targets = channels=0.5
finetune = scratch
[prune.lth]
targets = sparsity=0.5
scope = global
retrain_epochs = 0.5
rewind = 1%
EXP
}

# Every line of runs.jsonl as "ID <the line without the keys that vary
# from run to run>": times, the finish time, the host.
stable_lines() {
	sed -e 's/"\(time_prune_s\|time_finetune_s\|time_total_s\|matched_time_s\)":[^,}]*,\{0,1\}//g' \
	    -e 's/"finished":"[^"]*",\{0,1\}//' -e 's/"host":"[^"]*",\{0,1\}//' "$1" |
	sed 's/^\(.*"id":"\([^"]*\)".*\)$/\2 \1/' | sort
}
