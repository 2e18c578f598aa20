"""The SDK against the local runtime over real HTTP (tests/support/api.py's world: a local stack, the API
served over loopback): vaults, memories (add, list page by page, history, delete, forget), a typed error
from a real problem, and the access round end to end: ``access.request`` proves on a device of the SDK's
own (``prove.NodeProver`` over zk/), ``wait`` polls, ``open`` returns the memory's exact bytes once the
grant, the envelope, the receipt, the record and the chain check out; a denied request does not open; the
async client does the same; and a forged checkpoint of the log (signed with the log's own keys, another
root at the same size) is caught both by the monitor and by ``open()``."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliquary_sdk import (
    AsyncReliquary,
    ClientCredentials,
    ForbiddenError,
    LogForkError,
    LogMonitor,
    NotApprovedError,
    NotFoundError,
    Reliquary,
    RequesterKey,
)
from reliquary_sdk.monitor import MemoryStore
from reliquary_sdk.prove import Device, NodeProver

from infra.local.access import FUNCTIONS
from infra.local.requester import Requester
from infra.local.seed import NOTES, SUPPORT_VAULT, TENANT
from reliquary.identity.scopes import Role, RoleBinding
from tests.support.api import ITEM, ApiWorld

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ZK_DIR = Path(__file__).resolve().parents[2] / "zk"
DECISION_SECONDS = 120.0


@pytest.fixture(scope="module")
def prover() -> Iterator[NodeProver]:
    with NodeProver(ZK_DIR) as made:
        yield made


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's default monitor keeps its JSON file here, not in the user's state directory."""
    monkeypatch.setenv("RELIQUARY_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="module", autouse=True)
def _liboqs() -> None:
    """The core's liboqs stands in for the ``falcon`` extra's (the checkpoints' Falcon-512 lines)."""
    from reliquary_native import load_oqs

    load_oqs()


def _requester_client(world: ApiWorld, **options: object) -> Reliquary:
    """A client of its own (its own trust history), a plain requester of the vault: no `audit:read`,
    its `access:request` lets it read the log's keys, checkpoint and consistency proofs."""
    client = world.new_client(TENANT, RoleBinding(Role.REQUESTER, SUPPORT_VAULT))
    return Reliquary(world.url, auth=ClientCredentials(client.client_id, client.secret), **options)  # type: ignore[arg-type]


def _enrolled(world: ApiWorld, prover: NodeProver) -> Device:
    """A new SDK device, enrolled in the demo tenant's vaults by its policy entry."""
    device = Device.generate(prover)
    world.demo.requesters.append(Requester(subject=f"sdk-{uuid.uuid4().hex[:8]}", seed=device.seed()))
    for vault in world.demo.vaults:
        world.access.set_context_policy(TENANT, vault, world.demo.requesters)
    return device


def test_vaults_and_memories_over_http(world: ApiWorld) -> None:
    admin = world.client("tenant-admin")
    vault = f"sdk-{uuid.uuid4().hex[:8]}"
    with Reliquary(world.url, auth=ClientCredentials(admin.client_id, admin.secret)) as client:
        created = client.vaults.create(vault)
        assert (created.vault_id, created.key_version) == (vault, 1)
        assert vault in {v.vault_id for v in client.vaults.list()}
        sealed = [client.memories.add(vault, text=f"note {i}", user_id="u-1") for i in range(3)]
        assert [s.version for s in sealed] == [1, 1, 1]
        listed = list(client.memories.list(vault, user_id="u-1", limit=1))  # three pages of one
        assert sorted(m.memory_id for m in listed) == sorted(s.item_id for s in sealed)
        history = client.memories.history(vault, sealed[0].item_id)
        assert [v.version for v in history.versions] == [1]
        deleted = client.memories.delete(vault, sealed[0].item_id)
        assert deleted.versions == [1]
        forgotten = client.memories.forget(vault, user_id="u-1")
        assert forgotten.complete is True
        assert forgotten.shredded + forgotten.already_shredded == 3
        with pytest.raises(NotFoundError) as caught:
            client.vaults.get(f"no-{uuid.uuid4().hex[:8]}")
        assert caught.value.status == 404


def test_an_approved_request_opens_to_the_exact_memory(world: ApiWorld, prover: NodeProver) -> None:
    device = _enrolled(world, prover)
    key = RequesterKey.generate()
    with _requester_client(world) as client:
        handle = client.access.request(SUPPORT_VAULT, ITEM, purpose="support", prove=device, key=key)
        view = handle.wait(timeout=DECISION_SECONDS, interval=0.2)
        assert view.status == "approved", view.reasons
        opened = handle.open()
        assert opened.plaintext == NOTES[ITEM]
        assert (opened.tenant_id, opened.vault_id, opened.memory_id) == (TENANT, SUPPORT_VAULT, ITEM)
        assert opened.request_id == handle.request_id
        assert opened.chain.approves
        assert opened.chain.item_version == opened.item_version
        assert opened.receipt.request_id == handle.request_id
        assert NOTES[ITEM].decode() not in repr(opened)
        # The monitor remembered the receipt's checkpoint, in the default JSON file.
        origin = client.trusted_keys().origin
        assert (Path(os.environ["RELIQUARY_STATE_DIR"]) / "checkpoints.json").is_file()
        # A second approval opens too: its later checkpoint extends the remembered one (a real proof).
        again = client.access.request(SUPPORT_VAULT, ITEM, purpose="support", prove=device, key=key)
        assert again.wait(timeout=DECISION_SECONDS, interval=0.2).status == "approved"
        assert again.open().plaintext == NOTES[ITEM]
        assert client._monitor is not None
        latest = client._monitor.latest(origin)
        assert latest is not None
        assert latest.size > opened.checkpoint.size
        # Opening the first again: its older checkpoint is a prefix of the remembered one.
        assert handle.open().plaintext == NOTES[ITEM]
        # All of it without audit:read: the log's entries stay the auditor's.
        with pytest.raises(ForbiddenError) as refused:
            client.audit.entry(0)
        assert refused.value.details == {"scope": "audit:read"}


def test_a_denied_request_does_not_open(world: ApiWorld, prover: NodeProver) -> None:
    stranger = Device.generate(prover)  # never enrolled: the vault does not know it
    with _requester_client(world) as client:
        handle = client.access.request(
            SUPPORT_VAULT, ITEM, purpose="support", prove=stranger, key=RequesterKey.generate()
        )
        view = handle.wait(timeout=DECISION_SECONDS, interval=0.2)
        assert view.status == "denied"
        with pytest.raises(NotApprovedError) as caught:
            handle.open()
        assert caught.value.status == "denied"
        assert caught.value.reasons == tuple(view.reasons)


def test_the_async_client_opens_too(world: ApiWorld, prover: NodeProver) -> None:
    device = _enrolled(world, prover)
    key = RequesterKey.generate()
    client_row = world.new_client(TENANT, RoleBinding(Role.REQUESTER, SUPPORT_VAULT))

    async def run() -> bytes:
        auth = ClientCredentials(client_row.client_id, client_row.secret)
        async with AsyncReliquary(world.url, auth=auth) as client:
            handle = await client.access.request(
                SUPPORT_VAULT, ITEM, purpose="support", prove=device, key=key
            )
            view = await handle.wait(timeout=DECISION_SECONDS, interval=0.2)
            assert view.status == "approved", view.reasons
            return (await handle.open()).plaintext

    assert asyncio.run(run()) == NOTES[ITEM]


def _forged(world: ApiWorld, note: bytes) -> bytes:
    """Another checkpoint of ``note``'s size with another root, signed with the log's own keys (what a
    service showing different clients different logs would hand out)."""
    from reliquary.adapters.audit_factory import build_audit
    from reliquary.audit.checkpoint import Checkpoint, sign_checkpoint
    from reliquary.config import get_settings

    lines = note.decode().split("\n")
    with world.stack.lambdas.environment_of(FUNCTIONS["audit-append"]):
        signers = build_audit(get_settings()).service._keys.signers
    return sign_checkpoint(Checkpoint(lines[0], int(lines[1]), os.urandom(32)), signers)


def test_a_forked_log_is_caught_by_the_monitor_and_by_open(world: ApiWorld, prover: NodeProver) -> None:
    device = _enrolled(world, prover)
    key = RequesterKey.generate()
    with _requester_client(world) as client:
        handle = client.access.request(SUPPORT_VAULT, ITEM, purpose="support", prove=device, key=key)
        view = handle.wait(timeout=DECISION_SECONDS, interval=0.2)
        assert view.status == "approved", view.reasons
        assert view.receipt is not None
        real = str(view.receipt["checkpoint"]).encode()
        forged = _forged(world, real)
        keys = client.trusted_keys()

        # The monitor: having seen the forged checkpoint, the real one of that size is a fork.
        monitor = LogMonitor(keys.verifiers, store=MemoryStore(), required=keys.verifiers)
        monitor.update(keys.origin, forged)
        with pytest.raises(LogForkError) as caught:
            monitor.update(keys.origin, real)
        assert caught.value.reason == "same_size"
        assert (caught.value.known_note, caught.value.presented_note) == (forged, real)

        # open(): the client saw the forged checkpoint first; the receipt's real one contradicts it.
        client.observe_checkpoint(forged)
        with pytest.raises(LogForkError) as opened:
            handle.open()
        assert opened.value.reason == "same_size"
