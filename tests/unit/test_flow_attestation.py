"""Stage attestations and the chain check: what every stage, RecordDecision, the grant and an auditor
rely on."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reliquary.crypto.signing import SignatureAlgorithm, SigningKey
from reliquary.errors import AttestationError, UnknownStageKeyError
from reliquary.flow.attestation import (
    Attestation,
    Signer,
    Stage,
    StageKeys,
    StageSigner,
    Subject,
    parse_chain,
    require_approval_chain,
    verify_attestation,
    verify_chain,
)
from reliquary.flow.keys import StageKeyDirectory

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def signers() -> dict[Signer, StageSigner]:
    return {s: StageSigner(s, SigningKey.generate(SignatureAlgorithm.ML_DSA_65)) for s in Signer}


@pytest.fixture(scope="module")
def keys(signers: dict[Signer, StageSigner]) -> StageKeys:
    return StageKeys({s: [signer.verifying_key] for s, signer in signers.items()})


SUBJECT = Subject("t1", "v1", "i1", "r1", "a" * 64, "b" * 64)


def approval_chain(signers: dict[Signer, StageSigner], subject: Subject = SUBJECT) -> list[Attestation]:
    context = signers[Signer.VERIFY_PROOF].attest(
        Stage.VERIFY_CONTEXT, subject, {"verified": True}, claim={"verified": True}, issued_at=NOW
    )
    trust = signers[Signer.SCORE_TRUST].attest(
        Stage.SCORE_TRUST,
        subject,
        {"score": 0.9},
        claim={"effect": "allow", "policy_version": "c" * 64, "item_version": 3},
        parents=[context],
        issued_at=NOW,
    )
    votes = [
        signers[Signer.AGENT_VOTE].attest(
            Stage.VOTE,
            subject,
            {"agent": a},
            claim={"agent": a, "vote": "approve"},
            parents=[context, trust],
            issued_at=NOW,
        )
        for a in ("strict", "neutral")
    ]
    tally = signers[Signer.AGENT_VOTE].attest(
        Stage.TALLY,
        subject,
        {"decision": "approve"},
        claim={"decision": "approve"},
        parents=[trust, *sorted(votes, key=lambda v: v.digest)],
        issued_at=NOW,
    )
    return [context, trust, *votes, tally]


def test_an_honest_chain_approves_and_round_trips(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    chain = approval_chain(signers)
    verified = require_approval_chain(chain, keys, subject=SUBJECT, now=NOW)
    assert verified.approves
    assert verified.item_version == 3
    assert verified.policy_version == "c" * 64
    again = parse_chain(verified.to_json())
    assert verify_chain(again, keys, subject=SUBJECT).digest == verified.digest
    # Published keys round-trip too: an auditor checks the chain with only what was published.
    assert require_approval_chain(again, StageKeys.from_json(keys.to_json()), subject=SUBJECT).approves


def test_a_chain_that_stops_early_verifies_but_does_not_approve(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    chain = approval_chain(signers)
    assert not verify_chain(chain[:2], keys, subject=SUBJECT).approves
    with pytest.raises(AttestationError) as caught:
        require_approval_chain(chain[:2], keys, subject=SUBJECT)
    assert caught.value.details["check"] == "approval"


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        (lambda c: [c[0], c[1], c[2], c[4]], "parents"),  # a vote dropped: the tally built on two
        (lambda c: [c[1], *c[1:]], "stage"),  # no context statement first
        (lambda c: [*c[:2], c[2], c[2], c[4]], "votes"),  # one agent twice
        (lambda c: [c[0], c[0], *c[2:]], "stage"),
        (lambda _: [], "structure"),
    ],
)
def test_broken_structure_is_refused(
    signers: dict[Signer, StageSigner], keys: StageKeys, mutate: Any, check: str
) -> None:
    with pytest.raises(AttestationError) as caught:
        verify_chain(mutate(approval_chain(signers)), keys, subject=SUBJECT)
    assert caught.value.details["check"] == check


def test_a_tally_signed_with_another_functions_key_is_refused(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    chain = approval_chain(signers)
    forged = dataclasses.replace(chain[-1], signer=Signer.SCORE_TRUST)
    with pytest.raises(AttestationError) as caught:
        verify_chain([*chain[:-1], forged], keys, subject=SUBJECT)
    assert caught.value.details["check"] == "signer"
    # Nor can a function sign a stage that is not its own.
    with pytest.raises(AttestationError):
        signers[Signer.SCORE_TRUST].attest(Stage.TALLY, SUBJECT, {}, claim={}, issued_at=NOW)


def test_an_outsiders_key_is_refused(signers: dict[Signer, StageSigner], keys: StageKeys) -> None:
    outsider = {s: StageSigner(s, SigningKey.generate(SignatureAlgorithm.ML_DSA_65)) for s in Signer}
    with pytest.raises(AttestationError) as caught:
        verify_chain(approval_chain(outsider), keys, subject=SUBJECT)
    assert caught.value.details["check"] == "key"


@pytest.mark.parametrize(
    "field", ["tenant_id", "vault_id", "item_id", "request_id", "requester_key_sha256", "binding_sha256"]
)
def test_a_chain_for_another_request_is_refused(
    signers: dict[Signer, StageSigner], keys: StageKeys, field: str
) -> None:
    other = dataclasses.replace(SUBJECT, **{field: "f" * 64 if field.endswith("sha256") else "other"})
    with pytest.raises(AttestationError) as caught:
        verify_chain(approval_chain(signers, other), keys, subject=SUBJECT)
    assert caught.value.details["check"] == "subject"


def test_every_tampered_statement_field_breaks_its_signature(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    tally = approval_chain(signers)[-1]
    statement = tally.statement
    for change in (
        {"claim": {"decision": "deny"}},
        {"result_sha256": "0" * 64},
        {"issued_at": NOW + 1},
        {"parents": ()},
    ):
        forged = dataclasses.replace(tally, statement=dataclasses.replace(statement, **change))
        with pytest.raises(AttestationError) as caught:
            verify_attestation(forged, keys, stage=Stage.TALLY)
        assert caught.value.details["check"] == "signature"
    flipped = bytearray(tally.signature)
    flipped[10] ^= 1
    with pytest.raises(AttestationError):
        verify_attestation(dataclasses.replace(tally, signature=bytes(flipped)), keys, stage=Stage.TALLY)


def test_a_statement_dated_in_the_future_is_refused(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    (context, *_) = approval_chain(signers)
    verify_attestation(context, keys, stage=Stage.VERIFY_CONTEXT, now=NOW - 300)
    with pytest.raises(AttestationError) as caught:
        verify_attestation(context, keys, stage=Stage.VERIFY_CONTEXT, now=NOW - 301)
    assert caught.value.details["check"] == "time"


def test_the_result_digest_binds_the_result(signers: dict[Signer, StageSigner], keys: StageKeys) -> None:
    context = approval_chain(signers)[0]
    verify_attestation(context, keys, stage=Stage.VERIFY_CONTEXT, result={"verified": True})
    with pytest.raises(AttestationError) as caught:
        verify_attestation(context, keys, stage=Stage.VERIFY_CONTEXT, result={"verified": False})
    assert caught.value.details["check"] == "result"


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        "x",
        {"statement": {}},
        {
            "statement": {},
            "signer": "verify-proof",
            "algorithm": "ML-DSA-65",
            "key_id": "00",
            "signature": "!",
        },
    ],
)
def test_malformed_attestations_are_a_typed_error(value: object) -> None:
    with pytest.raises(AttestationError) as caught:
        Attestation.from_json(value)
    assert caught.value.details["check"] == "format"


def test_extra_or_missing_members_are_refused(signers: dict[Signer, StageSigner]) -> None:
    body = approval_chain(signers)[0].to_json()
    assert Attestation.from_json(body).to_json() == body
    with pytest.raises(AttestationError):
        Attestation.from_json({**body, "extra": 1})
    with pytest.raises(AttestationError):
        Attestation.from_json({**body, "statement": {**body["statement"], "v": 2}})
    with pytest.raises(AttestationError):
        Attestation.from_json({**body, "statement": {**body["statement"], "issued_at": True}})


def test_the_directory_reads_keys_again_for_an_unknown_key(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    reads: list[int] = []
    tick = [0.0]

    def read() -> StageKeys:
        reads.append(1)
        return StageKeys({}) if len(reads) == 1 else keys

    directory = StageKeyDirectory(read, clock=lambda: tick[0])
    directory.keys()
    # A key created just after the read (a new deployment's first requests) is looked for at once.
    assert directory.verify_chain(approval_chain(signers), subject=SUBJECT).approves
    assert len(reads) == 2
    # The same unknown key again costs at most one read per refresh interval.
    outsider = {s: StageSigner(s, SigningKey.generate(SignatureAlgorithm.ML_DSA_65)) for s in Signer}
    for _ in range(3):
        with pytest.raises(UnknownStageKeyError) as caught:
            directory.verify_chain(approval_chain(outsider), subject=SUBJECT)
        assert caught.value.key == ("verify-proof", outsider[Signer.VERIFY_PROOF].verifying_key.key_id.hex())
        assert "key_id" not in caught.value.to_dict().get("details", {})  # never in the answer
    assert len(reads) == 3
    tick[0] = 10.0
    with pytest.raises(AttestationError):
        directory.verify_chain(approval_chain(outsider), subject=SUBJECT)
    assert len(reads) == 4
