"""Known-answer vectors for envelope v1 (tests/vectors/envelope_v1.json, documented in docs/envelope.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reliquary.crypto import envelope, kem
from reliquary.crypto.envelope import Envelope, VaultKey
from reliquary.crypto.kem import HybridPrivateKey
from reliquary.crypto.scope import ItemScope
from reliquary.crypto.signing import KeyRing, SignatureAlgorithm, SigningKey, VerifyingKey
from reliquary.errors import InvalidEnvelopeError

VECTORS: list[dict[str, Any]] = json.loads(Path(__file__).with_name("envelope_v1.json").read_text())[
    "vectors"
]


def _scope(vector: dict[str, Any]) -> ItemScope:
    return ItemScope(**vector["scope"])


def _keys(vector: dict[str, Any]) -> tuple[VaultKey, KeyRing]:
    vault_key = HybridPrivateKey.from_private_bytes(bytes.fromhex(vector["vault_private_key"]))
    verifier = VerifyingKey(
        SignatureAlgorithm(vector["signer"]["algorithm"]), bytes.fromhex(vector["signer"]["public_key"])
    )
    assert verifier.key_id.hex() == vector["signer"]["key_id"]
    return VaultKey(vector["key_version"], vault_key), KeyRing([verifier])


def _stored(vector: dict[str, Any]) -> Envelope:
    parsed = Envelope.parse(bytes.fromhex(vector["expected"]["envelope"]))
    detached = vector["expected"]["detached_body"]
    return parsed if detached is None else parsed.with_body(bytes.fromhex(detached))


def _ids() -> Iterator[str]:
    return (v["desc"] for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=list(_ids()))
def test_vector_opens_to_its_plaintext(vector: dict[str, Any]) -> None:
    vault_key, keyring = _keys(vector)
    opened = envelope.open_envelope(
        _stored(vector), scope=_scope(vector), vault_key=vault_key, keyring=keyring
    )
    assert opened == bytes.fromhex(vector["plaintext"])


@pytest.mark.parametrize("vector", VECTORS, ids=list(_ids()))
def test_vector_fields_parse_as_recorded(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["expected"]["envelope"])
    parsed = Envelope.parse(raw)
    assert len(raw) == vector["expected"]["envelope_length"]
    assert raw[:4] == b"RQE1"
    assert parsed.suite == kem.SUITE_ID
    assert parsed.signature_algorithm.value == vector["signer"]["algorithm"]
    assert parsed.signer_key_id.hex() == vector["signer"]["key_id"]
    assert parsed.sealed_key_version == parsed.wrap_key_version == vector["key_version"]
    assert parsed.nonce.hex() == vector["randomness"]["nonce"]
    assert parsed.key_commitment.hex() == vector["expected"]["key_commitment"]
    assert parsed.body_length == len(bytes.fromhex(vector["expected"]["body"]))
    assert parsed.detached == (vector["expected"]["detached_body"] is not None)
    assert parsed.to_bytes() == raw  # parse and serialise are exact inverses


@pytest.mark.parametrize("vector", VECTORS, ids=list(_ids()))
def test_sealing_with_injected_randomness_reproduces_the_deterministic_parts(vector: dict[str, Any]) -> None:
    """HPKE randomises inside the library; everything the injected data key and nonce fix must match."""
    scope = _scope(vector)
    vault_key, _ = _keys(vector)
    drawn = iter(
        [bytes.fromhex(vector["randomness"]["data_key"]), bytes.fromhex(vector["randomness"]["nonce"])]
    )
    signer = SigningKey.generate(SignatureAlgorithm(vector["signer"]["algorithm"]))
    sealed = envelope.seal(
        bytes.fromhex(vector["plaintext"]),
        scope=scope,
        vault_public_key=vault_key.private_key.public_key(),
        key_version=vector["key_version"],
        signer=signer,
        randbytes=lambda n: next(drawn)[:n],
    )
    expected = vector["expected"]
    assert (
        scope.item_aad(suite=kem.SUITE_ID, sealed_key_version=vector["key_version"]).hex() == expected["aad"]
    )
    assert (
        scope.wrap_info(suite=kem.SUITE_ID, wrap_key_version=vector["key_version"]).hex()
        == expected["wrap_info"]
    )
    assert sealed.body is not None
    assert sealed.body.hex() == expected["body"]
    assert sealed.key_commitment.hex() == expected["key_commitment"]
    # The wrapped key differs (fresh encapsulation) but unwraps to the injected data key.
    data_key = envelope.unwrap_data_key(
        sealed, scope=scope, vault_key=vault_key, keyring=KeyRing([signer.verifying_key])
    )
    assert data_key.hex() == vector["randomness"]["data_key"]


@pytest.mark.parametrize("vector", VECTORS, ids=list(_ids()))
def test_vector_under_every_changed_scope_field_is_refused(vector: dict[str, Any]) -> None:
    vault_key, keyring = _keys(vector)
    stored = _stored(vector)
    scope = _scope(vector)
    for changed in (
        replace(scope, tenant_id=scope.tenant_id + "x"),
        replace(scope, vault_id=scope.vault_id + "x"),
        replace(scope, item_id=scope.item_id + "x"),
        replace(scope, item_version=scope.item_version + 1),
        replace(scope, content_type="text/html"),
    ):
        with pytest.raises(InvalidEnvelopeError):
            envelope.open_envelope(stored, scope=changed, vault_key=vault_key, keyring=keyring)


@pytest.mark.parametrize("vector", VECTORS, ids=list(_ids()))
def test_vector_with_wrong_key_version_or_key_is_refused(vector: dict[str, Any]) -> None:
    vault_key, keyring = _keys(vector)
    stored = _stored(vector)
    with pytest.raises(InvalidEnvelopeError):
        envelope.open_envelope(
            stored,
            scope=_scope(vector),
            vault_key=VaultKey(vault_key.version + 1, vault_key.private_key),
            keyring=keyring,
        )
    with pytest.raises(InvalidEnvelopeError):
        envelope.open_envelope(
            stored,
            scope=_scope(vector),
            vault_key=VaultKey(vault_key.version, HybridPrivateKey.generate()),
            keyring=keyring,
        )
    with pytest.raises(InvalidEnvelopeError):
        envelope.open_envelope(stored, scope=_scope(vector), vault_key=vault_key, keyring=KeyRing())
