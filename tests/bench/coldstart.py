"""Cold start: every function's handler import in fresh interpreters, beside baselines from the same run.

Each function's handler module (``functions.<name>.app``) is imported with that function's environment as
deployed: its variables from template.yaml (intrinsics resolved to placeholders: nothing reads them at
import) and those the Lambda runtime sets, ``LAMBDA_TASK_ROOT`` included (powertools' Tracer traces, and
patches, only where that is set) and, with ``Tracing: Active``, the X-Ray daemon's address.

Every target runs in its own ``python -c`` child (round-robin across targets, one discarded warm-up round
that also leaves the bytecode caches written). The child times its own import with ``perf_counter_ns``;
the parent also times the whole process (interpreter start-up included). ``-X importtime`` of one extra
child per function gives the modules that cost it the most. ``--quick`` runs each child once, with no
warm-up round, and reads the handlers' figures from their ``-X importtime`` children: the code paths only.

Bytecode: the bench's caches are warm, as a package built by layers/wheels.mk's ``compile_bytecode`` is. The
packages were deployed without bytecode before, and Lambda's /opt and /var/task are read-only, so each cold
start compiled every module it imported from source. The full run also times each handler that way, in the
same rounds: ``PYTHONPYCACHEPREFIX`` points at a folder holding only the standard library's bytecode (the
runtime ships it), and ``PYTHONDONTWRITEBYTECODE`` keeps it so, so everything else is compiled each time.

Not measured: the first invocation's runtime build (``runtime()``: boto3 clients, DynamoDB reads of the
signing keys, a KMS decrypt). It needs AWS or moto, and moto's in-process fakes would not time the real
calls. Its import share is: the ``first request imports`` targets import what the first request of a
function loads after the handler (the adapters, boto3 or LangGraph), without calling AWS; and the crypto
of the encrypt function's first use and the verifier's first verification are timed without AWS.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.bench.report import Column, Table
from tests.support.lambda_env import lambda_env as function_lambda_env

REPO = Path(__file__).resolve().parents[2]
PYTHONPATH = os.pathsep.join(str(REPO / p) for p in (".", "layers/core", "layers/native"))
CHILD_TIMEOUT_S = 120
TOP_MODULES = 8
# Variables of this process that would change what a child imports or how.
_SCRUBBED = (
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONDONTWRITEBYTECODE",
    "AWS_LAMBDA_FUNCTION_NAME",
    "LAMBDA_TASK_ROOT",
    "POWERTOOLS_TRACE_DISABLED",
)


@dataclass(frozen=True, slots=True)
class Function:
    name: str  # functions/<name>
    logical_id: str  # in template.yaml
    goal_ms: float | None  # handler import under Lambda's environment; None: reported only

    @property
    def module(self) -> str:
        return f"functions.{self.name}.app"

    @property
    def label(self) -> str:
        return self.name.replace("_", "-")


FUNCTIONS = (
    Function("encrypt", "EncryptFunction", 400.0),
    Function("audit_append", "AuditAppendFunction", 400.0),
    Function("verify_proof", "VerifyProofFunction", 400.0),
    Function("score_trust", "ScoreTrustFunction", 400.0),
    Function("agent_vote", "AgentVoteFunction", 800.0),
    Function("api", "ApiFunction", None),
)
FUNCTION_BY_NAME = {f.name: f for f in FUNCTIONS}
FUNCTION_BY_NAME_OF_ID = {f.logical_id: f for f in FUNCTIONS}


def lambda_env(logical_id: str) -> Mapping[str, str]:
    """What a deployed function's process sees at import (tests/support/lambda_env.py)."""
    return function_lambda_env(FUNCTION_BY_NAME_OF_ID[logical_id].name)


@dataclass(frozen=True, slots=True)
class Target:
    key: str
    label: str
    timed: str
    prelude: str = ""
    env: Mapping[str, str] = field(default_factory=dict)


