"""WebAuthn passkeys, pure: ceremony options, and verification of what the browser sends back.

py_webauthn does the cryptography (COSE keys, attestation statements, the assertion signature) and is
imported inside the functions that need it, off the API's cold path. Before it sees a response, this
module parses it strictly (JSON objects of the expected shape, canonical base64url, bounded sizes) and
checks the ceremony itself: client data type, challenge (constant time), origin, RP id hash, user
presence and verification, the sign counter. py_webauthn then checks everything again with the
signature or attestation, so each check holds twice and a refusal names the check that failed.

Every refusal is one ``PasskeyError`` ("the passkey response did not verify") whose ``check`` is a fixed
word: malformed, type, challenge, origin, rp_id, user_presence, user_verification, sign_count,
credential, user_handle, algorithm, attestation, signature. Nothing of the caller's input is echoed.

Responses are the browser's JSON (``PublicKeyCredential.toJSON()``: RegistrationResponseJSON and
AuthenticationResponseJSON), binary members as base64url without padding.
"""

# ruff: noqa: PLC0415  (py_webauthn and its cbor2/asn1 imports stay off the API's cold path)
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from reliquary.errors import PasskeyError
from reliquary.identity.models import (
    Challenge,
    Person,
    StoredCredential,
    is_credential_id,
    validate_name,
)
from reliquary.jcs import canonicalize

__all__ = [
    "CHALLENGE_BYTES",
    "Person",
    "StoredCredential",
    "VerifiedAssertion",
    "assertion_sha256",
    "authentication_options",
    "b64url",
    "b64url_decode",
    "credential_id_of",
    "new_challenge",
    "registration_options",
    "verify_assertion",
    "verify_registration",
    "verify_sign_in",
]

CHALLENGE_BYTES = 32
# COSE algorithm ids accepted for a credential: ES256, EdDSA, RS256 (WebAuthn's recommended set).
ALGORITHMS = (-7, -8, -257)
KNOWN_TRANSPORTS = frozenset({"usb", "nfc", "ble", "smart-card", "hybrid", "internal", "cable"})
DEFAULT_LABEL = "passkey"
# Far above what browsers send; a response past these is refused before any parsing.
MAX_RESPONSE_JSON = 64 * 1024
MAX_CLIENT_DATA = 8 * 1024
MAX_AUTHENTICATOR_DATA = 4 * 1024
MAX_ATTESTATION_OBJECT = 32 * 1024
MAX_SIGNATURE = 1024
MAX_USER_HANDLE = 64
MAX_CREDENTIAL_ID = 1023
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_AUTH_DATA_HEADER = 37  # rpIdHash (32) || flags (1) || signCount (4)
_FLAG_UP, _FLAG_UV, _FLAG_AT = 0x01, 0x04, 0x40


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    """A verified assertion: the credential it used (base64url), the counter it reported (the caller
    advances the stored counter from ``credential.sign_count`` to this with a conditional write), and
    ``assertion_sha256``, what an approval attestation names."""

    credential_id: str
    sign_count: int
    assertion_sha256: str


def _refuse(check: str) -> NoReturn:
    raise PasskeyError(check)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: object, *, max_bytes: int, min_bytes: int = 0) -> bytes:
    """Canonical base64url without padding, of ``min_bytes`` to ``max_bytes`` bytes; PasskeyError
    ("malformed") otherwise."""
    if (
        not isinstance(text, str)
        or len(text) > (max_bytes * 4 + 2) // 3
        or len(text) % 4 == 1
        or _B64URL.fullmatch(text) is None
    ):
        _refuse("malformed")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # One text for one byte string: no set bits past the end (a second encoding of the same bytes).
    if b64url(data) != text or not min_bytes <= len(data) <= max_bytes:
        _refuse("malformed")
    return data


def new_challenge() -> bytes:
    return secrets.token_bytes(CHALLENGE_BYTES)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member")
    return result


def _no_constants(_name: str) -> NoReturn:
    raise ValueError("not JSON")


def _json_object(text: bytes | str) -> dict[str, Any]:
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (ValueError, RecursionError):  # UTF-8 and JSON errors are ValueErrors
        _refuse("malformed")
    if not isinstance(value, dict):
        _refuse("malformed")
    return value


def _response_object(response: object) -> dict[str, Any]:
    """The credential as a JSON object (a dict, or JSON text of one)."""
    if isinstance(response, str):
        if len(response) > MAX_RESPONSE_JSON:
            _refuse("malformed")
        return _json_object(response)
    if not isinstance(response, Mapping) or not all(isinstance(k, str) for k in response):
        _refuse("malformed")
    return dict(response)


