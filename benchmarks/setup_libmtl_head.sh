#!/usr/bin/env bash
# Exports LibMTL's current source (a pinned commit of github.com/median-research-group/LibMTL, newer than the 1.1.5
# release on PyPI) to a folder that benchmarks/mtl_speed.py puts first on its LibMTL worker's PYTHONPATH, so that
# the worker (in the peers venv, ../shared/bench/setup_peers.sh) imports it instead of the installed 1.1.5.
#
#   bash benchmarks/setup_libmtl_head.sh [GIT_DIR_OR_URL] [DEST]
#
# GIT_DIR_OR_URL: a clone or bare mirror of LibMTL (default: $LIBMTL_GIT, else the GitHub URL, cloned);
# DEST: default /tmp/libmtl-head. The only addition is an empty `torch_geometric` module next to the package: the
# head's trainer imports torch_geometric at the top but uses it only for QM9's data loaders, which the benchmark
# never touches, and it is not worth installing for that.
set -eu
COMMIT=4336804847eaa5e0b924b743d76beec7ac3fdc97  # 2025-05-14, "update requirement"
SRC=${1:-${LIBMTL_GIT:-https://github.com/median-research-group/LibMTL}}
DEST=${2:-/tmp/libmtl-head}
if [ -f "$DEST/COMMIT" ] && [ "$(cat "$DEST/COMMIT")" = "$COMMIT" ]; then echo "LibMTL $COMMIT ready in $DEST"; exit 0; fi
if [ ! -d "$SRC" ]; then
  TMP=$(mktemp -d)
  git clone -q "$SRC" "$TMP/LibMTL"
  SRC=$TMP/LibMTL
fi
rm -rf "$DEST" && mkdir -p "$DEST"
git -C "$SRC" archive "$COMMIT" LibMTL | tar -x -C "$DEST"
mkdir -p "$DEST/torch_geometric" && : > "$DEST/torch_geometric/__init__.py"
echo "$COMMIT" > "$DEST/COMMIT"
echo "LibMTL $COMMIT ready in $DEST"
