#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One fuzz target's ctest smoke: replays its seed corpus and every regression input, then fuzzes
# for a few thousand runs. New inputs go to a scratch corpus in the build folder, never into the
# committed one. Usage: smoke.sh FUZZER SOURCE_DIR SCRATCH NAME RUNS SECONDS
set -euo pipefail
fuzzer=$1 src=$2 scratch=$3 name=$4 runs=$5 seconds=$6
rm -rf "$scratch"
mkdir -p "$scratch/corpus" "$scratch/artifacts"
dirs=("$scratch/corpus")
for d in "$src/corpus/$name" "$src/regressions/$name"; do
  [ -d "$d" ] && dirs+=("$d")
done
exec "$fuzzer" -seed=1 -runs="$runs" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$scratch/artifacts/" "${dirs[@]}"
