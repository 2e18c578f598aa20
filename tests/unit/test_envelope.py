"""Envelope v1: strict parsing, one opaque error for every tamper, detach/attach, rewrap, grants."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace

import pytest

from reliquary.crypto import envelope, grants
from reliquary.crypto.envelope import Envelope, VaultKey
from reliquary.crypto.kem import HybridPrivateKey, HybridPublicKey
from reliquary.crypto.scope import ItemScope
from reliquary.crypto.signing import KeyRing, SignatureAlgorithm, SigningKey
from reliquary.errors import InvalidEnvelopeError, InvalidRequestError

SCOPE = ItemScope("acme", "agent-memory", "notes-1", 1, "text/plain")
PLAINTEXT = b"the launch code is in the blue folder"


@pytest.fixture(scope="module")
def signer() -> SigningKey:
    return SigningKey.generate(SignatureAlgorithm.ED25519)


@pytest.fixture(scope="module")
def vault_key() -> VaultKey:
    return VaultKey(1, HybridPrivateKey.generate())


def _seal(signer: SigningKey, vault_key: VaultKey, plaintext: bytes = PLAINTEXT) -> Envelope:
    return envelope.seal(
        plaintext,
        scope=SCOPE,
        vault_public_key=vault_key.private_key.public_key(),
        key_version=1,
        signer=signer,
    )


def test_round_trip_and_fresh_randomness(signer: SigningKey, vault_key: VaultKey) -> None:
    first, second = _seal(signer, vault_key), _seal(signer, vault_key)
    assert first.nonce != second.nonce
    assert first.body != second.body
    ring = KeyRing([signer.verifying_key])
    for sealed in (first, second):
        parsed = Envelope.parse(sealed.to_bytes())
        assert envelope.open_envelope(parsed, scope=SCOPE, vault_key=vault_key, keyring=ring) == PLAINTEXT


@pytest.mark.parametrize("algorithm", list(SignatureAlgorithm))
def test_every_single_byte_flip_is_refused_with_one_opaque_error(
    algorithm: SignatureAlgorithm, vault_key: VaultKey
) -> None:
    signer = SigningKey.generate(algorithm)
    ring = KeyRing([signer.verifying_key])
    raw = _seal(signer, vault_key, b"x" * 64).to_bytes()
    messages = set()
    for position in range(len(raw)):
        tampered = bytearray(raw)
        tampered[position] ^= 0x01 << (position % 8)
        with pytest.raises(InvalidEnvelopeError) as caught:
            envelope.open_envelope(
                Envelope.parse(bytes(tampered)), scope=SCOPE, vault_key=vault_key, keyring=ring
            )
        messages.add(str(caught.value))
    assert len(messages) == 1  # nothing tells which check failed


def test_truncation_and_extension_are_refused(signer: SigningKey, vault_key: VaultKey) -> None:
    raw = _seal(signer, vault_key).to_bytes()
    for cut in range(len(raw)):
        with pytest.raises(InvalidEnvelopeError):
            Envelope.parse(raw[:cut])
    with pytest.raises(InvalidEnvelopeError):
        Envelope.parse(raw + b"\x00")


def test_wrong_scope_refused_in_every_field(signer: SigningKey, vault_key: VaultKey) -> None:
    sealed = _seal(signer, vault_key)
    ring = KeyRing([signer.verifying_key])
    for other in (
        replace(SCOPE, tenant_id="other"),
        replace(SCOPE, vault_id="other"),
        replace(SCOPE, item_id="other"),
        replace(SCOPE, item_version=2),
        replace(SCOPE, content_type="text/html"),
    ):
        with pytest.raises(InvalidEnvelopeError):
            envelope.open_envelope(sealed, scope=other, vault_key=vault_key, keyring=ring)


def test_unsigned_envelope_from_anyone_with_the_public_key_is_refused(vault_key: VaultKey) -> None:
    """Anyone can encrypt to a vault's public key; only the service's signature makes it an envelope."""
    service = SigningKey.generate(SignatureAlgorithm.ML_DSA_65)
    attacker = SigningKey.generate(SignatureAlgorithm.ML_DSA_65)
    forged = _seal(attacker, vault_key, b"planted memory")
    with pytest.raises(InvalidEnvelopeError):
        envelope.open_envelope(
            forged, scope=SCOPE, vault_key=vault_key, keyring=KeyRing([service.verifying_key])
        )
    # Re-labelling the forgery with the service's key id does not help either.
    relabelled = replace(forged, signer_key_id=service.key_id)
    with pytest.raises(InvalidEnvelopeError):
        envelope.open_envelope(
            relabelled, scope=SCOPE, vault_key=vault_key, keyring=KeyRing([service.verifying_key])
        )


def test_swapped_wrapped_key_is_refused(signer: SigningKey, vault_key: VaultKey) -> None:
    """Another envelope's wrapped key (a valid wrap to the same vault key) does not fit this body."""
    a, b = _seal(signer, vault_key), _seal(signer, vault_key, b"other")
    swapped = replace(a, wrapped_key=b.wrapped_key)
    with pytest.raises(InvalidEnvelopeError):
        envelope.open_envelope(
            swapped, scope=SCOPE, vault_key=vault_key, keyring=KeyRing([signer.verifying_key])
        )


