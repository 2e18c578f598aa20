"""The benchmark's code paths with tiny budgets (``--quick``): every table has its rows and every ratio is a
positive, finite number. Nothing here asserts on a timing."""

from __future__ import annotations

import contextlib
import io
import json
import math
from typing import Any

import pytest

from tests.bench import audit_bench, audit_reader_bench, coldstart, run, timing, zk_bench
from tests.bench.report import Column, Table

# One worker for the whole module: its module-scoped quick run (every offline section) would otherwise be
# made once per worker the module's tests are spread over.
# Run by `make bench` before its tables (`pytest -m bench`), not by `make test`.
pytestmark = [pytest.mark.bench, pytest.mark.xdist_group("bench-smoke")]

SIZES = {"1 KiB", "64 KiB", "1 MiB"}
# coldstart spawns interpreters; flow, api and sdk run the local runtime (tests/e2e/test_flow_bench.py,
# tests/e2e/test_api_bench.py and tests/e2e/test_sdk_bench.py cover them; the sdk section's offline tables
# are below).
CRYPTO_SECTIONS = [
    arg
    for section in run.SECTIONS
    if section not in ("coldstart", "flow", "api", "sdk")
    for arg in ("--only", section)
]


def _positive_finite(value: object) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def _column(table: dict[str, Any], key: str) -> list[Any]:
    return [row.get(key) for row in table["rows"]]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run.main(["--quick", "--json", str(path), *CRYPTO_SECTIONS]) == 0
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document, printed.getvalue()


def test_machine_is_printed_first(quick_run: tuple[dict[str, Any], str]) -> None:
    document, output = quick_run
    assert output.startswith("== Machine")
    assert "nproc" in output.splitlines()[1]
    assert document["machine"]["nproc"] >= 1
    assert document["machine"]["python"]
    assert document["mode"] == "quick"


def test_envelope_table_has_every_size_and_op(quick_run: tuple[dict[str, Any], str]) -> None:
    document, output = quick_run
    table = document["tables"]["envelope"]
    assert {(r["size"], r["op"]) for r in table["rows"]} == {
        (s, op) for s in SIZES for op in ("seal", "open")
    }
    for key in ("median_us", "p99_us", "kem_us", "sig_us", "aes_us", "primitives_us", "overhead", "mb_s"):
        assert all(_positive_finite(v) for v in _column(table, key)), key
    assert all(isinstance(v, int | float) and v >= 0 for v in _column(table, "faults"))
    assert "1 MiB open throughput / raw AES-256-GCM decrypt throughput" in output
    assert _positive_finite(document["summary"]["envelope_max_overhead"])
    assert _positive_finite(document["summary"]["open_1mib_vs_raw_aes"])


def test_other_signers_table(quick_run: tuple[dict[str, Any], str]) -> None:
    table = quick_run[0]["tables"]["envelope_signers"]
    assert {(r["signer"], r["size"], r["op"]) for r in table["rows"]} == {
        (signer, size, op)
        for signer in ("Ed25519", "Falcon-512")
        for size in SIZES
        for op in ("seal", "open")
    }
    assert all(_positive_finite(v) for v in _column(table, "overhead"))


def test_envelope_parts_table(quick_run: tuple[dict[str, Any], str]) -> None:
    table = quick_run[0]["tables"]["envelope_parts"]
    assert len(table["rows"]) == 11
    assert all(_positive_finite(v) for v in _column(table, "median_us"))
    assert {r["size"] for r in table["rows"]} == {"1 KiB", "1 MiB"}
    assert all(isinstance(v, int | float) and v >= 0 for v in _column(table, "faults"))


