"""`reliquary audit verify --anchor` and `audit anchors`, in process (typer's CliRunner) against a service
and gateways that are tiny HTTP servers on 127.0.0.1 (tests/support/nodes.py's FakeNode): the service's
audit routes answer from a log the core builds (honest or forked), the gateway serves the anchored note
(or another body, or nothing). What is checked is what a user relies on: one history is reported, a
split view exits 3 with both checkpoints, a gateway that fails exits 4, a tampered body exits 3."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from reliquary_sdk.anchors import raw_cid
from reliquary_sdk.cli import app
from typer.testing import CliRunner

from tests.sdk.test_anchors import forked, honest, signed_receipt
from tests.sdk.test_monitor import ORIGIN, CoreLog, log_keys
from tests.support.nodes import FakeNode, Reply

# The SDK anchor tests' signed logs (an honest one and its fork), shared as fixtures.
__all__ = ["forked", "honest", "log_keys"]

TX_ID = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
ENV = ("RELIQUARY_URL", "RELIQUARY_PROFILE", "RELIQUARY_CLIENT_ID", "RELIQUARY_CLIENT_SECRET")
GATEWAY_ENV = ("RELIQUARY_IPFS_GATEWAY", "RELIQUARY_IPFS_API", "RELIQUARY_ARWEAVE_GATEWAY")


@pytest.fixture(autouse=True)
def homes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (*ENV, *GATEWAY_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("COLUMNS", "250")
    return tmp_path


def listed(note: bytes, backend: str = "ipfs") -> dict[str, Any]:
    _origin, size, root, *_ = note.decode().split("\n")
    return {
        "tree_size": int(size),
        "root_hash": root,
        "backend": backend,
        "locator": raw_cid(note) if backend == "ipfs" else TX_ID,
        "note_sha256": hashlib.sha256(note).hexdigest(),
        "anchored_at": 1_700_000_000,
        "log_index": int(size) + 1,
        "block": {"height": 7, "hash": "blk"} if backend == "arweave" else None,
    }


class Service:
    """The audit routes of a tenant log: ``log`` answers checkpoints and proofs, ``anchors`` are listed."""

    def __init__(self, log: CoreLog, anchors: list[dict[str, Any]]) -> None:
        self.log, self.anchors = log, anchors
        self.paths: list[str] = []

    def __call__(self, _method: str, target: str) -> Reply:
        url = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.paths.append(url.path)
        if url.path == "/v1/oauth2/token":
            claims = base64.urlsafe_b64encode(json.dumps({"tenant": "acme"}).encode()).decode().rstrip("=")
            token = {"access_token": f"eyJhbGciOiJFUzI1NiJ9.{claims}.c2ln", "token_type": "Bearer"}
            return _json({**token, "expires_in": 900})
        if url.path == "/v1/audit/keys":
            vkeys = [s.verifier.to_vkey() for s in self.log.signers]
            return _json({"origin": ORIGIN, "verifier_keys": vkeys, "stage_keys": [], "service_keys": []})
        if url.path == "/v1/audit/checkpoint":
            return Reply(200, self.log.note(20))
        if url.path == "/v1/audit/consistency":
            first, second = int(query["first"]), int(query["second"])
            proof = [base64.b64encode(h).decode() for h in self.log.proof(first, second)]
            return _json({"first": first, "second": second, "proof": proof, "checkpoint": None})
        if url.path == "/v1/audit/anchors":
            return _json({"origin": ORIGIN, "anchors": self.anchors[: int(query.get("limit", 20))]})
        return Reply(404, b'{"code": "not_found"}')


def _json(value: Any) -> Reply:
    return Reply(200, json.dumps(value).encode())


def invoke(service: FakeNode, *args: str, **env: str) -> Any:
    base = {"RELIQUARY_URL": service.url, "RELIQUARY_CLIENT_ID": "cl-1", "RELIQUARY_CLIENT_SECRET": "s3cr3t"}
    return CliRunner().invoke(app, list(args), env={**base, **env})


def error_of(result: Any) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    return error


def _receipt_file(tmp_path: Path, log: CoreLog, index: int, size: int) -> Path:
    receipt, entry = signed_receipt(log, index, size)
    path = tmp_path / f"receipt-{index}.json"
    path.write_text(json.dumps({"receipt": receipt, "entry": entry.decode()}))
    return path


def test_the_log_and_a_receipt_are_proven_of_one_history_with_the_anchor(
    honest: CoreLog, tmp_path: Path
) -> None:
    service = Service(honest, [listed(honest.note(9)), listed(honest.note(5))])
    receipt = _receipt_file(tmp_path, honest, 3, 5)
    with FakeNode(service) as api, FakeNode(Reply(200, honest.note(9))) as ipfs:
        result = invoke(
            api, "--json", "audit", "verify", "--anchor", "--ipfs-api", ipfs.url, "--receipt", str(receipt)
        )
        assert result.exit_code == 0, result.stderr
        value = json.loads(result.stdout)
        assert value["anchor"] == {**listed(honest.note(9)), "relation": "anchor_older", "consistent": True}
        assert value["receipts"][0]["anchor"] == "anchor_newer"
        assert ipfs.requests == [("POST", f"/api/v0/cat?arg={raw_cid(honest.note(9))}")]
        human = invoke(api, "audit", "verify", "--anchor", "--ipfs-api", ipfs.url, "--receipt", str(receipt))
    assert human.exit_code == 0, human.stderr
    assert f"anchor size 9 on ipfs {raw_cid(honest.note(9))}" in human.stdout
    assert "2023-11-14 22:13:20Z, not in a block yet): the log extends it" in human.stdout
    assert "leaf 3 of 5 verified; it extends the log's checkpoint" in human.stdout


def test_a_split_view_exits_3_with_both_checkpoints(honest: CoreLog, forked: CoreLog) -> None:
    # The service shows this machine its fork (first seen here: trusted on first use); the anchor is
    # the honest checkpoint it published earlier, read from the gateway.
    service = Service(forked, [listed(honest.note(9))])
    with FakeNode(service) as api, FakeNode(Reply(200, honest.note(9))) as ipfs:
        result = invoke(api, "--json", "audit", "verify", "--anchor", "--ipfs-api", ipfs.url)
        assert result.exit_code == 3, result.stderr
        error = error_of(result)
        assert (error["code"], error["exit_code"]) == ("split_view", 3)
        assert error["split_view"] == {
            "reason": "inconsistent",
            "origin": ORIGIN,
            "anchored": honest.note(9).decode(),
            "presented": forked.note(20).decode(),
        }
        human = invoke(api, "audit", "verify", "--anchor", "--ipfs-api", ipfs.url)
    assert human.exit_code == 3
    assert "checkpoint anchored in public (size 9)" in human.stderr
    assert "checkpoint the service presents (size 20)" in human.stderr
    assert honest.note(9).decode().split("\n")[2] in human.stderr
    assert forked.note(20).decode().split("\n")[2] in human.stderr
    assert "s3cr3t" not in human.stderr + human.stdout


def test_one_size_two_roots_is_a_split_view_too(honest: CoreLog, forked: CoreLog) -> None:
    service = Service(forked, [listed(honest.note(20))])
    with FakeNode(service) as api, FakeNode(Reply(200, honest.note(20))) as gateway:
        result = invoke(api, "--json", "audit", "verify", "--anchor", "--ipfs-gateway", gateway.url)
    assert result.exit_code == 3
    assert error_of(result)["split_view"]["reason"] == "same_size"
    assert gateway.requests == [("GET", f"/ipfs/{raw_cid(honest.note(20))}")]


@pytest.mark.parametrize(("reply", "code", "exit_code"), [
    (Reply(502, b"bad gateway"), "anchor_unavailable", 4),
    (Reply(404, b"not found"), "anchor_unavailable", 4),
    (Reply(200, b"not the note"), "anchor_integrity", 3),
])  # fmt: skip
def test_a_gateway_that_fails_or_lies_is_not_a_split_view(
    honest: CoreLog, reply: Reply, code: str, exit_code: int
) -> None:
    with FakeNode(Service(honest, [listed(honest.note(9))])) as api, FakeNode(reply) as ipfs:
        result = invoke(api, "--json", "audit", "verify", "--anchor", "--ipfs-api", ipfs.url)
    assert result.exit_code == exit_code
    error = error_of(result)
    assert error["code"] == code
    assert "hint" in error
    assert "split_view" not in error


def test_a_gateway_that_does_not_answer_exits_4(honest: CoreLog) -> None:
    with FakeNode(Reply()) as closed:
        url = closed.url
    with FakeNode(Service(honest, [listed(honest.note(9))])) as api:
        result = invoke(api, "--json", "audit", "verify", "--anchor", "--ipfs-api", url)
    assert result.exit_code == 4
    assert error_of(result)["code"] == "anchor_unavailable"


def test_arweave_gateway_from_the_environment_and_a_missing_gateway_is_a_usage_error(
    honest: CoreLog,
) -> None:
    service = Service(honest, [listed(honest.note(9), backend="arweave")])
    with FakeNode(service) as api, FakeNode(Reply(200, honest.note(9))) as arweave:
        result = invoke(
            api, "--json", "audit", "verify", "--anchor", RELIQUARY_ARWEAVE_GATEWAY=arweave.url + "/"
        )
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["anchor"]["block"] == {"height": 7, "hash": "blk"}
        assert arweave.requests == [("GET", f"/{TX_ID}")]
        # The newest anchor is on Arweave and only an IPFS gateway is named: say which option to pass.
        wrong = invoke(api, "--json", "audit", "verify", "--anchor", "--ipfs-api", arweave.url)
        assert wrong.exit_code == 1
        assert "--arweave-gateway" in error_of(wrong)["hint"]
        service.paths.clear()
        none = invoke(api, "--json", "audit", "verify", "--anchor")
    assert none.exit_code == 1
    assert "gateway" in error_of(none)["message"]
    assert service.paths == []  # refused before anything was sent


def test_nothing_anchored_yet_is_said_and_anchors_are_listed(honest: CoreLog) -> None:
    anchors = [listed(honest.note(9), backend="arweave"), listed(honest.note(5))]
    with FakeNode(Service(honest, [])) as empty, FakeNode(Reply(500)) as ipfs:
        result = invoke(empty, "--json", "audit", "verify", "--anchor", "--ipfs-api", ipfs.url)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["anchor"] is None
        assert ipfs.requests == []
        human = invoke(empty, "audit", "anchors")
        assert "nothing anchored in public yet" in human.stdout
    with FakeNode(Service(honest, anchors)) as api:
        listing = invoke(api, "--json", "audit", "anchors", "--limit", "5")
        assert listing.exit_code == 0, listing.stderr
        assert json.loads(listing.stdout) == {"origin": ORIGIN, "anchors": anchors}
        table = invoke(api, "audit", "anchors")
        assert invoke(api, "--json", "audit", "anchors", "--limit", "0").exit_code == 1
    assert table.exit_code == 0, table.stderr
    assert TX_ID in table.stdout
    assert raw_cid(honest.note(5)) in table.stdout
    assert "pending" in table.stdout
