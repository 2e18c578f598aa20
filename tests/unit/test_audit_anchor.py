"""Checkpoint anchors on in-memory stores: what is stored and logged, when a log is due, Arweave blocks,
failures that leave nothing half recorded, racing runs, crashes resumed, the reader's listing and the
anchor records' strict format."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from reliquary.actions.audit import run_audit_action
from reliquary.audit.anchor import (
    ABANDON_SECONDS,
    ANCHOR_FORMAT,
    CLAIM_SECONDS,
    AnchorEntry,
    CheckpointAnchorer,
    anchoring_off,
)
from reliquary.audit.checkpoint import open_checkpoint
from reliquary.audit.log import TransparencyLog
from reliquary.audit.reader import AuditReader
from reliquary.audit.records import (
    CheckpointAnchorConfirmedRecord,
    CheckpointAnchorRecord,
    decode_record,
    encode_record,
    parse_record,
)
from reliquary.audit.service import log_key
from reliquary.contracts.audit import AnchorDueRequest, AnchorRequest, AppendRequest
from reliquary.errors import (
    BodyIntegrityError,
    InvalidRequestError,
    LogInconsistentError,
    StorageUnavailableError,
    TransientError,
)
from reliquary.vaults.permanent import PermanentBackend
from tests.support.anchors import AnchorFixture, anchor_fixture
from tests.support.audit import ORIGIN_PREFIX, AuditFixture, audit_fixture, deletion

TENANT = "acme"
IPFS, ARWEAVE = PermanentBackend.IPFS, PermanentBackend.ARWEAVE


@pytest.fixture
def fx() -> AuditFixture:
    return audit_fixture()


def _records(fx: AuditFixture, tenant: str = TENANT) -> list[Any]:
    size = fx.service.checkpoint(tenant).size
    return [decode_record(e) for e in fx.service.entries(tenant, 0, size)]


def _anchors(fx: AuditFixture, tenant: str = TENANT) -> list[CheckpointAnchorRecord]:
    return [r for r in _records(fx, tenant) if isinstance(r, CheckpointAnchorRecord)]


def _grow(fx: AuditFixture, *request_ids: str, tenant: str = TENANT) -> None:
    fx.service.append(tenant, [deletion(r, tenant) for r in request_ids])


# --- what is anchored ---------------------------------------------------------------------------
def test_an_empty_log_anchors_nothing(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, IPFS)
    run = an.anchorer.anchor(TENANT)
    assert (run.anchored, run.confirmed, run.busy) == (None, (), False)
    assert an.store.puts == 0
    assert an.states.state(TENANT).revision == 0
    assert fx.service.latest(TENANT) is None  # nor is an empty checkpoint published for it


def test_the_signed_note_is_stored_as_is_and_the_anchor_logged(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, IPFS)
    _grow(fx, "r-1", "r-2", "r-3")
    note = fx.service.checkpoint(TENANT).note
    anchored = an.anchorer.anchor(TENANT).anchored
    assert anchored is not None
    assert an.store.bodies[anchored.locator] == note  # byte for byte as signed
    signed = open_checkpoint(
        an.store.bodies[anchored.locator],
        fx.keys.verifiers,
        origin=fx.service.origin(TENANT),
        required=fx.keys.policy,
    )
    assert an.store.tags[anchored.locator] == (
        ("Content-Type", "text/plain; charset=utf-8"),
        ("App-Name", "RELIQUARY"),
        ("Reliquary-Format", ANCHOR_FORMAT),
        ("Reliquary-Origin", "audit.test.example/logs/acme"),
        ("Reliquary-Tree-Size", "3"),
    )
    # The record, decoded from the log's own entries, says the same, at the leaf the run reported.
    record = _records(fx)[anchored.log_index]
    assert isinstance(record, CheckpointAnchorRecord)
    assert (record.tree_size, record.locator, record.backend) == (3, anchored.locator, "ipfs")
    assert record.root_hash == base64.b64encode(signed.root_hash).decode()
    assert record.note_sha256 == hashlib.sha256(note).hexdigest()
    assert record.origin == fx.service.origin(TENANT)
    assert (record.anchored_at, record.request_id) == (an.clock.now, "checkpoint-3")
    assert anchored.log_index == 3
    assert anchored.to_dict() == {
        "tree_size": 3,
        "root_hash": record.root_hash,
        "backend": "ipfs",
        "locator": record.locator,
        "note_sha256": record.note_sha256,
        "anchored_at": an.clock.now,
        "log_index": 3,
        "block": None,
    }


def test_an_idle_log_is_anchored_once_and_growth_anchors_again(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, IPFS)
    _grow(fx, "r-1")
    assert an.anchorer.anchor(TENANT).anchored is not None
    for _ in range(3):  # its own record is no growth
        assert an.anchorer.anchor(TENANT).anchored is None
    assert an.store.puts == 1
    _grow(fx, "r-2", "r-3")
    again = an.anchorer.anchor(TENANT).anchored
    assert again is not None
    assert again.tree_size == 4  # r-1, the first anchor's record, r-2 and r-3
    assert [a.tree_size for a in _anchors(fx)] == [1, 4]
    assert an.anchorer.anchor(TENANT).anchored is None


def test_entries_waiting_are_published_before_the_anchor(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, IPFS)
    fx.service.promise(TENANT, [deletion("r-1"), deletion("r-2")])  # sequenced, not yet signed
    assert fx.service.latest(TENANT) is None
    anchored = an.anchorer.anchor(TENANT).anchored
    assert anchored is not None
    assert anchored.tree_size == 2


# --- Arweave blocks -----------------------------------------------------------------------------
def test_an_arweave_anchor_gets_its_block_once_mined(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, ARWEAVE)
    _grow(fx, "r-1", "r-2")
    anchored = an.anchorer.anchor(TENANT).anchored
    assert anchored is not None
    assert an.states.state(TENANT).pending[0].locator == anchored.locator
    assert an.anchorer.anchor(TENANT).confirmed == ()  # not mined yet
    block_hash = an.blocks.mine(anchored.locator)
    run = an.anchorer.anchor(TENANT)
    assert run.anchored is None  # the block's record is no growth either
    (confirmation,) = run.confirmed
    assert (confirmation.block.height, confirmation.block.hash) == (1, block_hash)
    record = _records(fx)[confirmation.log_index]
    assert record == CheckpointAnchorConfirmedRecord(
        request_id="checkpoint-2-block",
        tenant_id=TENANT,
        tree_size=2,
        locator=anchored.locator,
        block_height=1,
        block_hash=block_hash,
    )
    assert an.states.state(TENANT).pending == ()
    assert an.anchorer.anchor(TENANT) == replace(run, confirmed=())  # nothing more to do
    listed = audit_reader_with_anchors(fx, an).anchors(TENANT)
    assert [(a.tree_size, a.block) for a in listed] == [(2, confirmation.block)]


def test_a_transaction_never_mined_is_given_up_after_a_day(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, ARWEAVE)
    _grow(fx, "r-1")
    anchored = an.anchorer.anchor(TENANT).anchored
    assert anchored is not None
    an.blocks.forget(anchored.locator)
    an.anchorer.anchor(TENANT)
    assert len(an.states.state(TENANT).pending) == 1  # unknown for a while: a node may lag
    an.clock.now += ABANDON_SECONDS + 1
    assert an.anchorer.anchor(TENANT).confirmed == ()
    assert an.states.state(TENANT).pending == ()
    assert audit_reader_with_anchors(fx, an).anchors(TENANT)[0].block is None


def test_racing_confirmations_log_one_block_and_lose_none(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, ARWEAVE)
    _grow(fx, "r-1")
    anchored = an.anchorer.anchor(TENANT).anchored
    assert anchored is not None
    an.blocks.mine(anchored.locator)
    runs = _race([an.anchorer, an.another()], TENANT)
    assert sum(len(r.confirmed) for r in runs) == 1
    blocks = [r for r in _records(fx) if isinstance(r, CheckpointAnchorConfirmedRecord)]
    assert len(blocks) == 1
    assert an.states.state(TENANT).pending == ()
    assert an.states.entries[TENANT][1].confirmed_index is not None


# --- failures -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "failure",
    [
        StorageUnavailableError("the ipfs node did not answer", node="ipfs"),
        BodyIntegrityError("the IPFS node named another CID for the body", backend="ipfs"),
    ],
)
def test_a_failing_node_leaves_nothing_recorded_and_the_next_run_retries(
    fx: AuditFixture, failure: Exception
) -> None:
    an = anchor_fixture(fx, IPFS)
    _grow(fx, "r-1")
    size = fx.service.checkpoint(TENANT).size
    an.store.fail = failure  # type: ignore[assignment]
    with pytest.raises(type(failure)):
        an.anchorer.anchor(TENANT)
    assert fx.service.checkpoint(TENANT).size == size  # nothing logged
    state = an.states.state(TENANT)
    assert (state.anchored, state.intent, state.claim_until) == (0, None, 0)  # the claim released
    assert an.states.entries == {}
    an.store.fail = None
    assert an.anchorer.anchor(TENANT).anchored is not None


def test_runs_that_come_while_one_anchors_leave_the_log_to_it(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, ARWEAVE)
    _grow(fx, "r-1")
    others: list[Any] = []

    def others_come() -> None:  # while the first run stores the note
        an.store.before_put = None
        others.extend(other.anchor(TENANT) for other in (an.another(), an.another()))

    an.store.before_put = others_come
    first = an.anchorer.anchor(TENANT)
    assert first.anchored is not None
    assert [(r.anchored, r.busy) for r in others] == [(None, True), (None, True)]
    assert an.store.puts == 1
    assert len(_anchors(fx)) == 1


def test_racing_runs_anchor_once(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, ARWEAVE)
    _grow(fx, "r-1")
    runs = _race([an.anchorer, an.another(), an.another(), an.another()], TENANT)
    assert sum(r.anchored is not None for r in runs) == 1
    assert an.store.puts == 1
    assert len(_anchors(fx)) == 1
    assert len(an.states.state(TENANT).pending) == 1


def test_a_run_that_stopped_after_storing_is_resumed_with_the_same_copy(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, ARWEAVE)
    _grow(fx, "r-1")
    crashing = CheckpointAnchorer(
        _FailingAppends(fx.service),  # type: ignore[arg-type]
        an.states,
        an.store,
        ARWEAVE,
        blocks=an.blocks,
        clock=an.clock,
    )
    with pytest.raises(TransientError):
        crashing.anchor(TENANT)
    intent = an.states.state(TENANT).intent
    assert intent is not None
    assert an.anchorer.anchor(TENANT).busy  # its claim still holds
    an.clock.now += CLAIM_SECONDS + 1
    anchored = an.anchorer.anchor(TENANT).anchored
    assert anchored is not None
    assert (anchored.locator, anchored.anchored_at) == (intent.locator, intent.anchored_at)
    assert an.store.puts == 1  # the copy already public is the one logged
    assert len(_anchors(fx)) == 1


def test_a_claim_that_lapsed_mid_put_does_not_log_a_second_anchor(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, IPFS)
    _grow(fx, "r-1")
    other = an.another()
    results: list[Any] = []

    def slow_node() -> None:  # the first run's put outlives its claim; another run takes the log
        an.store.before_put = None
        an.clock.now += CLAIM_SECONDS + 1
        results.append(other.anchor(TENANT))

    an.store.before_put = slow_node
    first = an.anchorer.anchor(TENANT)
    assert results[0].anchored is not None
    assert (first.anchored, first.busy) == (None, True)
    assert len(_anchors(fx)) == 1


def test_anchoring_off_and_a_backend_without_blocks_are_refused(fx: AuditFixture) -> None:
    with pytest.raises(InvalidRequestError, match="anchoring is off"):
        anchoring_off()
    an = anchor_fixture(fx, ARWEAVE)
    with pytest.raises(InvalidRequestError):
        CheckpointAnchorer(fx.service, an.states, an.store, ARWEAVE, blocks=None, clock=an.clock)
    with pytest.raises(InvalidRequestError):
        an.anchorer.anchor("not a tenant")


# --- the schedule -------------------------------------------------------------------------------
def test_anchor_due_visits_every_log_a_bounded_page_at_a_time(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, IPFS)
    tenants = [f"tenant-{i}" for i in range(5)]
    for tenant in tenants:
        _grow(fx, "r-1", tenant=tenant)
    first = an.anchorer.anchor_due(max_logs=3)
    assert (first.visited, first.next_after) == (3, "tenant-2")
    second = an.anchorer.anchor_due(max_logs=3)
    assert (second.visited, second.next_after) == (2, None)
    anchored = [r.tenant_id for run in (first, second) for r in run.runs if r.anchored]
    assert anchored == tenants
    assert an.anchorer.anchor_due(max_logs=10).to_dict()["anchored"] == []  # nothing grew
    _grow(fx, "r-2", tenant="tenant-3")
    assert [a["tenant_id"] for a in an.anchorer.anchor_due().to_dict()["anchored"]] == ["tenant-3"]
    for bad in (0, 1001, True):
        with pytest.raises(InvalidRequestError):
            an.anchorer.anchor_due(max_logs=bad)


def test_a_node_down_stops_the_scheduled_run_where_it_was(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, IPFS)
    for tenant in ("t-a", "t-b", "t-c"):
        _grow(fx, "r-1", tenant=tenant)
    an.anchorer.anchor("t-a")
    an.store.fail = StorageUnavailableError("the ipfs node did not answer", node="ipfs")
    with pytest.raises(StorageUnavailableError):
        an.anchorer.anchor_due()
    assert an.states.cursor() == "t-a"  # t-a was done (nothing due); t-b comes first next time
    an.store.fail = None
    done = an.anchorer.anchor_due()
    assert [r.tenant_id for r in done.runs if r.anchored] == ["t-b", "t-c"]


# --- the reader ---------------------------------------------------------------------------------
def test_the_reader_lists_anchors_newest_first_from_the_logged_records(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, IPFS)
    reader = audit_reader_with_anchors(fx, an)
    assert reader.anchors(TENANT) == []  # no log yet
    _grow(fx, "r-1")
    assert reader.anchors(TENANT) == []  # nothing anchored yet
    first = an.anchorer.anchor(TENANT).anchored
    _grow(fx, "r-2")
    second = an.anchorer.anchor(TENANT).anchored
    assert reader.anchors(TENANT) == [second, first]
    assert reader.anchors(TENANT, limit=1) == [second]
    for bad in (0, 101, "3"):
        with pytest.raises(InvalidRequestError):
            reader.anchors(TENANT, limit=bad)  # type: ignore[arg-type]


def test_a_row_that_names_another_entry_is_refused(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, IPFS)
    reader = audit_reader_with_anchors(fx, an)
    _grow(fx, "r-1")
    an.anchorer.anchor(TENANT)
    an.states.entries[TENANT][1] = AnchorEntry(1, 0)  # leaf 0 is a deletion
    with pytest.raises(LogInconsistentError):
        reader.anchors(TENANT)


# --- the records --------------------------------------------------------------------------------
ROOT = base64.b64encode(bytes(range(32))).decode()
CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
TX = "A" * 42 + "E"
BLOCK = "B" * 64


def _anchor_record(**changes: Any) -> CheckpointAnchorRecord:
    fields: dict[str, Any] = {
        "request_id": "checkpoint-7",
        "tenant_id": TENANT,
        "origin": "audit.test.example/logs/acme",
        "tree_size": 7,
        "root_hash": ROOT,
        "backend": "ipfs",
        "locator": CID,
        "note_sha256": "ab" * 32,
        "anchored_at": 1_795_651_200,
    }
    return CheckpointAnchorRecord(**(fields | changes))


GOLDEN_ANCHOR = (
    b'{"anchored_at":1795651200,"backend":"ipfs","kind":"checkpoint_anchor",'
    b'"locator":"' + CID.encode() + b'","note_sha256":"' + b"ab" * 32 + b'",'
    b'"origin":"audit.test.example/logs/acme","request_id":"checkpoint-7",'
    b'"root_hash":"' + ROOT.encode() + b'","tenant_id":"acme","tree_size":7,"v":1}'
)


def test_anchor_records_have_one_encoding_and_round_trip() -> None:
    record = _anchor_record()
    assert encode_record(record) == GOLDEN_ANCHOR
    assert decode_record(GOLDEN_ANCHOR) == record
    confirmed = CheckpointAnchorConfirmedRecord(
        request_id="checkpoint-7-block",
        tenant_id=TENANT,
        tree_size=7,
        locator=TX,
        block_height=12,
        block_hash=BLOCK,
    )
    entry = encode_record(confirmed)
    assert json.loads(entry)["backend"] == "arweave"
    assert decode_record(entry) == confirmed
    assert parse_record(json.loads(entry)) == confirmed
    # Their own id space: a tenant's record under the same request id takes nothing from them.
    assert log_key(record) == "anchor#checkpoint-7" != log_key(deletion("checkpoint-7"))


@pytest.mark.parametrize(
    "changes",
    [
        {"request_id": "checkpoint-8"},  # not its tree size
        {"tree_size": 0, "request_id": "checkpoint-0"},
        {"backend": "arweave"},  # a CID is no transaction id
        {"locator": TX},  # nor the reverse
        {"root_hash": base64.b64encode(bytes(31)).decode() + "A="},  # 32 bytes spelled otherwise
        {"root_hash": "not base64"},
        {"note_sha256": "AB" * 32},
        {"origin": "line\nbreak"},
        {"anchored_at": -1},
        {"backend": "s3"},
        {"vault_id": "agent-memory"},  # a log's record names no vault
    ],
)
def test_malformed_anchor_records_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _anchor_record(**changes)
    with pytest.raises(InvalidRequestError):
        parse_record(json.loads(GOLDEN_ANCHOR) | changes)


def test_append_refuses_anchor_records(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, IPFS)
    request = AppendRequest(action="append", tenant_id=TENANT, records=[json.loads(GOLDEN_ANCHOR)])
    with pytest.raises(InvalidRequestError, match="anchor actions"):
        run_audit_action(fx.service, None, request, anchorer=lambda: an.anchorer)  # type: ignore[arg-type]
    assert fx.service.latest(TENANT) is None


def test_the_anchor_actions_run_the_anchorer(fx: AuditFixture) -> None:
    an = anchor_fixture(fx, IPFS)
    _grow(fx, "r-1")
    one = run_audit_action(
        fx.service,
        None,  # type: ignore[arg-type]
        AnchorRequest(action="anchor", tenant_id=TENANT),
        anchorer=lambda: an.anchorer,
    )
    assert one["anchored"]["tree_size"] == 1
    due = run_audit_action(
        fx.service,
        None,  # type: ignore[arg-type]
        AnchorDueRequest(action="anchor_due", max_logs=5),
        anchorer=lambda: an.anchorer,
    )
    assert due == {
        "visited": 1,
        "anchored": [],
        "confirmed": [],
        "busy": [],
        "failed": [],
        "next_after": None,
    }
    with pytest.raises(InvalidRequestError, match="anchoring is off"):
        run_audit_action(fx.service, None, AnchorRequest(action="anchor", tenant_id=TENANT))  # type: ignore[arg-type]


# --- helpers ------------------------------------------------------------------------------------
def audit_reader_with_anchors(fx: AuditFixture, an: AnchorFixture) -> AuditReader:
    return AuditReader(
        TransparencyLog(fx.store, fx.tiles),
        fx.store,
        fx.store,
        origin_prefix=ORIGIN_PREFIX,
        verifiers=lambda: fx.keys.verifiers,
        stage_keys=list,
        anchors=an.states,
    )


class _FailingAppends:
    """The audit service of a run that stops right after it stored the note (before the log)."""

    def __init__(self, service: Any) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    def append(self, *_: object) -> None:
        raise TransientError("the run stopped")


def _race(anchorers: list[CheckpointAnchorer], tenant: str) -> list[Any]:
    barrier = threading.Barrier(len(anchorers))
    results: list[Any] = [None] * len(anchorers)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = anchorers[i].anchor(tenant)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(anchorers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
