"""Opening a grant on the client, offline: the requester's key pair and ``open_grant``.

A grant (format ``RQG1``) is an item's data key sealed by HPKE (ML-KEM-768 + X25519, HKDF-SHA256,
AES-256-GCM) to the requester's own public key and signed by the service; the item is a sealed envelope
(format ``RQE1``, docs/envelope.md). Both are parsed strictly, byte for byte as the service writes them.
``open_grant`` checks the service's signatures on both, the validity window, that the grant is sealed to
this requester and names this item, then opens the data key and decrypts the body. Every failure is the
one opaque ``InvalidGrantError``: which check failed is no help to a caller and some help to an attacker.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reliquary_sdk._verify import (
    KEY_ID_LEN,
    FalconUnavailableError,
    KeyRing,
    PublicKey,
    Reader,
    VerificationError,
    algorithm_for_wire_id,
    text16,
    u16,
    u32,
    u64,
)

__all__ = [
    "FalconUnavailableError",
    "InvalidGrantError",
    "KeyRing",
    "OpenedGrant",
    "PublicKey",
    "RequesterKey",
    "open_grant",
]

SUITE_ID = 0x0001  # HPKE(ML-KEM-768+X25519, HKDF-SHA256, AES-256-GCM) + an AES-256-GCM body
MLKEM_PUBLIC_LEN = 1184
MLKEM_SEED_LEN = 64
X25519_LEN = 32
PUBLIC_KEY_LEN = MLKEM_PUBLIC_LEN + X25519_LEN
PRIVATE_KEY_LEN = MLKEM_SEED_LEN + X25519_LEN
DATA_KEY_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16
COMMITMENT_LEN = 32
FINGERPRINT_LEN = 32
# Clock skew tolerated between the issuing service and the requester (the service's own figure).
CLOCK_SKEW_SECONDS = 60

_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_SEALED_KEY_LEN = hpke.KEM.MLKEM768_X25519.enc_length() + DATA_KEY_LEN + TAG_LEN
_GRANT_MAGIC = b"RQG1"
_ENVELOPE_MAGIC = b"RQE1"
_GRANT_DOMAIN = b"RELIQUARY grant v1\x00"
_ENVELOPE_DOMAIN = b"RELIQUARY envelope v1\x00"
_ITEM_DOMAIN = b"RELIQUARY item v1\x00"
_FINGERPRINT_DOMAIN = b"RELIQUARY hybrid key v1\x00"
_COMMITMENT_LABEL = b"RELIQUARY key commitment v1"
_BODY_INLINE = 0
_MAX_BODY = 2**40
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_CONTENT_TYPE = re.compile(r"[!-~][ -~]{0,126}")
_KEY_FILE_HEADER = "reliquary-requester-key-v1"


class InvalidGrantError(VerificationError):
    """The grant or the item does not open: forged, tampered, expired, for another key, item or request."""

    code = "invalid_grant"

    def __init__(self) -> None:
        super().__init__("the grant does not open")


class RequesterKey:
    """The requester's hybrid key pair (ML-KEM-768 + X25519). Grants are sealed to its public half.

    The private half leaves only through ``private_bytes()`` and ``save()`` (a 0600 file)."""

    __slots__ = ("_key", "_public", "_secret")

    def __init__(self, mlkem_key: mlkem.MLKEM768PrivateKey, x_key: x25519.X25519PrivateKey) -> None:
        self._key = hpke.MLKEM768X25519PrivateKey(mlkem_key, x_key)
        self._secret = mlkem_key.private_bytes_raw() + x_key.private_bytes_raw()
        self._public = mlkem_key.public_key().public_bytes_raw() + x_key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> RequesterKey:
        return cls(mlkem.MLKEM768PrivateKey.generate(), x25519.X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> RequesterKey:
        """From the 96 bytes of ``private_bytes()`` (the ML-KEM-768 seed, then the X25519 key)."""
        if not isinstance(data, bytes | bytearray) or len(data) != PRIVATE_KEY_LEN:
            raise ValueError(f"a requester private key is {PRIVATE_KEY_LEN} bytes")
        data = bytes(data)
        return cls(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(data[:MLKEM_SEED_LEN]),
            x25519.X25519PrivateKey.from_private_bytes(data[MLKEM_SEED_LEN:]),
        )

    def public_bytes(self) -> bytes:
        """The 1216-byte public key (ML-KEM-768 || X25519)."""
        return self._public

    def public_key_b64(self) -> str:
        """The public key as the API's ``requester_public_key`` wants it (standard base64)."""
        return base64.b64encode(self._public).decode("ascii")

    def fingerprint(self) -> bytes:
        """How a grant names the key it is sealed to."""
        return hashlib.sha256(_FINGERPRINT_DOMAIN + self._public).digest()

    def private_bytes(self) -> bytes:
        return self._secret

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the private key to ``path`` (mode 0600) atomically: a crash leaves the old file or new."""
        target = Path(path)
        body = f"{_KEY_FILE_HEADER}\n{base64.b64encode(self._secret).decode('ascii')}\n".encode("ascii")
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            Path(temp).replace(target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RequesterKey:
        lines = Path(path).read_text(encoding="ascii").splitlines()
        if len(lines) != 2 or lines[0] != _KEY_FILE_HEADER:
            raise ValueError("not a RELIQUARY requester key file")
        try:
            secret = base64.b64decode(lines[1], validate=True)
        except binascii.Error:
            raise ValueError("not a RELIQUARY requester key file") from None
        return cls.from_private_bytes(secret)

    def _open(self, sealed: bytes, info: bytes) -> bytes:
        try:
            return _SUITE.decrypt(sealed, self._key, info=info)
        except (InvalidTag, ValueError):
            raise InvalidGrantError from None

    def __repr__(self) -> str:
        return f"RequesterKey(fingerprint={self.fingerprint()[:8].hex()})"


@dataclass(frozen=True, slots=True)
class OpenedGrant:
    """What a grant names, once it has verified and opened."""

    request_id: str
    tenant_id: str
    vault_id: str
    item_id: str
    item_version: int
    content_type: str
    issued_at: int
    expires_at: int
    plaintext: bytes


@dataclass(frozen=True, slots=True)
class _Grant:
    signature_algorithm: str
    signer_key_id: bytes
    request_id: str
    tenant_id: str
    vault_id: str
    item_id: str
    item_version: int
    content_type: str
    fingerprint: bytes
    issued_at: int
    expires_at: int
    sealed_key: bytes
    signature: bytes
    fields: bytes  # every byte before sealed_key: the HPKE info
    signed: bytes  # every byte before the signature


def _ident(value: str) -> str:
    if _ID.fullmatch(value) is None:
        raise InvalidGrantError
    return value


def _parse_grant(data: bytes) -> _Grant:
    reader = Reader(data)
    reader.expect(_GRANT_MAGIC)
    if reader.u16() != SUITE_ID:
        raise InvalidGrantError
    algorithm = algorithm_for_wire_id(reader.u16())
    signer_key_id = reader.raw(KEY_ID_LEN)
    request_id = _ident(reader.text())
    tenant_id = _ident(reader.text())
    vault_id = _ident(reader.text())
    item_id = _ident(reader.text())
    item_version = reader.u32()
    content_type = reader.text()
    if item_version == 0 or _CONTENT_TYPE.fullmatch(content_type) is None:
        raise InvalidGrantError
    fingerprint = reader.raw(FINGERPRINT_LEN)
    issued_at = reader.u64()
    expires_at = reader.u64()
    fields_end = reader.position
    sealed_key = reader.bytes16()
    if len(sealed_key) != _SEALED_KEY_LEN or expires_at <= issued_at:
        raise InvalidGrantError
    signed_end = reader.position
    signature = reader.bytes16()
    reader.finish()
    return _Grant(
        signature_algorithm=algorithm,
        signer_key_id=signer_key_id,
        request_id=request_id,
        tenant_id=tenant_id,
        vault_id=vault_id,
        item_id=item_id,
        item_version=item_version,
        content_type=content_type,
        fingerprint=fingerprint,
        issued_at=issued_at,
        expires_at=expires_at,
        sealed_key=sealed_key,
        signature=signature,
        fields=data[:fields_end],
        signed=data[:signed_end],
    )


@dataclass(frozen=True, slots=True)
class _Envelope:
    signature_algorithm: str
    signer_key_id: bytes
    sealed_key_version: int
    nonce: bytes
    key_commitment: bytes
    body: memoryview
    signature: bytes
    header: bytes  # suite .. wrapped_key, as signed
    length_and_tag: bytes


def _parse_envelope(data: bytes) -> _Envelope:
    reader = Reader(data)
    reader.expect(_ENVELOPE_MAGIC)
    header_start = reader.position
    if reader.u16() != SUITE_ID:
        raise InvalidGrantError
    algorithm = algorithm_for_wire_id(reader.u16())
    signer_key_id = reader.raw(KEY_ID_LEN)
    sealed_key_version = reader.u32()
    wrap_key_version = reader.u32()
    if sealed_key_version == 0 or wrap_key_version < sealed_key_version:
        raise InvalidGrantError
    nonce = reader.raw(NONCE_LEN)
    key_commitment = reader.raw(COMMITMENT_LEN)
    if len(reader.bytes16()) != _SEALED_KEY_LEN:
        raise InvalidGrantError
    header_end = reader.position
    # A grant opens an item the requester holds in full: a detached envelope (no body) has nothing to open.
    if reader.u8() != _BODY_INLINE:
        raise InvalidGrantError
    body_length = reader.u64()
    if not TAG_LEN <= body_length <= _MAX_BODY:
        raise InvalidGrantError
    body_tag = reader.raw(TAG_LEN)
    body = reader.view(body_length)
    if not hmac.compare_digest(body[-TAG_LEN:], body_tag):
        raise InvalidGrantError
    signature = reader.bytes16()
    if not signature:
        raise InvalidGrantError
    reader.finish()
    return _Envelope(
        signature_algorithm=algorithm,
        signer_key_id=signer_key_id,
        sealed_key_version=sealed_key_version,
        nonce=nonce,
        key_commitment=key_commitment,
        body=body,
        signature=signature,
        header=data[header_start:header_end],
        length_and_tag=u64(body_length) + body_tag,
    )


def _item_aad(grant: _Grant, sealed_key_version: int) -> bytes:
    return b"".join(
        (
            _ITEM_DOMAIN,
            u16(SUITE_ID),
            text16(grant.tenant_id),
            text16(grant.vault_id),
            text16(grant.item_id),
            u32(grant.item_version),
            u32(sealed_key_version),
            text16(grant.content_type),
        )
    )


def _decode(value: bytes | str) -> bytes:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidGrantError from None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise InvalidGrantError


def open_grant(
    grant: bytes | str,
    item: bytes | str,
    *,
    requester_key: RequesterKey,
    service_keys: KeyRing,
    now: int | None = None,
    request_id: str | None = None,
    expected: tuple[str, str, str] | None = None,
) -> OpenedGrant:
    """Verify ``grant`` and the sealed ``item`` (bytes or standard base64) and decrypt the item.

    ``request_id`` and ``expected`` (tenant, vault, item) pin the grant to what this requester asked for,
    so a relay cannot hand over another of its live grants. ``now`` defaults to the clock. Every failure
    is ``InvalidGrantError``, except ``FalconUnavailableError`` for a Falcon-signed grant without the extra.
    """
    try:
        parsed = _parse_grant(_decode(grant))
        if request_id is not None and not hmac.compare_digest(
            parsed.request_id.encode(), request_id.encode()
        ):
            raise InvalidGrantError
        if expected is not None and (parsed.tenant_id, parsed.vault_id, parsed.item_id) != expected:
            raise InvalidGrantError
        service_keys.verify(
            parsed.signer_key_id, parsed.signature_algorithm, _GRANT_DOMAIN + parsed.signed, parsed.signature
        )
        moment = int(time.time()) if now is None else now
        if not parsed.issued_at - CLOCK_SKEW_SECONDS <= moment < parsed.expires_at:
            raise InvalidGrantError
        if not hmac.compare_digest(requester_key.fingerprint(), parsed.fingerprint):
            raise InvalidGrantError
        data_key = requester_key._open(parsed.sealed_key, parsed.fields)
        envelope = _parse_envelope(_decode(item))
        aad = _item_aad(parsed, envelope.sealed_key_version)
        service_keys.verify(
            envelope.signer_key_id,
            envelope.signature_algorithm,
            _ENVELOPE_DOMAIN + _ENVELOPE_MAGIC + envelope.header + envelope.length_and_tag + aad,
            envelope.signature,
        )
        commitment = hmac.digest(data_key, _COMMITMENT_LABEL, "sha256")
        if len(data_key) != DATA_KEY_LEN or not hmac.compare_digest(commitment, envelope.key_commitment):
            raise InvalidGrantError
        plaintext = AESGCM(data_key).decrypt(envelope.nonce, envelope.body, aad)
    except (VerificationError, InvalidTag):
        raise InvalidGrantError from None
    return OpenedGrant(
        request_id=parsed.request_id,
        tenant_id=parsed.tenant_id,
        vault_id=parsed.vault_id,
        item_id=parsed.item_id,
        item_version=parsed.item_version,
        content_type=parsed.content_type,
        issued_at=parsed.issued_at,
        expires_at=parsed.expires_at,
        plaintext=plaintext,
    )
