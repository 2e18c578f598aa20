"""Proving a requester's context on its own device: ``NodeProver`` and ``Device``.

An access request carries a Groth16 context proof bound to the whole request (tenant, vault, item,
request id, the SHA-256 of the requester's public key) and to a nonce the service issued. Proving runs
snarkjs in a separate Node.js process (``zk/scripts/requester.mjs``: one long-lived process, the circuits
and proving keys load once), speaking JSON lines on stdin/stdout:

- ``{"op": "policy", "seed": S}`` -> ``{"ok": true, "policy": {...}}``, the context-policy entry that
  enrols the device in a vault;
- ``{"op": "prove", "seed": S, "tenant_id", "vault_id", "item_id", "request_id", "requester_key_sha256",
  "nonce", "now", "circuit"}`` -> ``{"ok": true, "proof": {...}, "public_signals": [...]}``;
- any failure -> ``{"ok": false, "error": "..."}``, and the process keeps serving.

Proving needs Node.js 20+ and a zk directory whose ``node_modules`` is installed (the SDK's ``prove``
extra: the circuits are not a Python package). Without them, ``ProverUnavailableError`` says what to do.
A ``Device`` is a secret seed (its private values derive from it) and the prover it proves with; the seed
leaves only through ``seed()`` and ``save()`` (a 0600 file), never through ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import select
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Protocol

__all__ = [
    "ZK_DIR_ENV",
    "Device",
    "NodeProver",
    "ProveError",
    "Prover",
    "ProverUnavailableError",
    "requester_key_sha256",
]

ZK_DIR_ENV: Final = "RELIQUARY_ZK_DIR"
DEFAULT_CIRCUIT: Final = "context_proof"
_DEVICE_FILE_HEADER: Final = "reliquary-device-v1"
_SEED_BYTES: Final = 32
_STDERR_TAIL: Final = 400


class ProverUnavailableError(Exception):
    """Proving cannot run here: Node.js, the zk directory or its ``node_modules`` is missing."""

    code = "prover_unavailable"


class ProveError(Exception):
    """The prover refused a request or stopped answering; the message says why (never the seed)."""

    code = "prove_failed"


def requester_key_sha256(public_key: bytes) -> str:
    """How the access flow names a requester's key (the proof binds it): hex SHA-256 of the 1216-byte
    hybrid public key (the plain digest, not the grant's domain-separated fingerprint)."""
    if not isinstance(public_key, bytes) or not public_key:
        raise ValueError("a requester public key is bytes")
    return hashlib.sha256(public_key).hexdigest()


class Prover(Protocol):
    """What proves for a device: the context policy of a seed, and a proof bound to a request."""

    def policy(self, seed: str) -> dict[str, Any]: ...

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
        circuit: str = DEFAULT_CIRCUIT,
        now: int | None = None,
    ) -> dict[str, Any]: ...


def _zk_dir(zk_dir: str | os.PathLike[str] | None) -> Path:
    """The argument, else ``$RELIQUARY_ZK_DIR``, else ``./zk``."""
    if zk_dir is not None:
        return Path(zk_dir)
    from_env = os.environ.get(ZK_DIR_ENV)
    return Path(from_env) if from_env else Path.cwd() / "zk"


