"""Trust scoring: scenario table, monotonicity and determinism properties, the facts contract, templates
(named, overridden, malformed) and the history summary (windows, decay boundaries, travel, habit)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from reliquary.errors import InvalidRequestError
from reliquary.trust import (
    FACTOR_NAMES,
    AccessEvent,
    ContextFacts,
    HistoryStats,
    InMemoryHistoryStore,
    TrustRequest,
    TrustScore,
    facts,
    load_template,
    score,
    summarize,
    template_names,
)
from reliquary.trust.facts import BANDS, FACTS, SENSITIVITIES
from reliquary.trust.history import DAY, HOUR, LOOKBACK, distance_km
from reliquary.trust.templates import TrustTemplate

NOW = 1_750_003_200  # 2025-06-15 16:00:00 UTC, a Sunday
CLAIMS = ("verified", "device_known", "region_allowed", "in_window", "pattern_matched")
STANDARD = load_template("standard")
STRICT = load_template("strict")


def context(**over: bool) -> ContextFacts:
    return ContextFacts(**{**dict.fromkeys(CLAIMS, True), **over})


def request(
    *,
    now: int = NOW,
    device: str = "dev-1",
    region: str = "eu-west-1",
    sensitivity: str = "internal",
    purpose: str = "operations",
    roles: Sequence[str] = ("member",),
    ctx: ContextFacts | None = None,
) -> TrustRequest:
    return TrustRequest.model_validate(
        {
            "tenant_id": "tenant-1",
            "vault_id": "vault-1",
            "item_id": "item-1",
            "principal": {"subject": "alice", "roles": list(roles)},
            "sensitivity": sensitivity,
            "purpose": purpose,
            "context": ctx or context(),
            "device": device,
            "region": region,
            "now": now,
        }
    )


def event(
    age: int, outcome: str = "approve", device: str = "dev-1", region: str = "eu-west-1", **kw: Any
) -> AccessEvent:
    return AccessEvent.model_validate(
        {"time": NOW - age, "outcome": outcome, "device": device, "region": region, **kw}
    )


def habitual(days: int = 20, hour_offset: int = 0) -> list[AccessEvent]:
    """One approved access a day at the current hour (shifted by hour_offset), from dev-1 in eu-west-1."""
    return [event(d * DAY + hour_offset * HOUR) for d in range(1, days + 1)]


def run(req: TrustRequest, events: Sequence[AccessEvent], template: TrustTemplate = STANDARD) -> TrustScore:
    return score(req, summarize(events, now=req.now, device=req.device, region=req.region), template)


# --- scenarios ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    desc: str
    req: TrustRequest
    events: list[AccessEvent]
    band: str
    factors: dict[str, float] = field(default_factory=dict)  # name -> expected value (approx)
    below: dict[str, float] = field(default_factory=dict)  # name -> value must be below


SCENARIOS = [
    Scenario(
        "long-time user on a known device at a usual hour",
        request(),
        habitual(),
        "high",
        factors={"history.known_device": 1, "history.known_region": 1, "history.hour_habit": 1},
    ),
    Scenario(
        "first access ever, everything proven",
        request(),
        [],
        "medium",
        factors={"history.known_device": 0, "history.dormancy": 0.5, "history.hour_habit": 0.5},
    ),
    Scenario(
        "new device at night from a new region",
        request(
            now=NOW + 11 * HOUR,  # 03:00 UTC
            device="dev-new",
            region="ap-southeast-2",
            sensitivity="confidential",
            ctx=context(device_known=False, in_window=False, pattern_matched=False),
        ),
        habitual(days=20, hour_offset=2 * 24),  # daily at 16:00, the last three days before
        "low",
        factors={
            "claims.device_known": 0,
            "claims.in_window": 0,
            "history.known_device": 0,
            "history.known_region": 0,
            "history.hour_habit": 0,
            "history.impossible_travel": 1,
        },
    ),
    Scenario(
        "burst of failures",
        request(),
        [*habitual(), *(event(60 * i, "failure") for i in range(8))],
        "low",
        below={"history.failures": 0.2},
    ),
    Scenario(
        "impossible travel: Dublin, then Sydney 30 minutes later",
        request(region="ap-southeast-2"),
        [*habitual(), event(30 * 60)],
        "low",
        factors={"history.impossible_travel": 0},
    ),
    Scenario(
        "restricted item with an unverified context",
        request(sensitivity="restricted", ctx=context(verified=False)),
        habitual(),
        "low",
        factors={f"claims.{c}": 0 for c in CLAIMS},
    ),
]


@pytest.mark.parametrize("case", SCENARIOS, ids=[s.desc for s in SCENARIOS])
def test_scenarios(case: Scenario) -> None:
    result = run(case.req, case.events)
    assert result.band == case.band, result.explain()
    for name, value in case.factors.items():
        assert result.factor(name).value == pytest.approx(value), name
    for name, limit in case.below.items():
        assert result.factor(name).value < limit, name
    assert result.template == "standard"
    assert [f.name for f in result.factors] == list(FACTOR_NAMES)


def test_restricted_unverified_scores_zero() -> None:
    assert run(request(sensitivity="restricted", ctx=context(verified=False)), habitual()).score == 0.0


def test_explanation_adds_up() -> None:
    result = run(SCENARIOS[2].req, SCENARIOS[2].events)
    assert result.score == pytest.approx(max(0.0, 1 + sum(f.contribution for f in result.factors)))
    for f in result.factors:
        assert f.contribution == pytest.approx(-f.weight * (1 - f.value))
    lines = result.explain()
    assert lines[0].startswith("claims.device_known")  # the largest loss first
    assert lines[-1].startswith(f"score {result.score:.3f} (low")
    assert result.to_dict()["factors"][0] == {
        "name": "claims.verified",
        "value": 1.0,
        "weight": 0.5,
        "contribution": -0.0,
    }
    with pytest.raises(KeyError):
        result.factor("nope")


def test_sensitivity_lowers_the_score() -> None:
    scores = [run(request(sensitivity=s), habitual()).score for s in SENSITIVITIES]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > scores[-1]


def test_roles_and_purposes() -> None:
    def value(name: str, **kw: Any) -> float:
        return run(request(**kw), habitual()).factor(name).value

    assert value("roles", roles=("guest", "owner")) == 1.0  # the best role counts
    assert value("roles", roles=()) == 0.5
    assert value("roles", roles=("stranger",)) == 0.5
    assert value("purpose", purpose="  Incident-Response ") == 1.0
    assert value("purpose", purpose="curiosity") == 0.6
    assert value("purpose", purpose="") == 0.3
    assert value("purpose", purpose="   ") == 0.3


def test_failure_decay_boundaries() -> None:
    def failures(*ages: int) -> float:
        return (
            run(request(), [*habitual(), *(event(a, "failure") for a in ages)])
            .factor("history.failures")
            .value
        )

    halving = STANDARD.failure_halving
    assert failures() == 1.0
    assert failures(HOUR - 1) == pytest.approx(2 ** (-1 / halving))  # under an hour: counts fully
    assert failures(HOUR) == pytest.approx(2 ** (-STANDARD.failure_decay / halving))  # decayed
    assert failures(DAY - 1) == failures(HOUR)  # counted at its youngest age within the 24 h window
    assert failures(DAY) == 1.0  # forgotten after 24 h
    assert failures(0, 0) < failures(0) < failures(HOUR) < 1.0


def test_request_burst_and_dormancy() -> None:
    busy = [*habitual(), *(event(i, "deny") for i in range(60))]
    assert run(request(), busy).factor("history.burst").value < 1.0
    assert run(request(), habitual()).factor("history.burst").value == 1.0
    assert run(request(), [event(3 * DAY)]).factor("history.dormancy").value == 1.0
    assert run(request(), [event(21 * DAY)]).factor("history.dormancy").value == pytest.approx(0.5)


# --- properties -----------------------------------------------------------------------------------
DEVICES = st.sampled_from(["dev-1", "dev-2", "dev-3", "dev-4", "dev-5"])
REGIONS = st.sampled_from(["eu-west-1", "eu-west-2", "us-east-1", "ap-southeast-2", "nowhere-1"])
events_st = st.lists(
    st.builds(
        AccessEvent,
        time=st.integers(NOW - LOOKBACK - DAY, NOW + 120),
        outcome=st.sampled_from(["approve", "deny", "failure"]),
        device=DEVICES,
        region=REGIONS,
    ),
    max_size=40,
)
requests_st = st.builds(
    request,
    now=st.integers(NOW - 2 * DAY, NOW + 2 * DAY),
    device=DEVICES,
    region=REGIONS,
    sensitivity=st.sampled_from(SENSITIVITIES),
    purpose=st.sampled_from(["", "operations", "research", "curiosity"]),
    roles=st.lists(st.sampled_from(["owner", "member", "guest", "researcher", "x"]), max_size=3),
    ctx=st.builds(ContextFacts, **dict.fromkeys(CLAIMS, st.booleans())),
)
templates_st = st.sampled_from([load_template(n) for n in template_names()])


@st.composite
def stats_st(draw: st.DrawFn) -> HistoryStats:
    r24 = draw(st.integers(0, 500))
    r1 = draw(st.integers(0, r24))
    f24 = draw(st.integers(0, r24))
    f1 = draw(st.integers(0, min(f24, r1)))
    return HistoryStats(
        requests_1h=r1,
        failures_1h=f1,
        requests_24h=r24,
        failures_24h=f24,
        distinct_devices_30d=draw(st.integers(1, 20)),
        distinct_regions_30d=draw(st.integers(1, 20)),
        seconds_since_last=draw(st.none() | st.integers(0, LOOKBACK)),
        impossible_travel=draw(st.booleans()),
        known_device=draw(st.booleans()),
        known_region=draw(st.booleans()),
        hour_habit=draw(st.none() | st.floats(0, 1)),
    )


@settings(max_examples=200, deadline=None)
@given(req=requests_st, history=stats_st(), template=templates_st)
def test_score_in_unit_interval_and_deterministic(
    req: TrustRequest, history: HistoryStats, template: TrustTemplate
) -> None:
    result = score(req, history, template)
    assert 0.0 <= result.score <= 1.0
    assert result.band in BANDS
    assert all(0.0 <= f.value <= 1.0 and f.weight >= 0 and f.contribution <= 0 for f in result.factors)
    assert score(req, history, template) == result
    assert facts(req, history, result) == facts(req, history, score(req, history, template))


@settings(max_examples=200, deadline=None)
@given(
    req=requests_st,
    events=events_st,
    failure=st.builds(
        AccessEvent,
        time=st.integers(NOW - LOOKBACK - DAY, NOW + 120),
        outcome=st.just("failure"),
        device=DEVICES,
        region=REGIONS,
    ),
    position=st.integers(0, 40),
    template=templates_st,
)
def test_a_failure_never_raises_the_score(
    req: TrustRequest, events: list[AccessEvent], failure: AccessEvent, position: int, template: TrustTemplate
) -> None:
    more = [*events[:position], failure, *events[position:]]
    assert run(req, more, template).score <= run(req, events, template).score


@settings(max_examples=200, deadline=None)
@given(req=requests_st, history=stats_st(), claim=st.sampled_from(CLAIMS), template=templates_st)
def test_a_true_claim_never_lowers_the_score(
    req: TrustRequest, history: HistoryStats, claim: str, template: TrustTemplate
) -> None:
    off = req.model_copy(update={"context": req.context.model_copy(update={claim: False})})
    on = req.model_copy(update={"context": req.context.model_copy(update={claim: True})})
    assert score(on, history, template).score >= score(off, history, template).score


@settings(max_examples=200, deadline=None)
@given(req=requests_st, history=stats_st())
def test_strict_never_scores_above_standard(req: TrustRequest, history: HistoryStats) -> None:
    strict, standard = score(req, history, STRICT), score(req, history, STANDARD)
    assert strict.score <= standard.score
    assert BANDS.index(strict.band) <= BANDS.index(standard.band)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


FACT_TYPES: dict[str, Callable[[Any], bool]] = {
    "float": lambda v: isinstance(v, float),
    "bool": lambda v: isinstance(v, bool),
    "int": _is_int,
    "int|null": lambda v: v is None or _is_int(v),
    "str": lambda v: isinstance(v, str),
    "band": lambda v: v in BANDS,
    "sensitivity": lambda v: v in SENSITIVITIES,
    "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
}


@settings(max_examples=200, deadline=None)
@given(req=requests_st, events=events_st, template=templates_st)
def test_facts_have_exactly_the_declared_keys_and_types(
    req: TrustRequest, events: list[AccessEvent], template: TrustTemplate
) -> None:
    history = summarize(events, now=req.now, device=req.device, region=req.region)
    result = score(req, history, template)
    got = facts(req, history, result)
    assert set(got) == set(FACTS)
    for name, kind in FACTS.items():
        assert FACT_TYPES[kind](got[name]), (name, got[name])
    assert 0 <= got["time.hour"] <= 23
    assert 0 <= got["time.weekday"] <= 6


def test_facts_time_is_utc_and_unverified_claims_are_void() -> None:
    req = request(ctx=context(verified=False))
    history = HistoryStats()
    got = facts(req, history, score(req, history, STANDARD))
    assert (got["time.hour"], got["time.weekday"], got["time.date"]) == (16, 6, "2025-06-15")
    assert not any(got[f"claims.{c}"] for c in CLAIMS)
    assert got["roles"] == ["member"]
    assert got["roles"] is not req.principal.roles


# --- templates ------------------------------------------------------------------------------------
def test_named_templates() -> None:
    assert set(template_names()) >= {"standard", "strict", "research"}
    assert load_template("standard") is STANDARD  # cached
    assert (STRICT.medium, STRICT.high) > (STANDARD.medium, STANDARD.high)
    for case in SCENARIOS:
        assert run(case.req, case.events, STRICT).score <= run(case.req, case.events, STANDARD).score
    research = load_template("research")
    no_purpose = request(purpose="")
    assert run(no_purpose, habitual(), research).score < run(no_purpose, habitual(), STANDARD).score
    assert run(request(purpose="research"), habitual(), research).factor("purpose").value == 1.0


def test_overrides_are_applied() -> None:
    t = load_template(
        "standard",
        {"weights": {"purpose": 0.4}, "roles": {"values": {"intern": 0.2}}, "bands": {"high": 0.95}},
    )
    assert t.weights[FACTOR_NAMES.index("purpose")] == 0.4
    assert t.role_values["intern"] == 0.2
    assert t.role_values["owner"] == 1.0  # nested mappings merge
    assert (t.medium, t.high) == (0.5, 0.95)
    same = {"bands": {"high": 0.95}, "roles": {"values": {"intern": 0.2}}, "weights": {"purpose": 0.4}}
    assert load_template("standard", same) is t  # cached by (name, overrides), whatever the key order
    result = run(request(roles=("intern",)), habitual(), t)
    assert result.factor("roles").value == 0.2
    assert STANDARD.weights[FACTOR_NAMES.index("purpose")] == 0.05  # the base is untouched


@pytest.mark.parametrize(
    ("name", "overrides", "named"),
    [
        ("standard", {"weight": {}}, "weight"),
        ("standard", {"weights": {"claims.verifed": 1.0}}, "claims.verifed"),
        ("standard", {"weights": {"purpose": -0.1}}, "weights.purpose"),
        ("standard", {"weights": {"purpose": float("nan")}}, "weights.purpose"),
        ("standard", {"bands": {"medium": 0.9, "high": 0.8}}, "bands"),
        ("standard", {"bands": {"high": 1.5}}, "bands.high"),
        ("standard", {"bands": 0.5}, "bands"),
        ("standard", {"sensitivity": {"restricted": 0.95}}, "restricted"),
        ("standard", {"roles": {"default": 2}}, "roles.default"),
        ("standard", {"failures": {"half_life_s": 0}}, "failures.half_life_s"),
        ("standard", {"habit": {"spread": 3}}, "habit.spread"),
        ("standard", {"purposes": {"known": "ops"}}, "purposes.known"),
        ("nope", None, "nope"),
    ],
)
def test_malformed_templates_are_refused(name: str, overrides: dict[str, Any] | None, named: str) -> None:
    with pytest.raises(InvalidRequestError, match=named.replace(".", r"\.")) as info:
        load_template(name, overrides)
    assert info.value.code == "invalid_request"


def test_overrides_must_be_a_mapping() -> None:
    with pytest.raises(InvalidRequestError, match="mapping"):
        load_template("standard", ["weights"])  # type: ignore[arg-type]


# --- history --------------------------------------------------------------------------------------
def stats(events: Sequence[AccessEvent], **kw: Any) -> HistoryStats:
    return summarize(events, now=NOW, **{"device": "dev-1", "region": "eu-west-1", **kw})


def test_windows_and_boundaries() -> None:
    s = stats(
        [
            event(0, "failure"),
            event(HOUR - 1, "deny"),
            event(HOUR, "failure"),
            event(DAY - 1),
            event(DAY, "failure", device="dev-2"),
            event(LOOKBACK - 1, region="us-east-1"),
            event(LOOKBACK, device="dev-old", region="sa-east-1"),  # outside 30 days: ignored
            event(-60, "failure"),  # 60 s in the future (clock skew): counts as now
        ]
    )
    assert (s.requests_1h, s.failures_1h) == (3, 2)  # the deny is a request, not a failure
    assert (s.requests_24h, s.failures_24h) == (5, 3)
    assert (s.distinct_devices_30d, s.distinct_regions_30d) == (2, 2)
    assert s.seconds_since_last == DAY - 1


def test_empty_history() -> None:
    assert stats([]) == HistoryStats(distinct_devices_30d=1, distinct_regions_30d=1)


def test_familiarity_comes_from_approvals_only() -> None:
    s = stats([event(10, "failure"), event(20, "deny")])
    assert (s.known_device, s.known_region, s.seconds_since_last) == (False, False, None)
    assert s.distinct_devices_30d == 1
    s = stats([event(100), event(10, "failure", device="dev-2", region="us-east-1")])
    assert (s.known_device, s.known_region, s.seconds_since_last) == (True, True, 100)
    assert (s.distinct_devices_30d, s.distinct_regions_30d) == (2, 2)
    assert stats([event(100, device="dev-2")]).known_device is False


@pytest.mark.parametrize(
    ("previous", "region", "elapsed", "impossible"),
    [
        (event(30 * 60), "ap-southeast-2", 30 * 60, True),  # Dublin -> Sydney in 30 min
        (event(DAY), "ap-southeast-2", DAY, False),  # ~17,200 km in 24 h: under 900 km/h
        (event(10 * HOUR), "ap-southeast-2", 10 * HOUR, True),
        (event(60), "eu-west-1", 60, False),  # same region
        (event(60, region="eu-west-2"), "eu-west-3", 60, False),  # London -> Paris: under MIN_TRAVEL_KM
        (event(60), "nowhere-1", 60, False),  # unknown place
        (event(HOUR, lat=40.7, lon=-74.0), "eu-west-1", HOUR, True),  # explicit coordinates: New York
        (event(60, "failure", region="ap-southeast-2"), "eu-west-1", 60, False),  # failures do not count
    ],
)
def test_impossible_travel(previous: AccessEvent, region: str, elapsed: int, impossible: bool) -> None:
    s = stats([event(3 * DAY), previous], region=region)
    assert s.impossible_travel is impossible
    assert s.seconds_since_last == (elapsed if previous.outcome == "approve" else 3 * DAY)


def test_travel_uses_the_current_coordinates_when_given() -> None:
    assert stats([event(60)], region="nowhere-1", lat=40.7, lon=-74.0).impossible_travel is True
    assert distance_km((51.5, -0.1), (48.9, 2.35)) == pytest.approx(340, abs=10)


def test_hour_habit() -> None:
    assert stats(habitual(days=4)).hour_habit is None  # too few accesses
    assert stats(habitual(days=5)).hour_habit == 1.0
    mixed = habitual(days=6) + habitual(days=6, hour_offset=6)[:2] + [event(2 * DAY + 2 * HOUR)]
    assert stats(mixed).hour_habit == pytest.approx(7 / 9)  # +-2 h counts, 6 h away does not
    # Wrap-around: accesses at 23:00 are usual at 01:00.
    late = [
        AccessEvent(time=NOW - 17 * HOUR - d * DAY, outcome="approve", device="d", region="r")
        for d in range(5)
    ]
    assert summarize(late, now=NOW + 9 * HOUR, device="d", region="r").hour_habit == 1.0


def test_history_stats_refuse_inconsistent_counters() -> None:
    with pytest.raises(ValidationError):
        HistoryStats(requests_1h=2, requests_24h=1)
    with pytest.raises(ValidationError):
        HistoryStats(failures_1h=1, requests_1h=1, requests_24h=1, failures_24h=0)


def test_in_memory_store() -> None:
    clock = [float(NOW)]
    store = InMemoryHistoryStore(clock=lambda: clock[0], max_events=3)
    for age in (30, 10, 20):
        store.record("t", "alice", event(age), expires_at=NOW + 100 - age)
    store.record("t", "bob", event(5), expires_at=NOW + 1000)
    assert [e.time for e in store.recent("t", "alice", since=NOW - 25)] == [NOW - 20, NOW - 10]
    assert [e.time for e in store.recent("t", "alice", since=0)] == [NOW - 30, NOW - 20, NOW - 10]
    assert store.recent("other", "alice", since=0) == []
    clock[0] = NOW + 75  # the oldest expired (expires_at = NOW + 70)
    assert [e.time for e in store.recent("t", "alice", since=0)] == [NOW - 20, NOW - 10]
    store.record("t", "alice", event(1), expires_at=NOW + 1000)
    store.record("t", "alice", event(0), expires_at=NOW + 1000)
    assert [e.time for e in store.recent("t", "alice", since=0)] == [NOW - 10, NOW - 1, NOW]  # capped at 3
    assert len(store.recent("t", "bob", since=0)) == 1
    with pytest.raises(InvalidRequestError):
        InMemoryHistoryStore(max_events=0)
