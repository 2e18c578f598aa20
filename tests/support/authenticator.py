"""A software WebAuthn authenticator and browser, built on fido2's data classes: it answers registration
and authentication options as a browser's ``PublicKeyCredential.toJSON()`` would (RegistrationResponseJSON,
AuthenticationResponseJSON, binary members as base64url without padding).

Attestation "none" or "packed" self attestation (the credential key signs authData || clientDataHash);
ES256 or EdDSA credentials. Knobs for what tests must see refused: user verification off, a chosen sign
counter, another origin, another RP id, a cross-origin ceremony.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from fido2.cose import ES256, CoseKey, EdDSA
from fido2.webauthn import (
    AttestationObject,
    AttestedCredentialData,
    AuthenticatorData,
    CollectedClientData,
)

ORIGIN = "http://localhost:3000"
RP_ID = "localhost"
AAGUID = bytes.fromhex("6e6f6e652d736f667477617265000001")  # a fixed, made-up authenticator model
FLAG = AuthenticatorData.FLAG
Algorithm = Literal["ES256", "EdDSA"]
Attestation = Literal["none", "packed"]


if TYPE_CHECKING:
    from reliquary.identity.models import Person, StoredCredential


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftCredential:
    """One credential the authenticator holds: its id, private key, user handle and counter."""

    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def cose_public_key(self) -> CoseKey:
        key: CoseKey
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            key = ES256.from_cryptography_key(self.private_key.public_key())  # type: ignore[no-untyped-call]
        else:
            key = EdDSA.from_cryptography_key(self.private_key.public_key())  # type: ignore[no-untyped-call]
        return key

    @property
    def cose_algorithm(self) -> int:
        return -7 if isinstance(self.private_key, ec.EllipticCurvePrivateKey) else -8

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))
        return self.private_key.sign(data)


def _challenge(options: Mapping[str, Any]) -> bytes:
    return b64url_decode(str(options["challenge"]))


@dataclass
class SoftAuthenticator:
    """A passkey provider (authenticator + browser). ``origin`` is the page the browser says it is on;
    ``rp_id`` defaults to the options' (a knob to sign for another RP)."""

    origin: str = ORIGIN
    algorithm: Algorithm = "ES256"
    counts: bool = True  # False: an authenticator that keeps no counter (reports 0), as synced passkeys do
    credentials: dict[str, SoftCredential] = field(default_factory=dict)

    def _new_key(self) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
        if self.algorithm == "ES256":
            return ec.generate_private_key(ec.SECP256R1())
        return ed25519.Ed25519PrivateKey.generate()

    def register(
        self,
        options: Mapping[str, Any],
        *,
        attestation: Attestation = "none",
        user_verified: bool = True,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: bytes | None = None,
        ceremony: str = "webauthn.create",
        cross_origin: bool = False,
    ) -> dict[str, Any]:
        """RegistrationResponseJSON for PublicKeyCredentialCreationOptionsJSON ``options``."""
        rp = rp_id or str(options["rp"]["id"])
        credential = SoftCredential(
            credential_id=secrets.token_bytes(32),
            private_key=self._new_key(),
            rp_id=rp,
            user_handle=b64url_decode(str(options["user"]["id"])),
        )
        client_data = CollectedClientData.create(
            type=ceremony,
            challenge=_challenge(options) if challenge is None else challenge,
            origin=origin or self.origin,
            cross_origin=cross_origin,
        )
        flags = FLAG(FLAG.UP | FLAG.AT | (FLAG.UV if user_verified else 0))
        auth_data = AuthenticatorData.create(
            hashlib.sha256(rp.encode()).digest(),
            flags,
            credential.sign_count,
            AttestedCredentialData.create(AAGUID, credential.credential_id, credential.cose_public_key()),
        )
        statement: dict[str, Any] = {}
        if attestation == "packed":  # self attestation: no x5c, signed by the credential key itself
            statement = {
                "alg": credential.cose_algorithm,
                "sig": credential.sign(bytes(auth_data) + client_data.hash),
            }
        attestation_object = AttestationObject.create(attestation, auth_data, statement)
        self.credentials[credential.id] = credential
        return {
            "id": credential.id,
            "rawId": credential.id,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(bytes(client_data)),
                "attestationObject": b64url(bytes(attestation_object)),
                "transports": ["internal", "hybrid"],
            },
        }

    def authenticate(
        self,
        options: Mapping[str, Any],
        *,
        credential_id: str | None = None,
        user_verified: bool = True,
        user_present: bool = True,
        sign_count: int | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: bytes | None = None,
        ceremony: str = "webauthn.get",
        cross_origin: bool = False,
        user_handle: bool = True,
    ) -> dict[str, Any]:
        """AuthenticationResponseJSON for PublicKeyCredentialRequestOptionsJSON ``options``: with the
        credential named, or the one allowCredentials names, or (discoverable) the only one held."""
        credential = self.credentials[credential_id or self._choose(options)]
        if sign_count is not None:
            credential.sign_count = sign_count
        elif self.counts:
            credential.sign_count += 1
        rp = rp_id or str(options.get("rpId") or credential.rp_id)
        client_data = CollectedClientData.create(
            type=ceremony,
            challenge=_challenge(options) if challenge is None else challenge,
            origin=origin or self.origin,
            cross_origin=cross_origin,
        )
        flags = FLAG((FLAG.UP if user_present else 0) | (FLAG.UV if user_verified else 0))
        auth_data = AuthenticatorData.create(
            hashlib.sha256(rp.encode()).digest(), flags, credential.sign_count
        )
        signature = credential.sign(bytes(auth_data) + client_data.hash)
        return {
            "id": credential.id,
            "rawId": credential.id,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(bytes(client_data)),
                "authenticatorData": b64url(bytes(auth_data)),
                "signature": b64url(signature),
                "userHandle": b64url(credential.user_handle) if user_handle else None,
            },
        }

    def _choose(self, options: Mapping[str, Any]) -> str:
        allowed = [str(c["id"]) for c in options.get("allowCredentials") or []]
        held = [c for c in allowed if c in self.credentials] if allowed else list(self.credentials)
        if len(held) != 1:
            raise LookupError("the authenticator holds no single matching credential")
        return held[0]


def register_passkey(
    person: Person, *, now: int, authenticator: SoftAuthenticator | None = None, label: str = "laptop"
) -> tuple[SoftAuthenticator, StoredCredential]:
    """``person``'s passkey on ``authenticator`` (a new one by default), registered and verified as the
    service does it: the authenticator and the stored credential."""
    from reliquary.identity import passkeys

    device = authenticator or SoftAuthenticator()
    challenge = passkeys.new_challenge()
    options = passkeys.registration_options(
        rp_id=RP_ID, rp_name="RELIQUARY", person=person, challenge=challenge
    )
    credential = passkeys.verify_registration(
        device.register(options),
        expected_challenge=challenge,
        person=person,
        rp_id=RP_ID,
        origins=(device.origin,),
        label=label,
        now=now,
    )
    return device, credential
