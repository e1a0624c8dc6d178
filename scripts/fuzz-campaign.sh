#!/usr/bin/env bash
# Fuzz each target until its coverage stops growing: a campaign, not a CI check (that is
# scripts/fuzz.sh). A target stops when libFuzzer has reported no new coverage (`cov:`) for
# QUIET seconds (default 300), or after MAX seconds (default 1800). New inputs go into
# fuzz/corpus/<target>; minimise them afterwards with `cargo +nightly fuzz cmin <target>`.
# Prints one line per target: executions, final cov/ft, seconds run, the edges found in its last
# 10 minutes (from the coverage sampled every 10 s into LOGS/TARGET.cov), and whether it
# plateaued.
#
#   scripts/fuzz-campaign.sh [TARGET...]      (default: every target)
#   JOBS=2 QUIET=300 MAX=1800 scripts/fuzz-campaign.sh
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
quiet="${QUIET:-300}"
max="${MAX:-1800}"
jobs="${JOBS:-1}"
logs="${LOGS:-$(mktemp -d)}"
cargo +nightly fuzz build >/dev/null
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)

campaign() {
  local target="$1" log="$logs/$1.log"
  local bin="target/x86_64-unknown-linux-gnu/release/$target"
  mkdir -p "corpus/$target" "artifacts/$target"
  "$bin" -artifact_prefix="artifacts/$target/" -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=2048 -max_total_time="$max" -print_final_stats=1 \
    "corpus/$target" >"$log" 2>&1 &
  local pid=$! start=$SECONDS last_cov="" last_change=$SECONDS samples="$logs/$1.cov"
  : >"$samples"
  while kill -0 "$pid" 2>/dev/null; do
    sleep 10
    local cov
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n1 || true)"
    echo "$((SECONDS - start)) ${cov#cov: }" >>"$samples"
    if [ "$cov" != "$last_cov" ]; then
      last_cov="$cov"
      last_change=$SECONDS
    elif [ $((SECONDS - last_change)) -ge "$quiet" ]; then
      kill -INT "$pid" 2>/dev/null || true
      break
    fi
  done
  local rc=0
  wait "$pid" || rc=$?
  local ran=$((SECONDS - start)) plateau=no
  [ $((SECONDS - last_change)) -ge "$quiet" ] && plateau=yes
  local execs status
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
  status="$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n1 | grep -o 'cov: [0-9]* ft: [0-9]*' || true)"
  if ls "artifacts/$target"/* >/dev/null 2>&1 || { [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$rc" -ne 72 ]; }; then
    echo "$target: FINDING (exit $rc; see $log and fuzz/artifacts/$target)"
  else
    local recent
    recent="$(awk -v end="$ran" '$2 != "" { t[NR] = $1; c[NR] = $2 } END {
      last = c[NR]; first = c[1]
      for (i = 1; i <= NR; i++) if (t[i] <= end - 600) first = c[i]
      print last - first }' "$samples")"
    echo "$target: execs $execs, $status, ${ran}s, +${recent} cov in the last 600 s, plateau $plateau"
  fi
}

running=0
for t in "${targets[@]}"; do
  campaign "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait
