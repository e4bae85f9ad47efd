#!/bin/bash
# SPDX-License-Identifier: MIT
# Submits a KV Studio study to Slurm as N array tasks (one shard each) and a merge job that
# runs when all of them have succeeded (docs/sweeps.md).
#
#   tools/slurm/submit-study.sh N RESULTS_DIR MODEL --prompt-set DIR --scheme "S1 S2 ..." [...]
#
# The merged table goes to RESULTS_DIR/study.csv (and study.json, study.txt). Extra sbatch
# options (partition, time, cores per task) come from SBATCH_* variables, e.g.
# SBATCH_PARTITION=cpu SBATCH_TIMELIMIT=2:00:00 (see sbatch(1), "INPUT ENVIRONMENT VARIABLES");
# --cpus-per-task from KVS_CPUS_PER_TASK (default 1).
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: $0 N RESULTS_DIR MODEL --prompt-set DIR --scheme \"...\" [...]" >&2
    exit 2
fi
shards=$1
results=$2
shift 2
case $shards in '' | *[!0-9]*) echo "$0: N must be a number of shards, got '$shards'" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
cli=${KVSTUDIO_CLI:-$(command -v kvstudio-cli || true)}
if [ -z "$cli" ]; then
    echo "$0: no kvstudio-cli on PATH; set KVSTUDIO_CLI" >&2
    exit 2
fi
mkdir -p "$results"
results=$(cd "$results" && pwd)
export KVSTUDIO_CLI=$cli

array=$(sbatch --parsable --array=1-"$shards" --cpus-per-task="${KVS_CPUS_PER_TASK:-1}" \
    --chdir="$results" "$here/sweep-shard.sbatch" "$results" "$@")
array=${array%%;*}
merge=$(sbatch --parsable --dependency=afterok:"$array" --job-name=kvs-study-merge \
    --chdir="$results" --output="$results/merge-%j.out" \
    --wrap="'$cli' sweep-merge '$results'/shard-*-of-$shards.jsonl --csv > '$results/study.csv' &&
'$cli' sweep-merge '$results'/shard-*-of-$shards.jsonl --json > '$results/study.json' &&
'$cli' sweep-merge '$results'/shard-*-of-$shards.jsonl > '$results/study.txt'")
echo "submitted: array job $array ($shards shards), merge job $merge"
echo "results: $results/study.txt, .csv, .json when job $merge ends"
