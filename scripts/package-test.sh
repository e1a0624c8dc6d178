#!/usr/bin/env bash
# The Debian packages on this machine (needs root): build them (scripts/package.sh), install
# them with dpkg -i, then with the installed binaries only: `masa init` and `registrar init` as
# the services' users, check-config, one pledge enrolled through `masa serve` and `registrar
# serve`, `systemd-analyze verify` of the installed units, `man` of every page; then `dpkg -r`
# must leave the state directories and `dpkg --purge` remove them. lintian's verdict is printed.
# The installed daemons' metrics (init's loopback defaults) pass `promtool check metrics`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "package-test: skipped (installs packages: run scripts/package-test.sh as root)"
  exit 0
fi
packages=(brski-masa brski-registrar brski-pledge)
for pkg in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
    [ -e "/var/lib/$pkg" ]; then
    echo "package-test: $pkg is installed here or /var/lib/$pkg exists; this test installs and" \
      "purges the packages: run it on a test machine" >&2
    exit 1
  fi
done

work=$(mktemp -d -t brski-pkg-XXXXXX)
# The services' users read the CA file and write the pledge directory under it.
chmod 0755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  dpkg --purge "${packages[@]}" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "package-test: $*" >&2; exit 1; }

mapfile -t debs < <(bash scripts/package.sh "$work/debs")
[ ${#debs[@]} -eq 3 ] || fail "expected three packages, got: ${debs[*]}"
for deb in "${debs[@]}"; do
  echo "== $(basename "$deb"): $(du -k "$deb" | cut -f1) KiB"
  dpkg-deb --field "$deb" Package Version Depends | sed 's/^/   /'
done
# The pledge uses DT_RELR relocations (pledge/build.rs): glibc provides them from 2.36.
pledge_deb=$(printf '%s\n' "${debs[@]}" | grep '/brski-pledge_')
dpkg-deb --field "$pledge_deb" Depends | grep -q 'libc6 (>= 2\.3[6-9]\|libc6 (>= 2\.[4-9]' ||
  fail "brski-pledge does not depend on libc6 (>= 2.36): $(dpkg-deb --field "$pledge_deb" Depends)"

echo "== lintian"
if command -v lintian >/dev/null; then
  lintian --tag-display-limit 0 "${debs[@]}" || true
else
  echo "lintian not installed (scripts/install-deps.sh installs it)"
fi

echo "== dpkg -i"
dpkg -i "${debs[@]}"
for name in masa registrar pledge; do
  [ "$(command -v "$name")" = "/usr/bin/$name" ] || fail "/usr/bin/$name not installed"
  getent passwd "brski-$name" >/dev/null || fail "user brski-$name not created"
  [ "$(stat -c '%U %a' "/var/lib/brski-$name")" = "brski-$name 700" ] ||
    fail "/var/lib/brski-$name: $(stat -c '%U %a' "/var/lib/brski-$name")"
  [ -f "/etc/brski/$name.toml.example" ] || fail "/etc/brski/$name.toml.example missing"
  grep -qx "/etc/brski/$name.toml.example" "/var/lib/dpkg/info/brski-$name.conffiles" ||
    fail "the example configuration of brski-$name is not a conffile"
done

echo "== man"
pages=0
for page in $(dpkg -L "${packages[@]}" | grep '^/usr/share/man/man1/.*\.1\.gz$'); do
  topic=$(basename "$page" .1.gz)
  MANWIDTH=100 man -P cat "$topic" | grep -q "^NAME" || fail "man $topic does not render"
  pages=$((pages + 1))
done
echo "$pages man pages render (man masa, man registrar-pledges-allow, ...)"

echo "== systemd-analyze verify (installed units)"
systemd-analyze verify /lib/systemd/system/brski-masa.service \
  /lib/systemd/system/brski-registrar.service /lib/systemd/system/brski-pledge.service

echo "== init and check-config, as the services' users"
runuser -u brski-masa -- masa init --dir /var/lib/brski-masa --name localhost \
  --listen 127.0.0.1:19443
runuser -u brski-masa -- masa check-config --config /var/lib/brski-masa/masa.toml
install -m 0644 /var/lib/brski-masa/vendor-ca.crt.pem "$work/vendor-ca.crt.pem"
runuser -u brski-registrar -- registrar init --dir /var/lib/brski-registrar \
  --domain registrar.example.net --vendor-ca "$work/vendor-ca.crt.pem" \
  --masa-ca "$work/vendor-ca.crt.pem" --listen 127.0.0.1:18443 --coaps-listen "" --accept auto
runuser -u brski-registrar -- registrar check-config --config /var/lib/brski-registrar/registrar.toml

echo "== one enrollment with the installed daemons"
runuser -u brski-masa -- masa serve --config /var/lib/brski-masa/masa.toml \
  >"$work/masa.log" 2>&1 &
pids+=($!)
runuser -u brski-registrar -- registrar serve --config /var/lib/brski-registrar/registrar.toml \
  >"$work/registrar.log" 2>&1 &
pids+=($!)
for port in 19443 18443; do
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
done
install -d -o brski-masa "$work/pledge"
runuser -u brski-masa -- masa mint --config /var/lib/brski-masa/masa.toml --serial PKG-0001 \
  --out "$work/pledge/PKG-0001" --registrar https://localhost:18443
pledge bootstrap --config "$work/pledge/PKG-0001/pledge.toml" ||
  { cat "$work/masa.log" "$work/registrar.log" >&2; fail "pledge bootstrap failed"; }
runuser -u brski-registrar -- registrar pledges list \
  --config /var/lib/brski-registrar/registrar.toml | grep -q PKG-0001 ||
  fail "the registrar does not list PKG-0001"
echo "== metrics of the installed daemons (promtool check metrics)"
curl -fsS http://127.0.0.1:9464/metrics > "$work/registrar.prom"
curl -fsS http://127.0.0.1:9465/metrics > "$work/masa.prom"
promtool check metrics < "$work/registrar.prom"
promtool check metrics < "$work/masa.prom"
grep -qx 'brski_registrar_enrollments_total{transport="https",outcome="issued"} 1' \
  "$work/registrar.prom" || fail "the registrar did not count one enrollment"
grep -qx 'brski_masa_vouchers_issued_total 1' "$work/masa.prom" ||
  fail "the MASA did not count one voucher"
for pid in "${pids[@]}"; do kill "$pid"; wait "$pid" || true; done
pids=()

echo "== dpkg -r leaves the state"
dpkg -r "${packages[@]}"
for name in masa registrar; do
  [ ! -e "/usr/bin/$name" ] || fail "/usr/bin/$name is still there after dpkg -r"
  [ -f "/var/lib/brski-$name/$name.toml" ] || fail "dpkg -r removed /var/lib/brski-$name"
done
echo "== dpkg --purge removes it"
dpkg --purge "${packages[@]}"
for name in masa registrar pledge; do
  [ ! -e "/var/lib/brski-$name" ] || fail "dpkg --purge left /var/lib/brski-$name"
  [ ! -e "/etc/brski/$name.toml.example" ] || fail "dpkg --purge left the example of $name"
done
echo "package-test: 3 packages built, installed, used, removed and purged"
