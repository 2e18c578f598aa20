"""`make bench`: print the benchmark tables (``python -m tests.bench.run [--quick] [--json PATH]``).

Figures only, each beside a baseline measured in the same run; the exit status never depends on timings.
``--quick`` runs every code path with tiny budgets (the smoke test uses it; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.bench.report import Table
    from tests.bench.timing import Budget

REPO = Path(__file__).resolve().parents[2]
SECTIONS = (
    "envelope",
    "parts",
    "signers",
    "signatures",
    "kem",
    "service",
    "merkle",
    "proofs",
    "appends",
    "tlog",
    "reader",
    "zk",
    "trust",
    "agents",
    "chain",
    "passkeys",
    "coldstart",
    "flow",
    "api",
    "sdk",
    "sizes",
)
FULL_COLDSTART_RUNS = 7


def ensure_import_paths() -> None:
    """Put the checkout and both layers first on sys.path, as the Lambda layers are (/opt/python).

    This also wins over an editable install that was made when ``reliquary_native`` had no
    ``__init__.py`` (setuptools then registers it as a namespace package without ``load_oqs``).
    """
    for path in (REPO / "layers" / "native", REPO / "layers" / "core", REPO):
        entry = str(path)
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
    stale = sys.modules.get("reliquary_native")
    if stale is not None and not hasattr(stale, "load_oqs"):
        del sys.modules["reliquary_native"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny budgets: proves the code paths run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure as JSON")
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only these sections (repeatable; default: all)",
    )
    return parser.parse_args(argv)


def audit_sections(
    quick: bool, budget: Budget, summary: dict[str, object], emit: Callable[[Table], None]
) -> dict[str, Callable[[], None]]:
    """The audit-log sections (tests/bench/audit_bench.py), by name, in the order they run."""
    from tests.bench import audit_bench

    scale = audit_bench.QUICK_SCALE if quick else audit_bench.FULL_SCALE

    def merkle_root() -> None:
        result = audit_bench.merkle_root_table(scale)
        summary["merkle_native_vs_floor"] = result.native_vs_floor
        summary["merkle_pure_vs_native"] = result.pure_vs_native
        summary["merkle_hashlib_vs_native"] = result.hashlib_vs_native
        summary["merkle_bundles_pure_vs_native"] = result.bundles_pure_vs_native
        emit(result.table)

    def proofs() -> None:
        result = audit_bench.proofs_table(budget, scale)
        summary["proof_inclusion_gen_us"] = result.inclusion_gen_us
        summary["proof_inclusion_verify_pure_vs_native"] = result.inclusion_verify_pure_vs_native
        emit(result.table)

    def appends() -> None:
        result = audit_bench.appends_table(budget, scale)
        summary.update(result.summary)
        emit(result.table)
        receipts = audit_bench.receipts_table(budget)
        summary.update(receipts.summary)
        emit(receipts.table)

    def reader() -> None:
        from tests.bench import audit_reader_bench

        result = audit_reader_bench.reader_table(quick, budget if quick else None)
        summary.update(result.summary)
        emit(result.table)

    def zk() -> None:
        from tests.bench import zk_bench

        verified, batch = zk_bench.verify_tables(budget, quick=quick)
        summary["zk_min_vs_snarkjs"] = verified.min_vs_snarkjs
        summary["zk_batch64_vs_single"] = verified.batch64_vs_single
        emit(verified.table)
        emit(batch)
        emit(zk_bench.prove_table(quick=quick))

    def trust() -> None:
        from tests.bench import trust_bench

        result = trust_bench.trust_table(budget)
        summary["trust_default_p50_us"] = result.default_p50_us
        emit(result.table)

    def agents() -> None:
        from tests.bench import agents_bench

        result = agents_bench.agents_table(budget)
        summary["agents_slowest_vote_us"] = result.slowest_vote_us
        emit(result.table)

    def chain() -> None:
        from tests.bench import chain_bench

        result = chain_bench.chain_table(budget)
        summary["chain_per_decision_vs_groth16"] = result.per_decision_vs_groth16
        emit(result.table)

    return {
        "merkle": merkle_root,
        "proofs": proofs,
        "appends": appends,
        "tlog": lambda: tlog_section(quick, budget, summary, emit),
        "reader": reader,
        "zk": zk,
        "trust": trust,
        "agents": agents,
        "chain": chain,
    }


def tlog_section(
    quick: bool, budget: Budget, summary: dict[str, object], emit: Callable[[Table], None]
) -> None:
    """Appenders in one process sharing commits and checkpoints on moto (tests/bench/audit_bench.py)."""
    from tests.bench import audit_bench

    result = audit_bench.concurrent_appends_table(budget, quick)
    summary.update(result.summary)
    emit(result.table)


def passkeys_section(budget: Budget, summary: dict[str, object], emit: Callable[[Table], None]) -> None:
    """A person's passkey answer (tests/bench/passkeys_bench.py)."""
    from tests.bench import passkeys_bench

    result = passkeys_bench.passkeys_table(budget)
    summary["passkey_assertion_vs_signature"] = result.worst_vs_signature
    emit(result.table)


def coldstart_section(quick: bool, summary: dict[str, object], emit: Callable[[Table], None]) -> None:
    """Every function's handler import under its Lambda environment (tests/bench/coldstart.py)."""
    from tests.bench import coldstart

    result = coldstart.coldstart_tables(1 if quick else FULL_COLDSTART_RUNS, quick=quick)
    for name, ms in result.handler_import_ms.items():
        summary[f"{name}_handler_import_ms"] = ms
    for name, ratio in result.without_bytecode_ratio.items():
        summary[f"{name}_handler_import_without_bytecode_ratio"] = ratio
    emit(result.table)
    if result.bytecode is not None:
        emit(result.bytecode)
    emit(result.imports)


