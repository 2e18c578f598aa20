"""Writes tests/vectors/envelope_v1.json. Run only when the envelope format changes:
`python -m tests.vectors.generate_envelope_vectors`.

HPKE encapsulation is randomised inside the library (no injectable randomness), so a vector fixes the
data key and nonce (the body, tag, key commitment, associated data and info are then deterministic and
re-derived by the tests) and records one complete envelope that the tests must open. The keys here are
test-vector keys, made for this file and used nowhere else.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from reliquary.crypto import envelope, kem
from reliquary.crypto.kem import HybridPrivateKey
from reliquary.crypto.scope import ItemScope
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey

OUT = Path(__file__).with_name("envelope_v1.json")


def _stream(label: str) -> bytes:
    """Deterministic bytes for a named purpose (so the file is reproducible apart from HPKE)."""
    return hashlib.sha512(f"RELIQUARY test vector {label}".encode()).digest()


def _vector(
    desc: str,
    plaintext: bytes,
    scope: ItemScope,
    key_version: int,
    algorithm: SignatureAlgorithm,
    *,
    detached: bool = False,
) -> dict[str, Any]:
    vault_key = HybridPrivateKey.from_private_bytes(_stream(f"vault {desc}") + _stream(f"vault2 {desc}")[:32])
    signer = SigningKey.generate(algorithm)
    data_key = _stream(f"data key {desc}")[:32]
    nonce = _stream(f"nonce {desc}")[:12]
    drawn = iter([data_key, nonce])
    sealed = envelope.seal(
        plaintext,
        scope=scope,
        vault_public_key=vault_key.public_key(),
        key_version=key_version,
        signer=signer,
        randbytes=lambda n: next(drawn)[:n],
    )
    stored, body = sealed.without_body() if detached else (sealed, None)
    assert sealed.body is not None
    return {
        "desc": desc,
        "scope": {
            "tenant_id": scope.tenant_id,
            "vault_id": scope.vault_id,
            "item_id": scope.item_id,
            "item_version": scope.item_version,
            "content_type": scope.content_type,
        },
        "key_version": key_version,
        "vault_private_key": vault_key.private_bytes().hex(),
        "signer": {
            "algorithm": algorithm.value,
            "public_key": signer.public_key.hex(),
            "key_id": signer.key_id.hex(),
        },
        "randomness": {"data_key": data_key.hex(), "nonce": nonce.hex()},
        "plaintext": plaintext.hex(),
        "expected": {
            "aad": scope.item_aad(suite=kem.SUITE_ID, sealed_key_version=key_version).hex(),
            "wrap_info": scope.wrap_info(suite=kem.SUITE_ID, wrap_key_version=key_version).hex(),
            "body": sealed.body.hex(),
            "key_commitment": sealed.key_commitment.hex(),
            "envelope": stored.to_bytes().hex(),
            "detached_body": body.hex() if body is not None else None,
            "envelope_length": len(stored.to_bytes()),
        },
    }


def main() -> None:
    vectors = [
        _vector(
            "short text, Ed25519 signer, inline",
            b"Customer 42 prefers email; do not call before 9am.",
            ItemScope("acme", "agent-memory", "customer-42-notes", 1, "text/plain; charset=utf-8"),
            1,
            SignatureAlgorithm.ED25519,
        ),
        _vector(
            "1 KiB binary, ML-DSA-65 signer, inline, key version 3",
            bytes(range(256)) * 4,
            ItemScope("tenant-b", "v.2", "blob:7", 12, "application/octet-stream"),
            3,
            SignatureAlgorithm.ML_DSA_65,
        ),
        _vector(
            "empty plaintext, Falcon-512 signer, detached body",
            b"",
            ItemScope("t", "v", "i", 1, "application/json"),
            1,
            SignatureAlgorithm.FALCON_512,
            detached=True,
        ),
    ]
    document = {
        "format": "RELIQUARY envelope v1 (docs/envelope.md)",
        "note": "Test-vector keys only. Signer secrets are not recorded: signatures are checked, not remade.",
        "vectors": vectors,
    }
    OUT.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
