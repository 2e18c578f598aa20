"""Make a Groth16 proof for one of the circuits in ``zk/``, by running snarkjs in Node.

snarkjs is GPL-3.0, so it is never imported or linked: ``zk/scripts/prove.mjs`` runs it in a separate
``node`` process, which takes a circuit name and the input (here on stdin, so private inputs never touch
the disk) and prints ``{"proof", "publicSignals"}``; it exits with 2 when the input does not satisfy the
circuit.
Every proof is verified here with :mod:`reliquary.zk.groth16` against ``zk/keys/<circuit>.vkey.json``
before it is returned, so a proof that does not verify is never handed out.

Proving happens where the private inputs are (a device, a test, the SDK); the service only verifies.
Every circuit's public inputs include the request binding, ``nonce`` and ``request_hash``:
:func:`binding_inputs` computes them for one request exactly as the verifier will.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from reliquary.crypto.kem import requester_key_sha256
from reliquary.errors import ConfigurationError, InvalidRequestError, TransientError
from reliquary.zk import groth16
from reliquary.zk.policy import request_hash
from reliquary.zk.replay import NONCE_HEX, nonce_value

__all__ = ["binding_inputs", "default_zk_dir", "prove"]

_CIRCUIT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_STDERR_LIMIT: Final = 2000
_EXIT_UNSATISFIED: Final = 2  # prove.mjs: the input does not satisfy the circuit


def default_zk_dir() -> Path:
    """The repository's ``zk/`` directory (circuits, keys, scripts)."""
    return Path(__file__).resolve().parents[4] / "zk"


def binding_inputs(
    *,
    tenant_id: str,
    vault_id: str,
    item_id: str,
    request_id: str,
    requester_public_key: bytes,
    nonce: str,
) -> dict[str, str]:
    """The public inputs that bind a proof to one request and its nonce (decimal strings, as circom
    takes them): merge them into any circuit's inputs. ``requester_public_key`` is the hybrid public key
    the grant is to be sealed to, as the access request carries it."""
    if not isinstance(nonce, str) or len(nonce) != NONCE_HEX or nonce.strip("0123456789abcdef"):
        raise InvalidRequestError(f"the nonce is {NONCE_HEX} lower-case hex characters", field="nonce")
    bound = request_hash(
        tenant_id=tenant_id,
        vault_id=vault_id,
        item_id=item_id,
        request_id=request_id,
        requester_key_sha256=requester_key_sha256(requester_public_key),
    )
    return {"nonce": str(nonce_value(nonce)), "request_hash": str(bound)}


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise ConfigurationError(
            "node is not on PATH: proving runs snarkjs (GPL-3.0) in a separate Node.js process"
        )
    return node


def _as_circom_input(value: Any) -> Any:
    """Integers as decimal strings: JSON numbers above 2^53 lose precision in JavaScript."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _as_circom_input(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_circom_input(v) for v in value]
    return value


def _stderr_message(stderr: bytes) -> str:
    text = stderr.decode("utf-8", errors="replace").strip()
    return text[-_STDERR_LIMIT:] if text else "(no message)"


def prove(
    circuit: str,
    inputs: Mapping[str, Any],
    *,
    zk_dir: Path | None = None,
    timeout: float = 60,
) -> tuple[dict[str, Any], list[str]]:
    """Prove ``inputs`` for ``circuit``; returns the snarkjs proof object and the public signals.

    Raises ``InvalidRequestError`` when the circuit refuses the inputs (a constraint does not hold),
    ``ConfigurationError`` when Node, the script or an artifact is missing, the script fails otherwise
    or the proof does not verify under ``zk/keys/<circuit>.vkey.json``, and ``TransientError`` when
    proving takes longer than ``timeout`` seconds.
    """
    if not isinstance(circuit, str) or _CIRCUIT_NAME.fullmatch(circuit) is None:
        raise InvalidRequestError("circuit: expected a circuit name like 'device_proof'", field="circuit")
    if not isinstance(inputs, Mapping):
        raise InvalidRequestError("inputs: expected a mapping of signal names to values", field="inputs")
    root = default_zk_dir() if zk_dir is None else zk_dir
    script = root / "scripts" / "prove.mjs"
    vkey_path = root / "keys" / f"{circuit}.vkey.json"
    for path in (script, vkey_path):
        if not path.is_file():
            raise ConfigurationError(f"{path} is missing: build the circuits in zk/ first", circuit=circuit)
    node = _node()
    vk = groth16.VerificationKey.from_snarkjs(json.loads(vkey_path.read_text()))

    try:
        # No shell; every argument is ours. "-": prove.mjs reads the input from stdin.
        done = subprocess.run(  # noqa: S603
            [node, str(script), circuit, "-"],
            input=json.dumps(_as_circom_input(inputs)).encode(),
            cwd=root,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise TransientError(f"proving {circuit} took longer than {timeout} s", circuit=circuit) from e
    if done.returncode == _EXIT_UNSATISFIED:
        raise InvalidRequestError(
            f"proving {circuit} failed: {_stderr_message(done.stderr)}", field="inputs", circuit=circuit
        )
    if done.returncode != 0:
        raise ConfigurationError(
            f"prove.mjs failed for {circuit} (exit {done.returncode}): {_stderr_message(done.stderr)}",
            circuit=circuit,
        )

    try:
        out = json.loads(done.stdout)
        proof_json, public_json = out["proof"], out["publicSignals"]
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigurationError(f"prove.mjs printed no proof for {circuit}", circuit=circuit) from e
    proof = groth16.Proof.from_snarkjs(proof_json)
    public = groth16.parse_public_signals(public_json, vk)
    if not groth16.verify(vk, proof, public):
        raise ConfigurationError(
            f"the proof made for {circuit} does not verify under {vkey_path.name}: key and circuit differ",
            circuit=circuit,
        )
    return dict(proof_json), [str(x) for x in public]
