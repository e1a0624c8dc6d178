#!/usr/bin/env bash
# Install the Debian packages the build and tests need, only those that are missing.
# libtss2-dev + pkg-config build the `tpm` feature of brski-common; swtpm, swtpm-tools and
# tpm2-tools run its tests (a software TPM, checked with the TCG reference tools); iproute2 and
# procps build and inspect the network-namespace lab; libssl-dev builds the CoAPS server (DTLS 1.2
# via the openssl crate) and libcoap3-bin (coap-client-openssl) checks it; python3-venv makes the
# venv in which pycose checks the MASA's COSE vouchers (scripts/pyvenv.sh); postgresql provides
# initdb, pg_ctl and psql for the PostgreSQL backend's tests, which start servers of their own;
# haproxy balances several instances of each daemon in the testbed's cluster (testbed bench
# --instances); prometheus provides promtool, which checks the daemons' metrics scrapes;
# dpkg-dev (dpkg-shlibdeps), man-db and lintian build, read and check the Debian packages
# (scripts/package.sh, scripts/package-test.sh); libxml2-utils (xmllint) checks the SVG of
# `testbed bench --plot`; valgrind counts the daemons' instructions
# (scripts/bench-instructions.sh).
set -euo pipefail
need=()
for pkg in openssl curl systemd iproute2 procps swtpm swtpm-tools tpm2-tools libtss2-dev pkg-config libssl-dev libcoap3-bin python3-venv postgresql haproxy prometheus dpkg-dev man-db lintian libxml2-utils valgrind; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need[*]} (run as root, or install them)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# The fuzz targets (scripts/fuzz.sh, fuzz/README.md) build with the nightly toolchain and
# cargo-fuzz.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal >/dev/null
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
