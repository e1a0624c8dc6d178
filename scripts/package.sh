#!/usr/bin/env bash
# Debian packages brski-masa, brski-registrar and brski-pledge, built with dpkg-deb from the
# `dist` profile (fat LTO): the binary, its unit, sysusers and tmpfiles snippets, man pages and
# shell completions generated from the binary itself (`generate`), a commented example
# configuration under /etc/brski/ (a conffile: an upgrade never overwrites an edited one), and
# the maintainer scripts of packaging/debian/. Depends is computed by dpkg-shlibdeps.
#
# Usage: scripts/package.sh [OUT_DIR]   (default target/debian; prints the .deb paths)
# PACKAGE_FEATURES (default "masa/tpm pledge/tpm") are the cargo features built in; set it empty
# for a host without libtss2.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/debian}
features=${PACKAGE_FEATURES-masa/tpm pledge/tpm}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
bin=target/dist

cargo build --profile dist -p masa -p registrar -p pledge ${features:+--features "$features"} >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# The example configurations, as `masa init`, `registrar init` write them (relative paths are
# relative to the file: the units read the ones `init` writes in the state directory).
"$bin/masa" init --dir "$work/ex/masa" --name masa.example.com >/dev/null
"$bin/registrar" init --dir "$work/ex/registrar" --domain example.net \
  --vendor-ca "$work/ex/masa/vendor-ca.crt.pem" --masa-ca "$work/ex/masa/vendor-ca.crt.pem" >/dev/null 2>&1

summary() {
  case $1 in
    masa) echo "BRSKI MASA: the manufacturer's voucher signing service (RFC 8995)" ;;
    registrar) echo "BRSKI registrar: the domain's registration authority and EST server" ;;
    pledge) echo "BRSKI pledge: zero-touch bootstrap of a device with an IDevID" ;;
  esac
}

description() {
  case $1 in
    masa) cat <<'EOF'
 The Manufacturer Authorized Signing Authority of Bootstrapping Remote
 Secure Key Infrastructure (BRSKI, RFC 8995): validates registrars'
 voucher requests, applies the manufacturer's ownership policy, signs
 vouchers (CMS, JWS, COSE) and keeps the audit log. Includes the factory
 tooling that mints IDevIDs (masa mint), with keys in a TPM 2.0.
EOF
    ;;
    registrar) cat <<'EOF'
 The owner's side of Bootstrapping Remote Secure Key Infrastructure
 (BRSKI, RFC 8995): TLS and DTLS server for pledges, voucher-request
 signer, client of the manufacturer's MASA, EST registration authority
 (RFC 7030, RFC 9148) with a domain CA, pledge policy and telemetry, with
 a constrained join proxy.
EOF
    ;;
    pledge) cat <<'EOF'
 The device side of Bootstrapping Remote Secure Key Infrastructure
 (BRSKI, RFC 8995): finds the owner's registrar, obtains a voucher from
 the manufacturer with its IEEE 802.1AR IDevID (in a file or a TPM 2.0),
 enrolls over EST (HTTPS, or CoAP over DTLS) for a domain certificate
 and keeps it renewed.
EOF
    ;;
  esac
}

for name in masa registrar pledge; do
  pkg=brski-$name
  root=$work/$pkg
  install -D -m 0755 "$bin/$name" "$root/usr/bin/$name"
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/$name"
  install -D -m 0644 "systemd/$pkg.service" "$root/lib/systemd/system/$pkg.service"
  install -D -m 0644 "systemd/$pkg.sysusers" "$root/usr/lib/sysusers.d/$pkg.conf"
  install -D -m 0644 "systemd/$pkg.tmpfiles" "$root/usr/lib/tmpfiles.d/$pkg.conf"

  "$bin/$name" generate man --out "$root/usr/share/man/man1" >/dev/null
  gzip -9n "$root"/usr/share/man/man1/*.1
  "$bin/$name" generate bash --out "$work/completions/$name" >/dev/null
  "$bin/$name" generate zsh --out "$work/completions/$name" >/dev/null
  "$bin/$name" generate fish --out "$work/completions/$name" >/dev/null
  install -D -m 0644 "$work/completions/$name/$name.bash" \
    "$root/usr/share/bash-completion/completions/$name"
  install -D -m 0644 "$work/completions/$name/_$name" "$root/usr/share/zsh/vendor-completions/_$name"
  install -D -m 0644 "$work/completions/$name/$name.fish" \
    "$root/usr/share/fish/vendor_completions.d/$name.fish"

  case $name in
    pledge) example=packaging/pledge.toml.example ;;
    *) example=$work/ex/$name/$name.toml ;;
  esac
  install -D -m 0644 "$example" "$root/etc/brski/$name.toml.example"

  doc=$root/usr/share/doc/$pkg
  install -D -m 0644 packaging/debian/copyright "$doc/copyright"
  printf '%s (%s) unstable; urgency=medium\n\n  * Built from the brski-suite workspace.\n\n -- brski-suite developers <brski@example.invalid>  %s\n' \
    "$pkg" "$version" "$(date -R -u -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" \
    | gzip -9n > "$doc/changelog.gz"

  mkdir -p "$root/DEBIAN"
  for script in postinst prerm postrm; do
    sed "s/@NAME@/$name/g" "packaging/debian/$script" > "$root/DEBIAN/$script"
    chmod 0755 "$root/DEBIAN/$script"
  done
  echo "/etc/brski/$name.toml.example" > "$root/DEBIAN/conffiles"

  # dpkg-shlibdeps reads debian/control of a source tree: give it a minimal one.
  mkdir -p "$work/src/debian"
  printf 'Source: brski-suite\n\nPackage: %s\nArchitecture: any\n' "$pkg" > "$work/src/debian/control"
  depends=$(cd "$work/src" && dpkg-shlibdeps -O -e "$root/usr/bin/$name" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
  # A binary linked with packed relative relocations (DT_RELR, the pledge) needs glibc's
  # GLIBC_ABI_DT_RELR version, which has no symbol, so dpkg-shlibdeps does not see it: glibc
  # 2.36 is the first to provide it.
  if readelf -V "$root/usr/bin/$name" | grep -q 'GLIBC_ABI_DT_RELR'; then
    libc=$(sed -n 's/.*libc6 (>= \([^)]*\)).*/\1/p' <<<"$depends")
    if [ -z "$libc" ]; then
      depends="libc6 (>= 2.36), $depends"
    elif dpkg --compare-versions "$libc" lt 2.36; then
      depends=${depends/"libc6 (>= $libc)"/"libc6 (>= 2.36)"}
    fi
  fi
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  {
    echo "Package: $pkg"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: brski-suite developers <brski@example.invalid>"
    echo "Installed-Size: $size"
    echo "Depends: $depends, systemd | systemd-standalone-sysusers, systemd | systemd-standalone-tmpfiles"
    echo "Section: net"
    echo "Priority: optional"
    echo "Homepage: https://example.invalid/brski-suite"
    echo "Description: $(summary "$name")"
    description "$name"
  } > "$root/DEBIAN/control"
  (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 md5sum) > "$root/DEBIAN/md5sums"

  deb=$out/${pkg}_${version}_${arch}.deb
  dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
  echo "$deb"
done
