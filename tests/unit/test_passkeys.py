"""identity.passkeys with a software authenticator: every ceremony that must pass, and every one that
must not (each refused with PasskeyError naming the failed check, nothing of the input echoed)."""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from reliquary.errors import PasskeyError
from reliquary.identity import passkeys
from reliquary.identity.models import (
    Challenge,
    Person,
    PersonStatus,
    StoredCredential,
    new_challenge_id,
    new_person_id,
)
from reliquary.identity.scopes import Role, RoleBinding
from reliquary.jcs import canonicalize
from tests.support.authenticator import ORIGIN, RP_ID, SoftAuthenticator, b64url, b64url_decode

ORIGINS = (ORIGIN,)
NOW = 1_700_000_000


def person(tenant_id: str = "acme") -> Person:
    return Person(
        person_id=new_person_id(),
        tenant_id=tenant_id,
        name="Ada Lovelace",
        roles=(RoleBinding(Role.APPROVER),),
        status=PersonStatus.ACTIVE,
        created_at=NOW,
        not_before=0,
        user_handle=secrets.token_bytes(32),
    )


def register(
    authenticator: SoftAuthenticator, who: Person, attestation: str = "none", **knobs: Any
) -> StoredCredential:
    challenge = passkeys.new_challenge()
    options = passkeys.registration_options(rp_id=RP_ID, rp_name="RELIQUARY", person=who, challenge=challenge)
    response = authenticator.register(options, attestation=attestation, **knobs)  # type: ignore[arg-type]
    return passkeys.verify_registration(
        response,
        expected_challenge=challenge,
        person=who,
        rp_id=RP_ID,
        origins=ORIGINS,
        label="laptop",
        now=NOW,
    )


def refused(check: str, call: Callable[[], object]) -> PasskeyError:
    with pytest.raises(PasskeyError) as caught:
        call()
    assert caught.value.check == check
    assert caught.value.code == "passkey_invalid"
    assert caught.value.to_dict()["message"] == "the passkey response did not verify"
    assert caught.value.details == {"check": check}
    return caught.value


class Ceremony:
    """A registered credential and a fresh sign-in challenge."""

    def __init__(self, algorithm: str = "ES256", counts: bool = True) -> None:
        self.authenticator = SoftAuthenticator(algorithm=algorithm, counts=counts)  # type: ignore[arg-type]
        self.person = person()
        self.credential = register(self.authenticator, self.person)
        self.challenge = passkeys.new_challenge()
        self.options = passkeys.authentication_options(rp_id=RP_ID, challenge=self.challenge)

    def verify(
        self, response: object, credential: StoredCredential | None = None
    ) -> passkeys.VerifiedAssertion:
        return passkeys.verify_assertion(
            response,
            expected_challenge=self.challenge,
            credential=credential or self.credential,
            rp_id=RP_ID,
            origins=ORIGINS,
        )


# ---------------------------------------------------------------------------------- options
def test_registration_options_require_user_verification_and_exclude_existing_credentials() -> None:
    who = person()
    authenticator = SoftAuthenticator()
    existing = register(authenticator, who)
    challenge = passkeys.new_challenge()
    options = passkeys.registration_options(
        rp_id=RP_ID,
        rp_name="RELIQUARY",
        person=who,
        challenge=challenge,
        exclude=[existing],
        timeout_seconds=120,
    )
    assert options["rp"] == {"id": RP_ID, "name": "RELIQUARY"}
    assert b64url_decode(options["user"]["id"]) == who.user_handle
    assert b64url_decode(options["challenge"]) == challenge
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["attestation"] == "none"
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -8, -257]
    assert options["excludeCredentials"] == [
        {"id": existing.credential_id, "type": "public-key", "transports": ["hybrid", "internal"]}
    ]
    assert options["timeout"] == 120_000


def test_authentication_options_are_discoverable_with_user_verification_required() -> None:
    challenge = passkeys.new_challenge()
    options = passkeys.authentication_options(rp_id=RP_ID, challenge=challenge)
    assert options["allowCredentials"] == []
    assert options["userVerification"] == "required"
    assert options["rpId"] == RP_ID
    assert b64url_decode(options["challenge"]) == challenge


