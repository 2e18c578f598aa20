"""The VerifyContext step: a requester's zero-knowledge context proof, checked against the vault's policy,
bound to one whole request (tenant, vault, item, request id and the requester's key) and one nonce, and
used once.

A well-formed proof that fails any check is a normal answer, ``verified: False`` with a reason (the access
flow then records a denial); only a malformed request (bad JSON shapes, points off the curve, signals out
of the field, an unknown circuit) is an error. Checks, in order: the vault's policy exists and names this
circuit; the public signals are the circuit's; the request binding and the nonce in them are this
request's; the policy's parameters; the nonce is known; the Groth16 proof (on every call, a retry
included); the nonce is unused (or used by this very request: a retry gets the same answer) and
unexpired; then the nonce is consumed and the nullifier recorded atomically.

The verification keys are the development ceremony's (shipped with the core, listed in
``keys/development.json``) unless ``RELIQUARY_ZK_KEYS_DIR`` names a folder of a real ceremony's keys;
production refuses the development keys (``refuse_development_keys``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final, Protocol

from reliquary.crypto.scope import validate_id
from reliquary.errors import (
    ConfigurationError,
    InvalidRequestError,
    NonceExpiredError,
    NonceUnknownError,
    NonceUsedError,
    NotFoundError,
    ReplayError,
)
from reliquary.zk import groth16
from reliquary.zk.policy import CIRCUITS, ContextPolicy, policy_refusal, request_hash
from reliquary.zk.replay import NONCE_HEX, Consumption, IssuedNonce, ReplayStore, new_nonce, nonce_value

DEFAULT_NONCE_TTL = 300
# The fingerprints of the development ceremony's verification keys (next to the keys, in the core).
DEVELOPMENT_MANIFEST: Final = "development.json"
# A nullifier outlives its nonce: a proof can never come back once its nonce row is gone.
NULLIFIER_MARGIN_SECONDS = 86_400


class PolicyStore(Protocol):
    """Port: a vault's context policy (DynamoDB: the vaults table)."""

    def get(self, tenant_id: str, vault_id: str) -> ContextPolicy | None: ...

    def put(self, tenant_id: str, vault_id: str, policy: ContextPolicy) -> None: ...


@dataclass(frozen=True, slots=True)
class CircuitKey:
    """A circuit's verification key (prepared) and the names of its public signals, in order."""

    name: str
    key: groth16.VerificationKey
    signals: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.signals) != self.key.n_public:
            raise InvalidRequestError("the signal names do not match the key", circuit=self.name)


def _shipped_keys() -> Traversable:
    return resources.files("reliquary.zk") / "keys"


def _signal_names(source: Path | Traversable, name: str, *, shipped: Traversable | None) -> tuple[str, ...]:
    signals = json.loads((source / f"{name}.signals.json").read_text(encoding="utf-8"))
    if not isinstance(signals, list) or not all(isinstance(s, str) for s in signals):
        raise ValueError("the signal names are a list of strings")
    if shipped is not None and signals != list(_signal_names(shipped, name, shipped=None)):
        raise ValueError("its signal names are not the circuit's")
    return tuple(signals)


def load_circuit_keys(
    names: Sequence[str] = CIRCUITS, *, folder: Path | Traversable | None = None
) -> dict[str, CircuitKey]:
    """The verification keys and signal names of every circuit in ``names``, from ``folder``
    (``<circuit>.vkey.json`` and ``<circuit>.signals.json`` each) or, without one, the development keys
    shipped with the core (``reliquary/zk/keys``, copies of ``zk/keys``).

    The signal names come from the circuit, not the ceremony: a folder's must be the shipped ones, so a
    key for another version of a circuit is refused here, at cold start, not at the first request."""
    shipped = _shipped_keys()
    source = shipped if folder is None else folder
    found: dict[str, CircuitKey] = {}
    for name in names:
        try:
            vkey = json.loads((source / f"{name}.vkey.json").read_text(encoding="utf-8"))
            signals = _signal_names(source, name, shipped=None if folder is None else shipped)
            found[name] = CircuitKey(name, groth16.VerificationKey.from_snarkjs(vkey), signals)
        except (OSError, ValueError, InvalidRequestError) as exc:  # a deployment problem, not a request's
            raise ConfigurationError(f"the verification key of {name} cannot be loaded: {exc}") from exc
    return found


