#!/bin/bash
# rulec fuzz with different --jobs, interleaved, each run on a fresh kernel
# cache (the VM prebuilt, as a user's cache has it). Run with rulec on PATH:
#
#     bash bench/fuzz_jobs.sh 1 2            # --jobs 1 against --jobs 2
#     COUNT=100 REPS=3 bash bench/fuzz_jobs.sh 1 2
#
# Prints each run's summary line; compare the seconds of the same seed.
set -euo pipefail
base=$(mktemp -d)
trap 'rm -rf "$base"' EXIT
RULEC_CACHE_DIR=$base rulec fuzz --count 2 --seed 999 --jobs 1 -q >/dev/null
for rep in $(seq "${REPS:-5}"); do
  for jobs in "$@"; do
    cache=$(mktemp -d)
    cp -r "$base/." "$cache/"
    summary=$(RULEC_CACHE_DIR=$cache rulec fuzz --count "${COUNT:-60}" --seed $((rep * 7)) \
              --jobs "$jobs" -q | head -1)
    echo "seed $((rep * 7)) jobs $jobs: $summary"
    rm -rf "$cache"
  done
done
