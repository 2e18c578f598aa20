"""The per-item decision index and the read-only AuditReader, on the in-memory stores: the index holds a
row exactly for each decision entry, pages never leave their item, every entry and proof the reader serves
verifies with the existing verifiers against the checkpoint text, bad sizes are typed 4xx errors, and
storage altered behind the checkpoint is refused, never served."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from reliquary.audit import merkle, tiles
from reliquary.audit.checkpoint import CHECKPOINT_ALGORITHMS, Checkpoint, open_checkpoint, sign_checkpoint
from reliquary.audit.index import MAX_PAGE, DecisionRef, ItemDecision, encode_cursor
from reliquary.audit.log import MAX_BATCH, MAX_COMMIT_ROWS, Batch, TransparencyLog
from reliquary.audit.memory import InMemoryLogStore, InMemoryTileStore
from reliquary.audit.note import NoteVerifier, Policy
from reliquary.audit.reader import AuditReader, PublishedCheckpointKeys
from reliquary.audit.receipts import Receipt, verify_receipt
from reliquary.audit.records import DecisionRecord, decode_record, encode_record
from reliquary.audit.service import CHECKPOINT_PATH, StoredCheckpoint
from reliquary.crypto.root import LocalRootOfTrust
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey
from reliquary.errors import (
    BadIndexError,
    InvalidRequestError,
    LogInconsistentError,
    NotFoundError,
    ReliquaryError,
)
from reliquary.vaults.memory import InMemorySigningKeyStore
from reliquary.vaults.service_keys import CHECKPOINT_SIGNING, load_or_create_signing_keys
from tests.support.audit import (
    ORIGIN_PREFIX,
    STAGE_KEYS,
    AuditFixture,
    audit_fixture,
    audit_reader,
    decision,
    deletion,
)

TENANT = "acme"
VAULT, ITEM = "agent-memory", "customer-42-notes"


@pytest.fixture
def fx() -> AuditFixture:
    return audit_fixture()


def _verify(reader: AuditReader, fx: AuditFixture, receipt: Receipt, entry: bytes) -> Checkpoint:
    """What a client does: only the published vkeys, the origin and the entry's bytes."""
    verifiers = [NoteVerifier.from_vkey(k) for k in reader.verifier_keys()]
    return verify_receipt(
        receipt, entry, verifiers, origin=reader.origin(TENANT), required=Policy.all_of(*verifiers)
    )


def _all_index_rows(store: InMemoryLogStore, log_id: str) -> dict[int, tuple[str, str, ItemDecision]]:
    return {
        index: (vault, item, row)
        for (vault, item), rows in store.decisions.get(log_id, {}).items()
        for index, row in rows.items()
    }


def _mixed_log(fx: AuditFixture) -> list[DecisionRecord]:
    """Decisions on three items of two vaults, with deletions between them; returns the decisions on
    (VAULT, ITEM) in log order."""
    on_item: list[DecisionRecord] = []
    for n in range(12):
        records: list[Any] = [
            decision(f"d-{n}", decision="deny" if n % 3 == 0 else "approve", time=1_795_651_200 + n),
            decision(f"o-{n}", item_id="another-item"),
            deletion(f"x-{n}"),
            decision(f"v-{n}", vault_id="other-vault"),  # the same item id in another vault
        ]
        fx.service.append(TENANT, records)
        on_item.append(records[0])
    return on_item


# --- the index ------------------------------------------------------------------------------------
def test_every_decision_entry_has_exactly_one_index_row_naming_it(fx: AuditFixture) -> None:
    _mixed_log(fx)
    fx.service.append(TENANT, [decision("d-3", decision="deny", time=1_795_651_999)])  # another execution
    size = fx.service.checkpoint(TENANT).size
    entries = fx.service.entries(TENANT, 0, size)
    rows = _all_index_rows(fx.store, TENANT)
    decisions = {
        i: record for i, e in enumerate(entries) if isinstance(record := decode_record(e), DecisionRecord)
    }
    assert set(rows) == set(decisions)  # no row without a decision entry, no decision entry without a row
    for index, (vault, item, row) in rows.items():
        record = decisions[index]
        assert (vault, item) == (record.vault_id, record.item_id)
        assert row == ItemDecision(index, record.request_id, record.decision, record.time)


