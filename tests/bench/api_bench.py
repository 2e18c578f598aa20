"""What the REST API costs on the local runtime, beside the direct calls it wraps (measured in the same
run, interleaved request by request): a seal through ``POST /v1/vaults/{v}/memories`` over HTTP against
the encrypt function invoked through the Lambda API on the same moto; an access request through ``POST
/v1/access-requests`` and polling its Location against ``StartExecution`` and polling
``DescribeExecution``. And the API function's cold start: the import of ``functions/api/app.py`` in fresh
interpreters, with the imports that cost the most.

Both paths of a pair run the same code below the API (the same functions, the same state machine); the
difference is HTTP on loopback, the token's verification, FastAPI's validation and the API's own call
into Lambda or Step Functions. Both poll every ``POLL_SECONDS``. The requester's proving happens before a
request is timed (it happens on the device). Everything runs in one process on a shared host: the figures
are ratios first.
"""

from __future__ import annotations

import base64
import functools
import json
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.bench import coldstart
from tests.bench.report import Column, Table
from tests.bench.timing import percentile

FULL_SEALS = 100
QUICK_SEALS = 3
FULL_REQUESTS = 30
QUICK_REQUESTS = 2
WARMUP = 2  # pairs run first and discarded (the first HTTP connection, the first token verification)
REQUESTS_PER_PRINCIPAL = 2  # per path: 4 requests per principal, below the watchdog's burst (5 in 60 s)
POLL_SECONDS = 0.02
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
DECISION_SECONDS = 120.0
MEMORY_TEXT = "Customer 42 prefers email and works in the Lisbon office; renewal quote due on Tuesday." * 2

API_MODULE = "functions.api.app"
GOAL_API_IMPORT_MS = 800.0
# What Lambda and template.yaml set for the API function (Tracing: Active, as for every function).
API_LAMBDA_ENV = {
    **coldstart.LAMBDA_ENV,
    "AWS_LAMBDA_FUNCTION_NAME": "reliquary-api",
    "POWERTOOLS_SERVICE_NAME": "reliquary-api",
}
COLDSTART_TARGETS = (
    coldstart.Target(
        "api_lambda", f"import {API_MODULE} (Lambda env)", f"import {API_MODULE}", env=API_LAMBDA_ENV
    ),
    coldstart.Target("api_local", f"import {API_MODULE} (local env)", f"import {API_MODULE}"),
    coldstart.Target("fastapi", "import fastapi", "import fastapi"),
    coldstart.Target("boto3", "import boto3", "import boto3"),
    coldstart.Target("startup", "python -c pass (interpreter start-up only)", "pass"),
)


@dataclass(frozen=True)
class ApiBenchResult:
    latency: Table
    coldstart: Table
    imports: Table
    summary: dict[str, object]


def _ms(seconds: float) -> float:
    return seconds * 1000


def _ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline > 0 else float("nan")


