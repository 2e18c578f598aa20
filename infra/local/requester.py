"""A requester's side of an access request, for the local runtime's demo, the end-to-end tests and the
benchmarks: a device that proves its context (``zk/scripts/requester.mjs``, one long-lived Node process)
and a fresh hybrid key pair that the grant is sealed to.

Proving runs snarkjs (GPL-3.0) in a separate Node.js process, as on a real requester's device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reliquary_sdk.prove import NodeProver, ProveError, ProverUnavailableError

from infra.local.runtime import LocalRuntimeError
from reliquary.crypto.kem import HybridPrivateKey
from reliquary.zk.prover import default_zk_dir


class RequesterError(LocalRuntimeError):
    """The requester's prover could not start or answer; the message says why."""


class Prover(NodeProver):
    """The SDK's prover (``node zk/scripts/requester.mjs``, one process for many proofs) on this
    checkout's zk directory, its failures as the local runtime's errors."""

    def __init__(self, *, timeout: float = 120, node: str | None = None) -> None:
        try:
            super().__init__(default_zk_dir(), node=node, timeout=timeout)
        except ProverUnavailableError as exc:
            raise RequesterError(f"{exc} (make setup installs zk/node_modules)") from None

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return super()._ask(request)
        except ProveError as exc:
            raise RequesterError(str(exc)) from None

    def __enter__(self) -> Prover:
        return self


@dataclass
class Requester:
    """A principal's device: its seed (private values), and a hybrid key pair made now for its grants."""

    subject: str
    seed: str
    roles: tuple[str, ...] = ("support",)
    key: HybridPrivateKey = field(default_factory=HybridPrivateKey.generate, repr=False)

    @property
    def principal(self) -> dict[str, Any]:
        return {"subject": self.subject, "roles": list(self.roles)}

    @property
    def public_key(self) -> bytes:
        return self.key.public_key().to_bytes()