def test_an_append_of_many_decisions_commits_in_runs_that_fit_one_transaction(fx: AuditFixture) -> None:
    records = [decision(f"req-{i}", item_id=f"item-{i % 3}") for i in range(MAX_BATCH)]
    receipts = fx.service.append(TENANT, records)
    assert [r.leaf_index for r in receipts] == list(range(MAX_BATCH))
    batches = fx.store.batches(TENANT, 0, MAX_BATCH)
    assert fx.store.commits == len(batches) == 2
    for batch in batches:  # the head, the batch, a request row and an index row per decision
        assert 2 + 2 * len(batch.entries) <= MAX_COMMIT_ROWS
    assert len(_all_index_rows(fx.store, TENANT)) == MAX_BATCH
    reader = audit_reader(fx)
    for record, receipt in zip(records, receipts, strict=True):
        _verify(reader, fx, receipt, encode_record(record))
    # Records that are not decisions need no index row: a full append of them is one commit, as before.
    fx.service.append(TENANT, [deletion(f"del-{i}") for i in range(MAX_BATCH)])
    assert fx.store.commits == 3


def test_a_commit_that_fails_writes_no_index_row() -> None:
    store, tile_store = InMemoryLogStore(), InMemoryTileStore()
    log = TransparencyLog(store, tile_store)
    ref = DecisionRef(VAULT, ITEM, "req-1", "approve", 1)
    log.append(TENANT, [("decision#req-1", b"first")], decisions={"decision#req-1": ref})
    # A planted row at the leaf the next commit takes: the commit is refused as a whole.
    planted = ItemDecision(1, "planted", "approve", 2)
    store.decisions[TENANT][(VAULT, ITEM)][1] = planted
    ref2 = DecisionRef(VAULT, ITEM, "req-2", "deny", 2)
    with pytest.raises(LogInconsistentError):
        log.append(TENANT, [("decision#req-2", b"second")], decisions={"decision#req-2": ref2})
    assert store.head(TENANT).size == 1
    assert store.indexes(TENANT, ["decision#req-2"]) == {}
    # An index row for a request that is not appended is refused before anything is written.
    with pytest.raises(InvalidRequestError):
        log.append(TENANT, [("decision#req-3", b"third")], decisions={"decision#other": ref2})
    assert store.head(TENANT).size == 1
    with pytest.raises(InvalidRequestError):
        Batch(0, (b"a", b"b"), ("r1", "r2"), (None,))


def test_existing_entries_keep_their_bytes(fx: AuditFixture) -> None:
    """Indexing changes no entry: the entries of a log written with the index are the records' encodings."""
    on_item = _mixed_log(fx)
    entries = fx.service.entries(TENANT, 0, fx.service.checkpoint(TENANT).size)
    assert entries[0] == encode_record(on_item[0])
    assert entries[4] == encode_record(on_item[1])


# --- item_decisions -------------------------------------------------------------------------------
def test_an_items_decisions_page_in_log_order_and_end_with_no_cursor(fx: AuditFixture) -> None:
    on_item = _mixed_log(fx)
    reader = audit_reader(fx)
    seen: list[ItemDecision] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = reader.item_decisions(TENANT, VAULT, ITEM, limit=5, cursor=cursor)
        seen.extend(page.decisions)
        pages += 1
        cursor = page.cursor
        if cursor is None:
            break
    assert pages == 3
    assert [(d.request_id, d.decision, d.time) for d in seen] == [
        (r.request_id, r.decision, r.time) for r in on_item
    ]
    assert [d.index for d in seen] == [4 * n for n in range(12)]
    # Each row names the entry that decided: read it with its proof and check it against the checkpoint.
    for row in seen[:3]:
        proved = reader.entry(TENANT, row.index)
        record = decode_record(proved.entry)
        assert isinstance(record, DecisionRecord)
        assert (record.vault_id, record.item_id, record.request_id) == (VAULT, ITEM, row.request_id)
    one = reader.item_decisions(TENANT, VAULT, ITEM, limit=MAX_PAGE)
    assert len(one.decisions) == 12
    assert one.cursor is None
    assert reader.item_decisions(TENANT, VAULT, "never-decided").decisions == ()
    assert [d.request_id for d in reader.item_decisions(TENANT, "other-vault", ITEM).decisions] == [
        f"v-{n}" for n in range(12)
    ]