def handler_target(function: Function) -> Target:
    return Target(
        f"handler_{function.name}",
        f"import {function.module} (Lambda env)",
        f"import {function.module}",
        env=lambda_env(function.logical_id),
    )


_ENCRYPT_FIRST_USE_PRELUDE = """
import functions.encrypt.app
from reliquary.crypto.root import LocalRootOfTrust
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.vaults.memory import InMemorySigningKeyStore
from reliquary.vaults.service_keys import ServiceKeys
"""
_ENCRYPT_FIRST_USE = (
    "ServiceKeys.load_or_create(InMemorySigningKeyStore(), LocalRootOfTrust.generate(),"
    " SignatureAlgorithm.ML_DSA_65, clock=lambda: 0)"
)
# The verifier's first use in a fresh process: mclbn256 loaded, the five keys parsed, checked and prepared,
# the example context proof verified (what the first invocation pays on top of the import).
_FIRST_VERIFY = """
import json
from pathlib import Path
from reliquary.zk import groth16
from reliquary.zk.service import load_circuit_keys
keys = load_circuit_keys()
proofs = Path("zk/examples/proofs")
proof = groth16.Proof.from_snarkjs(json.loads((proofs / "context_proof.proof.json").read_text()))
key = keys["context_proof"].key
signals = groth16.parse_public_signals(json.loads((proofs / "context_proof.public.json").read_text()), key)
assert groth16.verify(key, proof, signals)
"""
# What a function's first request imports after the handler (its factory: adapters, botocore, pynamodb;
# for agent-vote's first vote, LangGraph and the voting agent's compiled graph), timed after the handler's
# own import: (key, function, what, statement).
FIRST_REQUEST_IMPORTS = (
    (
        "encrypt",
        "encrypt",
        "first request",
        "import reliquary.adapters.factory, reliquary.adapters.idempotency",
    ),
    ("audit_append", "audit_append", "first request", "import reliquary.adapters.audit_factory"),
    ("verify_proof", "verify_proof", "first request", "import reliquary.adapters.zk_factory"),
    ("score_trust", "score_trust", "first request", "import reliquary.adapters.trust_factory"),
    ("agent_vote", "agent_vote", "first request", "import reliquary.adapters.agents_factory"),
    (
        "agent_vote_vote",
        "agent_vote",
        "first vote (LangGraph, one agent's graph compiled)",
        (
            "import reliquary.adapters.agents_factory\nfrom reliquary.agents.registry import compiled\n"
            "compiled('neutral')"
        ),
    ),
    ("api", "api", "first request", "import reliquary.adapters.api_factory"),
)


def first_request_target(key: str, name: str, what: str, statement: str) -> Target:
    function = FUNCTION_BY_NAME[name]
    return Target(
        f"first_{key}",
        f"{function.label}: {what} imports (after the handler)",
        statement,
        prelude=f"import {function.module}",
        env=lambda_env(function.logical_id),
    )


BASELINES = (
    Target("startup", "python -c pass (interpreter start-up only)", "pass"),
    Target("boto3", "import boto3", "import boto3"),
)
EXTRAS = (
    Target("botocore", "import botocore.session (boto3 without s3transfer)", "import botocore.session"),
    Target("langgraph", "import langgraph.graph", "import langgraph.graph"),
    Target(
        "load_oqs",
        "reliquary_native.load_oqs() (import included)",
        "import reliquary_native\nreliquary_native.load_oqs()",
    ),
    Target(
        "encrypt_first_use_crypto",
        "encrypt: first-use crypto, no AWS (after the handler)",
        _ENCRYPT_FIRST_USE,
        prelude=_ENCRYPT_FIRST_USE_PRELUDE,
    ),
    Target(
        "verify_first_use",
        "verify-proof: first verification, 5 keys prepared, 1 proof (after the handler)",
        _FIRST_VERIFY,
        prelude="import functions.verify_proof.app",
    ),
)


