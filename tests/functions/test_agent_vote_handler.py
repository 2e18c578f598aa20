"""The agent-vote handler on its sample events against moto: convening adds the rules' quorum agents to the
vault's panel (and refuses a request the rules refused), every agent votes with a rationale, a retried
vote is the same vote, memories are sealed at rest, the tally follows the vault's policy and the rules'
quorum. Each task acts only on context and trust results (and votes) whose attestations verify for this
request, the tally only once every convened agent voted, and each signs what it decided."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from reliquary.flow.attestation import Signer, Stage
from reliquary.flow.state import VoteOutcome
from tests.functions.conftest import Invoke
from tests.functions.test_encrypt_handler import assert_clean, each_case, error, ok
from tests.support.attested import Attester, flow_json, state_of
from tests.support.aws import AwsStack

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events" / "agent_vote"
PANEL = ("strict", "permissive", "neutral", "watchdog")
NOON = 1_795_608_000  # 2026-11-25T12:00:00Z: a usual hour (the watchdog finds night access unusual)


@pytest.fixture(autouse=True)
def noon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reliquary.agents.service.time.time", lambda: float(NOON))


@pytest.fixture
def attester(aws: AwsStack) -> Attester:
    """Signs as verify-proof and score-trust would have, at the agents' noon (statements dated later than
    a stage's clock are refused)."""
    return Attester(aws.settings, aws.dynamodb, clock=lambda: NOON)


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    event.update(overrides)
    return event


def _high_trust() -> dict[str, Any]:
    """The sample's trust result had the score been high (strict approves only from 0.8, the high band)."""
    trust: dict[str, Any] = copy.deepcopy(load_event("convene")["flow"]["trust"])
    trust |= {"score": 0.84, "band": "high"}
    trust["facts"] |= {"score": 0.84, "band": "high"}
    return trust


_HIGH = {"trust": _high_trust()}


def signed(
    attester: Attester, name: str, *, rules: dict[str, Any] | None = None, **changes: Any
) -> dict[str, Any]:
    """The sample event with its flow's results signed as their stages sign them; ``rules`` changes the
    trust result's rule outcome (``None`` drops a key) and ``changes`` the flow, before signing."""
    event = load_event(name)
    flow = {**event["flow"], **changes}
    if rules is not None:
        changed = {**flow["trust"]["rules"], **rules}
        flow["trust"] = {**flow["trust"], "rules": {k: v for k, v in changed.items() if v is not None}}
    return {**event, "flow": flow_json(attester.attest(flow))}


