#!/usr/bin/env bash
# systemd-analyze verify on the three unit files, with ExecStart pointed at the binaries built
# in target/ (verify checks that the executable exists); prints each unit's exposure score.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-debug}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for unit in masa registrar pledge; do
  bin="$PWD/target/$profile/$unit"
  [ -x "$bin" ] || { echo "verify-units: $bin not built" >&2; exit 1; }
  sed "s|/usr/bin/$unit|$bin|" "systemd/brski-$unit.service" > "$tmp/brski-$unit.service"
done
systemd-analyze verify "$tmp"/brski-*.service
for unit in masa registrar pledge; do
  systemd-analyze security --offline=true "$tmp/brski-$unit.service" | tail -n 1
done
echo "verify-units: 3 units verified"
