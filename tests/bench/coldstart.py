"""Cold start: import time of the encrypt handler in fresh interpreters, beside baselines from the same run.

Every target runs in its own ``python -c`` child (round-robin across targets, one discarded warm-up round
that also leaves the bytecode caches written). The child times its own import with ``perf_counter_ns``;
the parent also times the whole process (interpreter start-up included). ``-X importtime`` of one extra
child gives the modules that cost the most.

Not measured: the first invocation's runtime build (``functions.encrypt.app.runtime()``: boto3 clients,
DynamoDB reads of the signing keys, a KMS decrypt). It needs AWS or moto, and moto's in-process fakes
would not time the real calls. The crypto part of it is shown instead, without AWS.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.report import Column, Table

REPO = Path(__file__).resolve().parents[2]
PYTHONPATH = os.pathsep.join(str(REPO / p) for p in (".", "layers/core", "layers/native"))
HANDLER_MODULE = "functions.encrypt.app"
GOAL_HANDLER_IMPORT_MS = 500.0
CHILD_TIMEOUT_S = 120
TOP_MODULES = 8
# Variables of this process that would change what a child imports or how.
_SCRUBBED = (
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONDONTWRITEBYTECODE",
    "AWS_LAMBDA_FUNCTION_NAME",
    "POWERTOOLS_TRACE_DISABLED",
)
# What Lambda and template.yaml set for the encrypt function (tracing is on there: Tracing: Active).
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "reliquary-encrypt",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "RELIQUARY_STAGE": "dev",
    "RELIQUARY_ROOT_OF_TRUST": "kms",
    "POWERTOOLS_SERVICE_NAME": "reliquary-encrypt",
    "POWERTOOLS_METRICS_NAMESPACE": "Reliquary",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}
_FIRST_USE_PRELUDE = f"""
import {HANDLER_MODULE}
from reliquary.crypto.root import LocalRootOfTrust
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.vaults.memory import InMemorySigningKeyStore
from reliquary.vaults.service_keys import ServiceKeys
"""
_FIRST_USE = (
    "ServiceKeys.load_or_create(InMemorySigningKeyStore(), LocalRootOfTrust.generate(),"
    " SignatureAlgorithm.ML_DSA_65, clock=lambda: 0)"
)


@dataclass(frozen=True, slots=True)
class Target:
    key: str
    label: str
    timed: str
    prelude: str = ""
    env: Mapping[str, str] = field(default_factory=dict)


TARGETS = (
    Target(
        "handler_lambda",
        f"import {HANDLER_MODULE} (Lambda env, tracing on)",
        f"import {HANDLER_MODULE}",
        env=LAMBDA_ENV,
    ),
    Target("handler_local", f"import {HANDLER_MODULE} (local env, tracing off)", f"import {HANDLER_MODULE}"),
    Target("boto3", "import boto3", "import boto3"),
    Target("pydantic", "import pydantic", "import pydantic"),
    Target(
        "hpke", "import cryptography.hazmat.primitives.hpke", "import cryptography.hazmat.primitives.hpke"
    ),
    Target(
        "load_oqs",
        "reliquary_native.load_oqs() (import included)",
        "import reliquary_native\nreliquary_native.load_oqs()",
    ),
    Target(
        "first_use_crypto",
        "first-use crypto, no AWS (after the handler import)",
        _FIRST_USE,
        prelude=_FIRST_USE_PRELUDE,
    ),
    Target("startup", "python -c pass (interpreter start-up only)", "pass"),
)

_CHILD = """\
import time as _bench_time
{prelude}
_bench_start = _bench_time.perf_counter_ns()
{timed}
_bench_elapsed = _bench_time.perf_counter_ns() - _bench_start
print("BENCH-NS", _bench_elapsed)
"""
_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s+)(\S+)\s*$")


def child_env(extra: Mapping[str, str] = {}) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env["PYTHONPATH"] = PYTHONPATH
    env.update(extra)
    return env


@dataclass(frozen=True, slots=True)
class ChildTiming:
    in_process_ns: int
    wall_ns: int


def run_child(target: Target, *, flags: Sequence[str] = ()) -> tuple[ChildTiming, str]:
    """Run one fresh interpreter; returns its timings and its stderr (the -X importtime report)."""
    code = _CHILD.format(prelude=target.prelude, timed=target.timed)
    start = time.perf_counter_ns()
    done = subprocess.run(  # noqa: S603 (this interpreter, our own code)
        [sys.executable, *flags, "-c", code],
        cwd=REPO,
        env=child_env(target.env),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    wall = time.perf_counter_ns() - start
    marker = [line for line in done.stdout.splitlines() if line.startswith("BENCH-NS ")]
    if done.returncode != 0 or not marker:
        raise RuntimeError(f"{target.label}: the child failed ({done.returncode}): {done.stderr[-2000:]}")
    return ChildTiming(int(marker[-1].split()[1]), wall), done.stderr


@dataclass(frozen=True, slots=True)
class ImportEntry:
    module: str
    self_us: int
    cumulative_us: int
    depth: int


def parse_importtime(stderr: str) -> list[ImportEntry]:
    entries = []
    for line in stderr.splitlines():
        found = _IMPORTTIME.match(line)
        if found:
            self_us, cumulative_us, indent, module = found.groups()
            entries.append(ImportEntry(module, int(self_us), int(cumulative_us), (len(indent) - 1) // 2))
    return entries


def top_imports(entries: Sequence[ImportEntry], module: str, count: int = TOP_MODULES) -> list[ImportEntry]:
    """The costliest imports by cumulative time, leaving out ``module`` itself and its parent packages."""
    parts = module.split(".")
    chain = {".".join(parts[: i + 1]) for i in range(len(parts))}
    return sorted((e for e in entries if e.module not in chain), key=lambda e: -e.cumulative_us)[:count]


@dataclass(frozen=True, slots=True)
class ColdStartResult:
    table: Table
    imports: Table
    handler_import_ms: float


def _ms(values: Sequence[int]) -> float:
    return statistics.median(values) / 1e6


def coldstart_tables(runs: int) -> ColdStartResult:
    timings: dict[str, list[ChildTiming]] = {t.key: [] for t in TARGETS}
    for round_index in range(runs + 1):  # round 0 warms the caches and is discarded
        for target in TARGETS:
            timing, _ = run_child(target)
            if round_index:
                timings[target.key].append(timing)

    handler = TARGETS[0]
    _, report = run_child(handler, flags=("-X", "importtime"))
    entries = parse_importtime(report)

    table = Table(
        "coldstart",
        f"Cold start: fresh interpreters, median of {runs} run(s) each, interleaved"
        f" (goal: handler import < {GOAL_HANDLER_IMPORT_MS:.0f} ms)",
        [
            Column("target", "target"),
            Column("in_process_ms", "in-process ms", ",.1f"),
            Column("min_ms", "min ms", ",.1f"),
            Column("max_ms", "max ms", ",.1f"),
            Column("wall_ms", "process wall ms", ",.1f"),
            Column("vs_boto3", "x import boto3", ".2f"),
        ],
        notes=[
            (
                "in-process = perf_counter_ns around the statement inside the child; process wall = the whole"
                " child, interpreter start-up and exit included. Bytecode caches are warm (a discarded first"
                " round writes them). x import boto3 = in-process median / that of `import boto3` in the same"
                " rounds: steadier than milliseconds on a loaded host."
            ),
            (
                "Lambda env = AWS_LAMBDA_FUNCTION_NAME and the template's variables set: powertools' Tracer"
                " (aws_xray_sdk) is imported, as it is on Lambda with Tracing: Active."
            ),
            (
                "first-use crypto = ServiceKeys.load_or_create(ML-DSA-65) on an in-memory store with a"
                " LocalRootOfTrust: liboqs load, keygen, wrap/unwrap. The real first invocation also builds"
                " boto3 clients, reads DynamoDB and calls KMS: not measured (it needs AWS; moto would not"
                " time it truthfully)."
            ),
        ],
    )
    boto3_ms = _ms([t.in_process_ns for t in timings["boto3"]])
    for target in TARGETS:
        samples = timings[target.key]
        in_process = [t.in_process_ns for t in samples]
        table.add(
            target=target.label,
            in_process_ms=_ms(in_process),
            min_ms=min(in_process) / 1e6,
            max_ms=max(in_process) / 1e6,
            wall_ms=_ms([t.wall_ns for t in samples]),
            vs_boto3=_ms(in_process) / boto3_ms if boto3_ms > 0 else float("nan"),
        )
    handler_ms = _ms([t.in_process_ns for t in timings[handler.key]])
    table.footer.append(
        f"   handler import (Lambda env) median: {handler_ms:.0f} ms (goal < {GOAL_HANDLER_IMPORT_MS:.0f} ms:"
        f" {'within' if handler_ms < GOAL_HANDLER_IMPORT_MS else 'over'})"
    )

    imports = imports_table(
        "coldstart_imports", f"{handler.label}, one run", entries, HANDLER_MODULE, root="the handler"
    )
    return ColdStartResult(table, imports, handler_ms)


def imports_table(name: str, run: str, entries: list[ImportEntry], module: str, *, root: str) -> Table:
    """The costliest imports under ``module`` (python -X importtime ``entries``), indented by depth."""
    total_us = next((e.cumulative_us for e in entries if e.module == module), 0)
    imports = Table(
        name,
        f"Top {TOP_MODULES} imports by cumulative time: python -X importtime, {run}"
        f" ({root} itself: {total_us / 1e3:,.1f} ms under -X importtime)",
        [
            Column("module", "module"),
            Column("depth", "depth", "d"),
            Column("cumulative_ms", "cumulative ms", ",.1f"),
            Column("self_ms", "self ms", ",.1f"),
            Column("share", f"of {root}", ".0%"),
        ],
        notes=[f"Indented = imported inside the entry above it (depth 1 = imported by {module})."],
    )
    for entry in top_imports(entries, module):
        imports.add(
            module="  " * max(entry.depth - 1, 0) + entry.module,
            depth=entry.depth,
            cumulative_ms=entry.cumulative_us / 1e3,
            self_ms=entry.self_us / 1e3,
            share=entry.cumulative_us / total_us if total_us else float("nan"),
        )
    return imports
