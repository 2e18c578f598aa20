"""The `reliquary` command run as a user runs it (a subprocess) against the local stack's API over HTTP."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.local.seed import TENANT
from reliquary.adapters.audit_factory import build_audit
from reliquary.audit.checkpoint import Checkpoint, sign_checkpoint
from reliquary.config import get_settings
from reliquary.identity.scopes import Role, RoleBinding
from tests.support.api import ITEM, ApiWorld

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
VAULT = "agent-memory"


@dataclass
class Cli:
    """Runs `python -m reliquary_sdk.cli` with its own config and state directories."""

    home: Path
    url: str

    def env(self, **extra: str) -> dict[str, str]:
        # A client machine: no RELIQUARY_* settings, and not the core's liboqs (OQS_INSTALL_PATH), so
        # Falcon-512 is what a client without the SDK's falcon extra sees.
        base = {
            k: v for k, v in os.environ.items() if not k.startswith("RELIQUARY_") and k != "OQS_INSTALL_PATH"
        }
        paths = [str(ROOT / "sdk"), str(ROOT), str(ROOT / "layers" / "core")]
        return {
            **base,
            "PYTHONPATH": os.pathsep.join(paths),
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_STATE_HOME": str(self.home / "state"),
            "COLUMNS": "200",
            **extra,
        }

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603
            [sys.executable, "-m", "reliquary_sdk.cli", *args],
            capture_output=True,
            text=True,
            env=self.env(**env),
            timeout=300,
            check=False,
        )

    def json(self, *args: str, code: int = 0, env: dict[str, str] | None = None) -> Any:
        done = self.run("--json", *args, **(env or {}))
        if done.returncode != code:
            sys.stderr.write(done.stderr)
        assert done.returncode == code, (done.stdout, done.stderr)
        if code != 0:
            return json.loads(done.stderr.strip().splitlines()[-1])["error"]
        return json.loads(done.stdout)

    def as_client(self, client_id: str, secret: str) -> dict[str, str]:
        return {
            "RELIQUARY_URL": self.url,
            "RELIQUARY_CLIENT_ID": client_id,
            "RELIQUARY_CLIENT_SECRET": secret,
        }


@pytest.fixture
def cli(world: ApiWorld, tmp_path: Path) -> Cli:
    return Cli(tmp_path, world.url)


def _profile(cli: Cli, name: str, client: Any) -> None:
    """A profile for ``client`` (its secret from the environment, as `profile set` reads it)."""
    done = cli.run(
        "profile", "set", name, "--url", cli.url, "--client-id", client.client_id,
        RELIQUARY_CLIENT_SECRET=client.secret,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_health_answers_with_the_services_version(cli: Cli) -> None:
    assert cli.json("--url", cli.url, "health") == {"url": cli.url, "status": "ok", "version": "1.0.0"}


def test_an_unreachable_api_is_exit_4_with_one_line(cli: Cli) -> None:
    done = cli.run("--url", "http://127.0.0.1:9", "health")
    assert done.returncode == 4
    assert "Traceback" not in done.stderr
    assert "error (transport)" in done.stderr


def test_the_operator_creates_a_tenant_whose_admin_works(world: ApiWorld, cli: Cli) -> None:
    assert world.operator is not None
    tenant = f"initech-{uuid.uuid4().hex[:8]}"  # the world is shared: a tenant id of this test's own
    created = cli.json("tenant", "create", tenant, "--name", "Initech", env=cli.as_client(
        world.operator.client_id, world.operator.secret))  # fmt: skip
    assert created["tenant"] == {"tenant_id": tenant, "name": "Initech", **created["tenant"]}
    assert created["secret_shown_once"] is True
    secret = created["client_secret"]
    assert secret.startswith("rqs_")
    listed = cli.json("client", "list", env=cli.as_client(created["admin"]["client_id"], secret))
    assert [c["client_id"] for c in listed["clients"]] == [created["admin"]["client_id"]]
    # A tenant-admin is not an operator: refused by the API, exit 2 with its code.
    admin = world.client("tenant-admin")
    error = cli.json(
        "tenant", "create", "hooli", "--name", "H", code=2, env=cli.as_client(admin.client_id, admin.secret)
    )
    assert error["code"] == "forbidden"
    assert error["status"] == 403


def test_client_create_rotate_revoke_and_the_old_secret_is_refused(world: ApiWorld, cli: Cli) -> None:
    _profile(cli, "admin", world.client("tenant-admin"))
    created = cli.json("--profile", "admin", "client", "create", "reporting", "--role", f"writer:{VAULT}")
    client_id, first = created["client"]["client_id"], created["client_secret"]
    assert created["client"]["roles"] == [{"role": "writer", "vault_id": VAULT}]
    assert (
        cli.json("memories", "list", VAULT, "--limit", "1", env=cli.as_client(client_id, first))["vault_id"]
        == VAULT
    )

    rotated = cli.json("--profile", "admin", "client", "rotate", client_id, "--save-profile", "reporting")
    assert rotated == {"client_id": client_id, "client_secret": None, "saved_to_profile": "reporting",
                       "tokens_revoked": False}  # fmt: skip
    error = cli.json("memories", "list", VAULT, code=2, env=cli.as_client(client_id, first))
    assert error["code"] == "invalid_client"
    # The new secret went to the profile (0600), not to the terminal, and works.
    config = cli.home / "config" / "reliquary" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert cli.json("--profile", "reporting", "memories", "list", VAULT, "--limit", "1")["vault_id"] == VAULT
    shown = cli.run("--profile", "admin", "profile", "list")
    saved = json.loads(config.read_text())["profiles"]["reporting"]["client_secret"]
    assert saved not in shown.stdout + shown.stderr

    revoked = cli.json("--profile", "admin", "client", "revoke", client_id)
    assert revoked["status"] == "revoked"
    assert cli.json("--profile", "reporting", "memories", "list", VAULT, code=2)["code"] in {
        "invalid_client",
        "unauthenticated",
    }


@pytest.mark.parametrize("template", ["standard", "strict", "human-approved", "research"])
def test_every_built_in_template_is_accepted_and_its_policies_read_back(
    world: ApiWorld, cli: Cli, template: str
) -> None:
    _profile(cli, "admin", world.client("tenant-admin"))
    vault = f"tpl-{template}"
    created = cli.json("--profile", "admin", "vault", "create", vault, "--template", template)
    assert created["policies_set"] == ["trust", "quorum"]
    shown = cli.json("--profile", "admin", "vault", "show", vault)
    body = cli.json("vault", "templates", "--show", template, env={"RELIQUARY_URL": cli.url})
    assert shown["policies"]["context"] is None
    assert shown["policies"]["trust"]["template"] == body["policies"]["trust"]["template"]
    for key, value in body["policies"]["quorum"].items():
        assert shown["policies"]["quorum"][key] == value


def test_a_template_file_the_api_refuses_leaves_a_clear_partial_state(world: ApiWorld, cli: Cli) -> None:
    _profile(cli, "admin", world.client("tenant-admin"))
    bad = cli.home / "bad.json"
    bad.write_text(json.dumps({
        "format": "reliquary-vault-template/v1", "name": "bad",
        "policies": {"trust": {"template": "standard"}, "quorum": {"panel": ["strict"], "approvals": 3}},
    }))  # fmt: skip
    error = cli.json("--profile", "admin", "vault", "create", "tpl-bad", "--template", str(bad), code=2)
    assert error["code"] == "invalid_request"
    assert "quorum policy was refused" in error["message"]
    assert "set so far: trust" in error["message"]


def test_bulk_import_then_list_then_forget(world: ApiWorld, cli: Cli) -> None:
    _profile(cli, "writer", world.client("writer"))
    lines = [{"text": f"note {n}", "user_id": "customer-77", "tags": {"n": str(n)}} for n in range(7)]
    lines.append({"text": "someone else", "user_id": "customer-78"})
    jsonl = cli.home / "memories.jsonl"
    jsonl.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    imported = cli.json("--profile", "writer", "memories", "add", VAULT, "--file", str(jsonl))
    assert imported["added"] == 8
    assert [m["line"] for m in imported["memories"]] == list(range(1, 9))
    # Running the same import again adds nothing twice: the same memories, by their fixed keys.
    again = cli.json("--profile", "writer", "memories", "add", VAULT, "--file", str(jsonl))
    assert [m["memory_id"] for m in again["memories"]] == [m["memory_id"] for m in imported["memories"]]

    listed = cli.json("--profile", "writer", "memories", "list", VAULT, "--user-id", "customer-77")
    assert sorted(m["tags"]["n"] for m in listed["memories"]) == [str(n) for n in range(7)]
    assert {m["state"] for m in listed["memories"]} == {"live"}

    forgotten = cli.json("--profile", "writer", "memories", "forget", VAULT, "--user-id", "customer-77")
    assert forgotten["complete"] is True
    assert forgotten["shredded"] == 7
    assert len(forgotten["receipts"]) == 7
    after = cli.json("--profile", "writer", "memories", "list", VAULT, "--user-id", "customer-77")
    assert {m["state"] for m in after["memories"]} <= {"shredded"}
    other = cli.json("--profile", "writer", "memories", "list", VAULT, "--user-id", "customer-78")
    assert [m["state"] for m in other["memories"]] == ["live"]


def test_a_bad_import_file_sends_nothing(world: ApiWorld, cli: Cli) -> None:
    _profile(cli, "writer", world.client("writer"))
    jsonl = cli.home / "bad.jsonl"
    jsonl.write_text('{"text": "fine", "user_id": "customer-90"}\n{"text": "no owner"}\n')
    error = cli.json("--profile", "writer", "memories", "add", VAULT, "--file", str(jsonl), code=1)
    assert error["message"] == "line 2: exactly one of user_id, agent_id, run_id"
    listed = cli.json("--profile", "writer", "memories", "list", VAULT, "--user-id", "customer-90")
    assert listed["memories"] == []


def _forged(world: ApiWorld, note: str) -> bytes:
    """A checkpoint of the same size as ``note`` with another root, signed by the stack's own log keys:
    what a service showing this machine another log would sign."""
    text = note[: note.index("\n\n") + 1]
    origin, size, _root, *_ = text.split("\n")
    with world.stack.lambdas.environment_of("AuditAppendFunction"):
        service = build_audit(get_settings()).service
    other = Checkpoint(origin, int(size), bytes(32))
    return sign_checkpoint(other, service._keys.signers)


def _decided(world: ApiWorld) -> dict[str, Any]:
    """An access request run through the API to its decision (a decision entry in the tenant's log)."""
    requester = world.enrol()
    request_id, body = world.access_request(requester)
    headers = world.headers("tenant-admin", **{"Idempotency-Key": request_id})
    assert world.http.post("/v1/access-requests", json=body, headers=headers).status_code == 202
    view: dict[str, Any] = {"status": "pending"}
    while view["status"] == "pending":
        time.sleep(0.2)
        view = world.http.get(
            f"/v1/access-requests/{request_id}", headers=world.headers("tenant-admin")
        ).json()
    return view


def test_audit_verify_follows_the_log_and_detects_a_fork(world: ApiWorld, cli: Cli) -> None:
    _profile(cli, "admin", world.client("tenant-admin"))
    _decided(world)
    # Without the falcon extra, a Falcon-512 signature cannot be checked: a clear exit 4, nothing pinned.
    error = cli.json("--profile", "admin", "audit", "verify", code=4)
    assert error["code"] == "falcon_unavailable"

    first = cli.json("--profile", "admin", "audit", "verify", "--skip-falcon")
    assert first["first_seen"] is True
    assert first["keys"] == {"source": "served, pinned now", "count": 3, "falcon": "unchecked"}
    _decided(world)  # the log grows by a decision
    admin = world.client("tenant-admin")
    second = cli.json("--profile", "admin", "audit", "verify", "--skip-falcon")
    assert second["keys"]["source"] == "pinned"
    assert second["checkpoint"]["size"] > first["checkpoint"]["size"]
    assert second["previous"] == first["checkpoint"]

    # This machine now remembers a forged checkpoint of the current size: the served one contradicts it.
    note = world.http.get("/v1/audit/checkpoint", headers=world.headers("tenant-admin")).text
    store = cli.home / "state" / "reliquary" / "checkpoints.json"
    remembered = json.loads(store.read_text())
    origin = second["origin"]
    assert second["checkpoint"]["size"] == int(note.split("\n")[1])  # nothing appended meanwhile
    remembered["logs"][origin] = base64.b64encode(_forged(world, note)).decode()
    store.write_text(json.dumps(remembered))
    done = cli.run("--json", "--profile", "admin", "audit", "verify", "--skip-falcon")
    assert done.returncode == 3, done.stderr
    fork = json.loads(done.stderr.strip().splitlines()[-1])["error"]
    assert fork["code"] == "log_fork"
    assert fork["fork"]["reason"] == "same_size"
    assert fork["fork"]["presented"] == note
    assert fork["fork"]["known"] != note
    human = cli.run("--profile", "admin", "audit", "verify", "--skip-falcon")
    assert human.returncode == 3
    assert "checkpoint remembered on this machine" in human.stderr
    assert note.split("\n")[2] in human.stderr  # the presented root, shown
    assert admin.client_id not in human.stderr


def test_audit_verify_checks_a_receipt_and_refuses_a_tampered_one(world: ApiWorld, cli: Cli) -> None:
    _profile(cli, "admin", world.client("tenant-admin"))
    view = _decided(world)
    request_id = view["request_id"]
    good = cli.home / "request.json"
    good.write_text(json.dumps(view))
    checked = cli.json("--profile", "admin", "audit", "verify", "--skip-falcon", "--receipt", str(good))
    assert checked["receipts"][0]["request_id"] == request_id
    assert checked["receipts"][0]["verified"] is True

    tampered = cli.home / "tampered.json"
    entry = json.loads(view["entry"])
    entry["decision"] = "deny" if entry["decision"] == "approve" else "approve"
    tampered.write_text(json.dumps({**view, "entry": json.dumps(entry)}))
    error = cli.json(
        "--profile", "admin", "audit", "verify", "--skip-falcon", "--receipt", str(tampered), code=3
    )
    assert error["code"] == "verification_failed"


def test_audit_export_downloads_and_verifies_every_entry(world: ApiWorld, cli: Cli) -> None:
    _profile(cli, "admin", world.client("tenant-admin"))
    out = cli.home / "export.jsonl"
    exported = cli.json("--profile", "admin", "audit", "export", "--out", str(out), "--skip-falcon")
    assert exported["verified"] is True
    assert exported["entries"] == exported["end"] - exported["start"] > 0
    assert "download_url" not in exported
    lines = out.read_bytes().splitlines()
    assert len(lines) == exported["entries"] + 1
    assert json.loads(lines[0])["type"] == "header"


# --- devices, proofs and access requests ---------------------------------------------------------------
ZK = {"RELIQUARY_ZK_DIR": str(ROOT / "zk")}


def _requester(world: ApiWorld) -> Any:
    """A plain requester on the demo vault: open() reads the audit keys and consistency proofs, which
    access:request allows (the log's entries stay audit:read)."""
    return world.new_client(TENANT, RoleBinding(Role.REQUESTER, VAULT))


def _enrolled_device(world: ApiWorld, cli: Cli) -> Path:
    """A new device, enrolled by the tenant admin with `vault apply --device` (the vault's others kept)."""
    device = cli.home / "device.seed"
    made = cli.json("device", "new", str(device), env=ZK)
    assert stat.S_IMODE(device.stat().st_mode) == 0o600
    assert device.read_text().splitlines()[1] not in json.dumps(made)  # the seed never shows
    _profile(cli, "admin", world.client("tenant-admin"))
    before = cli.json("--profile", "admin", "vault", "show", VAULT)["policies"]["context"]
    applied = cli.json("--profile", "admin", "vault", "apply", VAULT, "--device", str(device), env=ZK)
    assert applied["policies_set"] == ["context"]
    after = cli.json("--profile", "admin", "vault", "show", VAULT)["policies"]["context"]
    assert after["device_commitments"] == [
        *before["device_commitments"],
        *made["policy"]["device_commitments"],
    ]
    return device


def test_device_enrolled_then_access_request_opens_the_exact_plaintext(world: ApiWorld, cli: Cli) -> None:
    device = _enrolled_device(world, cli)
    _profile(cli, "requester", _requester(world))
    expected = world.demo.items[ITEM]
    done = cli.run("--profile", "requester", "access", "request", VAULT, ITEM, "--device", str(device),
                   "--purpose", "support", "--skip-falcon", **ZK)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected.decode()
    assert "verified" in done.stderr

    out, key = cli.home / "plain.bin", cli.home / "requester.key"
    summary = cli.json("--profile", "requester", "access", "request", VAULT, ITEM, "--device", str(device),
                       "--purpose", "support", "--skip-falcon", "--out", str(out), "--key", str(key),
                       env=ZK)  # fmt: skip
    assert out.read_bytes() == expected
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert summary["status"] == "approved"
    assert (summary["memory_id"], summary["bytes"], summary["out"]) == (ITEM, len(expected), str(out))
    assert summary["verified"]["grant"] is True
    assert summary["verified"]["log"] == {"consistent": True, "falcon": "unchecked"}
    assert summary["verified"]["receipt"]["leaf_index"] < summary["verified"]["receipt"]["tree_size"]
    assert summary["verified"]["chain"]["stages"]
    assert "content_b64" not in summary
    secret_key = key.read_text().splitlines()[1]
    assert secret_key not in json.dumps(summary)
    # The same key file is read again (not replaced), and a new vault takes the device from the start.
    assert key.read_text().splitlines()[1] == secret_key
    created = cli.json("--profile", "admin", "vault", "create", "enrolled", "--template", "standard",
                       "--device", str(device), env=ZK)  # fmt: skip
    assert created["policies_set"] == ["context", "trust", "quorum"]
    shown = cli.json("--profile", "admin", "vault", "show", "enrolled")["policies"]["context"]
    assert (
        shown["device_commitments"]
        == cli.json("device", "show", str(device), env=ZK)["policy"]["device_commitments"]
    )


def test_a_denied_access_request_exits_2_with_the_reasons(world: ApiWorld, cli: Cli) -> None:
    device = _enrolled_device(world, cli)
    _profile(cli, "requester", _requester(world))
    error = cli.json("--profile", "requester", "access", "request", VAULT, ITEM, "--device", str(device),
                     "--purpose", "bulk-export", "--skip-falcon", code=2, env=ZK)  # fmt: skip
    assert error["code"] == "not_approved"
    assert error["decision"] == "denied"
    assert error["reasons"] == ["denied by the rules: bulk export of agent memory is not allowed"]
    human = cli.run("--profile", "requester", "access", "request", VAULT, ITEM, "--device", str(device),
                    "--purpose", "bulk-export", "--skip-falcon", **ZK)  # fmt: skip
    assert human.returncode == 2
    assert human.stdout == ""
    assert "bulk export of agent memory is not allowed" in human.stderr
    assert "Traceback" not in human.stderr


def test_proof_generate_makes_a_request_the_api_accepts(world: ApiWorld, cli: Cli) -> None:
    device = _enrolled_device(world, cli)
    requester = _requester(world)
    _profile(cli, "requester", requester)
    key = cli.home / "proof.key"
    made = cli.json("--profile", "requester", "proof", "generate", VAULT, ITEM, "--device", str(device),
                    "--key", str(key), "--purpose", "support", env=ZK)  # fmt: skip
    assert made["tenant_id"] == TENANT
    assert made["body"]["context_proof"]["circuit"] == "context_proof"
    token = world.http.post(
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(requester.client_id, requester.secret),
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": made["idempotency_key"]}
    sent = world.http.post("/v1/access-requests", json=made["body"], headers=headers)
    assert sent.status_code == 202, sent.text
    view = sent.json()
    while view["status"] == "pending":
        time.sleep(0.2)
        view = world.http.get(f"/v1/access-requests/{made['request_id']}", headers=headers).json()
    assert view["status"] == "approved", view.get("reasons")
    # A proof is bound to its request: the same body under another request id is not approved.
    other = {**headers, "Idempotency-Key": "cli-another-request"}
    replay = world.http.post("/v1/access-requests", json=made["body"], headers=other).json()
    while replay["status"] == "pending":
        time.sleep(0.2)
        replay = world.http.get("/v1/access-requests/cli-another-request", headers=headers).json()
    assert replay["status"] in {"denied", "failed"}, replay


def test_a_fork_seen_while_opening_exits_3(world: ApiWorld, cli: Cli) -> None:
    device = _enrolled_device(world, cli)
    _profile(cli, "requester", _requester(world))
    verified = cli.json("--profile", "requester", "audit", "verify", "--skip-falcon")
    note = world.http.get("/v1/audit/checkpoint", headers=world.headers("auditor")).text
    assert verified["checkpoint"]["size"] == int(note.split("\n")[1])
    store = cli.home / "state" / "reliquary" / "checkpoints.json"
    remembered = json.loads(store.read_text())
    forged = _forged(world, note)
    remembered["logs"][verified["origin"]] = base64.b64encode(forged).decode()
    store.write_text(json.dumps(remembered))
    out = cli.home / "never.bin"
    done = cli.run("--json", "--profile", "requester", "access", "request", VAULT, ITEM,
                   "--device", str(device), "--purpose", "support", "--skip-falcon", "--out", str(out),
                   **ZK)  # fmt: skip
    assert done.returncode == 3, done.stderr
    error = json.loads(done.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "log_fork"
    assert error["fork"]["known"] == forged.decode()
    assert not out.exists()  # nothing opened is shown when the log contradicts this machine's
    assert done.stdout == ""
