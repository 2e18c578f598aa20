"""Trust templates: the parameters of scoring, from ``defaults.yaml``, a named template of
``templates.yaml`` (``standard``, ``strict``, ``research``) and a vault's own overrides, in that order.

Overrides merge: nested mappings merge key by key (so ``{"roles": {"values": {"intern": 0.2}}}`` adds a
role), every other value replaces. The merged document is validated (unknown keys, negative weights,
values outside [0, 1], band thresholds out of order, sensitivity values that rise with sensitivity) and any
problem is an ``InvalidRequestError`` naming the key. Valid documents are compiled into a ``TrustTemplate``
whose fields are exactly what ``reliquary.trust.scoring.score`` reads, precomputed. The YAML files are read
once per process, when a template is first loaded (PyYAML is imported then, not with this module, which
scoring imports for its types); compiled templates are cached by (name, overrides).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reliquary.errors import InvalidRequestError
from reliquary.trust.facts import SENSITIVITIES

HOUR: Final = 3600

# The factors of a score, in the order they are reported. Each has a weight in every template.
FACTOR_NAMES: Final = (
    "claims.verified",
    "claims.device_known",
    "claims.region_allowed",
    "claims.in_window",
    "claims.pattern_matched",
    "history.failures",
    "history.burst",
    "history.dormancy",
    "history.known_device",
    "history.known_region",
    "history.impossible_travel",
    "history.hour_habit",
    "history.sprawl",
    "roles",
    "purpose",
    "sensitivity",
)

Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class Bands(_Section):
    medium: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
    high: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if not self.medium < self.high:
            raise ValueError(f"bands out of order: medium ({self.medium}) must be below high ({self.high})")
        return self


class SensitivityValues(_Section):
    public: Unit
    internal: Unit
    confidential: Unit
    restricted: Unit

    @model_validator(mode="after")
    def _non_increasing(self) -> SensitivityValues:
        for lo, hi in itertools.pairwise(SENSITIVITIES):
            a, b = getattr(self, lo), getattr(self, hi)
            if b > a:
                raise ValueError(f"{hi} ({b}) must not be above {lo} ({a}): more sensitive never scores more")
        return self


class Failures(_Section):
    half_life_s: Positive
    halving: Positive


class Burst(_Section):
    allowance_1h: NonNegativeInt
    halving_1h: Positive
    allowance_24h: NonNegativeInt
    halving_24h: Positive


class Dormancy(_Section):
    grace_s: NonNegativeInt
    half_life_s: Positive
    first_access: Unit


class Habit(_Section):
    full_at: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
    unknown: Unit


class Sprawl(_Section):
    devices: Annotated[int, Field(ge=1)]
    regions: Annotated[int, Field(ge=1)]
    halving: Positive


class Roles(_Section):
    default: Unit
    values: dict[Annotated[str, Field(min_length=1, max_length=128)], Unit]


class Purposes(_Section):
    known: list[Annotated[str, Field(min_length=1, max_length=256)]]
    unknown: Unit
    empty: Unit


class TemplateConfig(_Section):
    """A complete, validated template document (defaults merged with a template and overrides)."""

    weights: dict[str, Annotated[float, Field(ge=0.0, allow_inf_nan=False)]]
    bands: Bands
    sensitivity: SensitivityValues
    failures: Failures
    burst: Burst
    dormancy: Dormancy
    habit: Habit
    sprawl: Sprawl
    roles: Roles
    purposes: Purposes

    @field_validator("weights")
    @classmethod
    def _known_factors(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(FACTOR_NAMES))
        if unknown:
            raise ValueError(f"unknown factor(s) {', '.join(unknown)}; factors are {', '.join(FACTOR_NAMES)}")
        missing = [n for n in FACTOR_NAMES if n not in weights]
        if missing:
            raise ValueError(f"missing factor(s) {', '.join(missing)}")
        return weights


@dataclass(frozen=True, slots=True)
class TrustTemplate:
    """A compiled template: ``config`` as validated, and the precomputed parameters scoring reads."""

    name: str
    description: str
    config: TemplateConfig
    weights: tuple[float, ...]  # in FACTOR_NAMES order
    medium: float
    high: float
    sensitivity_values: Mapping[str, float]
    failure_decay: float  # weight of a failure 1-24 h old
    failure_halving: float
    burst_allowance_1h: int
    burst_halving_1h: float
    burst_allowance_24h: int
    burst_halving_24h: float
    dormancy_grace_s: int
    dormancy_half_life_s: float
    first_access: float
    habit_full_at: float
    habit_unknown: float
    sprawl_devices: int
    sprawl_regions: int
    sprawl_halving: float
    role_values: Mapping[str, float]
    role_default: float
    known_purposes: frozenset[str]
    purpose_unknown: float
    purpose_empty: float


def normalize_purpose(purpose: str) -> str:
    """How purposes are compared: trimmed and case-folded."""
    return purpose.strip().casefold()


@functools.cache
def _documents() -> tuple[dict[str, Any], dict[str, Any]]:
    import yaml  # noqa: PLC0415  (see the module's doc)

    # The package's own files, read with the safe loader; libyaml's parser (in PyYAML's wheels) reads
    # them about five times faster than the pure-Python one, with the same resolver and constructor.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    package = resources.files("reliquary.trust")
    defaults = yaml.load(package.joinpath("defaults.yaml").read_text(encoding="utf-8"), Loader=loader)  # noqa: S506
    templates = yaml.load(package.joinpath("templates.yaml").read_text(encoding="utf-8"), Loader=loader)  # noqa: S506
    if not isinstance(defaults, dict) or not isinstance(templates, dict):
        raise InvalidRequestError("trust defaults.yaml and templates.yaml must be mappings")
    return defaults, templates


def template_names() -> tuple[str, ...]:
    return tuple(_documents()[1])


def _merge(base: Mapping[str, Any], override: Mapping[str, Any], path: str) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if not isinstance(key, str):
            raise InvalidRequestError(f"{path or 'overrides'}: keys must be strings, got {key!r}")
        where = f"{path}.{key}" if path else key
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = _merge(current, value, where)
        elif isinstance(current, Mapping) and value is not None:
            raise InvalidRequestError(f"{where}: expected a mapping", key=where)
        else:
            merged[key] = value
    return merged


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "template"


def validate_config(document: Mapping[str, Any], *, name: str) -> TemplateConfig:
    """Validate a merged template document; the error names the first offending key."""
    try:
        return TemplateConfig.model_validate(document)
    except ValidationError as e:
        first = e.errors()[0]
        where = _location(first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        raise InvalidRequestError(
            f"trust template {name!r}: {where}: {message}", template=name, key=where
        ) from None


def compile_template(config: TemplateConfig, *, name: str, description: str = "") -> TrustTemplate:
    return TrustTemplate(
        name=name,
        description=description,
        config=config,
        weights=tuple(config.weights[n] for n in FACTOR_NAMES),
        medium=config.bands.medium,
        high=config.bands.high,
        sensitivity_values=MappingProxyType({s: getattr(config.sensitivity, s) for s in SENSITIVITIES}),
        failure_decay=math.pow(2.0, -HOUR / config.failures.half_life_s),
        failure_halving=config.failures.halving,
        burst_allowance_1h=config.burst.allowance_1h,
        burst_halving_1h=config.burst.halving_1h,
        burst_allowance_24h=config.burst.allowance_24h,
        burst_halving_24h=config.burst.halving_24h,
        dormancy_grace_s=config.dormancy.grace_s,
        dormancy_half_life_s=config.dormancy.half_life_s,
        first_access=config.dormancy.first_access,
        habit_full_at=config.habit.full_at,
        habit_unknown=config.habit.unknown,
        sprawl_devices=config.sprawl.devices,
        sprawl_regions=config.sprawl.regions,
        sprawl_halving=config.sprawl.halving,
        role_values=MappingProxyType(dict(config.roles.values)),
        role_default=config.roles.default,
        known_purposes=frozenset(normalize_purpose(p) for p in config.purposes.known),
        purpose_unknown=config.purposes.unknown,
        purpose_empty=config.purposes.empty,
    )


def _build(name: str, overrides: Mapping[str, Any] | None) -> TrustTemplate:
    defaults, templates = _documents()
    entry = templates.get(name)
    if not isinstance(entry, Mapping):
        raise InvalidRequestError(
            f"unknown trust template {name!r}; known: {', '.join(templates)}", template=name
        )
    extra = set(entry) - {"description", "overrides"}
    if extra:
        raise InvalidRequestError(
            f"trust template {name!r}: unknown key(s) {', '.join(sorted(map(str, extra)))}"
        )
    document = _merge(defaults, entry.get("overrides") or {}, "")
    if overrides:
        document = _merge(document, overrides, "")
    config = validate_config(document, name=name)
    return compile_template(config, name=name, description=str(entry.get("description", "")).strip())


_CACHE: dict[tuple[str, str], TrustTemplate] = {}
_CACHE_MAX: Final = 256


def load_template(name: str, overrides: Mapping[str, Any] | None = None) -> TrustTemplate:
    """The named template with a vault's ``overrides`` applied, validated and compiled (cached)."""
    if overrides is not None and not isinstance(overrides, Mapping):
        raise InvalidRequestError("trust template overrides must be a mapping", template=name)
    try:
        key = (name, json.dumps(overrides or {}, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError):
        return _build(name, overrides)  # not JSON-like: validation will say what is wrong
    cached = _CACHE.get(key)
    if cached is None:
        cached = _build(name, overrides)
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = cached
    return cached
