# Run `polyskill train` jobs in the background, at most JOBS at a time (sourced by the table scripts).
#
#   OUT=runs/x JOBS=2 SETS="train.device=cpu ..." ; source scripts/jobs.sh ; train NAME RECIPE [KEY=VALUE ...]
#
# Each run trains into OUT/NAME with its log in OUT/NAME.log; SETS are --set overrides given to every run,
# ONLY="NAME ..." restricts the runs to those named. A run OUT/NAME that exists already is resumed with the same
# overrides (train.max_minutes then budgets this continuation: MINUTES more), its log appended to.
jobs=${JOBS:-$(nproc)}
py=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 ))}

train() {  # NAME RECIPE [KEY=VALUE ...]: start a run once fewer than JOBS are running
  local name=$1 recipe=$2
  shift 2
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  local sets=()
  for kv in ${SETS:-} "$@"; do
    sets+=(--set "$kv")
  done
  local start=(--resume "$OUT/$name")
  if [ ! -f "$OUT/$name/config.yaml" ]; then
    start=("$recipe" --out "$OUT/$name")
    : >"$OUT/$name.log"
  fi
  ( "$py" -m polyskill.cli train "${start[@]}" --quiet "${sets[@]}" >>"$OUT/$name.log" 2>&1
    echo "$name: exit $? ($(tail -n 1 "$OUT/$name.log"))" ) &
}
