#!/usr/bin/env bash
# The network-namespace lab (needs root and iproute2): the seven scenarios of `testbed lab run` (two also with coaps pledges),
# the negative check (a pledge with a wrong manufacturer anchor makes `happy` fail), and the
# clean-up checks (`lab up` twice leaves no debris; `lab down` cleans up after a killed `lab up`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "lab: skipped (network namespaces need root; run scripts/lab.sh as root)"
  exit 0
fi
if ! command -v ip >/dev/null; then
  echo "lab: iproute2 is missing (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
cargo build --workspace --bins --all-features
bin="${CARGO_TARGET_DIR:-target}/debug"
export BRSKI_LAB_DIR="${BRSKI_LAB_DIR:-$(mktemp -d -t brskilab-XXXXXX)}"
trap '"$bin/testbed" lab down >/dev/null 2>&1 || true' EXIT

lab_namespaces() { ip netns list | awk '{print $1}' | grep -c '^brskilab-' || true; }

for scenario in happy masa-outage rogue-registrar link-flap registrar-restart constrained-stateful constrained-stateless; do
  echo "== lab run --scenario $scenario"
  start=$(date +%s)
  "$bin/testbed" lab run --scenario "$scenario" --pledges 5
  echo "== $scenario passed in $(( $(date +%s) - start )) s"
done
# The same disturbances with constrained pledges (CoAPS behind the stateful constrained proxy).
for scenario in masa-outage rogue-registrar; do
  echo "== lab run --scenario $scenario --transport coaps"
  start=$(date +%s)
  "$bin/testbed" lab run --scenario "$scenario" --pledges 5 --transport coaps
  echo "== $scenario (coaps) passed in $(( $(date +%s) - start )) s"
done

echo "== negative check: a pledge with a wrong manufacturer anchor must make happy fail"
if out=$("$bin/testbed" lab run --scenario happy --pledges 3 --broken-pledge 2>&1); then
  echo "$out"
  echo "lab: happy passed with a broken pledge; the verdict cannot fail" >&2
  exit 1
fi
echo "$out" | grep -E '^(PASS|FAIL) '
echo "$out" | grep -q '^FAIL LAB-0001' || { echo "lab: LAB-0001 was not the failing pledge" >&2; exit 1; }
echo "== negative check passed: happy failed"

echo "== lab up twice leaves no debris; lab down removes everything"
"$bin/testbed" lab up --pledges 2
"$bin/testbed" lab up --pledges 2
count=$(lab_namespaces)
[ "$count" -eq 6 ] || { echo "lab: $count namespaces after two lab up (want 6)" >&2; exit 1; }
"$bin/testbed" lab down
[ "$(lab_namespaces)" -eq 0 ] || { echo "lab: namespaces left after lab down" >&2; exit 1; }

echo "== lab down after a killed lab up"
"$bin/testbed" lab up --pledges 3 & up=$!
# Kill it once its first daemon runs in a namespace.
for _ in $(seq 1 400); do [ -s "$BRSKI_LAB_DIR/logs/masa.log" ] && break; sleep 0.05; done
kill -9 "$up" 2>/dev/null || true
wait "$up" 2>/dev/null || true
"$bin/testbed" lab down
[ "$(lab_namespaces)" -eq 0 ] || { echo "lab: namespaces left after lab down" >&2; exit 1; }
leftover=$(pgrep -f "$BRSKI_LAB_DIR" || true)
[ -z "$leftover" ] || { echo "lab: processes left: $leftover" >&2; exit 1; }
echo "lab: all checks passed"
