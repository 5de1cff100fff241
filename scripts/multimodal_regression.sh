#!/usr/bin/env bash
# The multimodal few-shot regression table: the task-conditioned learner, MAML, Meta-SGD and the multi-task
# pretrained baseline on 2, 3 and 5 modes, and the learner's ablations on 5 modes; JOBS runs at a time.
#
#   JOBS=2 scripts/multimodal_regression.sh OUT        e.g. scripts/multimodal_regression.sh runs/multimodal
#
# Every run is an ordinary `polyskill train` run directory under OUT; ONLY="NAME ..." trains only those named.
set -u
OUT=${1:-runs/multimodal}
SETS=${SETS:-}
mkdir -p "$OUT"
source "$(dirname "$0")/jobs.sh"

for modes in 5 3 2; do
  train "task-conditioned-$modes" multimodal-task-conditioned "data.modes=$modes"
  train "maml-$modes" multimodal-maml "data.modes=$modes"
  train "metasgd-$modes" multimodal-maml "data.modes=$modes" algo.learn_lr=per_parameter
  train "pretrained-$modes" multimodal-maml "data.modes=$modes" algo.inner_steps=0 algo.eval_steps=5
done
train no-encoder-5 multimodal-task-conditioned algo.encoder=false
train no-memory-5 multimodal-task-conditioned algo.memory=false
train no-film-5 multimodal-task-conditioned algo.film=false
train no-rates-5 multimodal-task-conditioned algo.rates=fixed
wait
"$py" scripts/multimodal_table.py "$OUT"/*/
