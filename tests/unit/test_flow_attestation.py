"""Stage attestations and the chain check: what every stage, RecordDecision, the grant and an auditor
rely on."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reliquary import jcs
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey
from reliquary.errors import AttestationError, UnknownStageKeyError
from reliquary.flow.attestation import (
    DOMAIN,
    MAX_CHAIN,
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
from reliquary.flow.memory import sign_chain

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


# People's approvals after the tally (a step-up): who approved is part of the chain.
P1, P2, P3 = "ps-" + "1" * 24, "ps-" + "2" * 24, "ps-" + "3" * 24


def stepped_up(
    signers: dict[Signer, StageSigner],
    *,
    required: int = 2,
    approvals: tuple[tuple[str, str], ...] = ((P1, "approve"), (P2, "approve")),
    effect: str = "step_up",
    subject: Subject = SUBJECT,
) -> list[Attestation]:
    return sign_chain(
        signers,
        subject,
        issued_at=NOW,
        effect=effect,
        approvers_required=required,
        approvals=approvals,
        approved_at=NOW + 600,
    )


def test_k_approvals_by_distinct_people_approve_a_step_up(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    chain = stepped_up(signers)
    verified = require_approval_chain(chain, keys, subject=SUBJECT, now=NOW + 600)
    assert verified.approvers_required == 2
    assert verified.approved_by == (P1, P2)
    # The grant's freshness counts from the last approval, not the tally.
    assert verified.decided_at == NOW + 600
    again = verify_chain(parse_chain(verified.to_json()), keys, subject=SUBJECT)
    assert again.digest == verified.digest
    assert again.approves
    # More approvals than asked for (up to the bound) still approve; a require_quorum flow may ask too.
    assert verify_chain(stepped_up(signers, required=1), keys).approves
    assert verify_chain(stepped_up(signers, effect="require_quorum"), keys).approves


def _refused(chain: list[Attestation], keys: StageKeys) -> str:
    with pytest.raises(AttestationError) as caught:
        require_approval_chain(chain, keys, subject=SUBJECT, now=NOW + 600)
    return str(caught.value.details["check"])


def test_too_few_approvals_or_a_deny_among_them_do_not_approve(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    assert _refused(stepped_up(signers, approvals=((P1, "approve"),)), keys) == "approval"
    assert _refused(stepped_up(signers, approvals=()), keys) == "approval"
    denied = ((P1, "approve"), (P2, "deny"), (P3, "approve"))
    assert _refused(stepped_up(signers, required=2, approvals=denied), keys) == "approval"
    # A denied chain still verifies (the denial's record names it) but does not approve.
    assert not verify_chain(stepped_up(signers, approvals=((P1, "deny"),)), keys).approves


def test_a_tally_asking_for_no_person_cannot_approve_a_step_up(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    assert _refused(stepped_up(signers, required=0, approvals=()), keys) == "approval"
    # ... nor carry approvals it did not ask for.
    assert _refused(stepped_up(signers, required=0), keys) == "approvals"


@pytest.mark.parametrize("required", [-1, 9, True, "2", 1.5])
def test_a_malformed_approver_count_is_refused(
    signers: dict[Signer, StageSigner], keys: StageKeys, required: object
) -> None:
    chain = stepped_up(signers, required=required, approvals=())  # type: ignore[arg-type]
    assert _refused(chain, keys) == "approvals"


def test_one_approval_per_person(signers: dict[Signer, StageSigner], keys: StageKeys) -> None:
    twice = stepped_up(signers, approvals=((P1, "approve"), (P1, "approve")))
    assert _refused(twice, keys) == "approvals"
    # The same statement replayed is the same person twice.
    chain = stepped_up(signers)
    assert _refused([*chain[:-1], chain[-2]], keys) == "approvals"


def test_an_unsigned_or_foreign_approval_is_refused(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    chain = stepped_up(signers)
    approval = chain[-1]
    unsigned = dataclasses.replace(approval, signature=b"\x00" * len(approval.signature))
    assert _refused([*chain[:-1], unsigned], keys) == "signature"
    # Signed by another function's key (a subverted score-trust cannot approve for a person).
    other = signers[Signer.SCORE_TRUST]._key.sign(approval.statement.signed_bytes())
    forged = dataclasses.replace(approval, signer=Signer.SCORE_TRUST, signature=other)
    assert _refused([*chain[:-1], forged], keys) == "signer"
    # A claim changed after signing.
    claim = {**approval.statement.claim, "person_id": P3}
    altered = dataclasses.replace(approval, statement=dataclasses.replace(approval.statement, claim=claim))
    assert _refused([*chain[:-1], altered], keys) == "signature"
    # Only agent-vote may sign approvals.
    with pytest.raises(AttestationError):
        signers[Signer.VERIFY_PROOF].attest(Stage.APPROVAL, SUBJECT, {}, claim={}, issued_at=NOW)


def test_an_approval_about_another_request_or_tally_is_refused(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    chain = stepped_up(signers)
    other_subject = dataclasses.replace(SUBJECT, request_id="other")
    theirs = stepped_up(signers, subject=other_subject)
    assert _refused([*chain[:-1], theirs[-1]], keys) == "subject"
    # Another decision of the same request (a tally signed at another time): the parent link breaks.
    again = sign_chain(
        signers,
        SUBJECT,
        issued_at=NOW + 1,
        effect="step_up",
        approvers_required=2,
        approvals=((P2, "approve"),),
        approved_at=NOW + 600,
    )
    assert _refused([*chain[:-1], again[-1]], keys) == "parents"


def test_approvals_sit_after_the_tally_only(signers: dict[Signer, StageSigner], keys: StageKeys) -> None:
    chain = stepped_up(signers)
    *before, tally, first, second = chain
    assert _refused([*before, first, tally, second], keys) == "stage"
    without_tally = [*before, first, second]
    assert _refused(without_tally, keys) == "structure"
    # An approval dated before the tally it answers is refused.
    early = sign_chain(
        signers,
        SUBJECT,
        issued_at=NOW,
        effect="step_up",
        approvers_required=1,
        approvals=((P1, "approve"),),
        approved_at=NOW - 1,
    )
    assert _refused(early, keys) == "time"


@pytest.mark.parametrize(
    "claim",
    [
        {"person_id": P1, "credential_id": "c", "assertion_sha256": "a" * 64, "vote": "abstain"},
        {"person_id": P1, "credential_id": "c", "assertion_sha256": "A" * 64, "vote": "approve"},
        {"person_id": P1, "credential_id": "c", "assertion_sha256": "a" * 64},
        {"person_id": 7, "credential_id": "c", "assertion_sha256": "a" * 64, "vote": "approve"},
    ],
)
def test_a_malformed_approval_claim_is_refused(
    signers: dict[Signer, StageSigner], keys: StageKeys, claim: dict[str, Any]
) -> None:
    *head, tally = stepped_up(signers, required=1, approvals=())
    approval = signers[Signer.AGENT_VOTE].attest(
        Stage.APPROVAL, SUBJECT, {}, claim=claim, parents=[tally], issued_at=NOW
    )
    assert _refused([*head, tally, approval], keys) == "approvals"


def test_the_chain_bound_admits_eight_approvals(signers: dict[Signer, StageSigner], keys: StageKeys) -> None:
    people = tuple((f"ps-{i:024x}", "approve") for i in range(8))
    agents = tuple(f"agent{i}" for i in range(16))
    chain = sign_chain(
        signers,
        SUBJECT,
        issued_at=NOW,
        effect="step_up",
        approvers_required=8,
        approvals=people,
        agents=agents,
    )
    assert len(chain) == MAX_CHAIN
    assert verify_chain(parse_chain([a.to_json() for a in chain]), keys).approves
    with pytest.raises(AttestationError):
        parse_chain([a.to_json() for a in chain] + [chain[-1].to_json()])


# Subject values and claims the canonical JSON fast path declines (supplementary characters, U+E000..U+FFFF
# and surrogate-pair member names, escapes, floats ES and repr spell differently): a chain of them
# is signed over, and verified against, exactly the RFC 8785 bytes.
UNUSUAL = Subject('t"1\\', "v\u00e9\U0001f600", "i\n\x01", "r\ufb33", "a" * 64, "b" * 64)
UNUSUAL_CLAIM = {"verified": True, "\ufb33": 1.0, "\U0001f600": [1e21, -0.0, 0.5], "\u20ac": "\u2028"}


def test_a_statement_is_signed_over_its_rfc8785_bytes_and_canonicalized_once(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    context = signers[Signer.VERIFY_PROOF].attest(
        Stage.VERIFY_CONTEXT, UNUSUAL, UNUSUAL_CLAIM, claim=UNUSUAL_CLAIM, issued_at=NOW
    )
    stored = jcs.canonicalize([context.to_json(), *(a.to_json() for a in approval_chain(signers)[1:])])
    parsed = parse_chain(jcs.parse(stored))
    for attestation in parsed:
        signed = attestation.statement.signed_bytes()
        assert signed == DOMAIN + jcs._canonicalize_reference(attestation.statement.to_json())
        assert attestation.statement.signed_bytes() is signed  # computed at parse, never again
    assert parsed[0].statement.signed_bytes() == context.statement.signed_bytes()
    verify_attestation(parsed[0], keys, stage=Stage.VERIFY_CONTEXT, subject=UNUSUAL)
    assert b'"\\ufb33"' not in parsed[0].statement.signed_bytes()  # literal UTF-8, sorted by UTF-16
    assert '"\u20ac":"\u2028","\U0001f600":[1e+21,0,0.5],"\ufb33":1'.encode() in signed_after_claim(parsed[0])


def signed_after_claim(attestation: Attestation) -> bytes:
    return attestation.statement.signed_bytes().partition(b'"claim":')[2]


@pytest.mark.parametrize(
    "claim",
    [{"x": float("nan")}, {"x": "\ud800"}, {"\udc00": 1}, {"x": 2**53 + 1}],
    ids=["nan", "lone-surrogate", "lone-surrogate-name", "big-int"],
)
def test_a_claim_canonical_json_cannot_cover_is_malformed(
    signers: dict[Signer, StageSigner], claim: dict[str, Any]
) -> None:
    body = approval_chain(signers)[0].to_json()
    with pytest.raises(AttestationError) as caught:
        Attestation.from_json({**body, "statement": {**body["statement"], "claim": claim}})
    assert caught.value.details["check"] == "format"


@pytest.mark.parametrize(
    "value",
    ["A" * 64, "a" * 63, "a" * 65, "a" * 64 + "\n", "\u0660" * 64, "g" * 64, 64],
    ids=["upper", "short", "long", "newline", "arabic-indic-digits", "not-hex", "not-a-string"],
)
def test_digests_are_64_lower_case_hex_characters(signers: dict[Signer, StageSigner], value: object) -> None:
    body = approval_chain(signers)[1].to_json()
    for field in ("requester_key_sha256", "binding_sha256", "result_sha256"):
        with pytest.raises(AttestationError) as caught:
            Attestation.from_json({**body, "statement": {**body["statement"], field: value}})
        assert caught.value.details["check"] == "format"
    with pytest.raises(AttestationError):
        Attestation.from_json({**body, "statement": {**body["statement"], "parents": [value]}})
