"""End to end on the local runtime with the local nodes (what `make run NODES=1` runs): the stack from
template.yaml on moto, the functions in process with the nodes' URLs, the demo tenant seeded with a vault
on IPFS and one on Arweave; items of each go through the real access state machine and come back from the
node, a body record altered in the items table is refused, and the tenant's log is anchored on IPFS and
checked from the anchor by the SDK over HTTP (the served API), a substituted anchor refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from reliquary_sdk import ClientCredentials, Reliquary
from reliquary_sdk.anchors import AnchorIntegrityError, AnchorSource

from infra.local.access import LocalAccess
from infra.local.api import serve_api
from infra.local.nodes import LocalNodes, fund_wallets
from infra.local.requester import Prover, Requester
from infra.local.runtime import LOCAL_CREDENTIALS, LocalStack, free_port, local_stack
from infra.local.seed import ARCHIVE_PREFIX, DemoTenant, seed
from reliquary.adapters.ipfs import IpfsStore
from reliquary.vaults.permanent import PermanentBackend, PermanentRef
from tests.support.nodes import FakeNode, Reply, arweave_get

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.xdist_group("permanent-nodes"),
    pytest.mark.usefixtures("own_stack"),
]

ITEM = "customer-42-notes"


@dataclass
class World:
    stack: LocalStack
    access: LocalAccess
    demo: DemoTenant
    wallets: dict[str, str]
    api_url: str
    tenant_admin: tuple[str, str]
    identity: Any  # the API's identity service, to make clients

    def client(self) -> Reliquary:
        return Reliquary(self.api_url, auth=ClientCredentials(*self.tenant_admin))


@pytest.fixture(scope="module")
def world(nodes: LocalNodes) -> Iterator[World]:
    environment = {
        "RELIQUARY_IPFS_API_URL": nodes.ipfs.url,
        "RELIQUARY_ARWEAVE_URL": nodes.arweave.url,
        "RELIQUARY_AUDIT_ANCHOR_BACKEND": "ipfs",
    }
    name = f"nodes-{uuid.uuid4().hex[:6]}"
    with (
        local_stack(free_port(), stack_name=name, environment=environment) as stack,
        Prover() as prover,
        serve_api(stack, free_port()) as api,
    ):
        access = LocalAccess(stack, prover)
        wallets = fund_wallets(stack, nodes.arweave.url)
        demo = seed(access, permanent=("ipfs", "arweave"))
        _, admin, secret = api.runtime.identity.create_tenant(demo.tenant, "Demo tenant")
        yield World(stack, access, demo, wallets, api.url, (admin.client_id, secret), api.runtime.identity)


def _item_row(world: World, vault: str, item: str = ITEM) -> dict[str, object]:
    table = world.stack.resources["ItemsTable"]
    answer = world.stack.client("dynamodb").get_item(
        TableName=table,
        Key={
            "pk": {"S": f"TENANT#{world.demo.tenant}#VAULT#{vault}"},
            "sk": {"S": f"ITEM#{item}#V#{1:010d}"},
        },
        ConsistentRead=True,
    )
    row: dict[str, object] = answer["Item"]
    return row


@pytest.mark.parametrize("backend", ["ipfs", "arweave"])
def test_an_item_of_an_opted_in_vault_is_granted_through_the_flow_from_the_node(
    world: World, nodes: LocalNodes, backend: str
) -> None:
    vault = f"{ARCHIVE_PREFIX}{backend}"
    row = _item_row(world, vault)
    assert row["body_location"] == {"S": "permanent"}
    assert "blob_key" not in row
    if backend == "arweave":
        arweave_get(nodes.arweave.url, "/mine")
    requester = world.demo.requester(1)
    request = world.access.request(
        requester, world.demo.tenant, vault, ITEM, purpose="support", region="office-lisbon"
    )
    execution = world.access.decide(request)
    assert execution.decision == "approve", execution.output
    assert world.access.open_grant(execution, requester) == world.demo.items[ITEM]


def test_the_body_on_the_node_is_ciphertext_named_by_its_record(world: World, nodes: LocalNodes) -> None:
    import json

    record = json.loads(str(_item_row(world, f"{ARCHIVE_PREFIX}ipfs")["permanent_body"]["S"]))  # type: ignore[index]
    ref = PermanentRef(
        PermanentBackend.IPFS, record["locator"], record["size"], bytes.fromhex(record["sha256"])
    )
    body = IpfsStore(nodes.ipfs.url).get(ref)
    assert len(body) == len(world.demo.items[ITEM]) + 16
    assert world.demo.items[ITEM][:16] not in body


def test_a_body_record_swapped_in_the_items_table_is_refused(world: World) -> None:
    vault = f"{ARCHIVE_PREFIX}ipfs"
    other = next(name for name in world.demo.items if name != ITEM)
    dynamodb, table = world.stack.client("dynamodb"), world.stack.resources["ItemsTable"]
    original = _item_row(world, vault)
    # The row now names the other item's body, with that body's own CID and digest: authentic on the
    # node, but not the body this item's envelope signed.
    swapped = dict(original, permanent_body=_item_row(world, vault, other)["permanent_body"])
    dynamodb.put_item(TableName=table, Item=swapped)
    try:
        requester = world.demo.requester(0)
        request = world.access.request(
            requester, world.demo.tenant, vault, ITEM, purpose="support", region="office-lisbon"
        )
        execution = world.access.decide(request)
        assert execution.decision == "approve"
        with pytest.raises(Exception, match="envelope"):
            world.access.open_grant(execution, requester)
    finally:
        dynamodb.put_item(TableName=table, Item=original)


def test_the_bodies_wallet_is_sealed_in_the_stack_and_funded(world: World, nodes: LocalNodes) -> None:
    address = world.wallets["bodies"]
    assert int(arweave_get(nodes.arweave.url, f"/wallet/{address}/balance")) > 0


def test_the_log_is_anchored_on_ipfs_and_a_receipt_is_checked_from_the_anchor(
    world: World, nodes: LocalNodes
) -> None:
    requester = world.demo.requester(1)
    vault = f"{ARCHIVE_PREFIX}ipfs"
    request = world.access.request(
        requester, world.demo.tenant, vault, ITEM, purpose="support", region="office-lisbon"
    )
    receipt = (world.access.decide(request).output or {})["receipt"]
    anchored = world.access.invoke("audit-append", {"action": "anchor", "tenant_id": world.demo.tenant})
    anchor = anchored["anchored"]
    assert anchor is not None
    assert anchor["backend"] == "ipfs"
    assert anchor["tree_size"] >= receipt["tree_size"]

    source = AnchorSource(ipfs_api=nodes.ipfs.url)  # the node, never the service
    with world.client() as client:
        [listed, *_] = client.audit_anchors().anchors
        assert (listed.locator, listed.tree_size) == (anchor["locator"], anchor["tree_size"])
        # The receipt's own checkpoint, proved of one history with the anchored one.
        check = client.verify_newest_anchor(source, presented=receipt["checkpoint"].encode("utf-8"))
        assert check is not None
        assert check.anchored.size == anchor["tree_size"]
        assert check.presented.size == receipt["tree_size"]
        assert check.relation in ("same", "anchor_newer")
        # A node that serves another body under the anchor's CID is caught before anything is opened.
        note = source.fetch(listed)
        with (
            FakeNode(Reply(200, note.replace(b"\n", b"\n\n", 1))) as liar,
            pytest.raises(AnchorIntegrityError),
        ):
            client.verify_newest_anchor(AnchorSource(ipfs_api=liar.url))


def test_an_operator_sees_each_paying_wallet_and_its_balance(
    world: World, nodes: LocalNodes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from infra import wallets
    from reliquary.config import get_settings

    settings = {}
    for logical_id in ("EncryptFunction", "AuditAppendFunction"):
        with world.stack.lambdas.environment_of(logical_id):
            settings[logical_id] = get_settings()
    found = wallets.wallets(settings["EncryptFunction"], settings["AuditAppendFunction"])
    assert {w.use: w.address for w in found} == world.wallets  # the same wallets, not new ones
    assert all(w.balance is not None and w.balance > 0 for w in found)
    assert wallets.balance("http://127.0.0.1:9", world.wallets["bodies"], timeout=0.5) is None

    # The stack as deployed names no Arweave node (the runtime passes the nodes' URLs to the functions
    # in process): the command says so, reading the functions' configuration through the AWS APIs.
    for name, value in {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": world.stack.endpoint}.items():
        monkeypatch.setenv(name, value)
    assert wallets.main(["--stack", world.stack.stack_name, "--region", "us-east-1"]) == 0
    assert "no Arweave node is configured" in capsys.readouterr().out


def test_the_cli_checks_the_log_against_its_newest_anchor(
    world: World, nodes: LocalNodes, tmp_path: Path
) -> None:
    world.access.invoke("audit-append", {"action": "anchor", "tenant_id": world.demo.tenant})
    root = Path(__file__).resolve().parents[2]
    # A client machine (as tests/cli does): no RELIQUARY_* settings, no core liboqs, so --skip-falcon.
    base = {k: v for k, v in os.environ.items() if not k.startswith("RELIQUARY_") and k != "OQS_INSTALL_PATH"}
    env = {
        **base,
        "PYTHONPATH": os.pathsep.join([str(root / "sdk"), str(root), str(root / "layers" / "core")]),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "RELIQUARY_URL": world.api_url,
        "RELIQUARY_CLIENT_ID": world.tenant_admin[0],
        "RELIQUARY_CLIENT_SECRET": world.tenant_admin[1],
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "reliquary_sdk.cli", "--json", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)  # noqa: S603

    listed = cli("audit", "anchors")
    assert listed.returncode == 0, listed.stderr
    newest = json.loads(listed.stdout)["anchors"][0]
    assert newest["backend"] == "ipfs"
    verified = cli("audit", "verify", "--skip-falcon", "--anchor", "--ipfs-api", nodes.ipfs.url)
    assert verified.returncode == 0, verified.stderr
    anchor = json.loads(verified.stdout)["anchor"]
    assert anchor["relation"] in ("same", "anchor_older")
    assert anchor["locator"] == newest["locator"]
    with FakeNode(Reply(200, b"another body")) as liar:
        refused = cli("audit", "verify", "--skip-falcon", "--anchor", "--ipfs-api", liar.url)
    assert refused.returncode == 3
    assert json.loads(refused.stderr.strip().splitlines()[-1])["error"]["code"] == "anchor_integrity"


def test_the_sdk_seals_into_an_arweave_vault_and_opens_an_approved_request_over_http(
    world: World, nodes: LocalNodes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from reliquary_sdk import RequesterKey
    from reliquary_sdk.prove import Device, NodeProver

    from reliquary.identity.scopes import Role, RoleBinding
    from reliquary_native import load_oqs

    load_oqs()  # the core's liboqs stands in for the SDK's falcon extra (the checkpoints' Falcon lines)
    monkeypatch.setenv("RELIQUARY_STATE_DIR", str(tmp_path / "state"))  # the client's monitor file
    vault = f"{ARCHIVE_PREFIX}arweave"
    agent, secret = world.identity.create_client(
        world.demo.tenant, "archivist", [RoleBinding(Role.WRITER, vault), RoleBinding(Role.REQUESTER, vault)]
    )
    root = Path(__file__).resolve().parents[2]
    with (
        NodeProver(root / "zk") as prover,
        Reliquary(world.api_url, auth=ClientCredentials(agent.client_id, secret)) as client,
    ):
        device = Device.generate(prover)
        world.demo.requesters.append(Requester(subject=f"sdk-{uuid.uuid4().hex[:8]}", seed=device.seed()))
        world.access.set_context_policy(world.demo.tenant, vault, world.demo.requesters)
        sealed = client.memories.add(vault, text="kept for good", user_id="customer-7")
        assert sealed.body_location == "permanent"
        assert sealed.permanent_locator is not None
        arweave_get(nodes.arweave.url, "/mine")
        key = RequesterKey.generate()
        handle = client.access.request(vault, sealed.item_id, purpose="support", prove=device, key=key)
        view = handle.wait(timeout=120, interval=0.2)
        assert view.status == "approved", view.reasons
        assert handle.open().plaintext == b"kept for good"
