#!/usr/bin/env bash
# Train and test the metric and transfer learners of the Omniglot table, each under the same time budget,
# JOBS at a time, then print the table. Meta-transfer starts once the Baseline it builds on is done.
#
#   scripts/omniglot_fewshot.sh OUT MINUTES [DEVICE]    e.g. JOBS=2 scripts/omniglot_fewshot.sh runs/fewshot 3
#
# Every run is an ordinary `polyskill train` run directory under OUT (its log in OUT/NAME.log); the test
# protocols are the recipes' (5- and 20-way, 1- and 5-shot) on EPISODES fixed test episodes with QUERY queries
# per class (default 1000 and 15). ONLY="NAME ..."
# trains only the named runs (meta-transfer then expects OUT/baseline to exist already).
set -u
out=${1:-runs/fewshot}
minutes=${2:-30}
device=${3:-cpu}
OUT=$out
SETS="train.max_minutes=$minutes train.device=$device eval.episodes=${EPISODES:-1000} eval.query=${QUERY:-15}"
mkdir -p "$out"
source "$(dirname "$0")/jobs.sh"

train baseline omniglot-baseline
train baselinepp omniglot-baselinepp
train matching omniglot-matching episodes.way=20 episodes.query=5
train matching-fce omniglot-matching-fce episodes.way=20 episodes.query=5
train relation omniglot-relation episodes.way=20 episodes.query=5
train metaoptnet-svm omniglot-metaoptnet-svm
train metaoptnet-ridge omniglot-metaoptnet-ridge
train contrastive omniglot-contrastive
while [ ! -f "$out/baseline/summary.json" ] || ! grep -q '"test"' "$out/baseline/summary.json"; do
  pgrep -f -- "--out $out/baseline --quiet" >/dev/null || break
  sleep 5
done
train protonet-transfer omniglot-protonet-transfer model.init="$out/baseline"
train protonet-scratch omniglot-protonet-transfer model.init=null
wait
"$py" scripts/fewshot_table.py "$out"/*/
