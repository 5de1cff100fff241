#!/usr/bin/env bash
# Train and test every learner of the papers' Omniglot table (Vinyals split) under one time budget each,
# JOBS at a time, then print the table next to the papers' figures.
#
#   JOBS=2 scripts/omniglot_papers.sh OUT MINUTES      e.g. nice -n 19 scripts/omniglot_papers.sh runs/papers 20
#
# Each run is the shipped recipe (one `polyskill train`, its log in OUT/NAME.log) stopped by train.max_minutes,
# tested with its best validation checkpoint on EPISODES fixed test episodes (default 600) with 15 queries per
# class. Relation Networks train one model per shot, as the paper does; Matching Networks, MetaOptNet and
# Baseline++ train one model for every test setting; MAML, FOMAML and Reptile are the 5-way 1-shot models
# (Reptile on a schedule of 6000 steps, its outer step annealed to 0 over them, instead of the paper's 100000).
# Matching Networks also train with a sharper attention (temperature 0.1) and with unnormalised queries; FCE
# also without the recipe's gradient clipping, as first run.
# ONLY="NAME ..." trains only the named runs. Runs already in OUT are resumed for MINUTES more.
set -u
out=${1:-runs/papers}
minutes=${2:-20}
OUT=$out
SETS="train.max_minutes=$minutes train.val_episodes=100 eval.episodes=${EPISODES:-600} eval.query=15"
mkdir -p "$out"
source "$(dirname "$0")/jobs.sh"

train relation-1shot omniglot-relation episodes.way=20 episodes.query=5 train.val_every=300
train relation-5shot omniglot-relation episodes.way=20 episodes.shot=5 episodes.query=5 train.val_every=300
train matching omniglot-matching episodes.way=20 episodes.query=5 train.val_every=400
train matching-fce omniglot-matching-fce episodes.way=20 episodes.query=5 train.val_every=300 train.grad_clip=null
train matching-t10 omniglot-matching episodes.way=20 episodes.query=5 train.val_every=400 algo.temperature=0.1
train matching-unnormalised-query omniglot-matching episodes.way=20 episodes.query=5 train.val_every=400 \
  algo.normalize_query=false
train matching-fce-unnormalised-query omniglot-matching-fce episodes.way=20 episodes.query=5 train.val_every=300 \
  algo.normalize_query=false train.grad_clip=null
train matching-fce-unnormalised-query-clip omniglot-matching-fce episodes.way=20 episodes.query=5 train.val_every=300 \
  algo.normalize_query=false
train metaoptnet-ridge omniglot-metaoptnet-ridge train.val_every=250
train metaoptnet-svm omniglot-metaoptnet-svm train.val_every=250
train baselinepp omniglot-baselinepp train.val_every=1000
train maml omniglot-maml train.val_every=100 eval.shots=[1,5]
train fomaml omniglot-fomaml train.val_every=100 eval.shots=[1,5]
train reptile omniglot-reptile train.steps=6000 train.val_every=500 eval.shots=[1,5]
wait
"$py" scripts/fewshot_table.py "$out"/*/