def key_fingerprints(folder: Path | Traversable, names: Sequence[str] = CIRCUITS) -> dict[str, str]:
    """Each circuit's key fingerprint in a folder of keys (``VerificationKey.fingerprint``: the key's
    points, not its JSON formatting), to compare with a ceremony's published transcript."""
    keys = load_circuit_keys(names, folder=folder)
    return {name: keys[name].key.fingerprint() for name in names}


def development_manifest(folder: Path | Traversable) -> dict[str, Any]:
    """The manifest of a development ceremony's keys, as ``keys/development.json`` holds it."""
    return {
        "kind": "development ceremony: single contribution, local beacon; never for production",
        "fingerprints": key_fingerprints(folder),
    }


def development_fingerprints() -> frozenset[str]:
    """The fingerprints of the development ceremony's verification keys, from the committed manifest."""
    try:
        manifest = json.loads((_shipped_keys() / DEVELOPMENT_MANIFEST).read_text(encoding="utf-8"))
        fingerprints = frozenset(manifest["fingerprints"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"the development key manifest cannot be read: {exc}") from exc
    if not fingerprints or not all(isinstance(f, str) and len(f) == 64 for f in fingerprints):
        raise ConfigurationError("the development key manifest lists no valid fingerprints")
    return fingerprints


def refuse_development_keys(
    keys: Mapping[str, CircuitKey], development: frozenset[str] | None = None
) -> None:
    """Fail closed in production: whoever ran the development ceremony could forge any proof, so a key
    listed in the development manifest (``development``, by default the committed one) is refused."""
    known = development_fingerprints() if development is None else development
    dev = sorted(name for name, key in keys.items() if key.key.fingerprint() in known)
    if dev:
        raise ConfigurationError(
            "the zero-knowledge verification keys are the development ceremony's; production needs a real "
            "ceremony's keys in RELIQUARY_ZK_KEYS_DIR (zk/README.md, Ceremony)",
            circuits=dev,
        )


@dataclass(frozen=True, slots=True)
class ContextResult:
    verified: bool
    circuit: str
    reason: str | None = None
    claims: Mapping[str, int] = field(default_factory=dict)  # the public signals, by name
    nullifier: int | None = None
    proof_hash: str | None = None
    key_fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "circuit": self.circuit,
            "reason": self.reason,
            # Field elements as decimal strings, as snarkjs writes them (JSON numbers lose precision).
            "claims": {name: str(value) for name, value in self.claims.items()},
            "nullifier": None if self.nullifier is None else str(self.nullifier),
            "proof_hash": self.proof_hash,
            "key_fingerprint": self.key_fingerprint,
        }


def _refused(circuit: str, reason: str, **known: Any) -> ContextResult:
    return ContextResult(False, circuit, reason, **known)


