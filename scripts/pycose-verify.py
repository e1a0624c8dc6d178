#!/usr/bin/env python3
"""Verify a COSE_Sign1 voucher with pycose, apart from the suite's own COSE code.

Usage: pycose-verify.py VOUCHER CERT_PEM

VOUCHER holds the COSE_Sign1 bytes (cBRSKI §9.2; RFC 9052 §4.2). The signature is verified
with the public key of the first certificate in CERT_PEM (RFC 9052 §4.4), then the payload is
decoded as CBOR. One JSON object is printed: the algorithm, the header labels of both buckets
and the payload, with map keys as text and byte strings as lowercase hex.

Exit status: 0 verified, 1 the signature does not verify, 2 anything else (usage, unreadable
files, not a COSE_Sign1).
"""

import json
import sys

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pycose.keys import CoseKey
from pycose.messages import CoseMessage, Sign1Message


def as_json(value):
    """CBOR data as JSON: text map keys, byte strings as hex."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, cbor2.CBORTag):
        return {"tag": value.tag, "value": as_json(value.value)}
    return value


def label(key):
    """A header label as pycose names it, or its number."""
    return getattr(key, "identifier", key)


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        with open(argv[1], "rb") as f:
            envelope = f.read()
        with open(argv[2], "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        pem = cert.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        msg = CoseMessage.decode(envelope)
        if not isinstance(msg, Sign1Message):
            raise TypeError(f"not a COSE_Sign1 but {type(msg).__name__}")
        msg.key = CoseKey.from_pem_public_key(pem.decode())
    except Exception as e:  # noqa: BLE001 - every failure to read is exit 2
        print(f"pycose-verify: {e}", file=sys.stderr)
        return 2
    try:
        verified = msg.verify_signature()
    except Exception as e:  # noqa: BLE001 - pycose raises on some malformed signatures
        print(f"pycose-verify: signature check failed: {e}", file=sys.stderr)
        verified = False
    if not verified:
        print(json.dumps({"verified": False}))
        return 1
    alg = next((v for k, v in msg.phdr.items() if label(k) == 1), None)
    print(
        json.dumps(
            {
                "verified": True,
                "alg": getattr(alg, "fullname", str(alg)),
                "protected": sorted(label(k) for k in msg.phdr),
                "unprotected": sorted(label(k) for k in msg.uhdr),
                "payload": as_json(cbor2.loads(msg.payload)),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