def test_a_cursor_never_pages_into_another_item_vault_or_tenant(fx: AuditFixture) -> None:
    _mixed_log(fx)
    fx.service.append("globex", [decision("g-1", tenant_id="globex")])
    reader = audit_reader(fx)
    page = reader.item_decisions(TENANT, VAULT, ITEM, limit=2)
    assert page.cursor is not None
    for tenant, vault, item in (
        ("globex", VAULT, ITEM),
        (TENANT, "other-vault", ITEM),
        (TENANT, VAULT, "another-item"),
    ):
        with pytest.raises(InvalidRequestError) as refused:
            reader.item_decisions(tenant, vault, item, cursor=page.cursor)
        assert refused.value.http_status == 400
        assert page.cursor not in str(refused.value.to_dict())
    # A cursor forged for another tenant's item is refused on this one's too.
    forged = encode_cursor("globex", VAULT, ITEM, 0)
    with pytest.raises(InvalidRequestError):
        reader.item_decisions(TENANT, VAULT, ITEM, cursor=forged)


def _raw_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor",
        "%%%",
        "A" * 2000,
        "abc",  # not base64 of JSON
        _raw_cursor([1, 2]),
        _raw_cursor({"t": TENANT, "v": VAULT, "i": ITEM}),
        _raw_cursor({"t": TENANT, "v": VAULT, "i": ITEM, "a": -1}),
        _raw_cursor({"t": TENANT, "v": VAULT, "i": ITEM, "a": True}),
        _raw_cursor({"t": TENANT, "v": VAULT, "i": ITEM, "a": "3"}),
        _raw_cursor({"t": TENANT, "v": VAULT, "i": ITEM, "a": 3, "x": 1}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_malformed_cursors_are_refused_without_echo(fx: AuditFixture, cursor: str) -> None:
    fx.service.append(TENANT, [decision("d-1")])
    with pytest.raises(InvalidRequestError) as refused:
        audit_reader(fx).item_decisions(TENANT, VAULT, ITEM, cursor=cursor)
    assert refused.value.details == {"field": "cursor"}


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1, True, 2.0, "5"])
def test_bad_limits_are_refused(fx: AuditFixture, limit: Any) -> None:
    with pytest.raises(InvalidRequestError):
        audit_reader(fx).item_decisions(TENANT, VAULT, ITEM, limit=limit)


@pytest.mark.parametrize(
    ("tenant", "vault", "item"), [("a#b", VAULT, ITEM), (TENANT, "", ITEM), (TENANT, VAULT, "x/y")]
)
def test_bad_ids_are_refused(fx: AuditFixture, tenant: str, vault: str, item: str) -> None:
    with pytest.raises(InvalidRequestError):
        audit_reader(fx).item_decisions(tenant, vault, item)


def test_only_decisions_a_checkpoint_covers_are_listed(fx: AuditFixture) -> None:
    fx.service.append(TENANT, [decision("d-1")])
    # Committed and integrated, but no checkpoint covers it yet (the appender stopped before publishing).
    ref = DecisionRef(VAULT, ITEM, "d-2", "approve", 1_795_651_300)
    fx.log.append(TENANT, [("decision#d-2", encode_record(decision("d-2")))], decisions={"decision#d-2": ref})
    reader = audit_reader(fx)
    assert [d.request_id for d in reader.item_decisions(TENANT, VAULT, ITEM).decisions] == ["d-1"]
    fx.service.publish(TENANT)
    listed = reader.item_decisions(TENANT, VAULT, ITEM).decisions
    assert [d.request_id for d in listed] == ["d-1", "d-2"]
    reader.entry(TENANT, listed[1].index)  # and each listed one can be read with its proof


