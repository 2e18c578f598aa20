"""The read-only AuditReader on moto: an entry with its inclusion proof, a consistency proof and a page of an
item's decisions, on a log of 10,000 entries (300 with ``--quick``) built by real appends.

The log is written by ``AuditService.append`` onto DynamoDB and S3 (moto, in-process), checkpoint keys
stored as audit-append stores them (wrapped by a local root of trust; the reader reads their public halves
only), a third of the entries decisions on one item, a third decisions on 97 others, a third deletions.
Each read is timed beside a bare GetItem and a bare GetObject of the same moto, interleaved.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.audit_bench import REGION, moto_audit_stores
from tests.bench.report import Column, Table
from tests.bench.timing import Budget, Case, Stats, measure

FULL_LOG = 10_000
QUICK_LOG = 300
APPEND = 90  # records per append (AuditService.append's limit)
PAGE = 50
HOT_ITEM = "customer-42-notes"
VAULT = "agent-memory"
TENANT = "bench-tenant"
BASELINES = ("get_item", "get_object", "query")
READER_BUDGET = Budget(seconds=2.0, warmup_seconds=0.2, min_samples=30)


@dataclass(frozen=True, slots=True)
class ReaderLog:
    size: int
    build_s: float
    hot_decisions: int
    new_reader: Callable[[], Any]  # a reader as a cold start builds it (empty caches), same clients
    calls: Any  # CallCounter over the log store, the tile store and the key store (round trips)
    dynamodb: Any
    s3: Any
    table_name: str
    bucket: str


def _records(start: int, count: int) -> list[Any]:
    from tests.support.audit import decision, deletion

    records: list[Any] = []
    for i in range(start, start + count):
        if i % 3 == 0:
            records.append(decision(f"d-{i}", TENANT, decision="deny" if i % 7 == 0 else "approve"))
        elif i % 3 == 1:
            records.append(decision(f"o-{i}", TENANT, item_id=f"item-{i % 97}"))
        else:
            records.append(deletion(f"x-{i}", TENANT))
    return records


@contextmanager
def reader_log(size: int) -> Iterator[ReaderLog]:
    from reliquary.adapters.audit_reader import PublishedStageKeys
    from reliquary.adapters.audit_store import CHECKPOINT_PARTITION, DynamoDBLogStore, S3TileStore
    from reliquary.adapters.dynamodb import DynamoDBSigningKeyStore, TableConfig
    from reliquary.audit.checkpoint import CHECKPOINT_ALGORITHMS
    from reliquary.audit.log import TransparencyLog
    from reliquary.audit.note import NoteSigner
    from reliquary.audit.reader import AuditReader, PublishedCheckpointKeys
    from reliquary.audit.service import AuditService, CheckpointKeys
    from reliquary.crypto.root import LocalRootOfTrust
    from reliquary.vaults.service_keys import CHECKPOINT_SIGNING, load_or_create_signing_keys
    from tests.bench.audit_bench import CallCounter
    from tests.support.audit import ORIGIN_PREFIX

    with moto_audit_stores() as aws, tempfile.TemporaryDirectory() as scratch:
        config = TableConfig(aws.table_name, REGION, None)
        store = DynamoDBLogStore(config, aws.dynamodb)
        tile_store = S3TileStore(aws.s3, aws.bucket)
        key_store = DynamoDBSigningKeyStore(config, aws.dynamodb, partition=CHECKPOINT_PARTITION)
        root = LocalRootOfTrust.from_file(Path(scratch) / "root.key")
        keys = load_or_create_signing_keys(
            key_store, root, CHECKPOINT_ALGORITHMS, clock=lambda: int(time.time()), purpose=CHECKPOINT_SIGNING
        )
        signers = tuple(NoteSigner(ORIGIN_PREFIX, keys[a]) for a in CHECKPOINT_ALGORITHMS)
        service = AuditService(
            TransparencyLog(store, tile_store),
            tile_store,
            store,
            CheckpointKeys(signers),
            origin_prefix=ORIGIN_PREFIX,
        )
        started = time.perf_counter()
        for start in range(0, size, APPEND):
            service.append(TENANT, _records(start, min(APPEND, size - start)))
        build_s = time.perf_counter() - started
        counted_store, counted_tiles, counted_keys = (
            CallCounter(store),
            CallCounter(tile_store),
            CallCounter(key_store),
        )
        stage_keys = PublishedStageKeys({})  # no stage signs in this log: an empty, complete set

        def new_reader() -> AuditReader:
            return AuditReader(
                TransparencyLog(counted_store, counted_tiles),
                counted_store,
                counted_store,
                origin_prefix=ORIGIN_PREFIX,
                verifiers=PublishedCheckpointKeys(counted_keys, ORIGIN_PREFIX),
                stage_keys=stage_keys,
            )

        class Calls:
            def clear(self) -> None:
                for counter in (counted_store, counted_tiles, counted_keys):
                    counter.calls.clear()

            def total(self) -> dict[str, int]:
                return {
                    "db": counted_store.total() + counted_keys.total(),
                    "s3": counted_tiles.total(),
                }

        yield ReaderLog(
            size,
            build_s,
            len(range(0, size, 3)),
            new_reader,
            Calls(),
            aws.dynamodb,
            aws.s3,
            aws.table_name,
            aws.bucket,
        )


@dataclass(frozen=True, slots=True)
class ReaderResult:
    table: Table
    summary: dict[str, float]


def reader_table(quick: bool, budget: Budget | None = None) -> ReaderResult:
    size = QUICK_LOG if quick else FULL_LOG
    budget = budget or READER_BUDGET
    table = Table(
        "audit_reader",
        f"AuditReader on moto (DynamoDB, S3), a log of {size:,} entries built by AuditService.append",
        [
            Column("read", "read"),
            Column("median_ms", "median ms", ",.2f"),
            Column("p99_ms", "p99 ms", ",.2f"),
            Column("db_rt", "db rt", ".1f"),
            Column("s3_rt", "s3 rt", ".1f"),
            Column("vs_get", "x GetItem", ".1f"),
        ],
        notes=[
            (
                "entry = AuditReader.entry(tenant, i): the entry, its inclusion proof in the latest"
                " checkpoint's tree, the proof checked against the signed root (the checkpoint opened with"
                " all three keys on first use); i uniform over the log."
            ),
            (
                "cold = a new reader each sample (empty tile cache, checkpoint keys and checkpoint not yet"
                " read or verified; the boto3 clients kept); warm = one reader that has read every tile once,"
                " as an API container that has served a while (tiles are immutable: it keeps them)."
            ),
            (
                f"page = item_decisions(limit={PAGE}) of an item with a third of the log's entries: the"
                " first page, and the page after a cursor in the middle. bare Query = the same key"
                f" condition's {PAGE + 1} rows by boto3 alone. moto's Query compares and sorts every row of"
                " the table on each call, so on moto any Query (a page; a cold reader's query of the"
                " checkpoint keys) costs what the table's size does; DynamoDB reads only the key range."
            ),
            (
                "db rt / s3 rt = DynamoDB / S3 calls per read; x GetItem = median / a bare GetItem of the"
                " same moto. moto runs in-process (no network): real AWS adds each round trip's latency."
            ),
        ],
    )
    summary: dict[str, float] = {}
    with reader_log(size) as log:
        rng = random.Random(13)  # sampling, not a secret
        warm = log.new_reader()
        for first in range(0, size, 256):  # a container that has served a while: every tile cached
            warm.entry(TENANT, first)
        warm.entry(TENANT, size - 1)
        cold: list[Any] = [log.new_reader()]

        def fresh() -> None:
            cold[0] = log.new_reader()

        middle = _page_at(warm, log.hot_decisions // 2)
        key = {"pk": {"S": f"LOG#{TENANT}"}, "sk": {"S": "HEAD"}}
        cases: dict[str, Case | Callable[[], object]] = {
            "get_item": lambda: log.dynamodb.get_item(TableName=log.table_name, Key=key),
            "get_object": lambda: _read_object(log, f"logs/{TENANT}/checkpoint"),
            "query": lambda: log.dynamodb.query(
                TableName=log.table_name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :item)",
                ExpressionAttributeValues={
                    ":pk": {"S": f"LOG#{TENANT}"},
                    ":item": {"S": f"ITEM#{VAULT}#{HOT_ITEM}#"},
                },
                Limit=PAGE + 1,
            ),
            "entry cold": Case(lambda: cold[0].entry(TENANT, rng.randrange(size)), setup=fresh),
            "entry warm": lambda: warm.entry(TENANT, rng.randrange(size)),
            "entry at an earlier size, warm": lambda: warm.entry(
                TENANT, rng.randrange(size // 2), tree_size=rng.randrange(size // 2 + 1, size)
            ),
            "consistency, warm": lambda: warm.consistency(TENANT, rng.randrange(1, size)),
            "page: first": lambda: warm.item_decisions(TENANT, VAULT, HOT_ITEM, limit=PAGE),
            "page: after a cursor": lambda: warm.item_decisions(
                TENANT, VAULT, HOT_ITEM, limit=PAGE, cursor=middle
            ),
        }
        stats = measure(cases, budget)
        trips = {name: _round_trips(log, case) for name, case in cases.items() if name not in BASELINES}
        get_item = stats["get_item"]
        for name in BASELINES:
            table.add(read=f"bare {name} (baseline)", **_cells(stats[name], get_item))
        for name, (db, s3) in trips.items():
            table.add(read=name, db_rt=db, s3_rt=s3, **_cells(stats[name], get_item))
        table.footer.append(
            f"   log built in {log.build_s:.1f} s ({size // APPEND + (size % APPEND > 0)} appends of up to"
            f" {APPEND} records; {log.hot_decisions:,} decisions on the paged item)."
        )
        summary["reader_entry_cold_ms"] = stats["entry cold"].median_ns / 1e6
        summary["reader_entry_warm_ms"] = stats["entry warm"].median_ns / 1e6
        summary["reader_page_ms"] = stats["page: first"].median_ns / 1e6
        summary["reader_page_after_cursor_ms"] = stats["page: after a cursor"].median_ns / 1e6
    return ReaderResult(table, summary)


def _page_at(reader: Any, position: int) -> str:
    """The cursor after the first ``position`` decisions of the paged item (read in full pages)."""
    from reliquary.audit.index import MAX_PAGE

    cursor, seen = None, 0
    while True:
        page = reader.item_decisions(
            TENANT, VAULT, HOT_ITEM, limit=min(MAX_PAGE, position - seen), cursor=cursor
        )
        seen += len(page.decisions)
        cursor = page.cursor
        if cursor is None:
            raise AssertionError("the paged item has fewer decisions than expected")
        if seen >= position:
            return str(cursor)


def _read_object(log: ReaderLog, key: str) -> bytes:
    body: bytes = log.s3.get_object(Bucket=log.bucket, Key=key)["Body"].read()
    return body


def _cells(stats: Stats, base: Stats) -> dict[str, float]:
    return {
        "median_ms": stats.median_ns / 1e6,
        "p99_ms": stats.p99_ns / 1e6,
        "vs_get": stats.median_ns / base.median_ns,
    }


def _round_trips(log: ReaderLog, case: Case | Callable[[], object], runs: int = 5) -> tuple[float, float]:
    """DynamoDB and S3 calls per read, averaged over ``runs`` reads after the timed ones."""
    run = case if isinstance(case, Case) else Case(case)
    db = s3 = 0
    for _ in range(runs):
        if run.setup is not None:
            run.setup()
        log.calls.clear()
        run.fn()
        counted = log.calls.total()
        db, s3 = db + counted["db"], s3 + counted["s3"]
    return db / runs, s3 / runs