@dataclass(frozen=True, slots=True)
class _Credential:
    credential_id: str
    members: dict[str, bytes]
    transports: tuple[str, ...]


def _parse_credential(
    response: object, members: Mapping[str, int], optional: Mapping[str, int]
) -> _Credential:
    """The response's id (== rawId, canonical) and its ``response`` members decoded, each at most its
    size; ``optional`` members may be absent or null."""
    outer = _response_object(response)
    if outer.get("type") != "public-key":
        _refuse("malformed")
    credential_id = outer.get("id")
    if not is_credential_id(credential_id) or outer.get("rawId") != credential_id:
        _refuse("malformed")
    b64url_decode(credential_id, max_bytes=MAX_CREDENTIAL_ID, min_bytes=16)
    inner = outer.get("response")
    if not isinstance(inner, dict):
        _refuse("malformed")
    decoded = {
        name: b64url_decode(inner.get(name), max_bytes=size, min_bytes=1) for name, size in members.items()
    }
    for name, size in optional.items():
        if inner.get(name) is not None:
            decoded[name] = b64url_decode(inner[name], max_bytes=size, min_bytes=1)
    transports = inner.get("transports", [])
    if (
        not isinstance(transports, list)
        or len(transports) > len(KNOWN_TRANSPORTS)
        or not all(isinstance(t, str) for t in transports)
    ):
        _refuse("malformed")
    # Transports are hints for the next ceremony: keep the ones WebAuthn defines, drop the rest.
    kept = tuple(sorted({t for t in transports if t in KNOWN_TRANSPORTS}))
    return _Credential(str(credential_id), decoded, kept)


def _check_client_data(
    client_data_json: bytes, *, ceremony: str, expected_challenge: bytes, origins: Sequence[str]
) -> None:
    if len(client_data_json) > MAX_CLIENT_DATA:
        _refuse("malformed")
    data = _json_object(client_data_json)
    kind, challenge, origin = data.get("type"), data.get("challenge"), data.get("origin")
    if not isinstance(kind, str) or not isinstance(challenge, str) or not isinstance(origin, str):
        _refuse("malformed")
    if kind != ceremony:
        _refuse("type")
    try:
        received = b64url_decode(challenge, max_bytes=1024, min_bytes=1)
    except PasskeyError:
        _refuse("challenge")
    if not hmac.compare_digest(received, expected_challenge):
        _refuse("challenge")
    # An embedded (cross-origin iframe) ceremony is not one this service asked for.
    if origin not in origins or data.get("crossOrigin", False) is not False:
        _refuse("origin")


def _check_authenticator_data(auth_data: bytes, *, rp_id: str) -> int:
    """The RP id hash and the UP and UV flags; returns the sign counter."""
    if len(auth_data) < _AUTH_DATA_HEADER:
        _refuse("malformed")
    if not hmac.compare_digest(auth_data[:32], hashlib.sha256(rp_id.encode("utf-8")).digest()):
        _refuse("rp_id")
    flags = auth_data[32]
    if not flags & _FLAG_UP:
        _refuse("user_presence")
    if not flags & _FLAG_UV:
        _refuse("user_verification")
    return int.from_bytes(auth_data[33:37], "big")


def _descriptors(credentials: Sequence[StoredCredential]) -> list[Any]:
    from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor

    return [
        PublicKeyCredentialDescriptor(
            id=b64url_decode(c.credential_id, max_bytes=MAX_CREDENTIAL_ID, min_bytes=1),
            transports=[AuthenticatorTransport(t) for t in c.transports] or None,
        )
        for c in credentials
    ]


def _options_json(options: Any) -> dict[str, Any]:
    from webauthn import options_to_json

    result: dict[str, Any] = json.loads(options_to_json(options))
    return result


# ---------------------------------------------------------------------------------- registration
def registration_options(
    *,
    rp_id: str,
    rp_name: str,
    person: Person,
    challenge: bytes,
    exclude: Sequence[StoredCredential] = (),
    timeout_seconds: int = 300,
) -> dict[str, Any]:
    """PublicKeyCredentialCreationOptionsJSON for ``person``: a discoverable credential preferred, user
    verification required, attestation "none" asked for, ES256/EdDSA/RS256, the person's existing
    credentials excluded (one authenticator, one passkey)."""
    from webauthn import generate_registration_options
    from webauthn.helpers.cose import COSEAlgorithmIdentifier
    from webauthn.helpers.structs import (
        AttestationConveyancePreference,
        AuthenticatorSelectionCriteria,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=rp_name,
        user_name=person.name,
        user_id=person.user_handle,
        user_display_name=person.name,
        challenge=challenge,
        timeout=timeout_seconds * 1000,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=_descriptors(exclude),
        supported_pub_key_algs=[COSEAlgorithmIdentifier(alg) for alg in ALGORITHMS],
    )
    return _options_json(options)


