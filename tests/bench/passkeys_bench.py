"""What a person's passkey costs the service per answer: ``identity.passkeys.verify_assertion`` (strict
parsing, the ceremony's checks, py_webauthn's verification) beside the bare signature check it contains
(cryptography's ECDSA P-256 / Ed25519 verify over ``authenticatorData || SHA-256(clientDataJSON)``)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from reliquary.identity import passkeys
from reliquary.identity.models import Person, PersonStatus, StoredCredential, new_person_id
from reliquary.identity.scopes import Role, RoleBinding
from tests.bench.report import Column, Table
from tests.bench.timing import Budget, measure
from tests.support.authenticator import ORIGIN, RP_ID, SoftAuthenticator, register_passkey

NOW = 1_700_000_000


@dataclass(frozen=True, slots=True)
class PasskeysResult:
    table: Table
    worst_vs_signature: float


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _registered(algorithm: str) -> tuple[SoftAuthenticator, StoredCredential]:
    person = Person(
        person_id=new_person_id(),
        tenant_id="acme",
        name="Ada",
        roles=(RoleBinding(Role.APPROVER),),
        status=PersonStatus.ACTIVE,
        created_at=NOW,
        not_before=0,
        user_handle=b"\x01" * 32,
    )
    authenticator, credential = register_passkey(
        person,
        now=NOW,
        authenticator=SoftAuthenticator(algorithm=algorithm),  # type: ignore[arg-type]
    )
    return authenticator, credential


def _cases(algorithm: str) -> dict[str, Any]:
    authenticator, credential = _registered(algorithm)
    challenge = passkeys.new_challenge()
    response = authenticator.authenticate(passkeys.authentication_options(rp_id=RP_ID, challenge=challenge))
    body = response["response"]
    signed = _b64(body["authenticatorData"]) + hashlib.sha256(_b64(body["clientDataJSON"])).digest()
    signature = _b64(body["signature"])
    # The same check with a key of the same kind: what the signature alone costs.
    if algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
        bare_signature, public = key.sign(signed, ec.ECDSA(hashes.SHA256())), key.public_key()

        def bare() -> None:
            public.verify(bare_signature, signed, ec.ECDSA(hashes.SHA256()))
    else:
        ed_key = ed25519.Ed25519PrivateKey.generate()
        ed_signature, ed_public = ed_key.sign(signed), ed_key.public_key()

        def bare() -> None:
            ed_public.verify(ed_signature, signed)

    def full() -> passkeys.VerifiedAssertion:
        return passkeys.verify_assertion(
            response, expected_challenge=challenge, credential=credential, rp_id=RP_ID, origins=(ORIGIN,)
        )

    if not signature or full().credential_id != credential.credential_id:
        raise RuntimeError("the bench's assertion does not verify")
    return {f"{algorithm} signature": bare, f"{algorithm} assertion": full}


def passkeys_table(budget: Budget) -> PasskeysResult:
    cases = {**_cases("ES256"), **_cases("EdDSA")}
    stats = measure(cases, budget)
    table = Table(
        "passkeys",
        "A person's answer: verify_assertion beside the bare signature check inside it",
        [
            Column("case", "case"),
            Column("p50_us", "p50 µs", ",.1f"),
            Column("p99_us", "p99 µs", ",.1f"),
            Column("vs_signature", "x the signature", ".2f"),
        ],
        notes=[
            (
                "signature = cryptography's verify over authenticatorData || SHA-256(clientDataJSON) with a"
                " key of the same kind; assertion = identity.passkeys.verify_assertion (strict JSON and"
                " base64url parsing, type, challenge, origin, RP id hash, UP/UV, counter, then py_webauthn's"
                " verify_authentication_response). Once per answer, beside a Lambda invoke of milliseconds."
            )
        ],
    )
    worst = 0.0
    for algorithm in ("ES256", "EdDSA"):
        base = stats[f"{algorithm} signature"]
        full = stats[f"{algorithm} assertion"]
        ratio = full.median_ns / base.median_ns
        worst = max(worst, ratio)
        table.add(
            case=f"{algorithm}: signature only (baseline)",
            p50_us=base.median_us,
            p99_us=base.p99_us,
            vs_signature=1.0,
        )
        table.add(
            case=f"{algorithm}: verify_assertion",
            p50_us=full.median_us,
            p99_us=full.p99_us,
            vs_signature=ratio,
        )
    return PasskeysResult(table, worst)
