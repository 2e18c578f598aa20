"""Risk-based trust scoring: every score explains itself as a list of factors.

Each factor has a value in [0, 1] (1 = fully reassuring) and a weight from the template, the most it can
take off the score::

    score = clamp(1 - sum(weight * (1 - value)), 0, 1)
    band  = high if score >= bands.high, medium if score >= bands.medium, else low

A factor's ``contribution`` is ``-weight * (1 - value)``, so ``score = clamp(1 + sum(contributions))``.

The factors (default weights in ``defaults.yaml``):

* ``claims.*``: the five claims of the context proof, 1 if true. An unverified proof voids its claims:
  each claim counts as ``claim and verified``.
* ``history.failures``: effective failures ``f1h + decay * (f24h - f1h)``, where failures 1-24 h old count
  as if one hour old (``decay = 2^(-1h / half_life)``, never an under-count); value
  ``2^(-effective / halving)``.
* ``history.burst``: ``2^(-max(0, requests - allowance) / halving)``, the lower of the 1 h and 24 h windows.
* ``history.dormancy``: 1 within the grace period after the last approved access, then halving every
  half-life; ``first_access`` when there is none in 30 days.
* ``history.known_device`` / ``history.known_region``: 1 if used for an approved access in 30 days.
* ``history.impossible_travel``: 0 if the last approved access could not have been reached in time.
* ``history.hour_habit``: ``min(1, fraction / full_at)`` of past accesses near this hour (``unknown``
  without enough history).
* ``history.sprawl``: ``2^(-max(0, distinct - allowed) / halving)``, the lower of devices and regions.
* ``roles``: the best value among the principal's roles (``default`` for unlisted roles or none).
* ``purpose``: 1 for a known purpose, ``unknown`` for another, ``empty`` for none.
* ``sensitivity``: the template's value for the item's sensitivity (non-increasing: public ->
  restricted), so more sensitive items score lower and need stronger evidence for the same band.

**Monotone by construction.** Weights are >= 0 (validated) and the score is non-decreasing in every
factor value (a fixed-order sum, then a clamp; IEEE rounding is monotone). Every claim factor is
non-decreasing in every claim (``claim and verified``), so turning a claim true never lowers the score.
Every history factor is non-increasing in the counters a failed attempt raises (requests, failures,
distinct devices and regions), and the factors that could reassure (last access, known device and region,
travel, hour habit) come only from *approved* accesses (``history.summarize``), so recording a failure
never raises the score.

``score`` is deterministic for the same request, history, template and clock; it reads already-validated
objects and does no validation or datetime work, so it stays within a few microseconds.
"""

from __future__ import annotations

import time
from typing import Any

from reliquary.trust.facts import Band
from reliquary.trust.model import Factor, HistoryStats, TrustRequest, TrustScore
from reliquary.trust.templates import FACTOR_NAMES, TrustTemplate, normalize_purpose

(
    _VERIFIED,
    _DEVICE_KNOWN,
    _REGION_ALLOWED,
    _IN_WINDOW,
    _PATTERN,
    _FAILURES,
    _BURST,
    _DORMANCY,
    _KNOWN_DEVICE,
    _KNOWN_REGION,
    _TRAVEL,
    _HABIT,
    _SPRAWL,
    _ROLES,
    _PURPOSE,
    _SENSITIVITY,
) = FACTOR_NAMES


def _halving(excess: float, halving: float) -> float:
    return 1.0 if excess <= 0 else 2.0 ** (-excess / halving)


