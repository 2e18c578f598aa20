"""Grants: an item's data key re-sealed to a requester's own hybrid public key, signed by the service.

Format v1 (big-endian, text fields u16-length-prefixed UTF-8):
```
magic "RQG1" | suite u16 | sig_alg u16 | signer_key_id 8 | request_id | tenant_id | vault_id | item_id
| item_version u32 | content_type | requester_key_fingerprint 32 | issued_at u64 | expires_at u64
| sealed_key_len u16 | sealed_key | signature_len u16 | signature
```
``sealed_key`` is HPKE to the requester's key with every field before it as ``info``; the signature
covers a domain tag and every byte before it. Only the holder of the requester's private key can open
the data key, and only the item named here, within the validity window.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace

from reliquary.crypto import aead, envelope, kem
from reliquary.crypto.codec import Reader, Writer
from reliquary.crypto.envelope import Envelope
from reliquary.crypto.kem import HybridPrivateKey, HybridPublicKey
from reliquary.crypto.scope import ItemScope, validate_id
from reliquary.crypto.signing import KEY_ID_LEN, KeyRing, SignatureAlgorithm, Signer
from reliquary.errors import InvalidEnvelopeError, InvalidRequestError, ReliquaryError

MAGIC = b"RQG1"
_SIGNING_DOMAIN = b"RELIQUARY grant v1\x00"
_FINGERPRINT_LEN = 32
# Clock skew tolerated between the issuing service and the requester.
CLOCK_SKEW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Grant:
    request_id: str
    scope: ItemScope
    requester_key_fingerprint: bytes
    issued_at: int
    expires_at: int
    signature_algorithm: SignatureAlgorithm
    signer_key_id: bytes
    sealed_key: bytes
    signature: bytes
    suite: int = kem.SUITE_ID

    def _fields(self) -> Writer:
        return (
            Writer()
            .raw(MAGIC)
            .u16(self.suite)
            .u16(self.signature_algorithm.wire_id)
            .raw(self.signer_key_id)
            .text(self.request_id)
            .text(self.scope.tenant_id)
            .text(self.scope.vault_id)
            .text(self.scope.item_id)
            .u32(self.scope.item_version)
            .text(self.scope.content_type)
            .raw(self.requester_key_fingerprint)
            .u64(self.issued_at)
            .u64(self.expires_at)
        )

    def _signed_part(self) -> bytes:
        return self._fields().bytes16(self.sealed_key).getvalue()

    def to_bytes(self) -> bytes:
        return Writer().raw(self._signed_part()).bytes16(self.signature).getvalue()

    @classmethod
    def parse(cls, data: bytes) -> Grant:
        reader = Reader(data)
        try:
            reader.expect(MAGIC)
            suite = reader.u16()
            if suite != kem.SUITE_ID:
                raise InvalidEnvelopeError
            algorithm = SignatureAlgorithm.from_wire_id(reader.u16())
            signer_key_id = reader.raw(KEY_ID_LEN)
            request_id = validate_id("request_id", reader.text())
            scope = ItemScope(
                tenant_id=reader.text(),
                vault_id=reader.text(),
                item_id=reader.text(),
                item_version=reader.u32(),
                content_type=reader.text(),
            )
        except ReliquaryError:
            raise InvalidEnvelopeError from None
        fingerprint = reader.raw(_FINGERPRINT_LEN)
        issued_at = reader.u64()
        expires_at = reader.u64()
        sealed_key = reader.bytes16()
        if len(sealed_key) != kem.sealed_length(aead.DATA_KEY_LEN) or expires_at <= issued_at:
            raise InvalidEnvelopeError
        signature = reader.bytes16()
        reader.finish()
        return cls(
            request_id=request_id,
            scope=scope,
            requester_key_fingerprint=fingerprint,
            issued_at=issued_at,
            expires_at=expires_at,
            signature_algorithm=algorithm,
            signer_key_id=signer_key_id,
            sealed_key=sealed_key,
            signature=signature,
            suite=suite,
        )


def issue(
    *,
    request_id: str,
    scope: ItemScope,
    data_key: bytes,
    requester_public_key: HybridPublicKey,
    issued_at: int,
    ttl_seconds: int,
    signer: Signer,
) -> Grant:
    validate_id("request_id", request_id)
    if ttl_seconds <= 0:
        raise InvalidRequestError("a grant needs a positive lifetime", field="ttl_seconds")
    unsealed = Grant(
        request_id=request_id,
        scope=scope,
        requester_key_fingerprint=requester_public_key.fingerprint(),
        issued_at=issued_at,
        expires_at=issued_at + ttl_seconds,
        signature_algorithm=signer.algorithm,
        signer_key_id=signer.key_id,
        sealed_key=b"",
        signature=b"",
    )
    sealed_key = requester_public_key.seal(data_key, info=unsealed._fields().getvalue())
    unsigned = replace(unsealed, sealed_key=sealed_key)
    return replace(unsigned, signature=signer.sign(_SIGNING_DOMAIN + unsigned._signed_part()))


def open_grant(
    grant_bytes: bytes,
    sealed_item: bytes | Envelope,
    *,
    requester_private_key: HybridPrivateKey,
    service_keys: KeyRing,
    now: int,
    request_id: str | None = None,
    expected: tuple[str, str, str] | None = None,
) -> bytes:
    """The requester's side: verify the grant and the envelope, then decrypt the item's plaintext.

    ``request_id`` and ``expected`` (tenant, vault, item) pin the grant to what the requester asked for,
    so a relay cannot hand it another of its live grants. Every failure (bad signature, expired, wrong
    requester key, wrong item, wrong request, tampered envelope) is the one opaque ``InvalidEnvelopeError``.
    """
    grant = Grant.parse(grant_bytes)
    if request_id is not None and not hmac.compare_digest(grant.request_id.encode(), request_id.encode()):
        raise InvalidEnvelopeError
    asked = (grant.scope.tenant_id, grant.scope.vault_id, grant.scope.item_id)
    if expected is not None and asked != expected:
        raise InvalidEnvelopeError
    try:
        service_keys.verify(
            grant.signer_key_id,
            grant.signature_algorithm,
            _SIGNING_DOMAIN + grant._signed_part(),
            grant.signature,
        )
    except ReliquaryError:
        raise InvalidEnvelopeError from None
    if not grant.issued_at - CLOCK_SKEW_SECONDS <= now < grant.expires_at:
        raise InvalidEnvelopeError
    if not hmac.compare_digest(
        requester_private_key.public_key().fingerprint(), grant.requester_key_fingerprint
    ):
        raise InvalidEnvelopeError
    data_key = requester_private_key.open(grant.sealed_key, info=grant._fields().getvalue())
    item = sealed_item if isinstance(sealed_item, Envelope) else Envelope.parse(sealed_item)
    envelope.verify(item, grant.scope, service_keys)
    return envelope.open_body(item, scope=grant.scope, data_key=data_key)
