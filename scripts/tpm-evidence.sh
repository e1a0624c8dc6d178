#!/usr/bin/env bash
# Attestation evidence made by hand with tpm2-tools (SPEC §9), independently of this suite's TPM
# code: TPM2_Certify of KEY by the IAK and TPM2_Quote of PCRS by the IAK, over QUALIFYING (hex).
# The TPM is the one TPM2TOOLS_TCTI names. registrar/tests/attested_enrollment.rs puts the
# result into a CSR and checks that the registrar accepts it.
#
#   scripts/tpm-evidence.sh IAK_HANDLE KEY_HANDLE QUALIFYING_HEX PCRS OUTDIR
#
# Writes into OUTDIR: certify.attest (TPMS_ATTEST), certify.sig (TPMT_SIGNATURE),
# key.tpmt_public (the certified key's TPMT_PUBLIC), quote.attest, quote.sig and quote.pcrs
# (the SHA-256 values of PCRS, e.g. "0,7", concatenated in ascending order).
set -euo pipefail
[ $# -eq 5 ] || { sed -n 2,11p "$0" >&2; exit 2; }
iak=$1 key=$2 qualifying=$3 pcrs=$4 out=$5
for tool in tpm2_send tpm2_quote tpm2_readpublic tpm2_pcrread tpm2_verifysignature xxd; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install tpm2-tools xxd)" >&2; exit 1; }
done
mkdir -p "$out"
cd "$out"

# TPM2_Certify (TPM 2.0 Part 3 §18.2), sent raw with tpm2_send: tpm2_certify of tpm2-tools 5.4
# has no option for qualifying data. Both handles are authorized by empty password sessions
# (the key's adminWithPolicy must be clear, as for an LDevID); inScheme TPM_ALG_NULL.
pw="40000009""0000""00""0000"
qlen=$(printf '%04x' $((${#qualifying} / 2)))
body="${key#0x}${iak#0x}00000012$pw$pw$qlen$qualifying""0010"
size=$(printf '%08x' $((10 + ${#body} / 2)))
echo "8002${size}00000148$body" | xxd -r -p >certify.cmd
# A TPM may answer TPM_RC_RETRY (0x922) to the first signature after start-up (libtpms tests
# its ECDSA then); send again, as a TSS would.
for _ in 1 2 3; do
  tpm2_send -o certify.rsp <certify.cmd
  rsp=$(xxd -p certify.rsp | tr -d '\n')
  [ "${rsp:12:8}" = 00000922 ] || break
done
[ "${rsp:12:8}" = 00000000 ] || { echo "TPM2_Certify: response code ${rsp:12:8}" >&2; exit 1; }
params=$((16#${rsp:20:8}))
attest_len=$((16#${rsp:28:4}))
echo "${rsp:32:$((attest_len * 2))}" | xxd -r -p >certify.attest
echo "${rsp:$((32 + attest_len * 2)):$(((params - 2 - attest_len) * 2))}" | xxd -r -p >certify.sig
tpm2_verifysignature -Q -c "$iak" -g sha256 -m certify.attest -s certify.sig

tpm2_readpublic -Q -c "$key" -o key.tpm2b_public
tail -c +3 key.tpm2b_public >key.tpmt_public

tpm2_quote -Q -c "$iak" -l "sha256:$pcrs" -g sha256 -q "$qualifying" -m quote.attest -s quote.sig
tpm2_pcrread -Q "sha256:$pcrs" -o quote.pcrs
rm -f certify.cmd certify.rsp key.tpm2b_public