def without_bytecode_target(function: Function, prefix: Path) -> Target:
    """The handler's import compiling every module but the standard library's from source (``prefix``:
    ``bytecode_prefix``), as a package without bytecode is loaded on Lambda."""
    return replace(
        handler_target(function),
        key=f"nobytecode_{function.name}",
        label=f"import {function.module} (Lambda env, without bytecode)",
        env={
            **lambda_env(function.logical_id),
            "PYTHONPYCACHEPREFIX": str(prefix),
            "PYTHONDONTWRITEBYTECODE": "1",
        },
    )


def keep_standard_library(prefix: Path, stdlib: Path) -> None:
    """Leaves in the pycache prefix ``prefix`` the standard library's bytecode only (``stdlib``'s, not its
    site-packages'): what the Lambda runtime ships compiled."""
    kept = prefix / stdlib.relative_to(stdlib.anchor)
    for path in list(prefix.rglob("*.pyc")):
        if kept not in path.parents or kept / "site-packages" in path.parents:
            path.unlink()


def bytecode_prefix() -> Path:
    """A ``PYTHONPYCACHEPREFIX`` folder with the bytecode of the standard modules the handlers import, and
    nothing else: each handler is imported once writing there, then the rest is removed."""
    prefix = Path(tempfile.mkdtemp(prefix="reliquary-coldstart-pycache-"))
    for function in FUNCTIONS:
        target = handler_target(function)
        run_child(replace(target, env={**target.env, "PYTHONPYCACHEPREFIX": str(prefix)}))
    keep_standard_library(prefix, Path(sysconfig.get_paths()["stdlib"]).resolve())
    return prefix


def targets(*, quick: bool, bytecode: Path | None = None) -> tuple[Target, ...]:
    """Quick: the handlers and the baselines; full: also the first requests' imports and the extras, and
    with a ``bytecode`` prefix each handler without bytecode."""
    handlers = tuple(handler_target(f) for f in FUNCTIONS)
    if quick:
        return (*handlers, *BASELINES)
    firsts = tuple(first_request_target(*entry) for entry in FIRST_REQUEST_IMPORTS)
    without = () if bytecode is None else tuple(without_bytecode_target(f, bytecode) for f in FUNCTIONS)
    return (*handlers, *without, *firsts, *BASELINES, *EXTRAS)


# The encrypt function's environment (other benches time their own imports under it).
LAMBDA_ENV = lambda_env("EncryptFunction")