# --- an empty log ---------------------------------------------------------------------------------
def test_a_tenant_without_a_log_is_not_found_and_has_no_decisions(fx: AuditFixture) -> None:
    reader = audit_reader(fx)
    for read in (
        lambda: reader.checkpoint_text(TENANT),
        lambda: reader.entry(TENANT, 0),
        lambda: reader.consistency(TENANT, 0),
    ):
        with pytest.raises(NotFoundError) as missing:
            read()
        assert missing.value.http_status == 404
    page = reader.item_decisions(TENANT, VAULT, ITEM)
    assert page.decisions == ()
    assert page.cursor is None


# --- the checkpoint and keys ----------------------------------------------------------------------
def test_the_checkpoint_text_is_the_published_note_exactly(fx: AuditFixture) -> None:
    fx.service.append(TENANT, [decision(f"d-{i}") for i in range(7)])
    reader = audit_reader(fx)
    text = reader.checkpoint_text(TENANT)
    assert text.encode() == fx.service.checkpoint(TENANT).note == fx.tiles.read(TENANT, CHECKPOINT_PATH)
    verifiers = [NoteVerifier.from_vkey(k) for k in reader.verifier_keys()]
    opened = open_checkpoint(
        text.encode(), verifiers, origin=reader.origin(TENANT), required=Policy.all_of(*verifiers)
    )
    assert opened.size == 7
    assert reader.verifier_keys() == fx.service.verifier_keys
    assert reader.stage_keys() == STAGE_KEYS


def test_published_checkpoint_keys_are_read_from_storage_without_the_root_of_trust(tmp_path: Any) -> None:
    """The public halves, as audit-append stored them, give the very vkeys it publishes; read until all
    three exist, then kept."""
    store = InMemorySigningKeyStore()
    published = PublishedCheckpointKeys(store, ORIGIN_PREFIX)
    assert published() == ()
    root = LocalRootOfTrust.from_file(tmp_path / "root.key")
    keys = load_or_create_signing_keys(
        store, root, CHECKPOINT_ALGORITHMS, clock=lambda: 1_795_651_200, purpose=CHECKPOINT_SIGNING
    )
    expected = [NoteVerifier(ORIGIN_PREFIX, keys[a].verifying_key).to_vkey() for a in CHECKPOINT_ALGORITHMS]
    assert [v.to_vkey() for v in published()] == expected

    class Unreadable(InMemorySigningKeyStore):
        def list(self) -> Any:
            raise AssertionError("read again")

    cached = PublishedCheckpointKeys(store, ORIGIN_PREFIX)
    cached()
    cached._store = Unreadable()  # the complete set is kept: never read again
    assert [v.to_vkey() for v in cached()] == expected


def test_a_malformed_stored_checkpoint_key_is_refused(tmp_path: Any) -> None:
    store = InMemorySigningKeyStore()
    root = LocalRootOfTrust.from_file(tmp_path / "root.key")
    load_or_create_signing_keys(
        store, root, CHECKPOINT_ALGORITHMS, clock=lambda: 1_795_651_200, purpose=CHECKPOINT_SIGNING
    )
    stored = store._keys["Ed25519"]
    store._keys["Ed25519"] = replace(stored, public_key=b"short")
    with pytest.raises(LogInconsistentError):
        PublishedCheckpointKeys(store, ORIGIN_PREFIX)()


# --- entries with proofs --------------------------------------------------------------------------
def test_an_entry_and_its_proof_verify_against_the_checkpoint_text(fx: AuditFixture) -> None:
    records = [decision(f"req-{i}") for i in range(300)]
    for start in range(0, 300, 45):
        fx.service.append(TENANT, records[start : start + 45])
    reader = audit_reader(fx)
    for index in (0, 1, 127, 255, 256, 299):
        proved = reader.entry(TENANT, index)
        assert proved.entry == encode_record(records[index])
        assert proved.tree_size == 300
        assert proved.checkpoint == reader.checkpoint_text(TENANT)
        receipt = Receipt(
            reader.origin(TENANT),
            records[index].request_id,
            index,
            proved.checkpoint.encode(),
            300,
            proved.inclusion_proof,
        )
        assert _verify(reader, fx, receipt, proved.entry).size == 300


