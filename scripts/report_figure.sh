#!/usr/bin/env bash
# Regenerate docs/report-curves.png: the overlaid learning curves of `polyskill report` for the two Omniglot
# 5-way 1-shot runs trained on the same 30-minute budget (runs/omniglot6, see docs/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/polyskill report runs/omniglot6/maml-paired runs/omniglot6/task-conditioned --out "$tmp/report.md"
cp "$tmp/report_files/01-comparison-curves.png" docs/report-curves.png
echo "wrote docs/report-curves.png"
