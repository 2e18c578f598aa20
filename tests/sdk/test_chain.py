"""The SDK's chain check decides exactly as the core's ``verify_chain`` on chains the core signs: the same
chains accepted with the same meaning (digest, approves, approvers, decided_at), every forgery the core
refuses refused with the same ``check``."""

from __future__ import annotations

import base64
import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from reliquary_sdk import chain as sdk
from reliquary_sdk.chain import ChainError

from reliquary.crypto.signing import SignatureAlgorithm, SigningKey
from reliquary.errors import AttestationError, UnknownStageKeyError
from reliquary.flow.attestation import (
    MAX_CHAIN,
    Attestation,
    Signer,
    Stage,
    StageKeys,
    StageSigner,
    Subject,
    digest,
    parse_chain,
    require_approval_chain,
    verify_attestation,
    verify_chain,
)
from reliquary.flow.memory import MemoryStageKeys, sign_chain
from tests.support.attested import MemoryAttester, attestation_of

NOW = 1_800_000_000
SUBJECT = Subject("t1", "v1", "i1", "r1", "a" * 64, "b" * 64)
P1, P2, P3 = "ps-" + "1" * 24, "ps-" + "2" * 24, "ps-" + "3" * 24
Json = Any


@pytest.fixture(scope="module", autouse=True)
def _liboqs() -> None:
    from reliquary_native import load_oqs

    load_oqs()


@pytest.fixture(scope="module")
def stage_keys() -> MemoryStageKeys:
    return MemoryStageKeys()


@pytest.fixture(scope="module")
def signers(stage_keys: MemoryStageKeys) -> dict[Signer, StageSigner]:
    return dict(stage_keys.signers)


@pytest.fixture(scope="module")
def keys(stage_keys: MemoryStageKeys) -> StageKeys:
    return stage_keys.published()


def _sdk_subject(subject: Subject) -> sdk.Subject:
    return sdk.Subject(**subject.to_json())


def _summary(verified: Any) -> tuple[Any, ...]:
    return (
        "ok",
        verified.digest,
        verified.approves,
        verified.approvers_required,
        verified.approved_by,
        verified.decided_at,
        verified.item_version,
        verified.policy_version,
        len(verified.attestations),
    )


def both(
    chain: list[Attestation] | Json,
    keys: StageKeys,
    *,
    subject: Subject | None = SUBJECT,
    now: int | None = None,
    require: bool = False,
) -> tuple[Any, ...]:
    """The core's and the SDK's verdict on one chain (its JSON as the API carries it): they must agree."""
    body = [a.to_json() for a in chain] if chain and isinstance(chain[0], Attestation) else chain
    body = copy.deepcopy(body)
    try:
        parsed = parse_chain(copy.deepcopy(body))
        check = require_approval_chain if require else verify_chain
        if subject is None:
            core: tuple[Any, ...] = _summary(verify_chain(parsed, keys, now=now))
        else:
            core = _summary(check(parsed, keys, subject=subject, now=now))
    except AttestationError as exc:
        core = ("refused", exc.details["check"])
    published = sdk.StageKeys.from_json(keys.to_json())
    try:
        sdk_parsed = sdk.parse_chain(body)
        sdk_subject = None if subject is None else _sdk_subject(subject)
        if require:
            assert sdk_subject is not None
            mine = _summary(sdk.require_approval_chain(sdk_parsed, published, subject=sdk_subject, now=now))
        else:
            mine = _summary(sdk.verify_chain(sdk_parsed, published, subject=sdk_subject, now=now))
    except ChainError as exc:
        mine = ("refused", exc.check)
    assert mine == core
    return mine


def stepped_up(
    signers: dict[Signer, StageSigner],
    *,
    required: object = 2,
    approvals: tuple[tuple[str, str], ...] = ((P1, "approve"), (P2, "approve")),
    effect: str = "step_up",
    subject: Subject = SUBJECT,
    issued_at: int = NOW,
    approved_at: int = NOW + 600,
) -> list[Attestation]:
    return sign_chain(
        signers,
        subject,
        issued_at=issued_at,
        effect=effect,
        approvers_required=required,  # type: ignore[arg-type]
        approvals=approvals,
        approved_at=approved_at,
    )


