#!/usr/bin/env bash
# Run every cargo-fuzz target of fuzz/ briefly over its committed corpus (a regression check,
# not a fuzzing campaign: see fuzz/README.md). One target at a time, FUZZ_SECONDS each
# (default 15). Exits non-zero when any target crashes, panics, times out (10 s per input) or
# goes over 2 GiB; the failing input is left in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-15}"
cargo fmt --check
# New inputs go to a scratch directory; the committed corpus is only read.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
if ! cargo +nightly fuzz build >"$scratch/build.log" 2>&1; then
  cat "$scratch/build.log" >&2
  exit 1
fi
failed=()
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$scratch/$target"
  if cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -print_final_stats=1 >"$scratch/$target.log" 2>&1; then
    echo "fuzz $target: ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$target.log" | grep -o '[0-9]*$') runs)"
  else
    echo "fuzz $target: FAILED" >&2
    tail -n 40 "$scratch/$target.log" >&2
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets failed: ${failed[*]}" >&2
  exit 1
fi