def test_signature_table_has_every_algorithm_and_op(quick_run: tuple[dict[str, Any], str]) -> None:
    table = quick_run[0]["tables"]["signatures"]
    implementations = {
        ("Ed25519", "cryptography/OpenSSL"),
        ("ML-DSA-65", "liboqs 0.16"),
        ("ML-DSA-65", "cryptography/OpenSSL"),
        ("Falcon-512", "liboqs 0.16"),
    }
    assert {(r["algorithm"], r["library"], r["op"]) for r in table["rows"]} == {
        (*impl, op) for impl in implementations for op in ("keygen", "sign", "verify")
    }
    for key in ("median_us", "ops_s", "vs_liboqs_mldsa"):
        assert all(_positive_finite(v) for v in _column(table, key)), key


def test_kem_and_grant_table(quick_run: tuple[dict[str, Any], str]) -> None:
    table = quick_run[0]["tables"]["kem_grants"]
    assert len(table["rows"]) == 5
    assert any(r["op"].startswith("grant round") for r in table["rows"])
    for key in ("median_us", "ops_s", "primitives_us", "overhead"):
        assert all(_positive_finite(v) for v in _column(table, key)), key


def test_service_tables(quick_run: tuple[dict[str, Any], str]) -> None:
    tables = quick_run[0]["tables"]
    service = tables["service"]
    assert {(r["size"], r["op"]) for r in service["rows"]} == {
        (s, op) for s in SIZES for op in ("seal_item", "grant")
    }
    for key in ("median_us", "bare_us", "overhead"):
        assert all(_positive_finite(v) for v in _column(service, key)), key
    assert all(_positive_finite(v) for v in _column(tables["service_parts"], "median_us"))


def test_merkle_root_table(quick_run: tuple[dict[str, Any], str]) -> None:
    document, output = quick_run
    table = document["tables"]["merkle_root"]
    impls = [row["impl"] for row in table["rows"]]
    assert len(impls) == 9
    for prefix in ("native:", "floor:", "bare hashlib", "pure reference", "from stored entry bundles"):
        assert any(i.startswith(prefix) for i in impls), prefix
    for key in ("median_ms", "min_ms", "vs_floor", "vs_native", "mleaves_s"):
        assert all(_positive_finite(v) for v in _column(table, key)), key
    assert all(isinstance(v, int | float) and v >= 0 for v in _column(table, "faults"))
    assert "native / floor:" in output
    assert "pure reference / native:" in output
    assert "from stored bundles" in output
    for key in (
        "merkle_native_vs_floor",
        "merkle_pure_vs_native",
        "merkle_hashlib_vs_native",
        "merkle_bundles_pure_vs_native",
    ):
        assert _positive_finite(document["summary"][key]), key


def test_proofs_table(quick_run: tuple[dict[str, Any], str]) -> None:
    document, _ = quick_run
    table = document["tables"]["proofs"]
    sizes = {f"{size:,}" for size in audit_bench.QUICK_SCALE.proof_sizes}
    assert {(r["size"], r["proof"]) for r in table["rows"]} == {
        (size, proof) for size in sizes for proof in ("inclusion", "consistency")
    }
    for key in (
        "hashes",
        "bytes",
        "gen_us",
        "gen_cold_us",
        "tile_reads",
        "gen_hashes",
        "gen_vs_floor",
        "verify_us",
        "verify_hashes",
        "verify_vs_floor",
        "hash_us",
    ):
        assert all(_positive_finite(v) for v in _column(table, key)), key
    inclusion = [r for r in table["rows"] if r["proof"] == "inclusion"]
    assert all(_positive_finite(r["native_us"]) and _positive_finite(r["pure_vs_native"]) for r in inclusion)
    assert _positive_finite(document["summary"]["proof_inclusion_gen_us"])
    assert _positive_finite(document["summary"]["proof_inclusion_verify_pure_vs_native"])


