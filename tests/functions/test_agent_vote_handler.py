"""The agent-vote handler on its sample events against moto: every agent votes with a rationale, a retried
vote is the same vote, memories are sealed at rest, the tally follows the vault's policy, and bad input is
refused."""

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


def test_every_action_has_a_sample_event() -> None:
    names = {"vote", "tally", "set_policy"}
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
    aws.dynamodb.put_item(
        TableName=aws.settings.vaults_table,
        Item={"pk": {"S": "TENANT#acme"}, "sk": {"S": "VAULT#agent-memory"}, "status": {"S": "active"}},
    )
    policy = {"panel": ["strict", "watchdog"], "approvals": 2, "veto_holders": ["watchdog"]}
    ok(agent_vote(load_event("set_policy", policy=policy)), "set_policy")
    error(agent_vote(load_event("tally")), "invalid_request")  # two of the four voters are not on this panel
    error(agent_vote(load_event("vote", agent="neutral")), "invalid_request")  # not on the panel
    two = [v for v in load_event("tally")["votes"] if v["agent"] in {"strict", "watchdog"}]
    assert ok(agent_vote(load_event("tally", votes=two)), "tally")["decision"] == "approve"
    unknown = {"panel": ["strict", "oracle"], "approvals": 1, "veto_holders": []}
    body = error(agent_vote(load_event("set_policy", policy=unknown)), "invalid_request")
    assert "oracle" in json.dumps(body)


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
        },
        check,
    )