def test_an_entry_at_an_earlier_size_verifies_against_that_sizes_checkpoint(fx: AuditFixture) -> None:
    fx.service.append(TENANT, [decision(f"req-{i}") for i in range(40)])
    earlier = fx.service.checkpoint(TENANT)  # a client kept this one
    fx.service.append(TENANT, [decision(f"late-{i}") for i in range(30)])
    reader = audit_reader(fx)
    proved = reader.entry(TENANT, 17, tree_size=40)
    assert proved.tree_size == 40
    assert proved.checkpoint is None
    receipt = Receipt(reader.origin(TENANT), "req-17", 17, earlier.note, 40, proved.inclusion_proof)
    assert _verify(reader, fx, receipt, proved.entry).size == 40
    # and the earlier checkpoint is consistent with the latest, by the reader's consistency proof
    latest = Checkpoint.parse(reader.checkpoint_text(TENANT).partition("\n\n")[0] + "\n")
    old = Checkpoint.parse(earlier.note.decode().partition("\n\n")[0] + "\n")
    consistency = reader.consistency(TENANT, 40)
    assert (consistency.old_size, consistency.new_size) == (40, 70)
    assert consistency.checkpoint == reader.checkpoint_text(TENANT)
    merkle.verify_consistency(40, 70, old.root_hash, latest.root_hash, list(consistency.proof))


def test_consistency_proofs_between_any_sizes_verify(fx: AuditFixture) -> None:
    records = [decision(f"req-{i}") for i in range(21)]
    for record in records:
        fx.service.append(TENANT, [record])
    leaves = [merkle.SHA256.hash_leaf(encode_record(r)) for r in records]
    reader = audit_reader(fx)
    for new in (1, 2, 7, 8, 20, 21):
        for old in range(new + 1):
            proved = reader.consistency(TENANT, old, new)
            assert (proved.checkpoint is not None) == (new == 21)
            merkle.verify_consistency(
                old, new, merkle.root_of(leaves[:old]), merkle.root_of(leaves[:new]), list(proved.proof)
            )


@pytest.mark.parametrize(
    ("index", "tree_size"),
    [(-1, None), (10, None), (11, None), (0, 0), (5, 5), (5, 3), (0, 11), (2**70, None)],
)
def test_impossible_indexes_and_sizes_are_bad_index_errors(
    fx: AuditFixture, index: int, tree_size: int | None
) -> None:
    fx.service.append(TENANT, [decision(f"d-{i}") for i in range(10)])
    with pytest.raises(BadIndexError) as refused:
        audit_reader(fx).entry(TENANT, index, tree_size)
    assert refused.value.http_status == 400
    assert refused.value.details == {"tree_size": 10}  # the valid range, never the value given


@pytest.mark.parametrize(("old", "new"), [(-1, None), (11, None), (5, 4), (0, 11), (3, -2), (11, 11)])
def test_impossible_consistency_sizes_are_bad_index_errors(
    fx: AuditFixture, old: int, new: int | None
) -> None:
    fx.service.append(TENANT, [decision(f"d-{i}") for i in range(10)])
    with pytest.raises(BadIndexError):
        audit_reader(fx).consistency(TENANT, old, new)


@pytest.mark.parametrize("bad", [True, 1.0, "1", None])
def test_sizes_that_are_not_integers_are_invalid_requests(fx: AuditFixture, bad: Any) -> None:
    fx.service.append(TENANT, [decision("d-1"), decision("d-2")])
    reader = audit_reader(fx)
    size: Any = "x" if bad is None else bad  # None is a valid size: the latest
    for read in (
        lambda: reader.entry(TENANT, bad),
        lambda: reader.entry(TENANT, 0, size),
        lambda: reader.consistency(TENANT, bad),
        lambda: reader.consistency(TENANT, 0, size),
    ):
        with pytest.raises(InvalidRequestError) as refused:
            read()
        assert refused.value.http_status < 500


