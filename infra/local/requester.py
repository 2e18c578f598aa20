"""A requester's side of an access request, for the local runtime's demo, the end-to-end tests and the
benchmarks: a device that proves its context (``zk/scripts/requester.mjs``, one long-lived Node process)
and a fresh hybrid key pair that the grant is sealed to.

Proving runs snarkjs (GPL-3.0) in a separate Node.js process, as on a real requester's device.
"""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from infra.local.runtime import LocalRuntimeError
from reliquary.crypto.kem import HybridPrivateKey, requester_key_sha256
from reliquary.zk.prover import default_zk_dir


class RequesterError(LocalRuntimeError):
    """The requester's prover could not start or answer; the message says why."""


class Prover:
    """``node zk/scripts/requester.mjs``: proves many requests in one process (keys load once)."""

    def __init__(self, *, timeout: float = 120) -> None:
        node = shutil.which("node")
        if node is None:
            raise RequesterError("Node.js 20+ is needed to prove (make setup installs zk/node_modules)")
        root = default_zk_dir()
        script = root / "scripts" / "requester.mjs"
        if not (root / "node_modules").is_dir():
            raise RequesterError(f"{root / 'node_modules'} is missing: run `make setup` (npm ci --prefix zk)")
        self._timeout = timeout
        self._lock = threading.Lock()
        # Why Node stopped, if it does (e.g. Node < 20); closed in close().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(  # noqa: S603  (our own script, no shell)
            [node, str(script)],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text[-400:] if text else "(nothing on stderr)"

    def _fail(self, why: str) -> RequesterError:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        return RequesterError(f"{why}: {self._stderr_tail()}")

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        process = self._process
        if process.stdin is None or process.stdout is None or process.poll() is not None:
            raise self._fail("the prover process has ended")
        with self._lock:
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
            except BrokenPipeError:
                raise self._fail("the prover process stopped reading") from None
            ready, _, _ = select.select([process.stdout], [], [], self._timeout)
            if not ready:
                raise self._fail(f"the prover did not answer within {self._timeout:g} s")
            line = process.stdout.readline()
        if not line:
            raise self._fail("the prover process ended without an answer")
        try:
            reply: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            raise self._fail(f"the prover answered something else than JSON ({line[:80]!r})") from None
        if not reply.pop("ok", False):
            raise RequesterError(f"the prover refused: {reply.get('error')}")
        return reply

    def policy(self, seed: str) -> dict[str, Any]:
        """The context policy a vault needs to accept this device (its commitment, regions, pattern)."""
        policy: dict[str, Any] = self._ask({"op": "policy", "seed": seed})["policy"]
        return policy

    def prove(
        self,
        seed: str,
        *,
        tenant_id: str,
        vault_id: str,
        item_id: str,
        request_id: str,
        requester_public_key: bytes,
        nonce: str,
        circuit: str = "context_proof",
        now: int | None = None,
    ) -> dict[str, Any]:
        """A context proof bound to the whole request (tenant, vault, item, request id and the key the
        grant is to be sealed to: ``reliquary.zk.policy.request_hash``) and to ``nonce``, as the access
        request carries it."""
        reply = self._ask(
            {
                "op": "prove",
                "seed": seed,
                "tenant_id": tenant_id,
                "vault_id": vault_id,
                "item_id": item_id,
                "request_id": request_id,
                "requester_key_sha256": requester_key_sha256(requester_public_key),
                "nonce": nonce,
                "circuit": circuit,
                "now": int(time.time()) if now is None else now,
            }
        )
        return {"circuit": circuit, "proof": reply["proof"], "public_signals": reply["public_signals"]}

    def close(self) -> None:
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> Prover:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


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