def test_key_commitment_is_checked_even_with_a_data_key_in_hand(
    signer: SigningKey, vault_key: VaultKey
) -> None:
    sealed = _seal(signer, vault_key)
    with pytest.raises(InvalidEnvelopeError):
        envelope.open_body(sealed, scope=SCOPE, data_key=os.urandom(32))


def test_detached_body_round_trip_and_substitution(signer: SigningKey, vault_key: VaultKey) -> None:
    sealed = _seal(signer, vault_key, b"y" * 5000)
    detached, body = sealed.without_body()
    assert detached.detached
    assert len(detached.to_bytes()) < len(sealed.to_bytes()) - 4900
    with pytest.raises(ValueError, match="already detached"):
        detached.without_body()
    reattached = Envelope.parse(detached.to_bytes()).with_body(body)
    ring = KeyRing([signer.verifying_key])
    assert envelope.open_envelope(reattached, scope=SCOPE, vault_key=vault_key, keyring=ring) == b"y" * 5000
    with pytest.raises(InvalidEnvelopeError):
        detached.with_body(body[:-1])
    other_body = _seal(signer, vault_key, b"z" * 5000).body
    assert other_body is not None
    with pytest.raises(InvalidEnvelopeError):
        detached.with_body(other_body)
    with pytest.raises(InvalidEnvelopeError):  # a detached envelope has nothing to decrypt
        envelope.open_envelope(detached, scope=SCOPE, vault_key=vault_key, keyring=ring)


def test_rewrap_keeps_the_body_and_moves_the_key_version(signer: SigningKey, vault_key: VaultKey) -> None:
    sealed = _seal(signer, vault_key)
    new_key = VaultKey(2, HybridPrivateKey.generate())
    ring = KeyRing([signer.verifying_key])
    moved = envelope.rewrap(
        sealed,
        scope=SCOPE,
        old_key=vault_key,
        new_public_key=new_key.private_key.public_key(),
        new_key_version=2,
        keyring=ring,
        signer=signer,
    )
    assert moved.body == sealed.body
    assert moved.sealed_key_version == 1
    assert moved.wrap_key_version == 2
    assert envelope.open_envelope(moved, scope=SCOPE, vault_key=new_key, keyring=ring) == PLAINTEXT
    with pytest.raises(InvalidEnvelopeError):  # the old key no longer opens it
        envelope.open_envelope(moved, scope=SCOPE, vault_key=vault_key, keyring=ring)
    with pytest.raises(ValueError, match="newer"):
        envelope.rewrap(
            moved,
            scope=SCOPE,
            old_key=new_key,
            new_public_key=vault_key.private_key.public_key(),
            new_key_version=1,
            keyring=ring,
            signer=signer,
        )


def test_parser_refuses_inconsistent_key_versions(signer: SigningKey, vault_key: VaultKey) -> None:
    sealed = _seal(signer, vault_key)
    for sealed_version, wrap_version in ((0, 1), (2, 1)):
        bad = replace(sealed, sealed_key_version=sealed_version, wrap_key_version=wrap_version)
        with pytest.raises(InvalidEnvelopeError):
            Envelope.parse(bad.to_bytes())


