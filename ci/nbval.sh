#!/usr/bin/env bash
# Every chapter notebook through nbval (`make nbval`), JOBS at a time, in the order given.
#   ci/nbval.sh JOBS PYTHON NOTEBOOK...
# JOBS=1: one after another, each kernel with every core (its numbers are the README's). JOBS=2 (CI):
# two chapters at a time, each kernel with one torch thread (OMP_NUM_THREADS=1). On 2 cores that is
# about a third faster in all than one chapter with two threads, whose small matrix products keep
# the second core half idle. A chapter's numbers depend on its thread count (reductions are summed
# in another order), so they can differ in the last digits from a one-at-a-time run, as they do
# between machines; claims have margins for that. Chapters that reuse an earlier chapter's cached
# models (5 and 10 read chapter 4's, 11 reads chapter 7's) come later in the order, so the earlier
# chapter has cached them by then (if not, they are trained again, not read half-written: the
# cache writes whole files).
# Each chapter's output is printed when it ends, with its time; the first failure stops the queue
# (chapters already running finish) and the exit status is non-zero.
set -uo pipefail
jobs=$1 py=$2
shift 2
mkdir -p _build/nbval-logs
begin=$(date +%s)
export jobs py
run_one() {
  nb=$1
  log=_build/nbval-logs/$(basename "$nb" .ipynb).log
  start=$(date +%s)
  if [ "$jobs" -gt 1 ]; then export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; fi
  "$py" -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-cell-timeout=900 \
    -o testpaths= "$nb" > "$log" 2>&1
  status=$?
  cat "$log"
  echo "$nb: $(( $(date +%s) - start )) s"
  [ "$status" -eq 0 ] || { echo "$nb FAILED (exit $status)"; exit 255; }  # 255: xargs stops
}
export -f run_one
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {}
status=$?
echo "nbval: $(( $(date +%s) - begin )) s ($jobs at a time)"
exit "$status"
