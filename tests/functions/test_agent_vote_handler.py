"""The agent-vote handler on its sample events against moto: convening adds the rules' quorum agents to the
vault's panel (and refuses a request the rules refused), every agent votes with a rationale, a retried
vote is the same vote, memories are sealed at rest, the tally follows the vault's policy and the rules'
quorum, and bad input is refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.functions.conftest import Invoke
from tests.functions.test_encrypt_handler import assert_clean, each_case, error, ok
from tests.support.aws import AwsStack

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events" / "agent_vote"
PANEL = ("strict", "permissive", "neutral", "watchdog")
NOON = 1_795_608_000  # 2026-11-25T12:00:00Z: a usual hour (the watchdog finds night access unusual)


@pytest.fixture(autouse=True)
def noon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reliquary.agents.service.time.time", lambda: float(NOON))


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    event.update(overrides)
    return event


def with_rules(name: str, **rules: Any) -> dict[str, Any]:
    """The sample event with its trust result's rule outcome changed (``None`` drops a key)."""
    event = load_event(name)
    changed = {**event["trust"]["rules"], **rules}
    event["trust"]["rules"] = {k: v for k, v in changed.items() if v is not None}
    return event


def create_vault(aws: AwsStack) -> None:
    aws.dynamodb.put_item(
        TableName=aws.settings.vaults_table,
        Item={"pk": {"S": "TENANT#acme"}, "sk": {"S": "VAULT#agent-memory"}, "status": {"S": "active"}},
    )


def test_every_action_has_a_sample_event() -> None:
    names = {"convene", "vote", "tally", "set_policy"}
    assert {p.stem for p in EVENTS_DIR.glob("*.json")} == names
    readme = (EVENTS_DIR / "README.md").read_text()
    assert all(f"`{name}.json`" in readme for name in names)


def test_the_panel_votes_once_each_and_memories_are_sealed(agent_vote: Invoke, aws: AwsStack) -> None:
    votes = []
    for agent in PANEL:
        vote = ok(agent_vote(load_event("vote", agent=agent)), "vote")
        assert vote["agent"] == agent
        assert vote["vote"] in {"approve", "deny", "abstain"}
        assert 0 <= vote["confidence"] <= 1
        assert vote["rationale"]
        assert vote["veto"] is False or agent == "watchdog"
        # The Map state retries an iteration: the same vote, not a "replay" seen by the watchdog.
        assert ok(agent_vote(load_event("vote", agent=agent)), "vote") == vote
        votes.append(vote)
    assert {v["vote"] for v in votes} == {"approve"}, votes  # a verified, high-trust, usual request
    tallied = ok(agent_vote(load_event("tally", votes=votes)), "tally")
    assert tallied["decision"] == "approve"
    raw = repr(aws.dynamodb.scan(TableName=aws.settings.agent_memory_table)["Items"])
    for secret in ("support-agent-7", "eu-west-1", "access-0002", "rationale"):
        assert secret not in raw


def test_a_new_request_from_elsewhere_moments_later_is_vetoed(agent_vote: Invoke, aws: AwsStack) -> None:
    ok(agent_vote(load_event("vote")), "vote")
    moved = load_event("vote", request_id="access-0003", region="ap-southeast-2")
    vote = ok(agent_vote(moved), "vote")
    assert (vote["vote"], vote["veto"]) == ("deny", True), vote
    tallied = ok(
        agent_vote(load_event("tally", votes=[*load_event("tally")["votes"][:3], vote])),
        "tally",
    )
    assert tallied["decision"] == "deny"
    assert tallied["vetoed_by"] == ["watchdog"]


def test_the_vault_policy_decides_the_tally(agent_vote: Invoke, aws: AwsStack) -> None:
    error(agent_vote(load_event("set_policy")), "not_found")  # no such vault yet
    create_vault(aws)
    policy = {"panel": ["strict", "watchdog"], "approvals": 2, "veto_holders": ["watchdog"]}
    ok(agent_vote(load_event("set_policy", policy=policy)), "set_policy")
    allowed = with_rules("tally", effect="allow", quorum=None)  # no rule quorum: the vault's panel alone
    error(agent_vote(allowed), "invalid_request")  # two of the four voters are on no panel
    error(
        agent_vote({**with_rules("vote", effect="allow", quorum=None), "agent": "neutral"}), "invalid_request"
    )
    two = [v for v in load_event("tally")["votes"] if v["agent"] in {"strict", "watchdog"}]
    assert ok(agent_vote({**allowed, "votes": two}), "tally")["decision"] == "approve"
    # The policy the panel was convened under: the tally goes on only if the vault still has it.
    convened = ok(agent_vote(load_event("convene")), "convene")["policy"]
    assert ok(agent_vote({**allowed, "votes": two, "policy": convened}), "tally")["decision"] == "approve"
    changed = {**convened, "approvals": 1}
    refused = error(agent_vote({**allowed, "votes": two, "policy": changed}), "conflict")
    assert "changed" in refused["message"]
    unknown = {"panel": ["strict", "oracle"], "approvals": 1, "veto_holders": []}
    body = error(agent_vote(load_event("set_policy", policy=unknown)), "invalid_request")
    assert "oracle" in json.dumps(body)