# --- grants ---------------------------------------------------------------------------------------
def _grant(
    signer: SigningKey, vault_key: VaultKey, requester: HybridPrivateKey, now: int = 1_000
) -> tuple[bytes, Envelope]:
    sealed = _seal(signer, vault_key)
    data_key = envelope.unwrap_data_key(
        sealed, scope=SCOPE, vault_key=vault_key, keyring=KeyRing([signer.verifying_key])
    )
    issued = grants.issue(
        request_id="req-1",
        scope=SCOPE,
        data_key=data_key,
        requester_public_key=requester.public_key(),
        issued_at=now,
        ttl_seconds=300,
        signer=signer,
    )
    return issued.to_bytes(), sealed


def test_grant_opens_only_for_its_requester(signer: SigningKey, vault_key: VaultKey) -> None:
    requester = HybridPrivateKey.generate()
    grant, sealed = _grant(signer, vault_key, requester)
    ring = KeyRing([signer.verifying_key])
    assert (
        grants.open_grant(
            grant, sealed.to_bytes(), requester_private_key=requester, service_keys=ring, now=1_010
        )
        == PLAINTEXT
    )
    with pytest.raises(InvalidEnvelopeError):
        grants.open_grant(
            grant, sealed, requester_private_key=HybridPrivateKey.generate(), service_keys=ring, now=1_010
        )


def test_grant_window_and_signer(signer: SigningKey, vault_key: VaultKey) -> None:
    requester = HybridPrivateKey.generate()
    grant, sealed = _grant(signer, vault_key, requester, now=1_000)
    ring = KeyRing([signer.verifying_key])
    for now in (1_300, 5_000, 1_000 - grants.CLOCK_SKEW_SECONDS - 1):
        with pytest.raises(InvalidEnvelopeError):
            grants.open_grant(grant, sealed, requester_private_key=requester, service_keys=ring, now=now)
    with pytest.raises(InvalidEnvelopeError):
        grants.open_grant(grant, sealed, requester_private_key=requester, service_keys=KeyRing(), now=1_010)


def test_grant_for_another_item_does_not_open_this_envelope(signer: SigningKey, vault_key: VaultKey) -> None:
    requester = HybridPrivateKey.generate()
    grant, _ = _grant(signer, vault_key, requester)
    other = _seal(signer, vault_key, b"another item's text")
    with pytest.raises(InvalidEnvelopeError):
        grants.open_grant(
            grant,
            other,
            requester_private_key=requester,
            service_keys=KeyRing([signer.verifying_key]),
            now=1_010,
        )


def test_every_byte_flip_of_a_grant_is_refused(signer: SigningKey, vault_key: VaultKey) -> None:
    requester = HybridPrivateKey.generate()
    grant, sealed = _grant(signer, vault_key, requester)
    ring = KeyRing([signer.verifying_key])
    for position in range(len(grant)):
        tampered = bytearray(grant)
        tampered[position] ^= 0x80
        with pytest.raises(InvalidEnvelopeError):
            grants.open_grant(
                bytes(tampered), sealed, requester_private_key=requester, service_keys=ring, now=1_010
            )
    with pytest.raises(InvalidEnvelopeError):
        grants.open_grant(grant[:-1], sealed, requester_private_key=requester, service_keys=ring, now=1_010)


def test_grant_issue_validates_its_inputs(signer: SigningKey) -> None:
    requester = HybridPrivateKey.generate().public_key()
    with pytest.raises(InvalidRequestError):
        grants.issue(
            request_id="bad#id",
            scope=SCOPE,
            data_key=b"k" * 32,
            requester_public_key=requester,
            issued_at=0,
            ttl_seconds=60,
            signer=signer,
        )
    with pytest.raises(InvalidRequestError):
        grants.issue(
            request_id="ok",
            scope=SCOPE,
            data_key=b"k" * 32,
            requester_public_key=requester,
            issued_at=0,
            ttl_seconds=0,
            signer=signer,
        )