def factor_values(request: TrustRequest, history: HistoryStats, template: TrustTemplate) -> tuple[float, ...]:
    """The factor values in ``FACTOR_NAMES`` order (see the module docs for each)."""
    t = template
    c = request.context
    ok = c.verified
    # failures
    f1 = history.failures_1h
    effective = f1 + t.failure_decay * (history.failures_24h - f1)
    failures = 2.0 ** (-effective / t.failure_halving) if effective > 0 else 1.0
    # burst
    burst = min(
        _halving(history.requests_1h - t.burst_allowance_1h, t.burst_halving_1h),
        _halving(history.requests_24h - t.burst_allowance_24h, t.burst_halving_24h),
    )
    # dormancy
    since = history.seconds_since_last
    if since is None:
        dormancy = t.first_access
    else:
        dormancy = _halving(since - t.dormancy_grace_s, t.dormancy_half_life_s)
    # hour habit
    habit = history.hour_habit
    habit_value = t.habit_unknown if habit is None else min(1.0, habit / t.habit_full_at)
    # sprawl
    sprawl = min(
        _halving(history.distinct_devices_30d - t.sprawl_devices, t.sprawl_halving),
        _halving(history.distinct_regions_30d - t.sprawl_regions, t.sprawl_halving),
    )
    # roles
    roles = request.principal.roles
    if roles:
        values = t.role_values
        default = t.role_default
        role_value = max([values.get(r, default) for r in roles])
    else:
        role_value = t.role_default
    # purpose
    purpose = request.purpose
    if not purpose:
        purpose_value = t.purpose_empty
    else:
        key = normalize_purpose(purpose)
        if not key:
            purpose_value = t.purpose_empty
        elif key in t.known_purposes:
            purpose_value = 1.0
        else:
            purpose_value = t.purpose_unknown
    return (
        1.0 if ok else 0.0,
        1.0 if ok and c.device_known else 0.0,
        1.0 if ok and c.region_allowed else 0.0,
        1.0 if ok and c.in_window else 0.0,
        1.0 if ok and c.pattern_matched else 0.0,
        failures,
        burst,
        dormancy,
        1.0 if history.known_device else 0.0,
        1.0 if history.known_region else 0.0,
        0.0 if history.impossible_travel else 1.0,
        habit_value,
        sprawl,
        role_value,
        purpose_value,
        t.sensitivity_values[request.sensitivity],
    )


def band_of(score: float, template: TrustTemplate) -> Band:
    if score >= template.high:
        return "high"
    if score >= template.medium:
        return "medium"
    return "low"


def score(request: TrustRequest, history: HistoryStats, template: TrustTemplate) -> TrustScore:
    """Score ``request`` given its ``history`` under ``template`` (see the module docs)."""
    factors = []
    total = 1.0
    for name, value, weight in zip(
        FACTOR_NAMES, factor_values(request, history, template), template.weights, strict=True
    ):
        contribution = -weight * (1.0 - value)
        total += contribution
        factors.append(Factor(name, value, weight, contribution))
    result = 0.0 if total <= 0.0 else min(total, 1.0)
    return TrustScore(result, band_of(result, template), tuple(factors), template.name)


def facts(request: TrustRequest, history: HistoryStats, result: TrustScore) -> dict[str, Any]:
    """The flat facts rules read (exactly the keys of ``reliquary.trust.facts.FACTS``); time in UTC.

    As in scoring, an unverified proof voids its claims: every ``claims.*`` fact is false when
    ``claims.verified`` is.
    """
    c = request.context
    ok = c.verified
    now = time.gmtime(request.now)
    return {
        "score": result.score,
        "band": result.band,
        "claims.verified": ok,
        "claims.device_known": ok and c.device_known,
        "claims.region_allowed": ok and c.region_allowed,
        "claims.in_window": ok and c.in_window,
        "claims.pattern_matched": ok and c.pattern_matched,
        "roles": list(request.principal.roles),
        "purpose": request.purpose,
        "sensitivity": request.sensitivity,
        "time.hour": now.tm_hour,
        "time.weekday": now.tm_wday,
        "time.date": f"{now.tm_year:04d}-{now.tm_mon:02d}-{now.tm_mday:02d}",
        "history.requests_1h": history.requests_1h,
        "history.failures_1h": history.failures_1h,
        "history.requests_24h": history.requests_24h,
        "history.failures_24h": history.failures_24h,
        "history.distinct_devices_30d": history.distinct_devices_30d,
        "history.distinct_regions_30d": history.distinct_regions_30d,
        "history.seconds_since_last": history.seconds_since_last,
        "history.impossible_travel": history.impossible_travel,
    }
