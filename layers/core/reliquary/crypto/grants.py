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
import struct
from dataclasses import dataclass, field

from reliquary.crypto import aead, envelope, kem
from reliquary.crypto.codec import U16, Reader, text16
from reliquary.crypto.envelope import Envelope
from reliquary.crypto.kem import HybridPrivateKey, HybridPublicKey
from reliquary.crypto.scope import ItemScope, validate_id
from reliquary.crypto.signing import KEY_ID_LEN, KeyRing, SignatureAlgorithm, Signer
from reliquary.errors import InvalidEnvelopeError, InvalidRequestError, ReliquaryError

MAGIC = b"RQG1"
_SIGNING_DOMAIN = b"RELIQUARY grant v1\x00"
_FINGERPRINT_LEN = 32
_SEALED_KEY_LEN = kem.sealed_length(aead.DATA_KEY_LEN)
# Clock skew tolerated between the issuing service and the requester.
CLOCK_SKEW_SECONDS = 60
# The fixed-width runs of the format, each read in one struct call: magic .. signer_key_id, and
# requester_key_fingerprint .. signature_len (the sealed key has one valid length, checked on parse).
_HEAD = struct.Struct(f">4sHH{KEY_ID_LEN}s")
_IDS = struct.Struct(">HH")
_TAIL = struct.Struct(f">{_FINGERPRINT_LEN}sQQH{_SEALED_KEY_LEN}sH")
_TIMES = struct.Struct(">QQ")


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
    # Every byte the signature covers (after the domain tag), kept from issue or parse so that neither
    # signing, verifying nor to_bytes encodes the fields again. Unset on a Grant built otherwise (or by
    # dataclasses.replace): then encoded on first use.
    _signed: bytes = field(init=False, repr=False, compare=False)

    def _fields(self) -> bytes:
        """magic .. expires_at: the HPKE ``info`` of ``sealed_key``."""
        return _encode_fields(
            suite=self.suite,
            algorithm=self.signature_algorithm,
            signer_key_id=self.signer_key_id,
            request_id=self.request_id,
            scope=self.scope,
            fingerprint=self.requester_key_fingerprint,
            issued_at=self.issued_at,
            expires_at=self.expires_at,
        )

    def _signed_part(self) -> bytes:
        try:
            return self._signed
        except AttributeError:
            signed = self._fields() + U16.pack(len(self.sealed_key)) + self.sealed_key
            object.__setattr__(self, "_signed", signed)
            return signed

    def signed_message(self) -> bytes:
        """What the service signs: a domain tag and every byte of the grant before the signature."""
        return _SIGNING_DOMAIN + self._signed_part()

    def sealed_key_info(self) -> bytes:
        """The HPKE ``info`` the data key is sealed under: every field before ``sealed_key``."""
        signed = self._signed_part()
        return signed[: len(signed) - U16.size - len(self.sealed_key)]

    def to_bytes(self) -> bytes:
        return b"".join((self._signed_part(), U16.pack(len(self.signature)), self.signature))

    @classmethod
    def parse(cls, data: bytes) -> Grant:
        data = bytes(data)
        reader = Reader(data)
        magic, suite, wire_id, signer_key_id = reader.unpack(_HEAD)
        if magic != MAGIC or suite != kem.SUITE_ID:
            raise InvalidEnvelopeError
        try:
            algorithm = SignatureAlgorithm.from_wire_id(wire_id)
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
        fingerprint, issued_at, expires_at, sealed_key_len, sealed_key, signature_len = reader.unpack(_TAIL)
        if sealed_key_len != _SEALED_KEY_LEN or expires_at <= issued_at:
            raise InvalidEnvelopeError
        signed_end = reader.position - U16.size
        signature = reader.raw(signature_len)
        reader.finish()
        grant = cls(
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
        # The strict parser accepts exactly one encoding of these fields, so the received bytes are the
        # encoding: the signature is checked over them as they arrived.
        object.__setattr__(grant, "_signed", data[:signed_end])
        return grant


def _encode_fields(
    *,
    suite: int,
    algorithm: SignatureAlgorithm,
    signer_key_id: bytes,
    request_id: str,
    scope: ItemScope,
    fingerprint: bytes,
    issued_at: int,
    expires_at: int,
) -> bytes:
    return b"".join(
        (
            MAGIC,
            _IDS.pack(suite, algorithm.wire_id),
            signer_key_id,
            text16(request_id),
            # tenant_id, vault_id, item_id (texts) and item_version (u32): the scope's own encoding.
            scope.encoded_identity,
            text16(scope.content_type),
            fingerprint,
            _TIMES.pack(issued_at, expires_at),
        )
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
    algorithm, key_id = signer.algorithm, signer.key_id
    fingerprint = requester_public_key.fingerprint()
    expires_at = issued_at + ttl_seconds
    # Encoded once: the fields are the HPKE info, then (with the sealed key) the signed part.
    fields = _encode_fields(
        suite=kem.SUITE_ID,
        algorithm=algorithm,
        signer_key_id=key_id,
        request_id=request_id,
        scope=scope,
        fingerprint=fingerprint,
        issued_at=issued_at,
        expires_at=expires_at,
    )
    sealed_key = requester_public_key.seal(data_key, info=fields)
    signed = b"".join((fields, U16.pack(len(sealed_key)), sealed_key))
    grant = Grant(
        request_id=request_id,
        scope=scope,
        requester_key_fingerprint=fingerprint,
        issued_at=issued_at,
        expires_at=expires_at,
        signature_algorithm=algorithm,
        signer_key_id=key_id,
        sealed_key=sealed_key,
        signature=signer.sign(_SIGNING_DOMAIN + signed),
    )
    object.__setattr__(grant, "_signed", signed)
    return grant


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
            grant.signed_message(),
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
    data_key = requester_private_key.open(grant.sealed_key, info=grant.sealed_key_info())
    item = sealed_item if isinstance(sealed_item, Envelope) else Envelope.parse(sealed_item)
    # The envelope's item AAD is both what its signature covers and the body's associated data.
    aad = grant.scope.item_aad(suite=item.suite, sealed_key_version=item.sealed_key_version)
    envelope.verify(item, grant.scope, service_keys, aad=aad)
    return envelope.open_body(item, scope=grant.scope, data_key=data_key, aad=aad)