# ---------------------------------------------------------------------------------- registration
@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
@pytest.mark.parametrize("attestation", ["none", "packed"])
def test_registration_stores_the_public_key_counter_transports_and_aaguid(
    algorithm: str, attestation: str
) -> None:
    authenticator = SoftAuthenticator(algorithm=algorithm)  # type: ignore[arg-type]
    who = person()
    credential = register(authenticator, who, attestation)
    held = authenticator.credentials[credential.credential_id]
    assert credential.person_id == who.person_id
    assert credential.tenant_id == who.tenant_id
    assert credential.public_key == __import__("cbor2").dumps(dict(held.cose_public_key()))
    assert credential.sign_count == 0
    assert credential.transports == ("hybrid", "internal")
    assert credential.aaguid == "6e6f6e65-2d73-6f66-7477-617265000001"
    assert credential.label == "laptop"
    assert credential.created_at == NOW
    assert credential.last_used_at is None


def registration_case(**knobs: Any) -> tuple[dict[str, Any], bytes, Person]:
    who = person()
    challenge = passkeys.new_challenge()
    options = passkeys.registration_options(rp_id=RP_ID, rp_name="RELIQUARY", person=who, challenge=challenge)
    return SoftAuthenticator().register(options, **knobs), challenge, who


def verify_registration(response: object, challenge: bytes, who: Person) -> StoredCredential:
    return passkeys.verify_registration(
        response, expected_challenge=challenge, person=who, rp_id=RP_ID, origins=ORIGINS, label=None, now=NOW
    )


@pytest.mark.parametrize(
    ("knobs", "check"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"cross_origin": True}, "origin"),
        ({"rp_id": "evil.example"}, "rp_id"),
        ({"challenge": b"\x01" * 32}, "challenge"),
        ({"user_verified": False}, "user_verification"),
        ({"ceremony": "webauthn.get"}, "type"),
    ],
)
def test_registration_refusals(knobs: dict[str, Any], check: str) -> None:
    response, challenge, who = registration_case(**knobs)
    refused(check, lambda: verify_registration(response, challenge, who))


def test_registration_with_a_forged_packed_signature_is_refused() -> None:
    response, challenge, who = registration_case(attestation="packed")
    attestation = __import__("cbor2").loads(b64url_decode(response["response"]["attestationObject"]))
    signature = bytearray(attestation["attStmt"]["sig"])
    signature[-1] ^= 1
    attestation["attStmt"]["sig"] = bytes(signature)
    response["response"]["attestationObject"] = b64url(__import__("cbor2").dumps(attestation))
    refused("attestation", lambda: verify_registration(response, challenge, who))


def test_registration_whose_id_is_not_the_attested_credential_is_refused() -> None:
    response, challenge, who = registration_case()
    response["id"] = response["rawId"] = b64url(b"\x07" * 32)
    refused("credential", lambda: verify_registration(response, challenge, who))


def test_registration_with_a_tampered_client_data_is_refused_under_packed_attestation() -> None:
    """Self attestation signs the client data's hash (attestation "none" signs nothing: there the
    challenge, origin and RP id checks are the whole of registration's integrity)."""
    response, challenge, who = registration_case(attestation="packed")
    client_data = json.loads(b64url_decode(response["response"]["clientDataJSON"]))
    client_data["extra"] = "x"
    response["response"]["clientDataJSON"] = b64url(json.dumps(client_data).encode())
    refused("attestation", lambda: verify_registration(response, challenge, who))


def test_registration_label_must_be_printable() -> None:
    response, challenge, who = registration_case()
    with pytest.raises(Exception, match="label"):
        passkeys.verify_registration(
            response,
            expected_challenge=challenge,
            person=who,
            rp_id=RP_ID,
            origins=ORIGINS,
            label="\x00",
            now=NOW,
        )


# ---------------------------------------------------------------------------------- assertions
@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_an_assertion_verifies_and_names_its_digest(algorithm: str) -> None:
    ceremony = Ceremony(algorithm)
    response = ceremony.authenticator.authenticate(ceremony.options)
    verified = ceremony.verify(response)
    assert verified.credential_id == ceremony.credential.credential_id
    assert verified.sign_count == 1
    inner = response["response"]
    document = {
        "authenticator_data": inner["authenticatorData"],
        "client_data_json": inner["clientDataJSON"],
        "signature": inner["signature"],
    }
    assert verified.assertion_sha256 == hashlib.sha256(canonicalize(document)).hexdigest()
    # JSON text is accepted as well as the object.
    assert ceremony.verify(json.dumps(response)) == verified