# --- tampered storage -----------------------------------------------------------------------------
def _log_of(fx: AuditFixture, count: int = 300) -> None:
    for start in range(0, count, 45):
        fx.service.append(TENANT, [decision(f"req-{i}") for i in range(start, min(count, start + 45))])


def test_an_entry_altered_in_its_bundle_is_refused(fx: AuditFixture) -> None:
    _log_of(fx)
    ref = tiles.tile_at(None, 0, 300)
    assert ref is not None
    bundle = tiles.decode_bundle(fx.tiles.objects[(TENANT, ref.path)], ref)
    bundle[7] = encode_record(decision("req-7", decision="deny"))
    fx.tiles.objects[(TENANT, ref.path)] = tiles.encode_bundle(bundle)
    reader = audit_reader(fx)
    with pytest.raises(LogInconsistentError) as refused:
        reader.entry(TENANT, 7)
    assert refused.value.http_status == 500
    reader.entry(TENANT, 8)  # the untouched entries still verify


def test_a_tile_altered_in_storage_is_refused(fx: AuditFixture) -> None:
    _log_of(fx)
    data = bytearray(fx.tiles.objects[(TENANT, "tile/0/000")])
    data[40] ^= 1  # leaf 1's hash
    fx.tiles.objects[(TENANT, "tile/0/000")] = bytes(data)
    reader = audit_reader(fx)
    with pytest.raises(LogInconsistentError):
        reader.entry(TENANT, 0)  # leaf 1's hash is in leaf 0's proof
    with pytest.raises(LogInconsistentError):
        reader.consistency(TENANT, 3, 300)
    with pytest.raises(LogInconsistentError):
        reader.entry(TENANT, 0, tree_size=10)  # the tree of 10 is checked against the signed one


def test_a_checkpoint_not_signed_by_every_published_key_is_never_served(fx: AuditFixture) -> None:
    _log_of(fx, 10)
    stored = fx.service.checkpoint(TENANT)
    body = stored.note.partition(b"\n\n")[0].decode() + "\n"
    one_key = sign_checkpoint(Checkpoint.parse(body), fx.keys.signers[:1])
    fx.store._checkpoints[TENANT] = StoredCheckpoint(10, one_key)
    reader = audit_reader(fx)
    for read in (
        lambda: reader.checkpoint_text(TENANT),
        lambda: reader.entry(TENANT, 0),
        lambda: reader.item_decisions(TENANT, VAULT, ITEM),
    ):
        with pytest.raises(LogInconsistentError):
            read()
    # Signed by other keys of the same names (a public key swapped beside it would be needed too).
    impostor = [
        type(s)(ORIGIN_PREFIX, SigningKey.generate(a))
        for s, a in zip(fx.keys.signers, CHECKPOINT_ALGORITHMS, strict=True)
    ]
    fx.store._checkpoints[TENANT] = StoredCheckpoint(10, sign_checkpoint(Checkpoint.parse(body), impostor))
    with pytest.raises(LogInconsistentError):
        reader.checkpoint_text(TENANT)
    # Another tenant's genuine checkpoint copied over this one's: the origin gives it away.
    fx.service.append("globex", [decision("g", tenant_id="globex")])
    fx.store._checkpoints[TENANT] = fx.service.checkpoint("globex")
    with pytest.raises(LogInconsistentError):
        reader.checkpoint_text(TENANT)
    # A stored size that is not the note's.
    fx.store._checkpoints[TENANT] = StoredCheckpoint(9, stored.note)
    with pytest.raises(LogInconsistentError):
        reader.checkpoint_text(TENANT)


def test_no_published_keys_serve_no_checkpoint(fx: AuditFixture) -> None:
    _log_of(fx, 3)
    reader = AuditReader(
        TransparencyLog(fx.store, fx.tiles),
        fx.store,
        fx.store,
        origin_prefix=ORIGIN_PREFIX,
        verifiers=lambda: (),
        stage_keys=list,
    )
    with pytest.raises(LogInconsistentError):
        reader.checkpoint_text(TENANT)


