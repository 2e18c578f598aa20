"""The committed zero-knowledge artifacts are the ceremony's: every file hashes as the transcript says, the
verification keys are the ones the proving keys export, and the core ships exact copies of them."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ZK = REPO / "zk"
CORE_KEYS = REPO / "layers" / "core" / "reliquary" / "zk" / "keys"
TRANSCRIPT = json.loads((ZK / "ceremony" / "transcript.json").read_text())
CIRCUITS = ("context_proof", "device_proof", "location_chain", "pattern_match", "timestamp_verifier")


def test_every_committed_artifact_hashes_as_the_transcript_says() -> None:
    artifacts = [a for group in TRANSCRIPT["artifacts"].values() for a in group]
    assert {Path(a["path"]).name for a in artifacts} >= {f"{c}.zkey" for c in CIRCUITS}
    for artifact in artifacts:
        data = (ZK / artifact["path"]).read_bytes()
        assert len(data) == artifact["bytes"], artifact["path"]
        assert hashlib.sha256(data).hexdigest() == artifact["sha256"], artifact["path"]


@pytest.mark.parametrize("circuit", CIRCUITS)
def test_the_core_ships_exact_copies_of_the_keys(circuit: str) -> None:
    for suffix in (".vkey.json", ".signals.json"):
        assert (CORE_KEYS / f"{circuit}{suffix}").read_bytes() == (
            ZK / "keys" / f"{circuit}{suffix}"
        ).read_bytes()
    assert (
        json.loads((ZK / "keys" / f"{circuit}.signals.json").read_text())
        == (TRANSCRIPT["circuits"][circuit]["public_signals"])
    )


def test_the_verification_keys_are_exported_from_the_proving_keys() -> None:
    node = shutil.which("node")
    if node is None or not (ZK / "node_modules" / "snarkjs").is_dir():
        pytest.fail("Node.js and zk/node_modules are needed: `make setup` installs them (npm ci --prefix zk)")
    done = subprocess.run(  # noqa: S603  (fixed arguments)
        [node, str(ZK / "scripts" / "check-keys.mjs")],
        cwd=ZK,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