def test_an_authenticator_without_a_counter_passes_with_zero() -> None:
    ceremony = Ceremony(counts=False)
    assert ceremony.verify(ceremony.authenticator.authenticate(ceremony.options)).sign_count == 0


def advanced(credential: StoredCredential, count: int) -> StoredCredential:
    from dataclasses import replace

    return replace(credential, sign_count=count)


@pytest.mark.parametrize(("stored", "reported"), [(5, 5), (5, 4), (5, 0), (1, 0)])
def test_a_counter_that_did_not_advance_is_refused(stored: int, reported: int) -> None:
    ceremony = Ceremony()
    response = ceremony.authenticator.authenticate(ceremony.options, sign_count=reported)
    refused("sign_count", lambda: ceremony.verify(response, advanced(ceremony.credential, stored)))


def test_a_counter_jump_forward_passes() -> None:
    ceremony = Ceremony()
    response = ceremony.authenticator.authenticate(ceremony.options, sign_count=1000)
    assert ceremony.verify(response, advanced(ceremony.credential, 5)).sign_count == 1000


@pytest.mark.parametrize(
    ("knobs", "check"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"origin": "http://localhost:3001"}, "origin"),
        ({"cross_origin": True}, "origin"),
        ({"rp_id": "evil.example"}, "rp_id"),
        ({"challenge": b"\x02" * 32}, "challenge"),
        ({"user_verified": False}, "user_verification"),
        ({"user_present": False}, "user_presence"),
        ({"ceremony": "webauthn.create"}, "type"),
    ],
)
def test_assertion_refusals(knobs: dict[str, Any], check: str) -> None:
    ceremony = Ceremony()
    response = ceremony.authenticator.authenticate(ceremony.options, **knobs)
    refused(check, lambda: ceremony.verify(response))


def test_an_assertion_by_another_credential_is_refused() -> None:
    ceremony = Ceremony()
    other = register(ceremony.authenticator, ceremony.person)
    response = ceremony.authenticator.authenticate(ceremony.options, credential_id=other.credential_id)
    refused("credential", lambda: ceremony.verify(response))


def test_a_stored_key_that_is_not_the_signer_is_refused() -> None:
    ceremony = Ceremony()
    other = register(SoftAuthenticator(), ceremony.person)
    response = ceremony.authenticator.authenticate(ceremony.options)
    from dataclasses import replace

    impostor = replace(ceremony.credential, public_key=other.public_key)
    refused("signature", lambda: ceremony.verify(response, impostor))


def flip(text: str, index: int) -> str:
    data = bytearray(b64url_decode(text))
    data[index] ^= 0x01
    return b64url(bytes(data))


@pytest.mark.parametrize(
    ("member", "index", "check"),
    [
        ("signature", -1, "signature"),
        ("signature", 8, "signature"),
        ("authenticatorData", 36, "signature"),  # the counter's low byte: 2 -> 3, no longer what was signed
        ("authenticatorData", 0, "rp_id"),
    ],
)
def test_tampering_is_refused(member: str, index: int, check: str) -> None:
    ceremony = Ceremony()
    response = ceremony.authenticator.authenticate(ceremony.options, sign_count=2)
    response["response"][member] = flip(response["response"][member], index)
    refused(check, lambda: ceremony.verify(response))


def test_tampered_client_data_is_refused() -> None:
    ceremony = Ceremony()
    response = ceremony.authenticator.authenticate(ceremony.options)
    client_data = json.loads(b64url_decode(response["response"]["clientDataJSON"]))
    client_data["tokenBinding"] = {"status": "supported"}  # still well formed: only the signature knows
    response["response"]["clientDataJSON"] = b64url(json.dumps(client_data).encode())
    refused("signature", lambda: ceremony.verify(response))