def verify_registration(
    response: object,
    *,
    expected_challenge: bytes,
    person: Person,
    rp_id: str,
    origins: Sequence[str],
    label: str | None,
    now: int,
) -> StoredCredential:
    """The credential a registration response creates for ``person``, verified: the ceremony (type
    ``webauthn.create``, challenge, origin, RP id, UP and UV), an accepted algorithm, and the attestation
    statement ("none", or "packed" and the other formats py_webauthn verifies). PasskeyError otherwise."""
    label = DEFAULT_LABEL if label is None else validate_name("label", label)
    parsed = _parse_credential(
        response, {"clientDataJSON": MAX_CLIENT_DATA, "attestationObject": MAX_ATTESTATION_OBJECT}, {}
    )
    _check_client_data(
        parsed.members["clientDataJSON"],
        ceremony="webauthn.create",
        expected_challenge=expected_challenge,
        origins=origins,
    )
    attested = _attested_credential(parsed.members["attestationObject"], rp_id=rp_id)
    if not hmac.compare_digest(
        attested.credential_id, b64url_decode(parsed.credential_id, max_bytes=MAX_CREDENTIAL_ID)
    ):
        _refuse("credential")
    if attested.algorithm not in ALGORITHMS:
        _refuse("algorithm")

    from webauthn import verify_registration_response
    from webauthn.helpers.cose import COSEAlgorithmIdentifier

    try:
        verified = verify_registration_response(
            credential=_canonical(parsed, "attestationObject"),
            expected_challenge=expected_challenge,
            expected_rp_id=rp_id,
            expected_origin=list(origins),
            require_user_presence=True,
            require_user_verification=True,
            supported_pub_key_algs=[COSEAlgorithmIdentifier(alg) for alg in ALGORITHMS],
        )
    except Exception:  # noqa: BLE001  (a parser of hostile input: whatever it raises is a refusal)
        _refuse("attestation")
    return StoredCredential(
        credential_id=parsed.credential_id,
        tenant_id=person.tenant_id,
        person_id=person.person_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=parsed.transports,
        aaguid=verified.aaguid,
        created_at=now,
        label=label,
    )


@dataclass(frozen=True, slots=True)
class _Attested:
    credential_id: bytes
    algorithm: int


def _attested_credential(attestation_object: bytes, *, rp_id: str) -> _Attested:
    from webauthn.helpers import decode_credential_public_key, parse_cbor

    try:
        decoded = parse_cbor(attestation_object)
    except Exception:  # noqa: BLE001  (CBOR of hostile input: any failure is a malformed response)
        _refuse("malformed")
    auth_data = decoded.get("authData") if isinstance(decoded, dict) else None
    if not isinstance(auth_data, bytes):
        _refuse("malformed")
    _check_authenticator_data(auth_data, rp_id=rp_id)
    if not auth_data[32] & _FLAG_AT:
        _refuse("malformed")

    from webauthn.helpers import parse_authenticator_data

    try:
        attested = parse_authenticator_data(auth_data).attested_credential_data
        if attested is None:
            _refuse("malformed")
        algorithm = decode_credential_public_key(attested.credential_public_key).alg
    except PasskeyError:
        raise
    except Exception:  # noqa: BLE001  (CBOR and COSE of hostile input)
        _refuse("malformed")
    if not 16 <= len(attested.credential_id) <= MAX_CREDENTIAL_ID:
        _refuse("malformed")
    return _Attested(credential_id=attested.credential_id, algorithm=int(algorithm))


def _canonical(parsed: _Credential, *names: str) -> dict[str, Any]:
    """The response as py_webauthn reads it, rebuilt from what was parsed (nothing else passes)."""
    inner = {"clientDataJSON": b64url(parsed.members["clientDataJSON"])}
    for name in names:
        if name in parsed.members:
            inner[name] = b64url(parsed.members[name])
    return {
        "id": parsed.credential_id,
        "rawId": parsed.credential_id,
        "type": "public-key",
        "response": inner,
    }


