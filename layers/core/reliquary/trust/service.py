"""The ScoreTrust step: the principal's recent history summarized, the request scored with explained
factors, and the rule set evaluated on the facts; the decision carries the policy version the audit log
records. Outcomes are recorded back into the history so that later requests see them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from reliquary.crypto.scope import validate_id
from reliquary.trust.history import HistoryStore, summarize
from reliquary.trust.model import AccessEvent, HistoryStats, Outcome, TrustRequest, TrustScore
from reliquary.trust.policy import TrustPolicy, TrustPolicyStore, default_policy
from reliquary.trust.rules import RuleOutcome
from reliquary.trust.scoring import facts, score

HISTORY_WINDOW_SECONDS = 30 * 86_400  # the longest window scoring looks at
HISTORY_TTL_SECONDS = HISTORY_WINDOW_SECONDS + 86_400


@dataclass(frozen=True, slots=True)
class TrustDecision:
    score: TrustScore
    history: HistoryStats
    rules: RuleOutcome
    facts: dict[str, Any]  # what the rules read; the agents read them too
    device: str  # the device and region the history was read with: the outcome is recorded against them
    region: str

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.score.to_dict(),
            "rules": self.rules.to_dict(),
            "policy_version": self.rules.policy_version,
            "facts": self.facts,
            "device": self.device,
            "region": self.region,
        }


def flow_outcome(decision: Literal["approve", "deny"], *, verified: bool) -> Outcome:
    """What the history records of a decided request: ``approve`` when approved; ``failure`` when its
    context proof did not verify (or was never checked); otherwise ``deny`` (the policy refused)."""
    if decision == "approve":
        return "approve"
    return "deny" if verified else "failure"


class TrustService:
    def __init__(
        self,
        history: HistoryStore,
        policies: TrustPolicyStore,
        *,
        clock: Callable[[], int] = lambda: int(time.time()),
    ) -> None:
        self._history = history
        self._policies = policies
        self._clock = clock

    @property
    def now(self) -> int:
        return self._clock()

    def policy(self, tenant_id: str, vault_id: str) -> TrustPolicy:
        """The vault's trust policy; the default (standard template, default rules) when it has none."""
        return self._policies.get(tenant_id, vault_id) or default_policy()

    def set_policy(self, tenant_id: str, vault_id: str, policy: TrustPolicy) -> None:
        validate_id("tenant_id", tenant_id)
        validate_id("vault_id", vault_id)
        self._policies.put(tenant_id, vault_id, policy)

    def decide(self, request: TrustRequest) -> TrustDecision:
        policy = self.policy(request.tenant_id, request.vault_id)
        events = self._history.recent(
            request.tenant_id, request.principal.subject, since=request.now - HISTORY_WINDOW_SECONDS
        )
        stats = summarize(events, now=request.now, device=request.device, region=request.region)
        result = score(request, stats, policy.scoring_template())
        known = facts(request, stats, result)
        return TrustDecision(
            result, stats, policy.rule_set().evaluate(known), known, request.device, request.region
        )

    def record(
        self, tenant_id: str, subject: str, event: AccessEvent, *, event_id: str | None = None
    ) -> None:
        """Add ``event`` to the principal's history; with an ``event_id`` (the request id) a retry
        replaces it instead of adding another (see ``HistoryStore.record``)."""
        self._history.record(
            tenant_id, subject, event, expires_at=event.time + HISTORY_TTL_SECONDS, event_id=event_id
        )