def test_tampered_flags_are_refused() -> None:
    ceremony = Ceremony()
    response = ceremony.authenticator.authenticate(ceremony.options)
    data = bytearray(b64url_decode(response["response"]["authenticatorData"]))
    data[32] |= 0x08  # backup eligible: signed over, so the signature breaks
    response["response"]["authenticatorData"] = b64url(bytes(data))
    refused("signature", lambda: ceremony.verify(response))


def test_a_reused_challenge_is_refused() -> None:
    """The challenge is the store's to spend once; the verifier refuses any assertion over another."""
    ceremony = Ceremony()
    first = ceremony.authenticator.authenticate(ceremony.options)
    ceremony.verify(first)
    later = Ceremony()
    refused("challenge", lambda: later.verify(later.authenticator.authenticate(ceremony.options)))


# ---------------------------------------------------------------------------------- malformed input
def _mutations() -> list[tuple[str, Callable[[dict[str, Any]], object]]]:
    def set_path(path: tuple[str, ...], value: object) -> Callable[[dict[str, Any]], object]:
        def mutate(response: dict[str, Any]) -> object:
            target = response
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            return response

        return mutate

    def drop(path: tuple[str, ...]) -> Callable[[dict[str, Any]], object]:
        def mutate(response: dict[str, Any]) -> object:
            target = response
            for key in path[:-1]:
                target = target[key]
            del target[path[-1]]
            return response

        return mutate

    def client_data(value: bytes) -> Callable[[dict[str, Any]], object]:
        return set_path(("response", "clientDataJSON"), b64url(value))

    cases: list[tuple[str, Callable[[dict[str, Any]], object]]] = [
        ("not an object", lambda r: [r]),
        ("a number", lambda _r: 7),
        ("None", lambda _r: None),
        ("JSON text not an object", lambda _r: "[1, 2]"),
        ("JSON text broken", lambda _r: '{"id": '),
        ("JSON text with NaN", lambda _r: '{"id": NaN}'),
        ("JSON text too large", lambda r: json.dumps(r) + " " * 70_000),
        ("duplicate members in JSON text", lambda r: json.dumps(r)[:-1] + ', "type": "public-key"}'),
        ("non-string keys", lambda _r: {1: "x"}),
        ("no id", drop(("id",))),
        ("no rawId", drop(("rawId",))),
        ("rawId differs", set_path(("rawId",), b64url(b"\x09" * 32))),
        ("id not base64url", set_path(("id",), "!" * 43)),
        ("id padded", lambda r: {**r, "id": r["id"] + "=", "rawId": r["rawId"] + "="}),
        ("id too short", lambda r: {**r, "id": b64url(b"\x01" * 8), "rawId": b64url(b"\x01" * 8)}),
        ("id a number", set_path(("id",), 5)),
        ("wrong type", set_path(("type",), "password")),
        ("no type", drop(("type",))),
        ("response missing", drop(("response",))),
        ("response a string", set_path(("response",), "x")),
        ("no clientDataJSON", drop(("response", "clientDataJSON"))),
        ("no authenticatorData", drop(("response", "authenticatorData"))),
        ("no signature", drop(("response", "signature"))),
        ("signature empty", set_path(("response", "signature"), "")),
        ("signature not base64url", set_path(("response", "signature"), "a+b/")),
        ("signature non-canonical base64", set_path(("response", "signature"), "AB")),
        ("signature length 1 mod 4", set_path(("response", "signature"), "AAAAA")),
        ("signature too large", set_path(("response", "signature"), b64url(b"\x00" * 2000))),
        ("signature a list", set_path(("response", "signature"), [1])),
        ("userHandle a number", set_path(("response", "userHandle"), 5)),
        ("authenticatorData short", set_path(("response", "authenticatorData"), b64url(b"\x00" * 36))),
        ("transports not a list", set_path(("response", "transports"), "usb")),
        ("transports not strings", set_path(("response", "transports"), [1])),
        ("client data not JSON", client_data(b"\xff\xfe")),
        ("client data a list", client_data(b"[]")),
        (
            "client data without challenge",
            client_data(b'{"type":"webauthn.get","origin":"http://localhost:3000"}'),
        ),
        (
            "client data with a numeric origin",
            client_data(b'{"type":"webauthn.get","challenge":"AA","origin":5}'),
        ),
        ("client data duplicate keys", client_data(b'{"type":"webauthn.get","type":"webauthn.get"}')),
        ("client data too large", client_data(b"{" + b" " * 9000 + b"}")),
    ]
    return cases


