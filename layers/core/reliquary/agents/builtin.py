"""The four built-in agents' judgements (``assess`` functions); each becomes a graph through
``build_agent_graph``. Thresholds are module constants so a test can name them."""

from __future__ import annotations

from typing import Final

from reliquary.agents import anomalies
from reliquary.agents.graph import Assessment, Evidence
from reliquary.agents.model import CLAIMS, VoteRequest

STRICT_SCORE: Final = 0.8
PERMISSIVE_SCORE: Final = 0.3
NEUTRAL_APPROVE: Final = 0.6
NEUTRAL_DENY: Final = 0.4
NEUTRAL_FAILURE_PENALTY: Final = 0.1


def _score(evidence: Evidence) -> str:
    return f"score {evidence.trust.score:.2f} ({evidence.trust.band})"


def strict(request: VoteRequest, evidence: Evidence) -> Assessment:
    """Approves only a high band at ``STRICT_SCORE`` or more, every claim proved, and no anomaly."""
    reasons: list[str] = []
    trust = evidence.trust
    if trust.band != "high" or trust.score < STRICT_SCORE:
        reasons.append(f"{_score(evidence)} below high/{STRICT_SCORE}")
    if not evidence.context.verified:
        reasons.append("context proof not verified")
    missing = [claim for claim in CLAIMS if claim not in evidence.context.claims]
    if missing:
        reasons.append(f"claims not proved: {', '.join(missing)}")
    found = anomalies.detect(request, evidence)
    if found:
        reasons.append(f"anomalies: {', '.join(found)}")
    if reasons:
        return Assessment("deny", min(1.0, 0.6 + 0.1 * len(reasons)), tuple(reasons))
    return Assessment("approve", 0.9, (f"{_score(evidence)}", "all claims proved", "no anomaly"))


def permissive(_request: VoteRequest, evidence: Evidence) -> Assessment:
    """Approves a verified request at ``PERMISSIVE_SCORE`` or more; denies an unverified one."""
    if not evidence.context.verified:
        return Assessment("deny", 0.9, ("context proof not verified",))
    if evidence.trust.score < PERMISSIVE_SCORE:
        return Assessment("deny", 0.7, (f"{_score(evidence)} below {PERMISSIVE_SCORE}",))
    return Assessment("approve", 0.6, ("context proof verified", f"{_score(evidence)} >= {PERMISSIVE_SCORE}"))


def neutral(request: VoteRequest, evidence: Evidence) -> Assessment:
    """Weighs the score, the failure history, travel and the stated purpose: approves when clearly
    supported, denies when clearly not, abstains in between."""
    if not evidence.context.verified:
        return Assessment("deny", 0.8, ("context proof not verified",))
    facts = evidence.trust.facts
    weighed = evidence.trust.score
    reasons = [_score(evidence)]
    failures = facts.get("history.failures_24h")
    if isinstance(failures, int) and not isinstance(failures, bool) and failures > 0:
        weighed -= NEUTRAL_FAILURE_PENALTY * min(failures, 3)
        reasons.append(f"{failures} failure(s) in 24h")
    if facts.get("history.impossible_travel") is True:
        weighed -= 0.2
        reasons.append("impossible travel")
    purpose = request.purpose.strip()
    reasons.append(f"purpose {'stated' if purpose else 'missing'}")
    reasons.append(f"weighed {weighed:.2f}")
    if weighed < NEUTRAL_DENY:
        return Assessment("deny", 0.7, tuple(reasons))
    if weighed >= NEUTRAL_APPROVE and purpose:
        return Assessment("approve", 0.7, tuple(reasons))
    return Assessment("abstain", 0.5, tuple(reasons))


def watchdog(request: VoteRequest, evidence: Evidence) -> Assessment:
    """Denies with a veto on a serious anomaly (impossible travel, replay), without on a minor one;
    approves otherwise. Records what it found into its memory."""
    found = anomalies.detect(request, evidence)
    serious = [name for name in found if name in anomalies.SERIOUS]
    recorded = tuple(f"{request.now}:{request.request_id}:{name}" for name in found)
    if serious:
        reasons = (f"serious anomalies: {', '.join(serious)}", f"all: {', '.join(found)}")
        return Assessment("deny", 0.95, reasons, veto=True, anomalies=recorded)
    if found:
        return Assessment("deny", 0.7, (f"anomalies: {', '.join(found)}",), anomalies=recorded)
    return Assessment("approve", 0.6, ("no anomaly in facts or memory",))