def test_appends_table(quick_run: tuple[dict[str, Any], str]) -> None:
    document, _ = quick_run
    rows = document["tables"]["appends"]["rows"]
    appends = [r for r in rows if r.get("batch") is not None]
    assert {(r["store"], r["batch"]) for r in appends} == {
        (store, batch) for store in ("in-memory", "moto") for batch in audit_bench.APPEND_BATCHES
    }
    assert len([r for r in appends if r["store"] == "in-memory"]) == 2 * len(audit_bench.APPEND_BATCHES)
    for key in ("median_us", "appends_s", "entries_s", "db_rt", "s3_put", "rt", "vs_base"):
        assert all(_positive_finite(r[key]) for r in appends), key
    moto = [r for r in appends if r["store"] == "moto"]
    assert all(_positive_finite(r["http"]) and _positive_finite(r["vs_rt_floor"]) for r in moto)
    baselines = [r for r in rows if r.get("batch") is None]
    assert len(baselines) == 3
    assert all(_positive_finite(r["median_us"]) and r["vs_base"] == 1.0 for r in baselines)
    for batch in audit_bench.APPEND_BATCHES:
        assert _positive_finite(document["summary"][f"append_memory_batch{batch}_entries_per_s"])
        assert _positive_finite(document["summary"][f"append_moto_batch{batch}_vs_put_item"])
        assert _positive_finite(document["summary"][f"append_moto_batch{batch}_round_trips"])


def test_concurrent_appends_table(quick_run: tuple[dict[str, Any], str]) -> None:
    document, _ = quick_run
    rows = document["tables"]["tlog"]["rows"]
    assert rows[0]["rt"] == rows[0]["vs_base"] == 1.0
    appended = rows[1:]
    assert [r["appenders"] for r in appended] == list(audit_bench.CONCURRENCY)
    for key in ("entries_s", "us_entry", "db", "s3_put", "rt", "commits", "checkpoints", "vs_base"):
        assert all(_positive_finite(r[key]) for r in appended), key
    # One entry per appender: the 32 appends share commits and checkpoints (fewer than one each).
    assert appended[-1]["commits"] < 1
    assert appended[-1]["checkpoints"] < 1
    for appenders in audit_bench.CONCURRENCY:
        assert _positive_finite(document["summary"][f"tlog_receipts_{appenders}_rt_per_entry"])


def test_audit_reader_table(quick_run: tuple[dict[str, Any], str]) -> None:
    document, _ = quick_run
    rows = {r["read"]: r for r in document["tables"]["audit_reader"]["rows"]}
    reads = ("entry cold", "entry warm", "entry at an earlier size, warm", "consistency, warm")
    pages = ("page: first", "page: after a cursor")
    assert set(rows) == {f"bare {b} (baseline)" for b in audit_reader_bench.BASELINES} | {*reads, *pages}
    for read in (*reads, *pages):
        assert _positive_finite(rows[read]["median_ms"]), read
        assert _positive_finite(rows[read]["db_rt"]), read  # every read looks at the latest checkpoint
    # A warm entry read is the checkpoint's GetItem and the entry bundle's GET: tiles come from the cache.
    assert (rows["entry warm"]["db_rt"], rows["entry warm"]["s3_rt"]) == (1.0, 1.0)
    assert (rows["page: first"]["db_rt"], rows["page: first"]["s3_rt"]) == (2.0, 0.0)
    for key in (
        "reader_entry_cold_ms",
        "reader_entry_warm_ms",
        "reader_page_ms",
        "reader_page_after_cursor_ms",
    ):
        assert _positive_finite(document["summary"][key]), key


def test_directly_written_log_matches_appends() -> None:
    built = audit_bench.build_log(audit_bench.random_entries(700))
    audit_bench.cross_check(built)  # raises if a tile, a bundle or the head differs
    assert built.size == 700