# --- honest chains -------------------------------------------------------------------------------------
def test_an_honest_chain_approves_in_both(signers: dict[Signer, StageSigner], keys: StageKeys) -> None:
    chain = sign_chain(signers, SUBJECT, issued_at=NOW, item_version=3)
    verdict = both(chain, keys, now=NOW, require=True)
    assert verdict[:3] == ("ok", verify_chain(chain, keys).digest, True)
    assert verdict[6] == 3
    assert both(chain, keys, subject=None)[0] == "ok"


def test_a_step_up_with_k_approvals_approves_in_both(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    verdict = both(stepped_up(signers), keys, now=NOW + 600, require=True)
    assert verdict[2:6] == (True, 2, (P1, P2), NOW + 600)
    assert both(stepped_up(signers, required=1), keys)[2] is True
    assert both(stepped_up(signers, effect="require_quorum"), keys)[2] is True


@pytest.mark.parametrize("length", [1, 2, 3, 6])
def test_a_chain_that_stops_early_verifies_but_does_not_approve(
    signers: dict[Signer, StageSigner], keys: StageKeys, length: int
) -> None:
    chain = sign_chain(signers, SUBJECT, issued_at=NOW)[:length]
    assert both(chain, keys)[:3] == ("ok", verify_chain(chain, keys).digest, False)
    assert both(chain, keys, require=True) == ("refused", "approval")


@pytest.mark.parametrize(
    "changes",
    [
        {"verified": False},
        {"effect": "deny"},
        {"effect": "step_up"},  # a step-up whose tally asks for nobody
        {"decision": "deny"},
        {"agents": ()},
    ],
    ids=repr,
)
def test_decisions_that_do_not_approve(
    signers: dict[Signer, StageSigner], keys: StageKeys, changes: dict[str, Any]
) -> None:
    chain = sign_chain(signers, SUBJECT, issued_at=NOW, **changes)
    verdict = both(chain, keys)
    assert verdict[0] == "ok"
    if changes != {"agents": ()}:
        assert verdict[2] is False
    both(chain, keys, require=True)


def test_the_chain_bound_admits_sixteen_votes_and_eight_approvals(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    people = tuple((f"ps-{i:024x}", "approve") for i in range(8))
    chain = sign_chain(
        signers,
        SUBJECT,
        issued_at=NOW,
        effect="step_up",
        approvers_required=8,
        approvals=people,
        agents=tuple(f"agent{i}" for i in range(16)),
    )
    assert len(chain) == MAX_CHAIN == sdk.MAX_CHAIN
    assert both(chain, keys)[2] is True
    assert both([*chain, chain[-1]], keys) == ("refused", "format")


def test_flows_the_core_attests_verify_in_the_sdk_result_by_result(stage_keys: MemoryStageKeys) -> None:
    attester = MemoryAttester(stage_keys, clock=lambda: NOW)
    published = sdk.StageKeys.from_json(stage_keys.published().to_json())
    for state in (attester.approved(), attester.waiting(approvers_required=1)):
        parts: list[tuple[Any, str]] = [(state.context, "context"), (state.trust, "trust")]
        parts += [(v, f"{v.agent} vote") for v in state.votes]
        parts.append((state.decision, "tally"))
        chain = [attestation_of(part, name) for part, name in parts]
        subject = _sdk_subject(state.subject)
        mine = sdk.verify_chain(sdk.parse_chain([a.to_json() for a in chain]), published, subject=subject)
        assert mine.digest == attester.verify(state).digest
        # Each result is the one its statement signed; an altered one is not.
        for part, attestation in zip((p for p, _ in parts), mine.attestations, strict=True):
            assert part is not None
            result = part.result_json()
            sdk.verify_attestation(attestation, published, stage=attestation.stage, result=result)
            with pytest.raises(ChainError) as caught:
                sdk.verify_attestation(
                    attestation, published, stage=attestation.stage, result={**result, "forged": True}
                )
            assert caught.value.check == "result"
    assert attester.waiting(approvers_required=1).decision is not None
    assert not sdk.verify_chain(
        sdk.parse_chain([a.to_json() for a in attester.verify(attester.waiting()).attestations]), published
    ).approves  # the tally asks for a person who has not approved yet


def test_an_ed25519_stage_key_verifies_too() -> None:
    ed = {s: StageSigner(s, SigningKey.generate(SignatureAlgorithm.ED25519)) for s in Signer}
    keys = StageKeys({s: [signer.verifying_key] for s, signer in ed.items()})
    assert both(sign_chain(ed, SUBJECT, issued_at=NOW), keys)[2] is True


# --- forgeries -----------------------------------------------------------------------------------------
Mutation = Callable[[list[Attestation]], list[Attestation]]


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        (lambda c: [c[0], c[1], c[2], c[3], c[4], c[6]], "parents"),  # a vote dropped
        (lambda c: [c[1], *c[1:]], "stage"),  # no context statement first
        (lambda c: [*c[:2], c[2], c[2], *c[3:]], "votes"),  # one agent twice
        (lambda c: [c[0], c[0], *c[2:]], "stage"),
        (lambda c: [c[0], c[2], c[3]], "stage"),  # a vote where the trust statement belongs
        (lambda c: [c[0], c[-1]], "stage"),  # a tally without trust
        (lambda c: [*c[:2], c[3], c[2], *c[4:]], "ok"),  # vote order is free; the tally sorts them
        (lambda c: [*c[:2], c[-1]], "parents"),  # a tally without its votes
        (lambda c: [c[0], c[1], *c[2:6], c[-1], c[-1]], "stage"),  # the tally twice
    ],
)
def test_broken_structure_is_refused_alike(
    signers: dict[Signer, StageSigner], keys: StageKeys, mutate: Mutation, check: str
) -> None:
    verdict = both(mutate(sign_chain(signers, SUBJECT, issued_at=NOW)), keys)
    assert verdict[0] == "ok" if check == "ok" else verdict == ("refused", check)


