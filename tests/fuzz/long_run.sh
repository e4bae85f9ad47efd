#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One long, resumable libFuzzer run of a target (docs/fuzzing.md, "Long runs by hand"): at nice 19,
# its scratch files on tmpfs, its corpus, crashes and log outside the repository under FUZZ_HOME
# (default: the folder above the checkout): fuzz-corpus/NAME (scratch first, then the seeds and the
# regression inputs), fuzz-artifacts/NAME/, fuzz-logs/NAME/DATE.log with the load average each minute.
#   tests/fuzz/long_run.sh NAME SECONDS [BUILD_DIR]   (BUILD_DIR: build-asan)
#   tests/fuzz/long_run.sh --tally                     executions, seconds and load summed per target
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
home=${FUZZ_HOME:-$(dirname "$src")}

if [ "${1:-}" = --tally ]; then
  printf "%-20s %4s %12s %8s %7s  %s\n" target runs executions seconds exec/s "load average (1 min) of the samples"
  for d in "$home"/fuzz-logs/*/; do
    ls "$d"*.log >/dev/null 2>&1 || continue
    awk -v t="$(basename "$d")" '
      /^stat::number_of_executed_units:/ {e += $2; n++}
      /^# seconds / {s += $3}
      /^# loadavg [0-9]/ {l = $4; if (lc == 0 || l < mn) mn = l; if (l > mx) mx = l; ls += l; lc++}
      END {printf "%-20s %4d %12d %8d %7s  %s\n", t, n, e, s, s ? sprintf("%.0f", e / s) : "-",
                  lc ? sprintf("%.2f-%.2f, mean %.2f", mn, mx, ls / lc) : "-"}' "$d"*.log
  done
  exit 0
fi

name=${1:?usage: long_run.sh NAME SECONDS [BUILD_DIR] | --tally}
seconds=${2:?usage: long_run.sh NAME SECONDS [BUILD_DIR] | --tally}
build=${3:-$src/build-asan}
fuzzer=$build/tests/fuzz/fuzz_$name
[ -x "$fuzzer" ] || { echo "long_run.sh: no $fuzzer (cmake --build $build --target fuzz_$name)" >&2; exit 2; }
tmp=${KVS_FUZZ_TMPDIR:-/dev/shm/kvs-fuzz}
mkdir -p "$home/fuzz-corpus/$name" "$home/fuzz-artifacts/$name" "$home/fuzz-logs/$name" "$tmp"
log=$home/fuzz-logs/$name/$(date +%Y%m%d-%H%M%S).log
dirs=("$home/fuzz-corpus/$name" "$src/tests/fuzz/corpus/$name")
[ -d "$src/tests/fuzz/regressions/$name" ] && dirs+=("$src/tests/fuzz/regressions/$name")
echo "# long run fuzz_$name for $seconds s, nice 19, TMPDIR=$tmp, $fuzzer, started $(date -Is)" > "$log"
echo "# loadavg $(date +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg)" >> "$log"
(while sleep 60; do echo "# loadavg $(date +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg)"; done) \
  > "$log.load" &
sampler=$!
start=$(date +%s)
# With the kernel's autogroup scheduling (sched_autogroup_enabled=1, Debian's default) nice only
# ranks processes within their session's group: a nice-19 fuzzer started from its own shell still
# took half of both cores from a build beside it. Lowering this session's autogroup makes it yield.
echo 19 > /proc/self/autogroup 2>/dev/null || true
TMPDIR=$tmp \
ASAN_OPTIONS=detect_leaks=1:check_initialization_order=1 \
LSAN_OPTIONS=suppressions=$src/tests/sanitizers/lsan.supp:print_suppressions=0 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
nice -n 19 "$fuzzer" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$home/fuzz-artifacts/$name/" "${dirs[@]}" >> "$log" 2>&1
status=$?
kill "$sampler" 2>/dev/null
cat "$log.load" >> "$log" && rm -f "$log.load"
echo "# seconds $(($(date +%s) - start)) exit $status, ended $(date -Is)" >> "$log"
exit $status
