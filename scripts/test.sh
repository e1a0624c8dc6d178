#!/usr/bin/env bash
# The whole test suite: installs missing system packages, then formatting, lints and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets
bash scripts/lab.sh
bash scripts/verify-units.sh debug