def test_an_empty_chain_is_refused(keys: StageKeys) -> None:
    assert both([], keys) == ("refused", "format")
    with pytest.raises(ChainError) as caught:
        sdk.verify_chain([], sdk.StageKeys.from_json(keys.to_json()))
    assert caught.value.check == "structure"


def _forged(attestation: Attestation, key: StageSigner, *, named_as: Signer | None = None) -> Attestation:
    statement = attestation.statement
    signing = key._key
    return Attestation(
        statement,
        named_as or attestation.signer,
        signing.algorithm,
        signing.key_id,
        signing.sign(statement.signed_bytes()),
    )


@pytest.mark.parametrize("index", [0, 1, 2, 6, 7])  # context, trust, a vote, the tally, an approval
def test_a_statement_signed_by_another_function_is_refused_alike(
    signers: dict[Signer, StageSigner], keys: StageKeys, index: int
) -> None:
    chain = stepped_up(signers, required=1, approvals=((P1, "approve"),))
    target = chain[index]
    other = Signer.SCORE_TRUST if target.signer is Signer.AGENT_VOTE else Signer.AGENT_VOTE
    in_its_name = _forged(target, signers[other], named_as=other)
    assert both([*chain[:index], in_its_name, *chain[index + 1 :]], keys)[1] in ("signer", "stage")
    in_the_right_name = _forged(target, signers[other])
    assert both([*chain[:index], in_the_right_name, *chain[index + 1 :]], keys) == ("refused", "key")
    relabelled = dataclasses.replace(target, signer=other)
    assert both([*chain[:index], relabelled, *chain[index + 1 :]], keys)[0] == "refused"


