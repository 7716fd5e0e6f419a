#!/usr/bin/env python3
"""Open a git-seal envelope v1 without git-seal.

Usage: GIT_SEAL_KEK=<64 hex digits> python3 open_envelope.py FILE > plaintext

Needs only the `cryptography` package (Debian: python3-cryptography).
Writes nothing unless the envelope opens completely.
"""
import base64
import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def b64(text, length=None):
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise ValueError("non-canonical base64")
    if length is not None and len(raw) != length:
        raise ValueError(f"expected {length} bytes, got {len(raw)}")
    return raw


def open_envelope(envelope, private_hex):
    if envelope.get("schema") != "git-seal.envelope/v1" or envelope.get("alg") != "aes-256-gcm":
        raise ValueError("not a git-seal envelope v1")
    kek = X25519PrivateKey.from_private_bytes(bytes.fromhex(private_hex))
    kek_pub = kek.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    kid = "k_" + hashlib.sha256(kek_pub).hexdigest()[:16]
    for r in envelope["recipients"]:
        if r["kid"] != kid or r["wrap"] != "x25519-hkdf-sha256":
            continue
        ephemeral = b64(r["ephemeral_pub"], 32)
        shared = kek.exchange(X25519PublicKey.from_public_bytes(ephemeral))
        wrap_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=ephemeral + kek_pub, info=b"git-seal/v1/x25519"
        ).derive(shared)
        dek = AESGCM(wrap_key).decrypt(bytes(12), b64(r["wrapped_dek"], 48), kid.encode())
        aad = envelope.get("aad", "").encode()
        sealed = b64(envelope["ciphertext"]) + b64(envelope["tag"], 16)
        return AESGCM(dek).decrypt(b64(envelope["nonce"], 12), sealed, aad)
    raise ValueError(f"no recipient for {kid}")


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        envelope = json.loads(f.read())
    plaintext = open_envelope(envelope, os.environ["GIT_SEAL_KEK"].strip())
    sys.stdout.buffer.write(plaintext)