def test_coldstart_measures_every_function_under_its_template_environment() -> None:
    functions = {f.name for f in coldstart.FUNCTIONS}
    assert functions == {p.parent.name for p in (coldstart.REPO / "functions").glob("*/app.py")}
    for function in coldstart.FUNCTIONS:
        env = coldstart.lambda_env(function.logical_id)
        # The template's own variables, and what makes powertools' Tracer trace (and patch) as deployed.
        assert env["POWERTOOLS_SERVICE_NAME"] == f"reliquary-{function.label}"
        assert env["RELIQUARY_STAGE"] == "dev"
        assert "LAMBDA_TASK_ROOT" in env
        assert env["AWS_XRAY_DAEMON_ADDRESS"]  # every function has Tracing: Active
    quick = {t.key for t in coldstart.targets(quick=True)}
    assert quick == {f"handler_{name}" for name in functions} | {"startup", "boto3"}


@pytest.mark.slow
def test_coldstart_quick() -> None:
    result = coldstart.coldstart_tables(1, quick=True)
    rows = {r["target"]: r for r in result.table.rows}
    assert len(rows) == len(coldstart.targets(quick=True))
    for target in coldstart.targets(quick=True):
        row = rows[target.label]
        assert _positive_finite(row["wall_ms"])
        assert isinstance(row["in_process_ms"], float)
        assert row["in_process_ms"] >= 0
    assert set(result.handler_import_ms) == {f.name for f in coldstart.FUNCTIONS}
    assert all(_positive_finite(ms) for ms in result.handler_import_ms.values())
    per_function = {f.label: 0 for f in coldstart.FUNCTIONS}
    for row in result.imports.rows:
        per_function[str(row["function"])] += 1
    assert per_function == {f.label: coldstart.TOP_MODULES + 1 for f in coldstart.FUNCTIONS}
    assert all(_positive_finite(r["cumulative_ms"]) for r in result.imports.rows)
    rendered = result.table.render()
    assert "agent-vote handler import (Lambda env) median" in rendered
    assert "api handler import (Lambda env) median" in rendered


def test_parse_importtime() -> None:
    report = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   json.decoder
