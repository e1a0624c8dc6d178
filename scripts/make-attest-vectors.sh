#!/usr/bin/env bash
# Make the TPM 2.0 attestation test vectors of brski-common's `attest` module: real TPM2_Certify
# and TPM2_Quote evidence from a fresh software TPM (swtpm), made with tpm2-tools (Debian
# packages swtpm and tpm2-tools; scripts/install-deps.sh installs both).
#
#   scripts/make-attest-vectors.sh [OUT_DIR]      (default: vectors/tpm-attest)
#
# Keys: an IAK-like restricted ECC P-256 signing key and a restricted RSA-2048 one (primaries in
# the endorsement hierarchy), an LDevID-like ordinary signing key created in the TPM, a second
# ordinary (non-restricted) signing key, and a software key imported into the TPM (so without
# fixedTPM, fixedParent or sensitiveDataOrigin). Evidence: the LDevID key certified by each IAK,
# the LDevID key certified by the non-restricted key, the imported key certified by the ECC
# IAK, and a quote by the ECC IAK over sha256 PCRs 0, 1, 2 and 16 (16 extended once), all with
# the same qualifying data. Every output is written as hex under a `#` header line; the swtpm
# state is thrown away, so each run makes different keys and signatures.
set -euo pipefail

out="${1:-$(dirname "$0")/../vectors/tpm-attest}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
swtpm_pid=""
cleanup() {
  if [ -n "$swtpm_pid" ]; then
    kill "$swtpm_pid" 2>/dev/null || true
    wait "$swtpm_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

for tool in swtpm tpm2_createprimary tpm2_send tpm2_quote tpm2_checkquote openssl xxd; do
  command -v "$tool" >/dev/null || {
    echo "missing $tool (apt-get install swtpm tpm2-tools openssl xxd)" >&2
    exit 1
  }
done

# A free pair of loopback ports for swtpm's command and control channels.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=""
for _ in $(seq 50); do
  p=$((20000 + RANDOM % 20000))
  if port_free "$p" && port_free $((p + 1)); then
    port=$p
    break
  fi
done
[ -n "$port" ] || { echo "no free loopback port pair" >&2; exit 1; }

mkdir "$work/state"
swtpm socket --tpm2 --tpmstate "dir=$work/state" \
  --server "type=tcp,port=$port,bindaddr=127.0.0.1" \
  --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" \
  --flags not-need-init,startup-clear >"$work/swtpm.log" 2>&1 &
swtpm_pid=$!
export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port"
for _ in $(seq 50); do
  tpm2_getrandom 1 >/dev/null 2>&1 && break
  sleep 0.1
done

cd "$work"
# Without a resource manager swtpm keeps only three transient objects loaded: flush them after
# every command (the tools load saved contexts again as needed).
t() {
  "$@"
  tpm2_flushcontext -t
}
qualifying=6272736b692d61747465737420766563746f72733a207175616c696679696e67 # "brski-attest vectors: qualifying"
signing='fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign'
restricted="$signing|restricted"

# IAK-like restricted signing keys (the TCG IAK templates also set adminWithPolicy and an
# authPolicy; what matters here is restricted + sign).
t tpm2_createprimary -Q -C e -g sha256 -G ecc256:ecdsa-sha256:null -a "$restricted" -c iak-ecc.ctx
t tpm2_createprimary -Q -C e -g sha256 -G rsa2048:rsassa-sha256:null -a "$restricted" -c iak-rsa.ctx
# A storage key, and under it the ordinary signing keys.
t tpm2_createprimary -Q -C o -g sha256 -G ecc256 -c srk.ctx
t tpm2_create -Q -C srk.ctx -g sha256 -G ecc256:ecdsa-sha256 -a "$signing" -u ldevid.pub -r ldevid.priv
t tpm2_load -Q -C srk.ctx -u ldevid.pub -r ldevid.priv -c ldevid.ctx
t tpm2_create -Q -C srk.ctx -g sha256 -G ecc256:ecdsa-sha256 -a "$signing" -u other.pub -r other.priv
t tpm2_load -Q -C srk.ctx -u other.pub -r other.priv -c other.ctx
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out soft.pem 2>/dev/null
t tpm2_import -Q -C srk.ctx -G ecc -g sha256 -a 'userwithauth|sign' -i soft.pem -u soft.pub -r soft.priv
t tpm2_load -Q -C srk.ctx -u soft.pub -r soft.priv -c soft.ctx

# Persistent handles, so that the raw TPM2_Certify commands below can name the keys.
declare -A handle=([iak-ecc]=0x81010001 [iak-rsa]=0x81010002 [ldevid]=0x81000011
  [other]=0x81000012 [soft]=0x81000013)
for key in iak-ecc iak-rsa ldevid other soft; do
  t tpm2_evictcontrol -Q -C o -c "$key.ctx" "${handle[$key]}"
  t tpm2_readpublic -Q -c "${handle[$key]}" -o "$key.tpm2b_public"
  # TPM2B_PUBLIC without its 2-byte size: the TPMT_PUBLIC.
  tail -c +3 "$key.tpm2b_public" >"$key.tpmt_public"
  t tpm2_readpublic -Q -c "${handle[$key]}" -f pem -o "$key.spki.pem"
  t tpm2_readpublic -Q -c "${handle[$key]}" -n "$key.name"
done

# certify SIGNER OBJECT OUT: TPM2_Certify (TPM 2.0 Part 3 §18.2) of OBJECT by SIGNER with the
# qualifying data, sent raw with tpm2_send because tpm2_certify of tpm2-tools 5.4 has no
# option for qualifying data. Both handles are authorized by empty password sessions; inScheme
# is TPM_ALG_NULL (the signer's own scheme). Writes OUT.attest (TPMS_ATTEST) and OUT.sig
# (TPMT_SIGNATURE).
certify() {
  local pw="40000009""0000""00""0000"
  local body="${handle[$2]#0x}${handle[$1]#0x}00000012$pw$pw""0020$qualifying""0010"
  local size rsp params attest_len
  size=$(printf '%08x' $((10 + ${#body} / 2)))
  echo "8002${size}00000148$body" | xxd -r -p >"$3.cmd"
  tpm2_send -o "$3.rsp" <"$3.cmd"
  rsp=$(xxd -p "$3.rsp" | tr -d '\n')
  [ "${rsp:12:8}" = 00000000 ] || { echo "TPM2_Certify: response code ${rsp:12:8}" >&2; exit 1; }
  params=$((16#${rsp:20:8}))
  attest_len=$((16#${rsp:28:4}))
  echo "${rsp:32:$((attest_len * 2))}" | xxd -r -p >"$3.attest"
  echo "${rsp:$((32 + attest_len * 2)):$(((params - 2 - attest_len) * 2))}" | xxd -r -p >"$3.sig"
  # The TPM itself checks the signature (tpm2_verifysignature with the signer's public key).
  t tpm2_verifysignature -Q -c "${handle[$1]}" -g sha256 -m "$3.attest" -s "$3.sig"
}
certify iak-ecc ldevid certify-ecc
certify iak-rsa ldevid certify-rsa
certify other ldevid certify-by-other
certify iak-ecc soft certify-soft

tpm2_pcrextend 16:sha256=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
pcrs=sha256:0,1,2,16
t tpm2_quote -Q -c iak-ecc.ctx -l "$pcrs" -g sha256 -q "$qualifying" \
  -m quote.attest -s quote.sig -o quote.pcrs.bin
tpm2_pcrread -Q "$pcrs" -o quote.pcrs
# Independent check of the quote (tpm2-tools verifies signature, nonce and PCR digest).
tpm2_checkquote -Q -u iak-ecc.spki.pem -m quote.attest -s quote.sig -f quote.pcrs.bin -g sha256 \
  -q "$qualifying"

emit() { # emit FILE HEADER...: write FILE as hex under `#` header lines
  local src=$1
  shift
  {
    for line in "$@"; do echo "# $line"; done
    xxd -p "$src"
  } >"$out/$src.hex"
}
made="Made by scripts/make-attest-vectors.sh (tpm2-tools $(tpm2_quote --version | sed -n 's/.*version="\([^"]*\)".*/\1/p'), swtpm)."
printf '%s' "$qualifying" | xxd -r -p >qualifying-data
emit qualifying-data "$made" "The qualifying data (extraData) of every certify and quote here."
for key in iak-ecc iak-rsa ldevid other soft; do
  emit "$key.tpmt_public" "$made" "TPMT_PUBLIC of $key (tpm2_readpublic -o, without the TPM2B size)."
  emit "$key.name" "$made" "TPM Name of $key (tpm2_readpublic -n): nameAlg || H(TPMT_PUBLIC)."
  {
    echo "# $made"
    echo "# SubjectPublicKeyInfo of $key (tpm2_readpublic -f pem)."
    cat "$key.spki.pem"
  } >"$out/$key.spki.pem"
done
emit certify-ecc.attest "$made" "TPMS_ATTEST: TPM2_Certify of ldevid by iak-ecc (raw command via tpm2_send), qualifying data <qualifying-data>."
emit certify-ecc.sig "$made" "TPMT_SIGNATURE (ECDSA SHA-256) of certify-ecc.attest by iak-ecc; tpm2_verifysignature accepted it."
emit certify-rsa.attest "$made" "TPMS_ATTEST: TPM2_Certify of ldevid by iak-rsa (raw command via tpm2_send), qualifying data <qualifying-data>."
emit certify-rsa.sig "$made" "TPMT_SIGNATURE (RSASSA SHA-256) of certify-rsa.attest by iak-rsa; tpm2_verifysignature accepted it."
emit certify-by-other.attest "$made" "TPMS_ATTEST: TPM2_Certify of ldevid by other (raw command via tpm2_send), qualifying data <qualifying-data>."
emit certify-by-other.sig "$made" "TPMT_SIGNATURE of certify-by-other.attest by other; tpm2_verifysignature accepted it."
emit certify-soft.attest "$made" "TPMS_ATTEST: TPM2_Certify of soft by iak-ecc (raw command via tpm2_send), qualifying data <qualifying-data>."
emit certify-soft.sig "$made" "TPMT_SIGNATURE of certify-soft.attest by iak-ecc; tpm2_verifysignature accepted it."
emit quote.attest "$made" "TPMS_ATTEST: tpm2_quote -c iak-ecc -l $pcrs -g sha256 -q <qualifying-data>; PCR 16 extended once."
emit quote.sig "$made" "TPMT_SIGNATURE of quote.attest by iak-ecc. tpm2_checkquote accepted it."
emit quote.pcrs "$made" "The quoted PCR values (tpm2_pcrread $pcrs -o): 32 bytes each, in selection order."
echo "vectors written to $out"