def _timed(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


@dataclass
class _Pairs:
    """Seconds of each path of one kind of call, pair by pair."""

    api: list[float]
    direct: list[float]

    def add(self, index: int, api: Callable[[], object], direct: Callable[[], object]) -> None:
        # The order alternates so that neither path always runs right after the other's work.
        first, second = (api, direct) if index % 2 == 0 else (direct, api)
        spent = (_timed(first), _timed(second))
        api_s, direct_s = spent if index % 2 == 0 else spent[::-1]
        if index >= WARMUP:
            self.api.append(api_s)
            self.direct.append(direct_s)


def _seal_event(tenant_id: str, vault_id: str, item_id: str) -> dict[str, Any]:
    """The event the API sends the encrypt function for the memory it seals (routes/memories.py)."""
    return {
        "action": "seal",
        "request_id": f"bench-{uuid.uuid4().hex}",
        "tenant_id": tenant_id,
        "vault_id": vault_id,
        "item_id": item_id,
        "plaintext": base64.b64encode(MEMORY_TEXT.encode()).decode(),
        "content_type": "text/plain; charset=utf-8",
        "memory_scope": {"kind": "user", "ref": "customer-42"},
        "tags": {},
        "sensitivity": "restricted",
    }


def latency_table(*, quick: bool) -> tuple[Table, dict[str, object]]:  # noqa: PLR0915  (one run, one table)
    import httpx

    from infra.local.access import LocalAccess
    from infra.local.api import access_request_body, serve_api
    from infra.local.requester import Prover
    from infra.local.runtime import free_port, local_stack
    from infra.local.seed import SUPPORT_VAULT, TENANT, seed
    from reliquary.contracts.access import AccessRequest
    from reliquary.flow.executions import execution_name
    from reliquary.identity.scopes import Role, RoleBinding

    seals = (QUICK_SEALS if quick else FULL_SEALS) + WARMUP
    requests = (QUICK_REQUESTS if quick else FULL_REQUESTS) + WARMUP
    quiet = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
    with (
        local_stack(free_port(), stack_name=f"bench-api-{uuid.uuid4().hex[:6]}", environment=quiet) as stack,
        Prover() as prover,
        serve_api(stack, free_port()) as api,
        httpx.Client(base_url=api.url, timeout=60) as http,
    ):
        access = LocalAccess(stack, prover)
        people = max(1, -(-requests // REQUESTS_PER_PRINCIPAL))
        demo = seed(access, requesters=people)
        identity = api.runtime.identity
        identity.create_tenant(TENANT, "Acme")

        def bearer(*bindings: RoleBinding) -> dict[str, str]:
            client, secret = identity.create_client(TENANT, f"bench {uuid.uuid4().hex[:6]}", bindings)
            token = http.post(
                "/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, secret)
            )
            token.raise_for_status()
            return {"Authorization": f"Bearer {token.json()['access_token']}"}

        writer = bearer(RoleBinding(Role.WRITER, SUPPORT_VAULT))
        # One API client per principal of the direct path: each principal's history is as long on both.
        requesters = [bearer(RoleBinding(Role.REQUESTER, SUPPORT_VAULT)) for _ in range(people)]

        seal_times = _Pairs([], [])
        for index in range(seals):

            def through_api() -> None:
                answer = http.post(
                    f"/v1/vaults/{SUPPORT_VAULT}/memories",
                    json={
                        "memory_id": f"api-{uuid.uuid4().hex}",
                        "text": MEMORY_TEXT,
                        "user_id": "customer-42",
                    },
                    headers=writer,
                )
                if answer.status_code != 201:
                    raise RuntimeError(f"POST memories answered {answer.status_code}: {answer.text}")

            seal_times.add(
                index,
                through_api,
                lambda: access.invoke(
                    "encrypt", _seal_event(TENANT, SUPPORT_VAULT, f"direct-{uuid.uuid4().hex}")
                ),
            )

        sfn = stack.client("stepfunctions")
        outcomes: dict[str, Counter[str]] = {"api": Counter(), "direct": Counter()}

        unexpected: list[str] = []  # why a request was not approved, for the notes
        posts: list[float] = []  # POST /v1/access-requests until its 202, warm-ups included

        def decide_through_api(proved: AccessRequest, headers: dict[str, str]) -> None:
            began = time.perf_counter()
            started = http.post(
                "/v1/access-requests",
                json=access_request_body(proved),
                headers={**headers, "Idempotency-Key": proved.request_id},
            )
            posts.append(time.perf_counter() - began)
            if started.status_code != 202:
                raise RuntimeError(f"POST /v1/access-requests answered {started.status_code}: {started.text}")
            deadline = time.monotonic() + DECISION_SECONDS
            while (view := http.get(started.headers["location"], headers=headers).json())[
                "status"
            ] == "pending":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{proved.request_id} still pending after {DECISION_SECONDS:.0f} s")
                time.sleep(POLL_SECONDS)
            outcomes["api"][str(view["status"])] += 1
            if view["status"] != "approved":
                unexpected.append(f"API {proved.request_id}: {view['status']} {view.get('reasons')}")

        def decide_directly(proved: AccessRequest) -> None:
            arn = sfn.start_execution(
                stateMachineArn=stack.access_state_machine_arn,
                name=execution_name(proved.tenant_id, proved.request_id),
                input=proved.execution_input(),
            )["executionArn"]
            deadline = time.monotonic() + DECISION_SECONDS
            while (described := sfn.describe_execution(executionArn=arn))["status"] not in TERMINAL:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{arn} still running after {DECISION_SECONDS:.0f} s")
                time.sleep(POLL_SECONDS)
            decision = json.loads(described.get("output") or "{}").get("decision", "none")
            outcomes["direct"][f"{described['status']}/{decision}"] += 1
            if decision != "approve":
                reasons = json.loads(described.get("output") or "{}").get("reasons")
                unexpected.append(f"direct {proved.request_id}: {described['status']}/{decision} {reasons}")

        access_times = _Pairs([], [])
        for index in range(requests):
            person = index // REQUESTS_PER_PRINCIPAL
            device = demo.requesters[person]
            # Proved on the device before either is timed.
            for_api = access.request(
                device, TENANT, SUPPORT_VAULT, "customer-42-notes", request_id=f"api-{uuid.uuid4().hex}"
            )
            for_sfn = access.request(device, TENANT, SUPPORT_VAULT, "customer-42-notes")
            access_times.add(
                index,
                functools.partial(decide_through_api, for_api, requesters[person]),
                functools.partial(decide_directly, for_sfn),
            )

    table = Table(
        key="api_latency",
        title=(
            f"The REST API over the direct calls on the local runtime: {seals - WARMUP} seals, "
            f"{requests - WARMUP} access requests per path, interleaved"
        ),
        columns=[
            Column("operation", "operation"),
            Column("path", "path"),
            Column("p50_ms", "p50 ms", ",.1f"),
            Column("p95_ms", "p95 ms", ",.1f"),
            Column("ratio_p50", "p50 API/direct", ".2f"),
            Column("ratio_p95", "p95 API/direct", ".2f"),
        ],
        notes=[
            (
                "seal: POST /v1/vaults/agent-memory/memories (HTTP on loopback to uvicorn, bearer token, "
                "FastAPI, then the encrypt function through the Lambda API) vs the same seal event invoked "
                f"through the Lambda API; {len(MEMORY_TEXT)} bytes of text"
            ),
            (
                "access request: POST /v1/access-requests then GET its Location until decided vs "
                f"StartExecution then DescribeExecution until terminal; both polled every "
                f"{POLL_SECONDS * 1000:.0f} ms (the API's Retry-After says 1 s) and every GET is a whole API"
                " request (token, DescribeExecution, the chain from S3 once decided); proofs made beforehand"
            ),
            (
                f"{WARMUP} warm-up pairs discarded per operation; one principal per {REQUESTS_PER_PRINCIPAL} "
                "requests on each path; outcomes (warm-ups included): API "
                + ", ".join(f"{k} {v}" for k, v in sorted(outcomes["api"].items()))
                + "; direct "
                + ", ".join(f"{k} {v}" for k, v in sorted(outcomes["direct"].items()))
            ),
            *(f"not approved: {line}" for line in unexpected),
        ],
    )
    summary: dict[str, object] = {}
    for operation, pairs in (("seal", seal_times), ("access request", access_times)):
        api50, api95 = percentile(pairs.api, 0.5), percentile(pairs.api, 0.95)
        direct50, direct95 = percentile(pairs.direct, 0.5), percentile(pairs.direct, 0.95)
        table.add(operation=operation, path="direct", p50_ms=_ms(direct50), p95_ms=_ms(direct95))
        table.add(
            operation=operation,
            path="through the API",
            p50_ms=_ms(api50),
            p95_ms=_ms(api95),
            ratio_p50=_ratio(api50, direct50),
            ratio_p95=_ratio(api95, direct95),
        )
        if operation == "access request":
            accepted = posts[WARMUP:]
            table.add(
                operation=operation,
                path="  of which POST until 202",
                p50_ms=_ms(percentile(accepted, 0.5)),
                p95_ms=_ms(percentile(accepted, 0.95)),
            )
        table.add(operation=operation, path="API's own (p50 difference)", p50_ms=_ms(api50 - direct50))
        key = "seal" if operation == "seal" else "access"
        summary[f"api_{key}_p50_ms"] = _ms(api50)
        summary[f"api_{key}_vs_direct"] = _ratio(api50, direct50)
    return table, summary


def coldstart_tables(runs: int) -> tuple[Table, Table, float]:
    """Fresh-interpreter imports of the API function beside baselines (coldstart.run_child, round-robin,
    a discarded first round), and its costliest imports under ``-X importtime``."""
    timings: dict[str, list[coldstart.ChildTiming]] = {t.key: [] for t in COLDSTART_TARGETS}
    for round_index in range(runs + 1):
        for target in COLDSTART_TARGETS:
            timing, _ = coldstart.run_child(target)
            if round_index:
                timings[target.key].append(timing)

    def median_ms(key: str, *, wall: bool = False) -> float:
        return statistics.median(t.wall_ns if wall else t.in_process_ns for t in timings[key]) / 1e6

    api_ms = median_ms("api_lambda")
    verdict = "within" if api_ms < GOAL_API_IMPORT_MS else "over"
    table = Table(
        "api_coldstart",
        f"Cold start of the API function: fresh interpreters, median of {runs} run(s), interleaved"
        f" (target: import < {GOAL_API_IMPORT_MS:.0f} ms)",
        [
            Column("target", "target"),
            Column("in_process_ms", "in-process ms", ",.1f"),
            Column("min_ms", "min ms", ",.1f"),
            Column("max_ms", "max ms", ",.1f"),
            Column("wall_ms", "process wall ms", ",.1f"),
            Column("vs_target", "x target", ".2f"),
            Column("vs_boto3", "x import boto3", ".2f"),
        ],
        notes=[
            (
                "As the encrypt handler's table (coldstart.run_child): bytecode caches warm; in-process = the"
                " import statement alone; process wall = the whole child. The import builds the FastAPI app"
                " and its routes; the runtime (boto3 clients, the token key) is built on the first request."
            ),
            (
                "x import boto3 = in-process median / that of `import boto3` in the same rounds: steadier"
                " than milliseconds on a loaded host (the target itself is in milliseconds)."
            ),
        ],
        footer=[
            (
                f"   API function import (Lambda env) median: {api_ms:.0f} ms"
                f" (target < {GOAL_API_IMPORT_MS:.0f} ms: {verdict})"
            )
        ],
    )
    for target in COLDSTART_TARGETS:
        in_process = [t.in_process_ns / 1e6 for t in timings[target.key]]
        table.add(
            target=target.label,
            in_process_ms=median_ms(target.key),
            min_ms=min(in_process),
            max_ms=max(in_process),
            wall_ms=median_ms(target.key, wall=True),
            vs_target=median_ms(target.key) / GOAL_API_IMPORT_MS,
            vs_boto3=_ratio(median_ms(target.key), median_ms("boto3")),
        )

    _, report = coldstart.run_child(COLDSTART_TARGETS[0], flags=("-X", "importtime"))
    entries = coldstart.parse_importtime(report)
    imports = coldstart.imports_table(
        "api_coldstart_imports", "the API function, one run", entries, API_MODULE, root="the module"
    )
    return table, imports, api_ms


def api_tables(*, quick: bool, coldstart_runs: int) -> ApiBenchResult:
    latency, summary = latency_table(quick=quick)
    cold, imports, api_ms = coldstart_tables(coldstart_runs)
    summary["api_import_ms"] = api_ms
    return ApiBenchResult(latency, cold, imports, summary)