import time:        50 |        150 | json
import time:        20 |         20 |     a.b.c
import time:        30 |         50 |   a.b
import time:        40 |         90 | a
"""
    entries = coldstart.parse_importtime(report)
    assert [(e.module, e.depth, e.cumulative_us) for e in entries] == [
        ("json.decoder", 1, 100),
        ("json", 0, 150),
        ("a.b.c", 2, 20),
        ("a.b", 1, 50),
        ("a", 0, 90),
    ]
    assert [e.module for e in coldstart.top_imports(entries, "a.b.c", count=2)] == ["json", "json.decoder"]


def test_measure_runs_setup_outside_each_sample() -> None:
    calls = {"setup": 0, "fn": 0}

    def setup() -> None:
        calls["setup"] += 1

    def fn() -> None:
        calls["fn"] += 1

    stats = timing.measure({"a": timing.Case(fn, setup=setup), "b": lambda: None}, timing.QUICK)
    assert set(stats) == {"a", "b"}
    assert stats["a"].samples >= timing.QUICK.min_samples
    assert calls["setup"] >= stats["a"].samples
    assert all(_positive_finite(s.median_ns) and s.p99_ns >= s.median_ns for s in stats.values())


def test_percentile_is_nearest_rank() -> None:
    assert timing.percentile([3.0, 1.0, 2.0], 0.99) == 3.0
    assert timing.percentile(list(map(float, range(1, 201))), 0.99) == 198.0


def test_table_refuses_an_unknown_column() -> None:
    table = Table("t", "title", [Column("a", "A", ".1f")])
    table.add(a=1.5)
    with pytest.raises(ValueError, match="no column"):
        table.add(b=1)
    assert table.render().splitlines()[-1].strip() == "1.5"


def test_zk_tables(quick_run: tuple[dict[str, Any], str]) -> None:
    document, output = quick_run
    verify = document["tables"]["zk_verify"]
    assert {row["circuit"] for row in verify["rows"]} == set(zk_bench.CIRCUITS)
    for key in ("verify_us", "parse_us"):
        assert all(_positive_finite(v) for v in _column(verify, key)), key
    # snarkjs runs for the first circuit at least (Node is part of the toolchain `make setup` installs).
    assert _positive_finite(verify["rows"][0]["snarkjs_ms"])
    assert _positive_finite(verify["rows"][0]["vs_snarkjs"])
    batch = document["tables"]["zk_batch"]
    assert [row["n"] for row in batch["rows"]] == list(zk_bench.BATCH_SIZES)
    assert all(_positive_finite(v) for v in _column(batch, "throughput"))
    prove = document["tables"]["zk_prove"]
    assert all(_positive_finite(v) for v in _column(prove, "median_ms"))
    assert "n = 64:" in output
    for key in ("zk_min_vs_snarkjs", "zk_batch64_vs_single"):
        assert _positive_finite(document["summary"][key]), key


def test_trust_table(quick_run: tuple[dict[str, Any], str]) -> None:
    document, output = quick_run
    table = document["tables"]["trust"]
    assert len(table["rows"]) == 4
    assert all(_positive_finite(v) for v in _column(table, "p50_us"))
    assert "default policy p50" in output
    assert _positive_finite(document["summary"]["trust_default_p50_us"])


def test_agents_table(quick_run: tuple[dict[str, Any], str]) -> None:
    document, _ = quick_run
    table = document["tables"]["agents"]
    assert len(table["rows"]) == 6  # baseline, four agents, tally
    assert all(_positive_finite(v) for v in _column(table, "p50_us"))
    assert _positive_finite(document["summary"]["agents_slowest_vote_us"])


def test_chain_table(quick_run: tuple[dict[str, Any], str]) -> None:
    document, _ = quick_run
    table = document["tables"]["chain"]
    assert len(table["rows"]) == 6  # baseline, sign, check, chain, RecordDecision's check, per decision
    assert all(_positive_finite(v) for v in _column(table, "p50_us"))
    assert _column(table, "vs_groth16")[0] == 1.0
    assert _positive_finite(document["summary"]["chain_per_decision_vs_groth16"])


def test_passkeys_table(quick_run: tuple[dict[str, Any], str]) -> None:
    document, _ = quick_run
    table = document["tables"]["passkeys"]
    assert len(table["rows"]) == 4  # a baseline and verify_assertion per algorithm
    assert all(_positive_finite(v) for v in _column(table, "p50_us"))
    assert _column(table, "vs_signature")[0::2] == [1.0, 1.0]
    assert _positive_finite(document["summary"]["passkey_assertion_vs_signature"])


def test_sdk_grant_table_opens_both_sizes_and_names_what_dominates() -> None:
    from tests.bench import sdk_bench

    table, summary = sdk_bench.grant_table(timing.QUICK)
    rows = {(r["size"], str(r["op"]).strip()): r for r in table.rows}
    for size in ("1 KiB", "1 MiB"):
        assert _positive_finite(rows[(size, "core")]["median_us"])
        assert _positive_finite(rows[(size, "SDK")]["vs_core"])
        parts = [r for (s, _), r in rows.items() if s == size and r["share"] is not None]
        assert len(parts) == 4
        assert all(_positive_finite(r["share"]) for r in parts)
    assert [line.split(":")[0].strip() for line in table.footer] == ["1 KiB", "1 MiB"]
    assert all("dominated by" in line for line in table.footer)
    for key in ("sdk_open_grant_1kib_vs_core", "sdk_open_grant_1mib_vs_core", "sdk_open_grant_1mib_us"):
        assert _positive_finite(summary[key]), key


def test_sdk_verification_table_has_receipts_and_chains() -> None:
    from tests.bench import sdk_bench

    table, summary = sdk_bench.verification_table(timing.QUICK)
    assert {r["what"] for r in table.rows} == {"receipt", "chain"}
    assert len(table.rows) == 7 + 5
    assert all(_positive_finite(r["median_us"]) for r in table.rows)
    for key in ("sdk_receipt_vs_core", "sdk_chain_vs_core", "sdk_receipt_us", "sdk_chain_us"):
        assert _positive_finite(summary[key]), key