def test_an_outsiders_keys_are_refused_alike(keys: StageKeys) -> None:
    outsider = {s: StageSigner(s, SigningKey.generate(SignatureAlgorithm.ML_DSA_65)) for s in Signer}
    chain = sign_chain(outsider, SUBJECT, issued_at=NOW)
    assert both(chain, keys) == ("refused", "key")
    with pytest.raises(sdk.UnknownStageKeyError) as caught:
        sdk.verify_chain(
            sdk.parse_chain([a.to_json() for a in chain]), sdk.StageKeys.from_json(keys.to_json())
        )
    with pytest.raises(UnknownStageKeyError) as core:
        verify_chain(chain, keys)
    assert caught.value.key == core.value.key


@pytest.mark.parametrize(
    "field", ["tenant_id", "vault_id", "item_id", "request_id", "requester_key_sha256", "binding_sha256"]
)
def test_a_chain_for_another_request_is_refused_alike(
    signers: dict[Signer, StageSigner], keys: StageKeys, field: str
) -> None:
    other = dataclasses.replace(SUBJECT, **{field: "f" * 64 if field.endswith("sha256") else "other"})
    assert both(sign_chain(signers, other, issued_at=NOW), keys) == ("refused", "subject")
    # Mixed: one statement of the chain is another request's.
    theirs = sign_chain(signers, other, issued_at=NOW)
    mixed = [*sign_chain(signers, SUBJECT, issued_at=NOW)[:2], theirs[2]]
    assert both(mixed, keys, subject=None) == ("refused", "subject")


def _statement_edits() -> list[tuple[str, Callable[[Json], None]]]:
    def set_(path: tuple[Any, ...], value: Any) -> Callable[[Json], None]:
        def edit(statement: Json) -> None:
            target = statement
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value

        return edit

    return [
        ("claim", set_(("claim", "decision"), "approve")),
        ("claim added", set_(("claim", "extra"), 1)),
        ("result", set_(("result_sha256",), "0" * 64)),
        ("issued_at", set_(("issued_at",), NOW + 1)),
        ("parents", set_(("parents",), ["0" * 64])),
        ("v as 1.0", set_(("v",), 1.0)),  # the same canonical statement: still verifies
    ]


@pytest.mark.parametrize("index", [0, 1, 2, 6])
@pytest.mark.parametrize(("name", "edit"), _statement_edits(), ids=[n for n, _ in _statement_edits()])
def test_every_tampered_statement_is_refused_alike(
    signers: dict[Signer, StageSigner], keys: StageKeys, index: int, name: str, edit: Callable[[Json], None]
) -> None:
    body = [a.to_json() for a in sign_chain(signers, SUBJECT, issued_at=NOW, decision="deny")]
    edit(body[index]["statement"])
    verdict = both(body, keys)
    if name == "v as 1.0":
        assert verdict[0] == "ok"
    else:
        assert verdict == ("refused", "signature")


