#!/usr/bin/env bash
# The Python virtual environment of the independent COSE check (scripts/pycose-verify.py, run
# by masa/tests/pycose.rs): `.venv` at the repository root, or $BRSKI_PYVENV. Idempotent: it is
# made again only when scripts/pycose-requirements.txt changed since it was made.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${BRSKI_PYVENV:-.venv}"
req=scripts/pycose-requirements.txt
stamp="$venv/pycose-requirements.txt"
if [ -x "$venv/bin/python" ] && cmp -s "$req" "$stamp"; then
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
cp "$req" "$stamp"
echo "pyvenv: $venv ready ($(grep -c '==' "$req") packages)"