def test_convene_polls_the_vault_panel_then_the_rules_agents(agent_vote: Invoke, aws: AwsStack) -> None:
    requirement = {"panel": ["neutral", "permissive", "strict"], "threshold": 2}
    convened = ok(agent_vote(load_event("convene")), "convene")
    assert convened == {
        "panel": list(PANEL),  # the default panel holds the rules' quorum already
        "policy": {
            "v": 1,
            "panel": list(PANEL),
            "approvals": 3,
            "veto_holders": ["watchdog"],
            "min_confidence": 0.5,
            "abstentions": "deny",
        },
        "requirement": requirement,
    }
    # The flow passes its whole state: what convene does not read is ignored.
    flow_state = {**load_event("vote"), **load_event("convene")}
    assert ok(agent_vote(flow_state), "convene") == convened
    no_rule_quorum = ok(agent_vote(with_rules("convene", effect="allow", quorum=None)), "convene")
    assert (no_rule_quorum["panel"], no_rule_quorum["requirement"]) == (list(PANEL), None)
    no_trust = {k: v for k, v in load_event("convene").items() if k != "trust"}
    assert ok(agent_vote(no_trust), "convene")["requirement"] is None

    create_vault(aws)
    policy = {"panel": ["strict", "watchdog"], "approvals": 2, "veto_holders": ["watchdog"]}
    ok(agent_vote(load_event("set_policy", policy=policy)), "set_policy")
    convened = ok(agent_vote(load_event("convene")), "convene")
    assert convened["panel"] == ["strict", "watchdog", "neutral", "permissive"]
    assert (convened["policy"]["panel"], convened["requirement"]) == (["strict", "watchdog"], requirement)


def test_the_convened_panel_votes_and_both_quorums_decide(agent_vote: Invoke, aws: AwsStack) -> None:
    create_vault(aws)
    policy = {"panel": ["strict", "watchdog"], "approvals": 2, "veto_holders": ["watchdog"]}
    ok(agent_vote(load_event("set_policy", policy=policy)), "set_policy")
    panel = ok(agent_vote(load_event("convene")), "convene")["panel"]
    votes = [ok(agent_vote(load_event("vote", agent=agent)), "vote") for agent in panel]
    assert [v["agent"] for v in votes] == ["strict", "watchdog", "neutral", "permissive"]
    assert {v["vote"] for v in votes} == {"approve"}, votes
    tallied = ok(agent_vote(load_event("tally", votes=votes)), "tally")
    assert tallied["decision"] == "approve", tallied
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
    # The vault's policy holds (strict, watchdog), the rule quorum does not (strict alone).
    only_vault = [v if v["agent"] in {"strict", "watchdog"} else {**v, "vote": "deny"} for v in votes]
    tallied = ok(agent_vote(load_event("tally", votes=only_vault)), "tally")
    assert tallied["decision"] == "deny"
    assert tallied["reasons"][0] == "rule quorum: 1 of neutral, permissive, strict approved (2 required)"


@pytest.mark.parametrize("effect", ["deny", "step_up"])
def test_a_request_the_rules_refused_is_never_convened_nor_approved(
    agent_vote: Invoke, aws: AwsStack, effect: str
) -> None:
    refusal = {"effect": effect, "reason": "unknown device", "quorum": None}
    body = error(agent_vote(with_rules("convene", **refusal)), "rules_refused")
    assert body["details"] == {"effect": effect}
    tallied = ok(agent_vote(with_rules("tally", **refusal)), "tally")
    assert tallied["decision"] == "deny"
    assert tallied["reasons"][0] == (
        f"rule outcome: {effect} (unknown device): the panel cannot approve what the rules refused"
    )
    assert tallied["requirement"] is None


def test_malformed_requests_are_typed_errors(agent_vote: Invoke, aws: AwsStack) -> None:
    vote = load_event("vote")

    def check(event: Any) -> None:
        payload = agent_vote(copy.deepcopy(event))
        assert payload["status"] == "error", payload
        assert payload["error"]["code"] in {"invalid_request", "not_found"}, payload
        assert_clean(payload)

    each_case(
        {
            "not an object": "vote",
            "unknown action": {**vote, "action": "bribe"},
            "unknown agent": {**vote, "agent": "oracle"},
            "bad agent name": {**vote, "agent": "Oracle!"},
            "score out of range": {**vote, "trust": {**vote["trust"], "score": 2}},
            "no principal": {k: v for k, v in vote.items() if k != "principal"},
            "vote with bad confidence": load_event(
                "tally", votes=[{"agent": "strict", "vote": "approve", "confidence": 3}]
            ),
            "vote from outside the panel": load_event(
                "tally", votes=[{"agent": "oracle", "vote": "approve", "confidence": 1}]
            ),
            "impossible policy": load_event("set_policy", policy={"panel": ["strict"], "approvals": 2}),
            "convene without a rule effect": with_rules("convene", effect=None),
            "convene with an unknown rule effect": with_rules("convene", effect="maybe"),
            "convene with a quorum it cannot meet": with_rules(
                "convene", quorum={"panel": ["strict", "neutral"], "threshold": 3}
            ),
            "convene with an unregistered agent": with_rules(
                "convene", quorum={"panel": ["strict", "oracle"], "threshold": 1}
            ),
            "convene with an agent twice": with_rules(
                "convene", quorum={"panel": ["strict", "strict"], "threshold": 1}
            ),
            "convene with require_quorum but no quorum": with_rules("convene", quorum=None),
            "convene with a zero threshold": with_rules(
                "convene", quorum={"panel": ["strict"], "threshold": 0}
            ),
            "convene for a bad vault id": load_event("convene", vault_id="../etc"),
            "vote with a malformed rule quorum": with_rules(
                "vote", quorum={"panel": "strict", "threshold": 1}
            ),
            "tally with a malformed rule quorum": with_rules("tally", quorum={"panel": [], "threshold": 1}),
            "tally with an unknown rule effect": with_rules("tally", effect="maybe"),
        },
        check,
    )