def test_a_flipped_signature_bit_is_refused_alike(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    body = [a.to_json() for a in sign_chain(signers, SUBJECT, issued_at=NOW)]
    for index in range(len(body)):
        forged = copy.deepcopy(body)
        raw = bytearray(base64.b64decode(forged[index]["signature"]))
        raw[10] ^= 1
        forged[index]["signature"] = base64.b64encode(bytes(raw)).decode()
        assert both(forged, keys) == ("refused", "signature")
        forged[index]["signature"] = base64.b64encode(bytes(raw[:-1])).decode()
        assert both(forged, keys) == ("refused", "signature")


@pytest.mark.parametrize(("now", "check"), [(NOW - 300, "ok"), (NOW - 301, "time"), (None, "ok")])
def test_a_chain_dated_in_the_future_is_refused_alike(
    signers: dict[Signer, StageSigner], keys: StageKeys, now: int | None, check: str
) -> None:
    verdict = both(sign_chain(signers, SUBJECT, issued_at=NOW), keys, now=now)
    assert verdict[0] == "ok" if check == "ok" else verdict == ("refused", check)


# --- people's approvals --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "verdict"),
    [
        ({"approvals": ((P1, "approve"),)}, ("refused", "approval")),
        ({"approvals": ()}, ("refused", "approval")),
        ({"approvals": ((P1, "approve"), (P2, "deny"), (P3, "approve"))}, ("refused", "approval")),
        ({"required": 0, "approvals": ()}, ("refused", "approval")),
        ({"required": 0}, ("refused", "approvals")),
        ({"required": -1, "approvals": ()}, ("refused", "approvals")),
        ({"required": 9, "approvals": ()}, ("refused", "approvals")),
        ({"required": True, "approvals": ()}, ("refused", "approvals")),
        ({"required": "2", "approvals": ()}, ("refused", "approvals")),
        ({"required": 1.5, "approvals": ()}, ("refused", "approvals")),
        ({"approvals": ((P1, "approve"), (P1, "approve"))}, ("refused", "approvals")),
        ({"approved_at": NOW - 1, "required": 1, "approvals": ((P1, "approve"),)}, ("refused", "time")),
    ],
    ids=repr,
)
def test_approvals_are_judged_alike(
    signers: dict[Signer, StageSigner], keys: StageKeys, kwargs: dict[str, Any], verdict: tuple[str, str]
) -> None:
    assert both(stepped_up(signers, **kwargs), keys, now=NOW + 600, require=True) == verdict