# ---------------------------------------------------------------------------------- authentication
def authentication_options(
    *, rp_id: str, challenge: bytes, allow: Sequence[StoredCredential] = (), timeout_seconds: int = 300
) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptionsJSON, user verification required. With ``allow`` empty the
    browser offers the person's discoverable credentials (sign-in needs no user name)."""
    from webauthn import generate_authentication_options
    from webauthn.helpers.structs import UserVerificationRequirement

    options = generate_authentication_options(
        rp_id=rp_id,
        challenge=challenge,
        timeout=timeout_seconds * 1000,
        allow_credentials=_descriptors(allow),
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return _options_json(options)


def credential_id_of(response: object) -> str:
    """The credential id an assertion names (to look the credential up before verifying it)."""
    outer = _response_object(response)
    credential_id = outer.get("id")
    if not is_credential_id(credential_id) or outer.get("rawId") != credential_id:
        _refuse("malformed")
    return str(credential_id)


_ASSERTION_MEMBERS = {
    "clientDataJSON": MAX_CLIENT_DATA,
    "authenticatorData": MAX_AUTHENTICATOR_DATA,
    "signature": MAX_SIGNATURE,
}


def assertion_sha256(authenticator_data: bytes, client_data_json: bytes, signature: bytes) -> str:
    """Hex SHA-256 of JCS({authenticator_data, client_data_json, signature} as base64url strings)."""
    document = {
        "authenticator_data": b64url(authenticator_data),
        "client_data_json": b64url(client_data_json),
        "signature": b64url(signature),
    }
    return hashlib.sha256(canonicalize(document)).hexdigest()


def _verified(
    response: object,
    *,
    expected_challenge: bytes,
    credential: StoredCredential,
    rp_id: str,
    origins: Sequence[str],
) -> tuple[VerifiedAssertion, bytes | None]:
    parsed = _parse_credential(response, _ASSERTION_MEMBERS, {"userHandle": MAX_USER_HANDLE})
    if parsed.credential_id != credential.credential_id:
        _refuse("credential")
    members = parsed.members
    _check_client_data(
        members["clientDataJSON"],
        ceremony="webauthn.get",
        expected_challenge=expected_challenge,
        origins=origins,
    )
    sign_count = _check_authenticator_data(members["authenticatorData"], rp_id=rp_id)
    # A counter that did not advance is a cloned authenticator or a replayed assertion; an authenticator
    # that keeps no counter reports 0 every time (then the challenge alone prevents replay).
    if (sign_count > 0 or credential.sign_count > 0) and sign_count <= credential.sign_count:
        _refuse("sign_count")

    from webauthn import verify_authentication_response

    try:
        verify_authentication_response(
            credential=_canonical(parsed, "authenticatorData", "signature"),
            expected_challenge=expected_challenge,
            expected_rp_id=rp_id,
            expected_origin=list(origins),
            credential_public_key=credential.public_key,
            credential_current_sign_count=credential.sign_count,
            require_user_verification=True,
        )
    except Exception:  # noqa: BLE001  (a parser of hostile input: whatever it raises is a refusal)
        _refuse("signature")
    digest = assertion_sha256(members["authenticatorData"], members["clientDataJSON"], members["signature"])
    return VerifiedAssertion(credential.credential_id, sign_count, digest), members.get("userHandle")


def verify_assertion(
    response_json: object,
    *,
    expected_challenge: bytes,
    credential: StoredCredential,
    rp_id: str,
    origins: Sequence[str],
) -> VerifiedAssertion:
    """An assertion (AuthenticationResponseJSON, as a dict or JSON text) by ``credential`` over
    ``expected_challenge``: type ``webauthn.get``, origin among ``origins``, ``rp_id``, user presence
    and verification, a counter that advanced, the signature. PasskeyError otherwise. The caller then
    advances the stored counter with a conditional write, so one assertion cannot pass twice."""
    verified, _user_handle = _verified(
        response_json,
        expected_challenge=expected_challenge,
        credential=credential,
        rp_id=rp_id,
        origins=origins,
    )
    return verified


def verify_sign_in(
    response_json: object,
    *,
    challenge: Challenge,
    credential: StoredCredential,
    person: Person,
    rp_id: str,
    origins: Sequence[str],
) -> VerifiedAssertion:
    """A sign-in: ``verify_assertion`` over a stored sign-in challenge, by a credential of ``person``;
    a user handle in the response (discoverable credentials send one) must be the person's."""
    if challenge.purpose != "authentication":
        _refuse("challenge")
    if credential.person_id != person.person_id or credential.tenant_id != person.tenant_id:
        _refuse("credential")
    verified, user_handle = _verified(
        response_json,
        expected_challenge=challenge.challenge,
        credential=credential,
        rp_id=rp_id,
        origins=origins,
    )
    if user_handle is not None and not hmac.compare_digest(user_handle, person.user_handle):
        _refuse("user_handle")
    return verified