_CHILD = """\
import time as _bench_time
{prelude}
_bench_start = _bench_time.perf_counter_ns()
_bench_cpu = _bench_time.process_time_ns()
{timed}
_bench_cpu = _bench_time.process_time_ns() - _bench_cpu
_bench_elapsed = _bench_time.perf_counter_ns() - _bench_start
print("BENCH-NS", _bench_elapsed, _bench_cpu)
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
    cpu_ns: int = 0  # CPU time of the statement in the child: what load from other processes changes least


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
    _, elapsed, cpu = marker[-1].split()
    return ChildTiming(int(elapsed), wall, int(cpu)), done.stderr


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
    handler_import_ms: dict[str, float]  # function name -> median import (Lambda env)
    bytecode: Table | None = None  # full runs: each handler with and without bytecode
    # function name -> CPU without bytecode / CPU with it (full runs)
    without_bytecode_ratio: dict[str, float] = field(default_factory=dict)


def _ms(values: Sequence[int]) -> float:
    return statistics.median(values) / 1e6


def _verdict(ms: float, goal: float | None) -> str:
    if goal is None:
        return "reported"
    return "within" if ms < goal else "over"


def coldstart_tables(runs: int, *, quick: bool = False) -> ColdStartResult:
    prefix = None if quick else bytecode_prefix()
    try:
        chosen = targets(quick=quick, bytecode=prefix)
        timings = _timings(chosen, runs, quick=quick)
    finally:
        if prefix is not None:
            shutil.rmtree(prefix, ignore_errors=True)
    result = _tables(chosen, timings, runs, quick=quick)
    if quick:
        return result
    table, ratios = bytecode_table(timings, runs)
    return replace(result, bytecode=table, without_bytecode_ratio=ratios)


def _timings(chosen: Sequence[Target], runs: int, *, quick: bool) -> dict[str, list[ChildTiming]]:
    timings: dict[str, list[ChildTiming]] = {t.key: [] for t in chosen}
    # Full: round 0 warms the caches and is discarded. Quick: no warm-up, figures meaningless.
    for round_index in range(runs if quick else runs + 1):
        for target in chosen:
            if quick and target.key.startswith("handler_"):
                continue  # timed by its -X importtime child below
            timing, _ = run_child(target)
            if quick or round_index > 0:
                timings[target.key].append(timing)
    return timings


def bytecode_table(timings: Mapping[str, Sequence[ChildTiming]], runs: int) -> tuple[Table, dict[str, float]]:
    """Each handler's import with bytecode (as built now) and without (as deployed before), same rounds."""
    table = Table(
        "coldstart_bytecode",
        f"Cold start with and without bytecode: each handler's import (Lambda env), median of {runs} run(s),"
        " interleaved",
        [
            Column("function", "function"),
            Column("with_ms", "with bytecode ms", ",.1f"),
            Column("without_ms", "without ms", ",.1f"),
            Column("with_cpu_ms", "with CPU ms", ",.1f"),
            Column("without_cpu_ms", "without CPU ms", ",.1f"),
            Column("ratio_cpu", "without/with CPU", ".2f"),
            Column("ratio", "without/with", ".2f"),
        ],
        notes=[
            (
                "with bytecode = the packages as layers/wheels.mk builds them now (compileall,"
                " unchecked-hash); without = as deployed before (pip --no-compile, __pycache__ removed):"
                " Lambda's /opt and /var/task are read-only, so every cold start compiled each module it"
                " imports from source. Timed with a pycache prefix holding the standard library's bytecode"
                " only (the runtime ships it) and PYTHONDONTWRITEBYTECODE."
            ),
        ],
    )
    ratios = {}
    for function in FUNCTIONS:
        with_ = timings[f"handler_{function.name}"]
        without = timings[f"nobytecode_{function.name}"]
        with_cpu, without_cpu = _ms([t.cpu_ns for t in with_]), _ms([t.cpu_ns for t in without])
        with_ms, without_ms = _ms([t.in_process_ns for t in with_]), _ms([t.in_process_ns for t in without])
        ratios[function.name] = without_cpu / with_cpu if with_cpu > 0 else float("nan")
        table.add(
            function=function.label,
            with_ms=with_ms,
            without_ms=without_ms,
            with_cpu_ms=with_cpu,
            without_cpu_ms=without_cpu,
            ratio_cpu=ratios[function.name],
            ratio=without_ms / with_ms if with_ms > 0 else float("nan"),
        )
    return table, ratios


