#!/usr/bin/env bash
# Instructions per enrollment of the registrar and the MASA, counted by callgrind (issue 16), in
# the manner of rustls' ci-bench: stable from run to run, so that a change's cost shows without
# the host's noise. `testbed bench` (HTTPS, SQLite, one pledge at a time, no `pledge bootstrap`)
# runs the two daemons under `valgrind --tool=callgrind` ($BRSKI_WRAP_DAEMONS), once with BASE
# enrollments and once with BASE + N; the difference over N is the cost of an enrollment, without
# that of starting (keys, databases) and stopping. Each measurement is done RUNS times, and the
# spread between runs is printed. scripts/callgrind-split.py splits the cost by crate.
#
#   bash scripts/bench-instructions.sh [--enrollments N] [--base BASE] [--runs RUNS] [--json]
#                                      [--no-build] [--keep]
#
# Slow (valgrind runs code some 50 times slower): not part of scripts/test.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
enrollments=20
base=10
runs=2
json=()
build=1
keep=0
bench_keep=()

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --enrollments) enrollments=${2:?--enrollments N}; shift 2 ;;
    --base) base=${2:?--base BASE}; shift 2 ;;
    --runs) runs=${2:?--runs RUNS}; shift 2 ;;
    --json) json=(--json); shift ;;
    --no-build) build=0; shift ;;
    --keep) keep=1; bench_keep=(--keep); shift ;;
    -h | --help) usage 0 ;;
    *) echo "bench-instructions: unknown argument $1" >&2; usage ;;
  esac
done
for n in "$enrollments" "$base" "$runs"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench-instructions: $n is not a positive number" >&2; exit 2; }
done

command -v valgrind >/dev/null || {
  echo "bench-instructions: valgrind not found (scripts/install-deps.sh installs it)" >&2
  exit 1
}

# The dist profile (fat LTO, as the packages are built) keeps line tables (debug = 1), so
# callgrind names the functions.
target=${CARGO_TARGET_DIR:-$root/target}
if [ "$build" = 1 ]; then
  (cd "$root" && cargo build --profile dist -p masa -p registrar -p pledge -p testbed >&2)
fi
testbed="$target/dist/testbed"
[ -x "$testbed" ] || { echo "bench-instructions: no $testbed (build without --no-build)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/brski-instructions-XXXXXX")
# $BRSKI_WRAP_DAEMONS is split on whitespace.
case "$work" in *[[:space:]]*) echo "bench-instructions: $work has a space" >&2; exit 1 ;; esac
if [ "$keep" = 1 ]; then
  echo "bench-instructions: keeping $work" >&2
else
  trap 'rm -rf "$work"' EXIT
fi

start=$SECONDS
dirs=()
for run in $(seq 1 "$runs"); do
  for count in "$base" "$((base + enrollments))"; do
    out="$work/run$run-$count"
    mkdir -p "$out"
    echo "bench-instructions: run $run of $runs, $count enrollments under callgrind" >&2
    BRSKI_WRAP_DAEMONS="valgrind --tool=callgrind --callgrind-out-file=$out/%p.callgrind --dump-line=no --quiet" \
      "$testbed" bench --pledges "$count" --concurrency 1 --threads 1 --skip-pledge \
      --transport https --store sqlite "${bench_keep[@]}" >"$out/report.json"
    dirs+=("$out")
  done
done
echo "bench-instructions: measured in $((SECONDS - start)) s" >&2

python3 "$root/scripts/callgrind-split.py" "${json[@]}" "${dirs[@]}"