class ContextVerifier:
    def __init__(
        self,
        keys: Mapping[str, CircuitKey],
        replay: ReplayStore,
        policies: PolicyStore,
        *,
        clock: Callable[[], int] = lambda: int(time.time()),
        nonce_ttl_seconds: int = DEFAULT_NONCE_TTL,
    ) -> None:
        self._keys = dict(keys)
        self._replay = replay
        self._policies = policies
        self._clock = clock
        self._nonce_ttl = nonce_ttl_seconds

    def issue_nonce(self, tenant_id: str, vault_id: str) -> IssuedNonce:
        """A fresh single-use nonce for a proof about this vault (the vault must have a policy)."""
        validate_id("tenant_id", tenant_id)
        validate_id("vault_id", vault_id)
        if self._policies.get(tenant_id, vault_id) is None:
            raise NotFoundError("the vault has no context policy", vault_id=vault_id)
        now = self._clock()
        issued = IssuedNonce(tenant_id, vault_id, new_nonce(), now, now + self._nonce_ttl)
        self._replay.add_nonce(issued)
        return issued

    def set_policy(self, tenant_id: str, vault_id: str, policy: ContextPolicy) -> None:
        validate_id("tenant_id", tenant_id)
        validate_id("vault_id", vault_id)
        self._policies.put(tenant_id, vault_id, policy)

    def _binding_refusal(
        self,
        *,
        tenant_id: str,
        vault_id: str,
        bound: int,
        nonce: str,
        circuit: str,
        claims: Mapping[str, int],
        now: int,
    ) -> str | None:
        """Why the proof's public signals are not this vault's, this request's and this nonce's."""
        policy = self._policies.get(tenant_id, vault_id)
        if policy is None:
            return "the vault has no context policy"
        if policy.circuit != circuit:
            return f"the vault's policy requires the {policy.circuit} circuit"
        if claims.get("request_hash") != bound:
            return "the proof is bound to another request"
        if claims.get("nonce") != nonce_value(nonce):
            return "the proof is bound to another nonce"
        return policy_refusal(policy, claims, now=now)

    def verify(  # noqa: PLR0911  (one early answer per check, in the documented order)
        self,
        *,
        request_id: str,
        tenant_id: str,
        vault_id: str,
        item_id: str,
        requester_key_sha256: str,
        nonce: str,
        circuit: str,
        proof: Mapping[str, Any],
        public_signals: Sequence[object],
    ) -> ContextResult:
        """Check a context proof for one request. ``requester_key_sha256`` names the key the grant would
        be sealed to (``reliquary.crypto.kem.requester_key_sha256``): the proof's ``request_hash`` covers
        it with the tenant, vault, item and request id, so a copy of the request under another key is
        refused whichever execution comes first."""
        # What this request's proof must carry as request_hash; validates the ids and the key digest.
        bound = request_hash(
            tenant_id=tenant_id,
            vault_id=vault_id,
            item_id=item_id,
            request_id=request_id,
            requester_key_sha256=requester_key_sha256,
        )
        if not isinstance(nonce, str) or len(nonce) != NONCE_HEX or nonce.strip("0123456789abcdef"):
            raise InvalidRequestError(f"the nonce is {NONCE_HEX} lower-case hex characters", field="nonce")
        circuit_key = self._keys.get(circuit)
        if circuit_key is None:
            raise InvalidRequestError("unknown circuit", field="circuit", known=sorted(self._keys))
        parsed = groth16.Proof.from_snarkjs(proof)  # malformed points: typed errors
        values = groth16.parse_public_signals(public_signals, circuit_key.key)
        claims = dict(zip(circuit_key.signals, values, strict=True))
        known: dict[str, Any] = {
            "claims": claims,
            "proof_hash": parsed.digest(),
            "key_fingerprint": circuit_key.key.fingerprint(),
        }

        now = self._clock()
        refusal = self._binding_refusal(
            tenant_id=tenant_id,
            vault_id=vault_id,
            bound=bound,
            nonce=nonce,
            circuit=circuit,
            claims=claims,
            now=now,
        )
        if refusal is not None:
            return _refused(circuit, refusal, **known)
        nullifier = claims.get("nullifier")  # device_proof and context_proof have one
        # The requester key also joins the consumption (defence in depth beside the request binding).
        used = Consumption(request_id, known["proof_hash"], nullifier, requester_key_sha256)
        stored = self._replay.get_nonce(tenant_id, nonce)
        if stored is None or stored[0].vault_id != vault_id:
            return _refused(circuit, NonceUnknownError.code, **known)
        # Every call checks the proof against its public signals, a retry included: a consumption names
        # the proof, not the signals, so answering a retry from it alone would accept changed signals.
        if not groth16.verify(circuit_key.key, parsed, values):
            return _refused(circuit, "the proof does not verify", **known)
        issued, consumption = stored
        if consumption is not None:
            if consumption == used:  # this request, retried: the same answer
                return ContextResult(True, circuit, None, nullifier=nullifier, **known)
            return _refused(circuit, NonceUsedError.code, **known)
        if now >= issued.expires_at:
            return _refused(circuit, NonceExpiredError.code, **known)
        try:
            self._replay.consume(
                tenant_id, nonce, used, now=now, keep_until=issued.expires_at + NULLIFIER_MARGIN_SECONDS
            )
        except ReplayError as exc:
            again = self._replay.get_nonce(tenant_id, nonce)
            if again is not None and again[1] == used:  # a concurrent retry of this same request won
                return ContextResult(True, circuit, None, nullifier=nullifier, **known)
            return _refused(circuit, exc.code, **known)
        return ContextResult(True, circuit, None, nullifier=nullifier, **known)