def flow_section(quick: bool, summary: dict[str, object], emit: Callable[[Table], None]) -> None:
    """Access requests end to end on the local runtime (needs Node for the requester's proofs)."""
    from tests.bench import flow_bench

    result = flow_bench.flow_tables(quick=quick)
    summary.update(result.summary)
    emit(result.latency)
    emit(result.steps)
    emit(result.coldstart)


def api_section(quick: bool, summary: dict[str, object], emit: Callable[[Table], None]) -> None:
    """The REST API over the direct calls on the local runtime, and the API function's cold start."""
    from tests.bench import api_bench

    result = api_bench.api_tables(quick=quick, coldstart_runs=1 if quick else FULL_COLDSTART_RUNS)
    summary.update(result.summary)
    emit(result.latency)
    emit(result.coldstart)
    emit(result.imports)


def sdk_section(
    quick: bool, budget: Budget, summary: dict[str, object], emit: Callable[[Table], None]
) -> None:
    """The SDK over raw httpx (loopback to the local runtime, and a mock transport), and grant opening,
    receipts and chains on the client beside the core's."""
    # The SDK is its own package (pip install ./sdk); in the checkout it is imported from sdk/, as the
    # tests import it (pytest's pythonpath).
    sdk = str(REPO / "sdk")
    if sdk not in sys.path:
        sys.path.insert(0, sdk)
    from tests.bench import sdk_bench

    result = sdk_bench.sdk_tables(quick=quick, budget=budget)
    summary.update(result.summary)
    for table in result.tables:
        emit(table)


def sizes_section(quick: bool, summary: dict[str, object], emit: Callable[[Table], None]) -> None:
    """Each function's unzipped size (package + layers); ``--quick`` estimates it without building."""
    from tests.bench import sizes_bench

    result = sizes_bench.sizes_table(quick)
    summary.update(result.summary)
    emit(result.table)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_import_paths()
    from tests.bench import crypto_bench, report, timing

    budget = timing.QUICK if args.quick else timing.FULL
    sections = set(args.only or SECTIONS)
    sizes = crypto_bench.SIZES
    started = time.perf_counter()
    machine = report.machine()
    tables: list[Table] = []
    summary: dict[str, object] = {}

    def emit(table: Table) -> None:
        tables.append(table)
        print(table.render(), end="\n\n", flush=True)

    def section(name: str, run: Callable[[], None]) -> None:
        if name in sections:
            run()

    print(report.render_machine(machine), end="\n\n")
    mode = "quick (figures are meaningless)" if args.quick else "full"
    print(
        f"   mode: {mode}; each case timed ~{budget.seconds:g} s after {budget.warmup_seconds:g} s of"
        " warm-up, interleaved with its baselines; median and p99 per call (perf_counter_ns).",
        end="\n\n",
        flush=True,
    )
    fixture = crypto_bench.build_fixture(sizes)

    def envelope() -> None:
        result = crypto_bench.envelope_table(
            fixture,
            budget,
            key="envelope",
            title=f"Envelope seal/open, signer {crypto_bench.DEFAULT_SIGNER.value} (the configured default)",
            signers=(crypto_bench.DEFAULT_SIGNER,),
        )
        summary["envelope_max_overhead"] = result.max_overhead
        summary["open_1mib_vs_raw_aes"] = result.open_vs_aes
        emit(result.table)

    def signers() -> None:
        result = crypto_bench.envelope_table(
            fixture,
            budget,
            key="envelope_signers",
            title="Envelope seal/open with the other signers (the cost of the signature choice)",
            signers=crypto_bench.OTHER_SIGNERS,
        )
        summary["envelope_other_signers_max_overhead"] = result.max_overhead
        emit(result.table)

    def service() -> None:
        for table in crypto_bench.service_tables(budget, sizes):
            emit(table)

    section("envelope", envelope)
    section("parts", lambda: emit(crypto_bench.envelope_parts_table(fixture, budget)))
    section("signers", signers)
    section("signatures", lambda: emit(crypto_bench.signature_table(fixture, budget)))
    section("kem", lambda: emit(crypto_bench.kem_grant_table(fixture, budget)))
    section("service", service)
    for name, runner in audit_sections(args.quick, budget, summary, emit).items():
        section(name, runner)
    section("passkeys", lambda: passkeys_section(budget, summary, emit))
    section("coldstart", lambda: coldstart_section(args.quick, summary, emit))
    section("flow", lambda: flow_section(args.quick, summary, emit))
    for name, runner in {
        "api": lambda: api_section(args.quick, summary, emit),
        "sdk": lambda: sdk_section(args.quick, budget, summary, emit),
        "sizes": lambda: sizes_section(args.quick, summary, emit),
    }.items():
        section(name, runner)

    elapsed = time.perf_counter() - started
    print(f"== Done in {elapsed:.1f} s; load average now (1/5/15 min): {report.load_average()}")
    if args.json is not None:
        document = {
            "machine": machine,
            "mode": "quick" if args.quick else "full",
            "budget": {"seconds": budget.seconds, "warmup_seconds": budget.warmup_seconds},
            "elapsed_s": elapsed,
            "loadavg_at_end": report.load_average(),
            "summary": summary,
            "tables": {table.key: table.to_json() for table in tables},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2, allow_nan=True) + "\n", encoding="utf-8")
        print(f"   figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