# --- read only ------------------------------------------------------------------------------------
class _ReadOnlyLogStore(InMemoryLogStore):
    def commit(self, *_: Any, **__: Any) -> None:
        raise AssertionError("the reader wrote")

    mark_integrated = put_checkpoint = commit


class _ReadOnlyTiles(InMemoryTileStore):
    def write(self, *_: Any, **__: Any) -> None:
        raise AssertionError("the reader wrote")


def test_the_reader_never_writes(fx: AuditFixture) -> None:
    _mixed_log(fx)
    store, tile_store = _ReadOnlyLogStore(), _ReadOnlyTiles()
    store.__dict__.update(fx.store.__dict__)
    tile_store.objects = fx.tiles.objects
    reader = AuditReader(
        TransparencyLog(store, tile_store),
        store,
        store,
        origin_prefix=ORIGIN_PREFIX,
        verifiers=lambda: fx.keys.verifiers,
        stage_keys=lambda: STAGE_KEYS,
    )
    reader.checkpoint_text(TENANT)
    reader.entry(TENANT, 5)
    reader.entry(TENANT, 5, tree_size=20)
    reader.consistency(TENANT, 3, 30)
    reader.item_decisions(TENANT, VAULT, ITEM, limit=3)


def test_errors_are_typed_and_never_internal_for_bad_input(fx: AuditFixture) -> None:
    fx.service.append(TENANT, [decision("d-1")])
    reader = audit_reader(fx)
    bad_calls: list[Callable[[], object]] = [
        lambda: reader.entry("bad tenant", 0),
        lambda: reader.entry(TENANT, 5),
        lambda: reader.consistency(TENANT, 2, 1),
        lambda: reader.item_decisions(TENANT, VAULT, ITEM, cursor="x"),
        lambda: reader.checkpoint_text("nobody"),
    ]
    for call in bad_calls:
        with pytest.raises(ReliquaryError) as refused:
            call()
        assert 400 <= refused.value.http_status < 500


def test_reader_keys_match_the_algorithms_published(fx: AuditFixture) -> None:
    reader = audit_reader(fx)
    assert [NoteVerifier.from_vkey(k).algorithm for k in reader.verifier_keys()] == [
        SignatureAlgorithm.ED25519,
        SignatureAlgorithm.ML_DSA_65,
        SignatureAlgorithm.FALCON_512,
    ]


def test_published_stage_keys_are_read_until_every_stage_has_one(tmp_path: Any) -> None:
    """As get_checkpoint publishes them (StageKeys.to_json), from the public halves only; kept once every
    signing function has created its key."""
    from reliquary.adapters.audit_reader import PublishedStageKeys
    from reliquary.flow.attestation import Signer, StageKeys, StageSigner
    from reliquary.flow.keys import load_stage_signer

    stores = {signer: InMemorySigningKeyStore() for signer in Signer}
    published = PublishedStageKeys(stores)
    root = LocalRootOfTrust.from_file(tmp_path / "root.key")
    signers: dict[Signer, StageSigner] = {}
    for signer in Signer:
        assert {k["signer"] for k in published()} == {s.value for s in signers}  # not kept: read again
        signers[signer] = load_stage_signer(signer, stores[signer], root, clock=lambda: 1_795_651_200)
    expected = StageKeys({s: [signed.verifying_key] for s, signed in signers.items()}).to_json()
    assert published() == expected
    for store in stores.values():
        store._keys.clear()  # a complete set is kept: never read again
    assert published() == expected


def test_a_reader_keeps_a_bounded_number_of_verified_checkpoints(
    fx: AuditFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reliquary.audit import reader as reader_module

    monkeypatch.setattr(reader_module, "MAX_OPENED", 2)
    tenants = [f"tenant-{i}" for i in range(4)]
    for tenant in tenants:
        fx.service.append(tenant, [decision("d-1", tenant_id=tenant)])
    reader = audit_reader(fx)
    for tenant in [*tenants, *tenants]:
        assert reader.checkpoint_text(tenant).encode() == fx.service.checkpoint(tenant).note
        assert len(reader._opened) <= 2
    assert list(reader._opened) == tenants[-2:]