def test_grant_is_pinned_to_the_request_and_item_the_requester_asked_for(
    signer: SigningKey, vault_key: VaultKey
) -> None:
    requester = HybridPrivateKey.generate()
    grant, sealed = _grant(signer, vault_key, requester)
    ring = KeyRing([signer.verifying_key])

    def open_as(request_id: str, expected: tuple[str, str, str]) -> bytes:
        return grants.open_grant(
            grant,
            sealed,
            requester_private_key=requester,
            service_keys=ring,
            now=1_010,
            request_id=request_id,
            expected=expected,
        )

    item = (SCOPE.tenant_id, SCOPE.vault_id, SCOPE.item_id)
    assert open_as("req-1", item) == PLAINTEXT
    with pytest.raises(InvalidEnvelopeError):
        open_as("req-2", item)
    with pytest.raises(InvalidEnvelopeError):
        open_as("req-1", (SCOPE.tenant_id, SCOPE.vault_id, "another-item"))


# --- the encodings are made once and stay canonical -----------------------------------------------------
def test_parsed_envelope_signs_and_serialises_exactly_what_was_sealed(
    signer: SigningKey, vault_key: VaultKey
) -> None:
    sealed = _seal(signer, vault_key)
    raw = sealed.to_bytes()
    parsed = Envelope.parse(raw)
    assert parsed.to_bytes() == raw
    assert parsed.signed_message(SCOPE) == sealed.signed_message(SCOPE)
    signer.verifying_key.verify(sealed.signed_message(SCOPE), sealed.signature)
    detached, _ = sealed.without_body()
    assert Envelope.parse(detached.to_bytes()).to_bytes() == detached.to_bytes()


def test_issued_grant_is_signed_and_sealed_over_its_own_encoding(
    signer: SigningKey, vault_key: VaultKey
) -> None:
    requester = HybridPrivateKey.generate()
    raw, _ = _grant(signer, vault_key, requester)
    parsed = grants.Grant.parse(raw)
    assert parsed.to_bytes() == raw
    signer.verifying_key.verify(parsed.signed_message(), parsed.signature)
    # The sealed key opens under the fields it was sealed with, and under nothing shorter.
    info = parsed.sealed_key_info()
    assert len(requester.open(parsed.sealed_key, info=info)) == 32
    with pytest.raises(InvalidEnvelopeError):
        requester.open(parsed.sealed_key, info=info[:-1])


def test_a_grant_changed_after_issue_is_encoded_afresh_and_refused(
    signer: SigningKey, vault_key: VaultKey
) -> None:
    """The encoding kept from issue or parse never outlives a change: a replaced field is what the
    bytes carry, and the old signature does not cover it."""
    requester = HybridPrivateKey.generate()
    raw, sealed = _grant(signer, vault_key, requester)
    extended = replace(grants.Grant.parse(raw), expires_at=99_999)
    extended_raw = extended.to_bytes()
    assert extended_raw != raw
    assert grants.Grant.parse(extended_raw).expires_at == 99_999
    with pytest.raises(InvalidEnvelopeError):
        grants.open_grant(
            extended_raw,
            sealed,
            requester_private_key=requester,
            service_keys=KeyRing([signer.verifying_key]),
            now=1_010,
        )


def test_grant_text_fields_must_be_utf8(signer: SigningKey, vault_key: VaultKey) -> None:
    requester = HybridPrivateKey.generate()
    raw, _ = _grant(signer, vault_key, requester)
    position = raw.index(b"req-1")
    tampered = raw[:position] + b"\xff" + raw[position + 1 :]
    with pytest.raises(InvalidEnvelopeError):
        grants.Grant.parse(tampered)


def test_requester_fingerprint_names_the_key_bytes() -> None:
    public = HybridPrivateKey.generate().public_key()
    again = HybridPublicKey.from_bytes(public.to_bytes())
    expected = hashlib.sha256(b"RELIQUARY hybrid key v1\x00" + public.to_bytes()).digest()
    assert public.fingerprint() == again.fingerprint() == expected
    assert public.fingerprint() == expected  # computed once, the same thereafter
    assert HybridPrivateKey.generate().public_key().fingerprint() != expected