def with_votes(event: dict[str, Any], votes: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A tally event of ``event``'s flow with ``votes`` (as agent-vote answered them: signed)."""
    return {"action": "tally", "flow": {**event["flow"], "votes": votes}, **fields}


def convene(event: dict[str, Any]) -> dict[str, Any]:
    """A convene event of ``event``'s flow."""
    return {"action": "convene", "flow": event["flow"]}


def memory_rows(aws: AwsStack) -> list[dict[str, Any]]:
    """The agents' memories of principals (not the row of the key that seals them)."""
    rows: list[dict[str, Any]] = aws.dynamodb.scan(TableName=aws.settings.agent_memory_table)["Items"]
    return [row for row in rows if row["pk"]["S"] != "KEY"]


def create_vault(aws: AwsStack) -> None:
    aws.dynamodb.put_item(
        TableName=aws.settings.vaults_table,
        Item={"pk": {"S": "TENANT#acme"}, "sk": {"S": "VAULT#agent-memory"}, "status": {"S": "active"}},
    )


def without(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "attestation"}


# --- the samples ----------------------------------------------------------------------------------------
def test_every_action_has_a_sample_event() -> None:
    names = {"convene", "vote", "tally", "await_approvals", "approve", "set_policy"}
    assert {p.stem for p in EVENTS_DIR.glob("*.json")} == names
    readme = (EVENTS_DIR / "README.md").read_text()
    assert all(f"`{name}.json`" in readme for name in names)
    # One request through the flow: the same state, with each later task's results added.
    convene, vote, tally = (load_event(n)["flow"] for n in ("convene", "vote", "tally"))
    assert convene == vote == {**tally, "votes": []}
    waiting = load_event("await_approvals")["flow"]
    assert {**waiting, "decision": None} == tally
    assert waiting["decision"]["decision"] == "approve"
    # The answer is about that request, by a person of its tenant.
    answer = load_event("approve")
    assert (answer["tenant_id"], answer["request_id"]) == (tally["tenant_id"], tally["request_id"])


def approval_rows(aws: AwsStack) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = aws.dynamodb.scan(TableName=aws.settings.approvals_table)["Items"]
    return rows


def test_the_step_up_samples_are_refused_as_they_are_and_store_nothing(
    agent_vote: Invoke, aws: AwsStack
) -> None:
    """await_approvals checks the chain through the tally (unsigned here) before anything is stored, and
    fails the waiting task at once (the sample's token names no task: nothing to fail). approve finds no
    request waiting under the sample's id: a passkey answer is checked against what agent-vote stored."""
    body = error(agent_vote(load_event("await_approvals")), "attestation_invalid")
    assert body["details"] == {"check": "structure"}
    error(agent_vote(load_event("approve")), "not_found")
    assert approval_rows(aws) == []
    assert memory_rows(aws) == []


def test_the_flow_samples_are_refused_as_they_are_and_accepted_once_their_stages_signed_them(
    agent_vote: Invoke, aws: AwsStack, attester: Attester
) -> None:
    for name in ("convene", "vote", "tally"):
        body = error(agent_vote(load_event(name)), "attestation_invalid")
        assert body["details"] == {"check": "structure"}
    assert memory_rows(aws) == []
    ok(agent_vote(signed(attester, "convene")), "convene")
    ok(agent_vote(signed(attester, "vote")), "vote")
    ok(agent_vote(signed(attester, "tally")), "tally")


def test_the_panel_votes_once_each_signed_and_memories_are_sealed(
    agent_vote: Invoke, aws: AwsStack, attester: Attester
) -> None:
    event = signed(attester, "vote")
    votes = []
    for agent in PANEL:
        vote = ok(agent_vote({**event, "agent": agent}), "vote")
        assert vote["agent"] == agent
        assert vote["vote"] in {"approve", "deny", "abstain"}
        assert 0 <= vote["confidence"] <= 1
        assert vote["rationale"]
        assert vote["veto"] is False or agent == "watchdog"
        # Signed by agent-vote's stage key, built on the context and trust statements it checked.
        chain = attester.verify({**event["flow"], "votes": [vote]})
        (cast,) = chain.votes
        assert chain.trust is not None
        assert (cast.stage, cast.signer) == (Stage.VOTE, Signer.AGENT_VOTE)
        assert cast.statement.parents == (chain.context.digest, chain.trust.digest)
        assert cast.statement.claim == {"agent": agent, "vote": vote["vote"], "veto": vote["veto"]}
        # The Map state retries an iteration: the same vote, not a "replay" seen by the watchdog.
        assert without(ok(agent_vote({**event, "agent": agent}), "vote")) == without(vote)
        votes.append(vote)
    # What the panel says on the sample state is what the tally sample holds (a medium score: strict denies).
    assert [without(v) for v in votes] == [without(v) for v in load_event("tally")["flow"]["votes"]]
    tallied = ok(agent_vote(with_votes(event, votes)), "tally")
    assert tallied["decision"]["decision"] == "approve"
    assert tallied["decision"]["reasons"] == tallied["reasons"]
    raw = repr(memory_rows(aws))
    for secret in ("support-agent-7", "eu-west-1", "access-0002", "rationale"):
        assert secret not in raw


def test_the_tally_is_signed_over_the_trust_and_every_vote(
    agent_vote: Invoke, aws: AwsStack, attester: Attester
) -> None:
    event = signed(attester, "vote")
    votes = [ok(agent_vote({**event, "agent": agent}), "vote") for agent in PANEL]
    tallied = ok(agent_vote(with_votes(event, votes)), "tally")
    decided = {**event["flow"], "votes": votes, "decision": tallied["decision"]}
    chain = attester.verify(decided)
    assert chain.approves
    assert chain.tally is not None
    assert chain.trust is not None
    assert chain.tally.signer is Signer.AGENT_VOTE
    assert chain.tally.statement.claim == {"decision": "approve", "approvers_required": 0}
    assert (tallied["approvers_required"], tallied["approval_timeout_seconds"]) == (0, 600)
    assert chain.tally.statement.parents == (chain.trust.digest, *sorted(v.digest for v in chain.votes))
    assert tallied["decision"]["policy_version"] == event["flow"]["trust"]["policy_version"]


def test_a_new_request_from_elsewhere_moments_later_is_vetoed(
    agent_vote: Invoke, aws: AwsStack, attester: Attester
) -> None:
    ok(agent_vote(signed(attester, "vote")), "vote")
    moved = signed(attester, "vote", request_id="access-0003", region="ap-southeast-2")
    votes = [ok(agent_vote({**moved, "agent": agent}), "vote") for agent in PANEL]
    veto = votes[-1]
    assert (veto["vote"], veto["veto"]) == ("deny", True), veto
    tallied = ok(agent_vote(with_votes(moved, votes)), "tally")
    assert tallied["decision"]["decision"] == "deny"
    assert tallied["vetoed_by"] == ["watchdog"]
    # Leaving the veto out is no way around it: the tally waits for every convened agent.
    body = error(agent_vote(with_votes(moved, votes[:-1])), "invalid_request")
    assert body["details"] == {"missing": ["watchdog"]}


def test_the_vault_policy_decides_the_tally(agent_vote: Invoke, aws: AwsStack, attester: Attester) -> None:
    error(agent_vote(load_event("set_policy")), "not_found")  # no such vault yet
    create_vault(aws)
    policy = {"panel": ["strict", "watchdog"], "approvals": 2, "veto_holders": ["watchdog"]}
    ok(agent_vote(load_event("set_policy", policy=policy)), "set_policy")
    # No rule quorum: the vault's panel alone; a high score, so strict approves too.
    allowed = signed(attester, "vote", rules={"effect": "allow", "quorum": None}, **_HIGH)
    error(agent_vote({**allowed, "agent": "neutral"}), "invalid_request")  # on no panel
    two = [ok(agent_vote({**allowed, "agent": agent}), "vote") for agent in ("strict", "watchdog")]
    assert ok(agent_vote(with_votes(allowed, two)), "tally")["decision"]["decision"] == "approve"
    # The policy the panel was convened under: the tally goes on only if the vault still has it.
    convened = ok(agent_vote(convene(allowed)), "convene")["policy"]
    tallied = ok(agent_vote(with_votes(allowed, two, policy=convened)), "tally")
    assert tallied["decision"]["decision"] == "approve"
    changed = {**convened, "approvals": 1}
    refused = error(agent_vote(with_votes(allowed, two, policy=changed)), "conflict")
    assert "changed" in refused["message"]
    unknown = {"panel": ["strict", "oracle"], "approvals": 1, "veto_holders": []}
    body = error(agent_vote(load_event("set_policy", policy=unknown)), "invalid_request")
    assert "oracle" in json.dumps(body)


def test_convene_polls_the_vault_panel_then_the_rules_agents(
    agent_vote: Invoke, aws: AwsStack, attester: Attester
) -> None:
    requirement = {"panel": ["neutral", "permissive", "strict"], "threshold": 2}
    convened = ok(agent_vote(signed(attester, "convene")), "convene")
    assert convened == {
        "panel": list(PANEL),  # the default panel holds the rules' quorum already
        "policy": {
            "v": 1,
            "panel": list(PANEL),
            "approvals": 3,
            "veto_holders": ["watchdog"],
            "min_confidence": 0.5,
            "abstentions": "deny",
            "approvers": 0,
            "approval_timeout_seconds": 600,
        },
        "requirement": requirement,
    }
    # Convene reads the checked context and trust results; votes a later state holds change nothing.
    assert ok(agent_vote(convene(signed(attester, "tally"))), "convene") == convened
    no_rule_quorum = ok(
        agent_vote(signed(attester, "convene", rules={"effect": "allow", "quorum": None})), "convene"
    )
    assert (no_rule_quorum["panel"], no_rule_quorum["requirement"]) == (list(PANEL), None)
    # No trust result at all: nothing to convene on.
    no_trust = signed(attester, "convene", trust=None)
    assert error(agent_vote(no_trust), "attestation_invalid")["details"] == {"check": "structure"}

    create_vault(aws)
    policy = {"panel": ["strict", "watchdog"], "approvals": 2, "veto_holders": ["watchdog"]}
    ok(agent_vote(load_event("set_policy", policy=policy)), "set_policy")
    convened = ok(agent_vote(signed(attester, "convene")), "convene")
    assert convened["panel"] == ["strict", "watchdog", "neutral", "permissive"]
    assert (convened["policy"]["panel"], convened["requirement"]) == (["strict", "watchdog"], requirement)


def test_the_convened_panel_votes_and_both_quorums_decide(
    agent_vote: Invoke, aws: AwsStack, attester: Attester
) -> None:
    create_vault(aws)
    policy = {"panel": ["strict", "watchdog"], "approvals": 2, "veto_holders": ["watchdog"]}
    ok(agent_vote(load_event("set_policy", policy=policy)), "set_policy")
    event = signed(attester, "convene", **_HIGH)
    panel = ok(agent_vote(event), "convene")["panel"]
    votes = [ok(agent_vote({**event, "action": "vote", "agent": agent}), "vote") for agent in panel]
    assert [v["agent"] for v in votes] == ["strict", "watchdog", "neutral", "permissive"]
    assert {v["vote"] for v in votes} == {"approve"}, votes
    tallied = ok(agent_vote(with_votes(event, votes)), "tally")
    assert tallied["decision"]["decision"] == "approve", tallied
    assert tallied["reasons"][:2] == [
        "2 of 2 approved (2 required)",
        "rule quorum: 3 of neutral, permissive, strict approved (2 required)",
    ]
    assert (tallied["approvals"], tallied["required"]) == (["strict", "watchdog"], 2)  # the vault's count
    assert tallied["requirement"] == {
        "panel": ["neutral", "permissive", "strict"],
        "threshold": 2,
        "approvals": ["neutral", "permissive", "strict"],
    }
    # The vault's policy holds (strict, watchdog), the rule quorum does not (strict alone): neutral and
    # permissive deny (their denials signed as agent-vote signs a vote).
    state = state_of(event["flow"])
    denials = [
        attester.sign_vote(state, VoteOutcome(agent=a, vote="deny", confidence=0.9)).model_dump(mode="json")
        for a in ("neutral", "permissive")
    ]
    only_vault = [*votes[:2], *denials]
    tallied = ok(agent_vote(with_votes(event, only_vault)), "tally")
    assert tallied["decision"]["decision"] == "deny"
    assert tallied["reasons"][0] == "rule quorum: 1 of neutral, permissive, strict approved (2 required)"


@pytest.mark.parametrize("effect", ["deny"])
def test_a_request_the_rules_refused_is_never_convened_nor_approved(
    agent_vote: Invoke, aws: AwsStack, attester: Attester, effect: str
) -> None:
    refusal = {"effect": effect, "reason": "unknown device", "quorum": None}
    body = error(agent_vote(signed(attester, "convene", rules=refusal)), "rules_refused")
    assert body["details"] == {"effect": effect}
    tallied = ok(agent_vote(signed(attester, "tally", rules=refusal)), "tally")
    assert tallied["decision"]["decision"] == "deny"
    assert tallied["reasons"][0] == (
        f"rule outcome: {effect} (unknown device): the panel cannot approve what the rules refused"
    )
    assert tallied["requirement"] is None


def test_a_step_up_is_convened_and_its_tally_asks_for_people(
    agent_vote: Invoke, aws: AwsStack, attester: Attester
) -> None:
    """The rules' step_up goes to the agents like allow; the tally's signed claim asks for at least one
    person (the policy's approvers when it names more), and the chain does not approve without them."""
    step_up = {"effect": "step_up", "reason": "restricted item", "quorum": None}
    event = signed(attester, "vote", rules=step_up)
    assert ok(agent_vote(convene(event)), "convene")["panel"] == list(PANEL)
    votes = [ok(agent_vote({**event, "agent": agent}), "vote") for agent in PANEL]
    tallied = ok(agent_vote(with_votes(event, votes)), "tally")
    assert (tallied["approvers_required"], tallied["approval_timeout_seconds"]) == (1, 600)
    assert tallied["decision"]["reasons"][-1] == "1 of the vault's approvers must approve too"
    chain = attester.verify({**event["flow"], "votes": votes, "decision": tallied["decision"]})
    assert chain.tally is not None
    assert chain.tally.statement.claim == {"decision": "approve", "approvers_required": 1}
    assert not chain.approves  # the agents alone cannot release a step-up


# --- what the tasks refuse -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "part"),
    [
        ("convene", "context"),
        ("convene", "trust"),
        ("vote", "context"),
        ("vote", "trust"),
        ("tally", "context"),
        ("tally", "trust"),
        ("tally", "vote"),
    ],
)
def test_no_task_acts_on_a_result_its_stage_did_not_sign_for_this_request(
    agent_vote: Invoke, aws: AwsStack, attester: Attester, action: str, part: Any
) -> None:
    honest = signed(attester, "tally")
    event = {**honest, "action": action, **({"agent": "strict"} if action == "vote" else {})}
    if action != "tally":
        event.pop("policy")
    cases = attester.forgeries(honest["flow"], part)
    if part == "trust":
        # The score-trust result a caller would want: the rules' effect raised to allow.
        raised = copy.deepcopy(honest["flow"])
        raised["trust"]["rules"]["effect"] = "allow"
        cases["its rules' effect raised"] = (raised, "result")

    def check(case: tuple[dict[str, Any], str]) -> None:
        flow, failed = case
        body = error(agent_vote({**event, "flow": flow}), "attestation_invalid")
        assert body["details"] == {"check": failed}

    each_case(cases, check)
    assert memory_rows(aws) == []  # no agent consulted, no memory written
    ok(agent_vote(event), action)