def _tables(
    chosen: Sequence[Target], timings: Mapping[str, list[ChildTiming]], runs: int, *, quick: bool
) -> ColdStartResult:
    chosen = [t for t in chosen if not t.key.startswith("nobytecode_")]  # their own table
    reports: dict[str, list[ImportEntry]] = {}
    for function in FUNCTIONS:
        target = handler_target(function)
        timing, report = run_child(target, flags=("-X", "importtime"))
        reports[function.name] = parse_importtime(report)
        if quick:
            timings[target.key].append(timing)

    table = Table(
        "coldstart",
        f"Cold start: each function's handler import in fresh interpreters with its Lambda environment,"
        f" median of {runs} run(s), interleaved",
        [
            Column("target", "target"),
            Column("goal_ms", "goal ms", ",.0f"),
            Column("in_process_ms", "in-process ms", ",.1f"),
            Column("min_ms", "min ms", ",.1f"),
            Column("max_ms", "max ms", ",.1f"),
            Column("cpu_ms", "CPU ms", ",.1f"),
            Column("wall_ms", "process wall ms", ",.1f"),
            Column("vs_boto3", "x import boto3", ".2f"),
            Column("verdict", "goal"),
        ],
        notes=[
            (
                "in-process = perf_counter_ns around the statement inside the child; process wall = the whole"
                " child, interpreter start-up and exit included. Bytecode caches are warm (a discarded first"
                " round writes them). CPU = the child's CPU time over the statement (process_time), which"
                " other processes' load changes far less than elapsed time. x import boto3 = in-process"
                " median / that of `import boto3` in the same rounds."
            ),
            (
                "Lambda env = template.yaml's variables of the function and the runtime's (LAMBDA_TASK_ROOT,"
                " the X-Ray daemon with Tracing: Active): powertools' Tracer is on and patches what the"
                " function traces, as deployed."
            ),
            (
                "first request imports = what the function's first request loads after the handler (its"
                " adapters and their SDKs; agent-vote's first vote also the agents' LangGraph graphs),"
                " without calling AWS. The real first invocation also builds clients, reads DynamoDB and"
                " calls KMS: not measured (moto would not time it truthfully)."
            ),
        ],
    )
    boto3_ms = _ms([t.in_process_ns for t in timings["boto3"]])
    medians: dict[str, float] = {}
    goals = {handler_target(f).key: f.goal_ms for f in FUNCTIONS}
    for target in chosen:
        in_process = [t.in_process_ns for t in timings[target.key]]
        median = _ms(in_process)
        medians[target.key] = median
        goal = goals.get(target.key)
        table.add(
            target=target.label,
            goal_ms=goal,
            in_process_ms=median,
            min_ms=min(in_process) / 1e6,
            max_ms=max(in_process) / 1e6,
            cpu_ms=_ms([t.cpu_ns for t in timings[target.key]]),
            wall_ms=_ms([t.wall_ns for t in timings[target.key]]),
            vs_boto3=median / boto3_ms if boto3_ms > 0 else float("nan"),
            verdict=_verdict(median, goal) if target.key in goals else None,
        )
    figures = {f.name: medians[handler_target(f).key] for f in FUNCTIONS}
    for function in FUNCTIONS:
        ms, goal = figures[function.name], function.goal_ms
        cpu = _ms([t.cpu_ns for t in timings[handler_target(function).key]])
        wanted = "no goal" if goal is None else f"goal < {goal:.0f} ms"
        table.footer.append(
            f"   {function.label} handler import (Lambda env) median: {ms:.0f} ms, CPU {cpu:.0f} ms"
            f" ({wanted}: {_verdict(ms, goal)})"
        )
    imports = functions_imports_table(reports)
    return ColdStartResult(table, imports, figures)


def functions_imports_table(reports: Mapping[str, list[ImportEntry]]) -> Table:
    """Each function's costliest imports under its handler (python -X importtime), indented by depth."""
    table = Table(
        "coldstart_imports",
        f"Top {TOP_MODULES} imports of each handler by cumulative time: python -X importtime, one run each"
        " (Lambda env)",
        [
            Column("function", "function"),
            Column("module", "module"),
            Column("cumulative_ms", "cumulative ms", ",.1f"),
            Column("self_ms", "self ms", ",.1f"),
            Column("share", "of the handler", ".0%"),
        ],
        notes=["Indented = imported inside the entry above it; the handler's own line gives its total."],
    )
    for function in FUNCTIONS:
        entries = reports[function.name]
        total_us = next((e.cumulative_us for e in entries if e.module == function.module), 0)
        table.add(
            function=function.label,
            module=function.module,
            cumulative_ms=total_us / 1e3,
            self_ms=None,
            share=1.0 if total_us else float("nan"),
        )
        for entry in top_imports(entries, function.module):
            table.add(
                function=function.label,
                module="  " * max(entry.depth, 1) + entry.module,
                cumulative_ms=entry.cumulative_us / 1e3,
                self_ms=entry.self_us / 1e3,
                share=entry.cumulative_us / total_us if total_us else float("nan"),
            )
    return table


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