class NodeProver:
    """``node <zk_dir>/scripts/requester.mjs``, started on first use and kept for many proofs.

    ``zk_dir``: the argument, else ``$RELIQUARY_ZK_DIR``, else ``./zk``; ``node``: the executable (else
    ``node`` on the PATH). Both are checked here, so a missing one is a ``ProverUnavailableError`` at
    once, saying what to install. Thread-safe: one request at a time goes to the process."""

    def __init__(
        self,
        zk_dir: str | os.PathLike[str] | None = None,
        *,
        node: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        root = _zk_dir(zk_dir).resolve()
        found = shutil.which(node or "node")
        if found is None:
            raise ProverUnavailableError(
                "Node.js 20+ is needed to prove a context: install it (https://nodejs.org) or pass node="
            )
        script = root / "scripts" / "requester.mjs"
        if not script.is_file():
            raise ProverUnavailableError(
                f"no prover script at {script}: pass zk_dir= or set {ZK_DIR_ENV} to RELIQUARY's zk directory"
            )
        if not (root / "node_modules").is_dir():
            raise ProverUnavailableError(
                f"{root / 'node_modules'} is missing: run `npm ci` in {root} to install the prover"
            )
        self.zk_dir = root
        self._node = found
        self._script = script
        self._timeout = timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None

    def _started(self) -> subprocess.Popen[str]:
        if self._process is None:
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  (closed in close())
            self._process = subprocess.Popen(  # noqa: S603  (the zk directory's own script, no shell)
                [self._node, str(self._script)],
                cwd=self.zk_dir,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
            )
        return self._process

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return "(nothing on stderr)"
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text[-_STDERR_TAIL:] if text else "(nothing on stderr)"

    def _fail(self, process: subprocess.Popen[str], why: str) -> ProveError:
        if process.poll() is None:
            process.kill()
            process.wait()
        error = ProveError(f"{why}: {self._stderr_tail()}")
        self._process = None  # the next request starts a new process
        return error

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            process = self._started()
            if process.stdin is None or process.stdout is None or process.poll() is not None:
                raise self._fail(process, "the prover process has ended")
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
            except BrokenPipeError:
                raise self._fail(process, "the prover process stopped reading") from None
            ready, _, _ = select.select([process.stdout], [], [], self._timeout)
            if not ready:
                raise self._fail(process, f"the prover did not answer within {self._timeout:g} s")
            line = process.stdout.readline()
            if not line:
                raise self._fail(process, "the prover process ended without an answer")
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            raise ProveError("the prover answered something else than JSON") from None
        if not isinstance(reply, dict):
            raise ProveError("the prover answered something else than a JSON object")
        if reply.pop("ok", False) is not True:
            raise ProveError(f"the prover refused: {str(reply.get('error'))[:_STDERR_TAIL]}")
        return reply

    def policy(self, seed: str) -> dict[str, Any]:
        """The context-policy entry of the device ``seed`` (its commitment, regions, pattern)."""
        policy = self._ask({"op": "policy", "seed": seed}).get("policy")
        if not isinstance(policy, dict):
            raise ProveError("the prover's answer holds no policy")
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
        circuit: str = DEFAULT_CIRCUIT,
        now: int | None = None,
    ) -> dict[str, Any]:
        """A context proof bound to the request and the nonce, as ``POST /v1/access-requests`` takes it."""
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
        if not isinstance(reply.get("proof"), dict) or not isinstance(reply.get("public_signals"), list):
            raise ProveError("the prover's answer is not a proof")
        return {"circuit": circuit, "proof": reply["proof"], "public_signals": reply["public_signals"]}

    def close(self) -> None:
        """End the Node process (EOF on its stdin), if one was started."""
        with self._lock:
            process, self._process = self._process, None
            if process is not None:
                if process.stdin is not None and not process.stdin.closed:
                    process.stdin.close()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                if process.stdout is not None:
                    process.stdout.close()
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None

    def __enter__(self) -> NodeProver:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NodeProver(zk_dir={str(self.zk_dir)!r})"


class Device:
    """A requester's device: a secret seed and the prover it proves with.

    ``prove(**binding)`` is what ``client.access.request(..., prove=device)`` calls; ``policy()`` is the
    context-policy entry a vault admin adds to the vault's context policy to enrol this device."""

    __slots__ = ("_seed", "prover")

    def __init__(self, seed: str, prover: Prover) -> None:
        if not isinstance(seed, str) or not seed:
            raise ValueError("a device seed is a non-empty string")
        self._seed = seed
        self.prover = prover

    @classmethod
    def generate(cls, prover: Prover) -> Device:
        """A new device with a fresh random seed (256 bits)."""
        return cls(secrets.token_hex(_SEED_BYTES), prover)

    def seed(self) -> str:
        """The secret seed: whoever holds it proves as this device."""
        return self._seed

    def policy(self) -> dict[str, Any]:
        return self.prover.policy(self._seed)

    def prove(
        self,
        *,
        tenant_id: str,
        vault_id: str,
        item_id: str,
        request_id: str,
        requester_public_key: bytes,
        nonce: str,
    ) -> dict[str, Any]:
        return self.prover.prove(
            self._seed,
            tenant_id=tenant_id,
            vault_id=vault_id,
            item_id=item_id,
            request_id=request_id,
            requester_public_key=requester_public_key,
            nonce=nonce,
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the seed to ``path`` (mode 0600) atomically: a crash leaves the old file or the new."""
        target = Path(path)
        encoded = base64.b64encode(self._seed.encode("utf-8")).decode("ascii")
        body = f"{_DEVICE_FILE_HEADER}\n{encoded}\n".encode("ascii")
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            Path(temp).replace(target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str], prover: Prover) -> Device:
        lines = Path(path).read_text(encoding="ascii").splitlines()
        if len(lines) != 2 or lines[0] != _DEVICE_FILE_HEADER:
            raise ValueError("not a RELIQUARY device file")
        try:
            seed = base64.b64decode(lines[1], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError("not a RELIQUARY device file") from None
        return cls(seed, prover)

    def __repr__(self) -> str:
        # A short digest tells devices apart in logs; the seed never shows.
        tag = hashlib.sha256(b"RELIQUARY device tag\x00" + self._seed.encode("utf-8")).hexdigest()[:12]
        return f"Device(tag={tag})"
