"""The data of a trust decision: what is asked (``TrustRequest``), what the past says (``HistoryStats``,
built from ``AccessEvent``s by ``reliquary.trust.history.summarize``) and the explained result
(``TrustScore`` made of ``Factor``s).

Inputs are pydantic models (frozen, ``extra="forbid"``), validated once at the boundary; scoring then reads
them as plain attributes. The results, ``Factor`` and ``TrustScore``, are built on every request, so they
are a ``NamedTuple`` and a frozen slotted dataclass instead: pydantic costs 2-3 us per object, and a score
has sixteen factors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from reliquary.fields import Identifier
from reliquary.trust.facts import Band, Sensitivity

Outcome = Literal["approve", "deny", "failure"]
OUTCOMES = ("approve", "deny", "failure")

MAX_PURPOSE = 256
MAX_ROLES = 64

Device = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Region = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Role = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Purpose = Annotated[str, StringConstraints(max_length=MAX_PURPOSE)]
EpochSeconds = Annotated[int, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContextFacts(_Frozen):
    """What the request's context proof established (``VerifyContext`` and the vault's context policy).

    ``verified`` is whether the proof verified at all; the other claims are only believed when it did.
    """

    verified: bool
    device_known: bool
    region_allowed: bool
    in_window: bool
    pattern_matched: bool


class AccessEvent(_Frozen):
    """One past access attempt of a principal.

    ``outcome``: ``approve`` (the item was released), ``deny`` (the policy refused) or ``failure`` (a proof,
    signature or nonce check failed). Only approved accesses build familiarity (known devices, regions and
    hours, the last access); every outcome counts as a request. ``lat``/``lon`` give the place when known;
    without them, the region's coordinates come from ``reliquary.trust.history.REGION_COORDINATES``.
    """

    time: EpochSeconds
    outcome: Outcome
    device: Device
    region: Region
    lat: Annotated[float, Field(ge=-90.0, le=90.0)] | None = None
    lon: Annotated[float, Field(ge=-180.0, le=180.0)] | None = None


class HistoryStats(_Frozen):
    """A principal's access history in one tenant, summarized for one request (see ``history.summarize``).

    The first eight fields are the ``history.*`` facts rules read; the rest feed scoring only.
    """

    requests_1h: Count = 0
    failures_1h: Count = 0
    requests_24h: Count = 0
    failures_24h: Count = 0
    # Distinct devices and regions over every attempt in the last 30 days, the current request included.
    distinct_devices_30d: Annotated[int, Field(ge=1)] = 1
    distinct_regions_30d: Annotated[int, Field(ge=1)] = 1
    # Since the last approved access (None: none in the last 30 days).
    seconds_since_last: Count | None = None
    impossible_travel: bool = False
    # Was the current device / region used for an approved access in the last 30 days?
    known_device: bool = False
    known_region: bool = False
    # Fraction of approved accesses of the last 30 days within +-2 h of the current hour of day (None:
    # too few accesses to have a habit).
    hour_habit: Annotated[float, Field(ge=0.0, le=1.0)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HistoryStats:
        if not (self.failures_1h <= self.requests_1h <= self.requests_24h):
            raise ValueError("counters out of order: need failures_1h <= requests_1h <= requests_24h")
        if not (self.failures_1h <= self.failures_24h <= self.requests_24h):
            raise ValueError("counters out of order: need failures_1h <= failures_24h <= requests_24h")
        return self


class Principal(_Frozen):
    subject: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    roles: Annotated[list[Role], Field(max_length=MAX_ROLES)] = Field(default_factory=list)


class TrustRequest(_Frozen):
    """One access request, as scoring sees it. ``now`` is the verifier's clock (epoch seconds, UTC)."""

    tenant_id: Identifier
    vault_id: Identifier
    item_id: Identifier
    principal: Principal
    sensitivity: Sensitivity
    purpose: Purpose = ""
    context: ContextFacts
    device: Device
    region: Region
    now: EpochSeconds


class Factor(NamedTuple):
    """One reason in a score.

    ``value`` in [0, 1] (1 = fully reassuring); ``weight`` >= 0, the most the factor can take off the
    score; ``contribution = -weight * (1 - value)`` (<= 0), what it did take off. The score is
    ``clamp(1 + sum of contributions, 0, 1)`` (see ``reliquary.trust.scoring``).
    """

    name: str
    value: float
    weight: float
    contribution: float


@dataclass(frozen=True, slots=True)
class TrustScore:
    """A score in [0, 1], its band under the template's thresholds, and the factors that explain it."""

    score: float
    band: Band
    factors: tuple[Factor, ...]
    template: str

    def factor(self, name: str) -> Factor:
        for f in self.factors:
            if f.name == name:
                return f
        raise KeyError(name)

    def explain(self) -> list[str]:
        """One line per factor that cost something, largest loss first, then the total."""
        lines = [
            f"{f.name}: value {f.value:.2f} x weight {f.weight:g} -> {f.contribution:+.3f}"
            for f in sorted(self.factors, key=lambda f: (f.contribution, f.name))
            if f.contribution < 0
        ]
        lines.append(f"score {self.score:.3f} ({self.band}, template {self.template})")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "band": self.band,
            "template": self.template,
            "factors": [f._asdict() for f in self.factors],
        }
