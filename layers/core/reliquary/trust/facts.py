"""The facts a trust decision is made on: one flat namespace that scoring fills and rules read.

Rules may name only these facts (the rule validator refuses any other name), and scoring supplies every
one of them for every request, so a rule never meets a missing fact. Types: ``bool``, ``int`` (counters,
hours), ``float`` (the score), ``str`` (enumerations and free text), ``list[str]`` (roles),
``int | None`` (a counter that may be unknown, e.g. no previous access).
"""

from __future__ import annotations

from typing import Final, Literal

Band = Literal["low", "medium", "high"]
BANDS: Final = ("low", "medium", "high")
Sensitivity = Literal["public", "internal", "confidential", "restricted"]
SENSITIVITIES: Final = ("public", "internal", "confidential", "restricted")

# name -> type, as the rule schema and the validator know them.
FACTS: Final[dict[str, str]] = {
    "score": "float",  # [0, 1]
    "band": "band",  # low | medium | high
    # From the verified context proof (VerifyContext) and the vault's context policy.
    "claims.verified": "bool",
    "claims.device_known": "bool",
    "claims.region_allowed": "bool",
    "claims.in_window": "bool",
    "claims.pattern_matched": "bool",
    # The principal and the request.
    "roles": "list[str]",
    "purpose": "str",
    "sensitivity": "sensitivity",  # public | internal | confidential | restricted
    # The verifier's clock, UTC.
    "time.hour": "int",  # 0..23
    "time.weekday": "int",  # 0 = Monday .. 6 = Sunday
    "time.date": "str",  # YYYY-MM-DD
    # The principal's access history in this tenant (sliding windows ending now).
    "history.requests_1h": "int",
    "history.failures_1h": "int",
    "history.requests_24h": "int",
    "history.failures_24h": "int",
    "history.distinct_devices_30d": "int",
    "history.distinct_regions_30d": "int",
    "history.seconds_since_last": "int|null",
    "history.impossible_travel": "bool",
}
