"""Anomaly detection over the trust facts and an agent's memory of the principal. Pure: the clock is the
request's ``now``. ``SERIOUS`` anomalies justify a veto; the others only a deny."""

from __future__ import annotations

from typing import Final

from reliquary.agents.graph import Evidence
from reliquary.agents.model import VoteRequest

IMPOSSIBLE_TRAVEL: Final = "impossible_travel"
REPLAY: Final = "replay"
BURST: Final = "burst"
NEW_DEVICE: Final = "new_device"
UNUSUAL_HOUR: Final = "unusual_hour"
REPEATED_DENIALS: Final = "repeated_denials"
REPEATED_FAILURES: Final = "repeated_failures"
SERIOUS: Final = frozenset({IMPOSSIBLE_TRAVEL, REPLAY})

BURST_PER_HOUR: Final = 20  # history.requests_1h at or above this is a burst
BURST_WINDOW: Final = 60  # seconds; BURST_IN_WINDOW remembered votes within it is a burst
BURST_IN_WINDOW: Final = 5
FAILURES_PER_HOUR: Final = 3
DENIALS_REMEMBERED: Final = 3  # denials among the last RECENT remembered votes
RECENT: Final = 10
TRAVEL_SECONDS: Final = 600  # another region than last seen within this many seconds
QUIET_HOURS: Final = range(5)  # UTC


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def detect(request: VoteRequest, evidence: Evidence) -> tuple[str, ...]:
    """The anomalies of this request, in a fixed order, each at most once."""
    facts = evidence.trust.facts
    memory = evidence.memory
    found: list[str] = []
    if any(past.request_id == request.request_id for past in memory.past_votes):
        found.append(REPLAY)
    moved_fast = (
        memory.last_region is not None
        and memory.last_seen is not None
        and memory.last_region != request.region
        and 0 <= request.now - memory.last_seen < TRAVEL_SECONDS
    )
    if facts.get("history.impossible_travel") is True or moved_fast:
        found.append(IMPOSSIBLE_TRAVEL)
    recent = sum(1 for past in memory.past_votes if 0 <= request.now - past.time < BURST_WINDOW)
    if _int(facts.get("history.requests_1h")) >= BURST_PER_HOUR or recent >= BURST_IN_WINDOW:
        found.append(BURST)
    if memory.last_device is not None and memory.last_device != request.device:
        found.append(NEW_DEVICE)
    if (request.now // 3600) % 24 in QUIET_HOURS:
        found.append(UNUSUAL_HOUR)
    if sum(1 for past in memory.past_votes[-RECENT:] if past.vote == "deny") >= DENIALS_REMEMBERED:
        found.append(REPEATED_DENIALS)
    if _int(facts.get("history.failures_1h")) >= FAILURES_PER_HOUR:
        found.append(REPEATED_FAILURES)
    return tuple(found)
