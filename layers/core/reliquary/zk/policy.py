"""A vault's context policy: which circuit a requester must prove with, and the public parameters the
proof's public signals must carry (the vault's devices, its region tree, a time window, access patterns).

A Groth16 proof shows that *some* private inputs satisfy the circuit for *its* public signals; it is the
policy check that ties those public signals to this vault. A proof for a device the vault does not know,
another region tree, a stale window or a weaker threshold verifies as a proof and is still refused here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Annotated, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from reliquary.crypto.scope import validate_id
from reliquary.errors import InvalidRequestError
from reliquary.fields import JsonInt, VersionOne
from reliquary.zk._mcl import R

# BN254's scalar field order r (snarkjs "bn128"): every public signal is an element of [0, r). One
# definition, the verifier's own (``_mcl.R``); tests check it against py_ecc's ``curve_order``.
SCALAR_FIELD: Final = R
CIRCUITS: Final = ("context_proof", "device_proof", "location_chain", "timestamp_verifier", "pattern_match")
Circuit = Literal["context_proof", "device_proof", "location_chain", "timestamp_verifier", "pattern_match"]
MAX_DEVICES = 256
MAX_PATTERNS = 64
PATTERN_EVENTS = 8


def _field_element(value: object) -> int:
    """A decimal string (as snarkjs writes signals) or an int, in [0, r)."""
    if isinstance(value, bool):
        raise ValueError("a field element is a decimal string or an integer")  # noqa: TRY004
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit() or (len(value) > 1 and value[0] == "0"):
            raise ValueError("a field element is a canonical decimal string")
        value = int(value)
    if not isinstance(value, int) or not 0 <= value < SCALAR_FIELD:
        raise ValueError("a field element is an integer in [0, r) of BN254")
    return value


FieldElement = Annotated[int, BeforeValidator(_field_element), PlainSerializer(str, return_type=str)]


# Domain tag of the request binding: a hash made for something else never equals a request_hash.
REQUEST_BINDING_DOMAIN: Final = "reliquary/zk/request-binding/v1"
_KEY_SHA256 = re.compile(r"[0-9a-f]{64}")


def request_hash(
    *, tenant_id: str, vault_id: str, item_id: str, request_id: str, requester_key_sha256: str
) -> int:
    """The public signal that binds a proof to one whole request: which tenant's vault and item, which
    request, and the requester key the grant would be sealed to (``reliquary.crypto.kem.
    requester_key_sha256``, 64 lower-case hex characters).

    SHA-256 over the domain tag and the five values in that order, each as its length (4 bytes,
    big-endian) and its UTF-8 bytes, so no two different requests encode alike; the top 248 bits, so
    the value is always below r. ``zk/scripts/inputs.mjs`` (``requestHash``) computes the same."""
    validate_id("tenant_id", tenant_id)
    validate_id("vault_id", vault_id)
    validate_id("item_id", item_id)
    validate_id("request_id", request_id)
    if not isinstance(requester_key_sha256, str) or _KEY_SHA256.fullmatch(requester_key_sha256) is None:
        raise InvalidRequestError(
            "the requester key digest is 64 lower-case hex characters", field="requester_key_sha256"
        )
    digest = hashlib.sha256()
    for value in (REQUEST_BINDING_DOMAIN, tenant_id, vault_id, item_id, request_id, requester_key_sha256):
        encoded = value.encode("utf-8")
        digest.update(len(encoded).to_bytes(4, "big") + encoded)
    return int.from_bytes(digest.digest(), "big") >> 8


class ContextPolicy(BaseModel):
    """Stored per vault; absent means the vault accepts no context proof at all (fail closed)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    v: VersionOne = 1
    circuit: Circuit = "context_proof"
    device_commitments: tuple[FieldElement, ...] = Field(default=(), max_length=MAX_DEVICES)
    region_root: FieldElement | None = None
    pattern_commitments: tuple[FieldElement, ...] = Field(default=(), max_length=MAX_PATTERNS)
    min_pattern_matches: JsonInt = Field(default=PATTERN_EVENTS // 2, ge=1, le=PATTERN_EVENTS)
    # The proven window must be at most this long and contain the verifier's clock (give or take the skew).
    max_window_seconds: JsonInt = Field(default=3600, ge=1, le=31 * 86_400)
    clock_skew_seconds: JsonInt = Field(default=120, ge=0, le=3600)


def policy_refusal(  # noqa: PLR0911  (one reason per parameter)
    policy: ContextPolicy, signals: Mapping[str, int], *, now: int
) -> str | None:
    """Why the public signals do not meet the policy (a short reason), or None when they do. Every
    parameter the circuit exposes is checked; a circuit without a parameter is not asked for it."""
    if "device_commitment" in signals and signals["device_commitment"] not in policy.device_commitments:
        return "the device is not one this vault knows"
    if "region_root" in signals and (
        policy.region_root is None or signals["region_root"] != policy.region_root
    ):
        return "the proof is for another set of allowed regions"
    if "window_start" in signals or "window_end" in signals:
        start, end = signals.get("window_start", -1), signals.get("window_end", -1)
        if not 0 <= start <= end or end - start > policy.max_window_seconds:
            return "the time window is longer than the policy allows"
        if not start - policy.clock_skew_seconds <= now <= end + policy.clock_skew_seconds:
            return "the time window is not now"
    if "pattern_commitment" in signals and signals["pattern_commitment"] not in policy.pattern_commitments:
        return "the access pattern is not one this vault accepts"
    if "threshold" in signals and signals["threshold"] < policy.min_pattern_matches:
        return "the access pattern threshold is below the policy's"
    return None