MUTATIONS = _mutations()


@pytest.mark.parametrize(("desc", "mutate"), MUTATIONS, ids=[desc for desc, _ in MUTATIONS])
def test_malformed_assertions_are_refused(desc: str, mutate: Callable[[dict[str, Any]], object]) -> None:
    ceremony = Ceremony()
    response = mutate(copy.deepcopy(ceremony.authenticator.authenticate(ceremony.options)))
    error = refused_any(lambda: ceremony.verify(response))
    assert error.check in {"malformed", "credential", "challenge"}


def refused_any(call: Callable[[], object]) -> PasskeyError:
    with pytest.raises(PasskeyError) as caught:
        call()
    text = json.dumps(caught.value.to_dict())
    assert "evil" not in text
    assert "localhost" not in text
    return caught.value


@pytest.mark.parametrize(
    "attestation_object",
    [
        b"",
        b"\xa0",
        b"\xff" * 40,
        b"\x83\x01\x02\x03",
        __import__("cbor2").dumps({"fmt": "none", "authData": 5}),
    ],
)
def test_malformed_attestation_objects_are_refused(attestation_object: bytes) -> None:
    response, challenge, who = registration_case()
    response["response"]["attestationObject"] = b64url(attestation_object) or "AA"
    refused("malformed", lambda: verify_registration(response, challenge, who))


def test_registration_without_attested_credential_data_is_refused() -> None:
    import cbor2

    response, challenge, who = registration_case()
    attestation = cbor2.loads(b64url_decode(response["response"]["attestationObject"]))
    auth_data = bytearray(attestation["authData"][:37])
    auth_data[32] &= ~0x40 & 0xFF
    attestation["authData"] = bytes(auth_data)
    response["response"]["attestationObject"] = b64url(cbor2.dumps(attestation))
    refused("malformed", lambda: verify_registration(response, challenge, who))


# ---------------------------------------------------------------------------------- sign-in
def sign_in_challenge(challenge: bytes, purpose: str = "authentication") -> Challenge:
    return Challenge(new_challenge_id(), challenge, purpose, NOW + 300)  # type: ignore[arg-type]


def test_sign_in_checks_the_user_handle_and_the_person() -> None:
    ceremony = Ceremony()
    response = ceremony.authenticator.authenticate(ceremony.options)
    stored = sign_in_challenge(ceremony.challenge)
    kwargs: dict[str, Any] = {
        "challenge": stored,
        "credential": ceremony.credential,
        "rp_id": RP_ID,
        "origins": ORIGINS,
    }
    assert passkeys.verify_sign_in(response, person=ceremony.person, **kwargs).sign_count == 1
    from dataclasses import replace

    # The same credential row claimed for another person: refused before anything is verified.
    refused("credential", lambda: passkeys.verify_sign_in(response, person=person(), **kwargs))
    # A user handle that is not the person's.
    other_handle = replace(ceremony.person, user_handle=b"\x00" * 32)
    second = ceremony.authenticator.authenticate(ceremony.options)
    refused(
        "user_handle",
        lambda: passkeys.verify_sign_in(
            second, person=other_handle, **{**kwargs, "credential": advanced(ceremony.credential, 1)}
        ),
    )
    # A registration challenge cannot sign anyone in.
    refused(
        "challenge",
        lambda: passkeys.verify_sign_in(
            response,
            person=ceremony.person,
            **{**kwargs, "challenge": sign_in_challenge(ceremony.challenge, "registration")},
        ),
    )


def test_credential_id_of_reads_only_a_well_formed_id() -> None:
    ceremony = Ceremony()
    response = ceremony.authenticator.authenticate(ceremony.options)
    assert passkeys.credential_id_of(response) == ceremony.credential.credential_id
    bad: list[object] = [{}, {"id": "x", "rawId": "x"}, {"id": response["id"]}, [], "not json"]
    for each in bad:
        refused("malformed", lambda each=each: passkeys.credential_id_of(each))  # type: ignore[misc]
