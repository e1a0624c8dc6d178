#!/usr/bin/env bash
# The whole test suite: installs missing system packages, then formatting, lints and tests,
# the lab and the Debian packages (as root), and a short run of every fuzz target over its
# corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# pycose, for the independent check of the MASA's COSE vouchers (masa/tests/pycose.rs).
bash scripts/pyvenv.sh
cargo fmt --all --check
# The protocol core must build without the TPM feature (where libtss2 is absent).
cargo check -p brski-common
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo test --workspace --all-targets --all-features
# The daemons' suites and the cross-daemon tests again, their state in PostgreSQL (servers
# started by the tests themselves, as an unprivileged user).
BRSKI_TEST_DATABASE=postgres cargo test -p masa -p registrar -p testbed --all-targets --all-features
bash scripts/lab.sh
# The Debian packages, built with the dist profile, installed, used and removed (root only).
bash scripts/package-test.sh
bash scripts/verify-units.sh debug
bash scripts/fuzz.sh