def test_a_denied_step_up_verifies_but_does_not_approve(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    verdict = both(stepped_up(signers, approvals=((P1, "deny"),)), keys)
    assert verdict[:5] == ("ok", verdict[1], False, 2, ())


def test_misplaced_replayed_or_foreign_approvals_are_refused_alike(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    chain = stepped_up(signers)
    *before, tally, first, second = chain
    assert both([*before, first, tally, second], keys) == ("refused", "stage")
    assert both([*before, first, second], keys) == ("refused", "structure")
    assert both([*chain[:-1], chain[-2]], keys) == ("refused", "approvals")  # replayed
    unsigned = dataclasses.replace(second, signature=b"\x00" * len(second.signature))
    assert both([*chain[:-1], unsigned], keys) == ("refused", "signature")
    theirs = stepped_up(signers, subject=dataclasses.replace(SUBJECT, request_id="other"))
    assert both([*chain[:-1], theirs[-1]], keys) == ("refused", "subject")
    another_tally = stepped_up(signers, issued_at=NOW + 1, approvals=((P2, "approve"),))
    assert both([*chain[:-1], another_tally[-1]], keys) == ("refused", "parents")


@pytest.mark.parametrize(
    "claim",
    [
        {"person_id": P1, "credential_id": "c", "assertion_sha256": "a" * 64, "vote": "abstain"},
        {"person_id": P1, "credential_id": "c", "assertion_sha256": "A" * 64, "vote": "approve"},
        {"person_id": P1, "credential_id": "c", "assertion_sha256": "a" * 64},
        {"person_id": 7, "credential_id": "c", "assertion_sha256": "a" * 64, "vote": "approve"},
        {"person_id": "", "credential_id": "c", "assertion_sha256": "a" * 64, "vote": "approve"},
        {"person_id": P1, "credential_id": "c" * 1025, "assertion_sha256": "a" * 64, "vote": "approve"},
    ],
)
def test_a_malformed_approval_claim_is_refused_alike(
    signers: dict[Signer, StageSigner], keys: StageKeys, claim: dict[str, Any]
) -> None:
    *head, tally = stepped_up(signers, required=1, approvals=())
    approval = signers[Signer.AGENT_VOTE].attest(
        Stage.APPROVAL, SUBJECT, {}, claim=claim, parents=[tally], issued_at=NOW
    )
    assert both([*head, tally, approval], keys) == ("refused", "approvals")


# --- parsing -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "edit",
    [
        lambda a: a.update(extra=1),
        lambda a: a.pop("signature"),
        lambda a: a.update(signature="!"),
        lambda a: a.update(key_id="zz"),
        lambda a: a.update(signer="admin"),
        lambda a: a.update(algorithm="RSA"),
        lambda a: a["statement"].update(v=2),
        lambda a: a["statement"].update(v=True),
        lambda a: a["statement"].update(issued_at=True),
        lambda a: a["statement"].update(issued_at=-1),
        lambda a: a["statement"].update(issued_at=2**53),
        lambda a: a["statement"].update(stage="review"),
        lambda a: a["statement"].update(tenant_id=""),
        lambda a: a["statement"].update(tenant_id="t" * 257),
        lambda a: a["statement"].update(result_sha256="A" * 64),
        lambda a: a["statement"].update(parents=["0" * 64] * 18),
        lambda a: a["statement"].update(parents="0" * 64),
        lambda a: a["statement"].update(claim=[]),
        lambda a: a["statement"].update(claim={"x": float("nan")}),
        lambda a: a["statement"].update(claim={"x": 2**60}),
        lambda a: a["statement"].pop("claim"),
    ],
)
def test_malformed_attestations_are_refused_alike(
    signers: dict[Signer, StageSigner], keys: StageKeys, edit: Callable[[Json], None]
) -> None:
    body = [a.to_json() for a in sign_chain(signers, SUBJECT, issued_at=NOW)]
    edit(body[1])
    assert both(body, keys) == ("refused", "format")


@pytest.mark.parametrize("value", [None, {}, "x", [None], [[]]])
def test_malformed_chains_are_refused(value: object) -> None:
    with pytest.raises(ChainError) as caught:
        sdk.parse_chain(value)
    assert caught.value.check == "format"
    with pytest.raises(AttestationError):
        parse_chain(value)


def test_published_keys_round_trip_and_are_checked(keys: StageKeys) -> None:
    published = keys.to_json()
    assert sdk.StageKeys.from_json(published).to_json() == published
    for broken in (
        None,
        [{**published[0], "key_id": "00" * 8}],
        [{**published[0], "signer": "admin"}],
        [{**published[0], "algorithm": "RSA"}],
        [{**published[0], "public_key": "AAAA"}],
        [{**published[0], "extra": "1"}],
    ):
        with pytest.raises(ChainError) as caught:
            sdk.StageKeys.from_json(broken)
        assert caught.value.check == "format"
        with pytest.raises(AttestationError):
            StageKeys.from_json(broken)


def test_digest_and_signed_bytes_match_the_core(signers: dict[Signer, StageSigner]) -> None:
    for attestation in stepped_up(signers):
        mine = sdk.Attestation.from_json(attestation.to_json())
        assert mine.statement.signed_bytes() == attestation.statement.signed_bytes()
        assert mine.digest == attestation.digest
        assert mine.to_json() == attestation.to_json()
    value = {"b": [1, 2.5, None], "a": "\u20ac"}
    assert sdk.digest(value) == digest(value)


def test_verify_attestation_checks_the_stage_and_subject(
    signers: dict[Signer, StageSigner], keys: StageKeys
) -> None:
    context = sign_chain(signers, SUBJECT, issued_at=NOW)[0]
    mine = sdk.Attestation.from_json(context.to_json())
    published = sdk.StageKeys.from_json(keys.to_json())
    for stage, subject in (
        (Stage.SCORE_TRUST, SUBJECT),
        (Stage.VERIFY_CONTEXT, dataclasses.replace(SUBJECT, item_id="x")),
    ):
        with pytest.raises(AttestationError) as core:
            verify_attestation(context, keys, stage=stage, subject=subject)
        with pytest.raises(ChainError) as caught:
            sdk.verify_attestation(mine, published, stage=stage.value, subject=_sdk_subject(subject))
        assert caught.value.check == core.value.details["check"]