def test_the_tally_refuses_until_every_convened_agent_voted(
    agent_vote: Invoke, aws: AwsStack, attester: Attester
) -> None:
    """A caller cannot leave out an agent (a strict denial, a veto holder) to reach another decision: the
    vault's panel and the rules' quorum panel must all have voted."""
    honest = signed(attester, "tally")
    votes = honest["flow"]["votes"]
    for left_out in PANEL:
        kept = [v for v in votes if v["agent"] != left_out]
        body = error(agent_vote(with_votes(honest, kept)), "invalid_request")
        assert body["details"] == {"missing": [left_out]}
    body = error(agent_vote(with_votes(honest, [])), "invalid_request")
    assert body["details"] == {"missing": sorted(PANEL)}
    assert ok(agent_vote(honest), "tally")["decision"]["decision"] == "approve"


def test_malformed_requests_are_typed_errors(agent_vote: Invoke, aws: AwsStack, attester: Attester) -> None:
    vote = signed(attester, "vote")
    tally = signed(attester, "tally")
    state = state_of(tally["flow"])
    oracle = attester.sign_vote(state, VoteOutcome(agent="oracle", vote="approve", confidence=1))

    def check(event: Any) -> None:
        payload = agent_vote(copy.deepcopy(event))
        assert payload["status"] == "error", payload
        assert payload["error"]["code"] in {"invalid_request", "not_found"}, payload
        assert_clean(payload)

    def in_flow(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
        return {**event, "flow": {**event["flow"], **changes}}

    each_case(
        {
            "not an object": "vote",
            "the state beside the flow, not in it": {"action": "vote", "agent": "strict", **vote["flow"]},
            "unknown action": {**vote, "action": "bribe"},
            "unknown agent": {**vote, "agent": "oracle"},
            "bad agent name": {**vote, "agent": "Oracle!"},
            "score out of range": in_flow(vote, trust={**vote["flow"]["trust"], "score": 2}),
            "no principal": {**vote, "flow": {k: v for k, v in vote["flow"].items() if k != "principal"}},
            "vote with bad confidence": in_flow(
                tally, votes=[{**tally["flow"]["votes"][0], "confidence": 3}]
            ),
            "vote from outside the panel": in_flow(
                tally, votes=[*tally["flow"]["votes"], oracle.model_dump(mode="json")]
            ),
            "impossible policy": load_event("set_policy", policy={"panel": ["strict"], "approvals": 2}),
            "convene without a rule effect": signed(attester, "convene", rules={"effect": None}),
            "convene with an unknown rule effect": signed(attester, "convene", rules={"effect": "maybe"}),
            "convene with a quorum it cannot meet": signed(
                attester, "convene", rules={"quorum": {"panel": ["strict", "neutral"], "threshold": 3}}
            ),
            "convene with an unregistered agent": signed(
                attester, "convene", rules={"quorum": {"panel": ["strict", "oracle"], "threshold": 1}}
            ),
            "convene with an agent twice": signed(
                attester, "convene", rules={"quorum": {"panel": ["strict", "strict"], "threshold": 1}}
            ),
            "convene with require_quorum but no quorum": signed(attester, "convene", rules={"quorum": None}),
            "convene with a zero threshold": signed(
                attester, "convene", rules={"quorum": {"panel": ["strict"], "threshold": 0}}
            ),
            "convene for a bad vault id": in_flow(signed(attester, "convene"), vault_id="../etc"),
            "vote with a malformed rule quorum": signed(
                attester, "vote", rules={"quorum": {"panel": "strict", "threshold": 1}}
            ),
            "tally with a malformed rule quorum": signed(
                attester, "tally", rules={"quorum": {"panel": [], "threshold": 1}}
            ),
            "tally with an unknown rule effect": signed(attester, "tally", rules={"effect": "maybe"}),
        },
        check,
    )
    assert memory_rows(aws) == []
