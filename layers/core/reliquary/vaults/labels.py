"""Item sensitivity labels: set when a version is sealed, read by the trust stage (``ItemCatalog``).

A label is metadata of one item version, stored beside its envelope and not bound into it: whoever can
write the items table can relabel an item, as they can already delete it (``docs/envelope.md``).

The values are those of ``reliquary.trust.facts.Sensitivity``, repeated here so that sealing does not
import the trust package (its templates and YAML) on the encrypt function's cold path; a unit test holds
the two equal. Anything unknown reads as ``restricted``, the strictest: labels fail closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

from reliquary.errors import InvalidRequestError, ItemExpiredError, ItemShreddedError

Sensitivity = Literal["public", "internal", "confidential", "restricted"]
SENSITIVITIES: Final[tuple[Sensitivity, ...]] = get_args(Sensitivity)  # least to most sensitive
DEFAULT_SENSITIVITY: Final[Sensitivity] = "restricted"
_BY_NAME: Final[dict[object, Sensitivity]] = {label: label for label in SENSITIVITIES}


def parse_sensitivity(value: object) -> Sensitivity:
    """A label given by a caller: exactly one of ``SENSITIVITIES``, else ``InvalidRequestError``."""
    try:
        return _BY_NAME[value]
    except (KeyError, TypeError):  # TypeError: an unhashable value
        raise InvalidRequestError(
            f"sensitivity is one of {', '.join(SENSITIVITIES)}", field="sensitivity"
        ) from None


def stored_sensitivity(value: object) -> Sensitivity:
    """A label as storage holds it: rows sealed before labels existed (no attribute), or holding a value
    this build does not know, read as ``restricted``."""
    try:
        return _BY_NAME.get(value, DEFAULT_SENSITIVITY)
    except TypeError:
        return DEFAULT_SENSITIVITY


@dataclass(frozen=True, slots=True)
class ItemLabel:
    """The sensitivity of an item's current version, and which version that is (a grant pinned to it
    opens the version that was scored, not one sealed in between)."""

    version: int
    sensitivity: Sensitivity


def live_label(
    item_id: str,
    *,
    version: int,
    sensitivity: Sensitivity,
    expires_at: int | None,
    shredded: bool,
    now: int,
) -> ItemLabel:
    """The label of an item's latest version, refused as the vault service refuses to open it: expired
    (``ItemExpiredError``, even before the sweep shreds it) or shredded (``ItemShreddedError``)."""
    if expires_at is not None and expires_at <= now:
        raise ItemExpiredError("the item expired and was crypto-shredded", item_id=item_id)
    if shredded:
        raise ItemShreddedError("the item was crypto-shredded", item_id=item_id)
    return ItemLabel(version, sensitivity)
