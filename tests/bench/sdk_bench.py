"""What the SDK costs on the client, beside what it wraps (each measured in the same run).

Per call: the SDK's clients (``Reliquary``, ``AsyncReliquary``) against raw httpx sending the same request
with the same bearer token. Twice: over loopback against the served API of the local runtime (the same
server answers both, request by request in alternation), and against ``httpx.MockTransport`` answering
the server's recorded answers, which leaves only the client's own work: the token flow and its header,
the retry bookkeeping, the problem parsing of an error, the pydantic model of an answer.

The access round's ``open()`` over loopback: one request approved (a device of the SDK's enrolled, the
flow run: seconds, outside the timings), then opened again and again, warm and by fresh clients, whole
and taken apart (the GETs, ``opening.open_approved``, the monitor step), beside the same GETs over raw
httpx and the core's ``open_grant`` on the same grant and envelope.

On the client, offline: ``reliquary_sdk.crypto.open_grant`` against the core's
``reliquary.crypto.grants.open_grant`` on one grant and sealed item the core made, broken down into its
primitives; a receipt's verification (``reliquary_sdk.audit``) and an attestation chain's
(``reliquary_sdk.chain``) against the core's on the same inputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.bench.report import Cell, Column, Table
from tests.bench.timing import Budget, Case, Stats, measure, percentile

if TYPE_CHECKING:
    import httpx
    from pydantic import BaseModel
    from reliquary_sdk import AsyncReliquary, Reliquary

    from infra.local.api import LocalApi

TENANT, VAULT, USER = "bench-sdk", "bench-vault", "customer-42"
MISSING_VAULT = "no-such-vault"
MEMORIES = 5  # one page of a user's memories, small enough that a listing is one request
MEMORY_TEXT = "Customer 42 prefers email and works in the Lisbon office; renewal quote due on Tuesday."
FULL_PAIRS = 150
QUICK_PAIRS = 3
WARMUP_PAIRS = 5  # run first and discarded: the first connections, the token, the server's caches
NOW = 1_750_000_000
KIB, MIB = 1024, 1024 * 1024
GRANT_SIZES = (KIB, MIB)
RECEIPT_LOG_SIZE = 1_000  # the receipt's leaf is one of a log this size: a 10-hash inclusion proof
ORIGIN_PREFIX = "bench.example/log"


@dataclass(frozen=True, slots=True)
class SdkBenchResult:
    tables: list[Table]
    summary: dict[str, object]


def _size_label(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


def _ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline > 0 else float("nan")


def _us(seconds: float) -> float:
    return seconds * 1e6


# --- the routes measured, as the SDK and as raw httpx call them --------------------------------------
@dataclass(frozen=True, slots=True)
class Route:
    """One request: its label, its path and query, and how the SDK makes it (sync and async)."""

    key: str
    label: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    problem: bool = False  # the answer is an error (an RFC 9457 problem): the SDK raises it, typed


ROUTES = (
    Route("health", "GET /v1/health", "/v1/health"),
    Route("vault", f"GET /v1/vaults/{VAULT}", f"/v1/vaults/{VAULT}"),
    Route("memories", "list a user's memories (one page)", f"/v1/vaults/{VAULT}/memories", {"user_id": USER}),
    Route("missing", "GET a missing vault (404 problem)", f"/v1/vaults/{MISSING_VAULT}", problem=True),
)


def _sdk_sync(client: Reliquary, route: Route) -> Callable[[], object]:
    from reliquary_sdk import NotFoundError

    if route.key == "health":
        return client.health
    if route.key == "vault":
        return lambda: client.vaults.get(VAULT)
    if route.key == "memories":
        return lambda: list(client.memories.list(VAULT, user_id=USER))

    def missing() -> object:
        try:
            client.vaults.get(MISSING_VAULT)
        except NotFoundError as error:
            return error
        raise RuntimeError("the missing vault was found")

    return missing


def _sdk_async(client: AsyncReliquary, route: Route) -> Callable[[], Awaitable[object]]:
    from reliquary_sdk import NotFoundError

    if route.key == "health":
        return client.health
    if route.key == "vault":
        return lambda: client.vaults.get(VAULT)
    if route.key == "memories":

        async def memories() -> object:
            return [m async for m in client.memories.list(VAULT, user_id=USER)]

        return memories

    async def missing() -> object:
        try:
            await client.vaults.get(MISSING_VAULT)
        except NotFoundError as error:
            return error
        raise RuntimeError("the missing vault was found")

    return missing


def _no_retry(seconds: float) -> None:
    """The SDK's sleep before a retry: in the bench, a retry is a failure, never a slow call."""
    raise RuntimeError(f"the SDK retried (after {seconds:.2f} s): the figures would include its waits")


async def _no_retry_async(seconds: float) -> None:
    _no_retry(seconds)


def _raw_answer(response: httpx.Response, route: Route) -> object:
    """What a careful caller of raw httpx does with the answer: check the status, decode the JSON."""
    if route.problem:
        if response.status_code != 404:
            raise RuntimeError(f"{route.label} answered {response.status_code}")
        return response.json()
    response.raise_for_status()
    return response.json()


def _raw_sync(http: httpx.Client, route: Route, bearer: dict[str, str]) -> Callable[[], object]:
    return lambda: _raw_answer(http.get(route.path, params=route.params, headers=bearer), route)


def _raw_async(
    http: httpx.AsyncClient, route: Route, bearer: dict[str, str]
) -> Callable[[], Awaitable[object]]:
    async def call() -> object:
        return _raw_answer(await http.get(route.path, params=route.params, headers=bearer), route)

    return call


# --- over loopback: the local runtime's served API ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class Recorded:
    """A real answer of the served API, replayed by the mock transport."""

    status: int
    headers: list[tuple[str, str]]
    content: bytes

    @classmethod
    def of(cls, response: httpx.Response) -> Recorded:
        # Hop-by-hop and per-answer headers are left out: the replay is one answer many times.
        skip = {"date", "server", "connection", "keep-alive"}
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in skip]
        return cls(response.status_code, headers, response.content)


@dataclass
class _Paired:
    """Seconds of the SDK's call and raw httpx's, pair by pair (the order alternating)."""

    sdk: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)

    def keep(self, index: int, sdk: float, raw: float) -> None:
        if index >= WARMUP_PAIRS:
            self.sdk.append(sdk)
            self.raw.append(raw)


def _timed(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


async def _timed_async(call: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await call()
    return time.perf_counter() - began


def _sync_pairs(sdk: Callable[[], object], raw: Callable[[], object], pairs: int) -> _Paired:
    paired = _Paired()
    for index in range(pairs + WARMUP_PAIRS):
        if index % 2 == 0:
            sdk_s, raw_s = _timed(sdk), _timed(raw)
        else:
            raw_s, sdk_s = _timed(raw), _timed(sdk)
        paired.keep(index, sdk_s, raw_s)
    return paired


async def _async_pairs(
    sdk: Callable[[], Awaitable[object]], raw: Callable[[], Awaitable[object]], pairs: int
) -> _Paired:
    paired = _Paired()
    for index in range(pairs + WARMUP_PAIRS):
        if index % 2 == 0:
            sdk_s, raw_s = await _timed_async(sdk), await _timed_async(raw)
        else:
            raw_s, sdk_s = await _timed_async(raw), await _timed_async(sdk)
        paired.keep(index, sdk_s, raw_s)
    return paired


@dataclass(frozen=True, slots=True)
class Served:
    """The local runtime's API, served over loopback: its URL, the bench tenant's admin client and its
    secret, and the runtime itself (to make clients of other roles)."""

    url: str
    client_id: str
    secret: str
    api: LocalApi


@contextlib.contextmanager
def served_api() -> Iterator[Served]:
    """The local runtime's API with a tenant, its admin client, a vault and a user's memories in it."""
    from reliquary_sdk import ClientCredentials, Reliquary

    from infra.local.api import serve_api
    from infra.local.runtime import free_port, local_stack

    environment = {
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
        # The bench measures clients, not the per-client limiter (50 a second by default): a 429 would
        # make the SDK wait and retry, and the raw path fail.
        "RELIQUARY_CLIENT_REQUESTS_PER_SECOND": "10000",
    }
    with (
        local_stack(
            free_port(), stack_name=f"bench-sdk-{uuid.uuid4().hex[:6]}", environment=environment
        ) as stack,
        serve_api(stack, free_port()) as api,
    ):
        _, admin, secret = api.runtime.identity.create_tenant(TENANT, "Bench tenant")
        with Reliquary(api.url, auth=ClientCredentials(admin.client_id, secret)) as client:
            client.vaults.create(VAULT)
            for _ in range(MEMORIES):
                client.memories.add(VAULT, text=MEMORY_TEXT, user_id=USER)
        yield Served(api.url, admin.client_id, secret, api)


@dataclass(frozen=True, slots=True)
class LoopbackResult:
    table: Table
    recorded: dict[str, Recorded]  # by route key, and "token": the token endpoint's answer
    summary: dict[str, object]


def loopback_table(served: Served, *, quick: bool) -> LoopbackResult:
    import httpx
    from reliquary_sdk import AsyncReliquary, ClientCredentials, Reliquary

    pairs = QUICK_PAIRS if quick else FULL_PAIRS
    results: dict[tuple[str, str], _Paired] = {}
    recorded: dict[str, Recorded] = {}
    url, client_id, secret = served.url, served.client_id, served.secret
    auth = ClientCredentials(client_id, secret)
    with (
        Reliquary(url, auth=auth, sleep=_no_retry) as client,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        client.health()  # the token, fetched once and cached: the same token on both paths
        token = auth.cached_token
        if token is None:
            raise RuntimeError("the SDK holds no token after a call")
        bearer = {"Authorization": f"Bearer {token}"}
        recorded["token"] = Recorded.of(
            http.post("/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        )
        for route in ROUTES:
            recorded[route.key] = Recorded.of(http.get(route.path, params=route.params, headers=bearer))
            results[(route.key, "sync")] = _sync_pairs(
                _sdk_sync(client, route), _raw_sync(http, route, bearer), pairs
            )

    async def run_async() -> None:
        async with (
            AsyncReliquary(url, auth=auth, sleep=_no_retry_async) as aclient,
            httpx.AsyncClient(base_url=url, timeout=30) as ahttp,
        ):
            for route in ROUTES:
                results[(route.key, "async")] = await _async_pairs(
                    _sdk_async(aclient, route), _raw_async(ahttp, route, bearer), pairs
                )

    asyncio.run(run_async())

    memories = json.loads(recorded["memories"].content)
    if len(memories["memories"]) != MEMORIES or memories.get("next_cursor") is not None:
        raise RuntimeError("the listing is not the one page of memories the bench added")
    table = Table(
        key="sdk_loopback",
        title=(
            f"SDK per call over raw httpx, loopback to the local runtime's API: {pairs} pairs per route,"
            " alternating"
        ),
        columns=[
            Column("route", "route"),
            Column("client", "client"),
            Column("p50_us", "p50 µs", ",.0f"),
            Column("p95_us", "p95 µs", ",.0f"),
            Column("vs_httpx", "p50 SDK/httpx", ".3f"),
            Column("extra_us", "SDK - httpx µs (pair p50)", ",.0f"),
        ],
        notes=[
            (
                "the same server (uvicorn in this process, on moto), the same bearer token, one keep-alive"
                " connection per client; raw httpx checks the status and decodes the JSON; the SDK adds its"
                " token flow, retry bookkeeping, a typed error for a problem and a pydantic model"
            ),
            (
                f"{WARMUP_PAIRS} warm-up pairs discarded per route; the server shares this process and its 2 "
                "cores with the client, so its time (most of each figure) varies: read the pair differences"
            ),
        ],
    )
    summary: dict[str, object] = {}
    for route in ROUTES:
        for mode in ("sync", "async"):
            paired = results[(route.key, mode)]
            sdk50, raw50 = percentile(paired.sdk, 0.5), percentile(paired.raw, 0.5)
            differences = [s - r for s, r in zip(paired.sdk, paired.raw, strict=True)]
            extra = percentile(differences, 0.5)
            prefix = "async " if mode == "async" else ""
            table.add(
                route=route.label,
                client=f"{prefix}httpx",
                p50_us=_us(raw50),
                p95_us=_us(percentile(paired.raw, 0.95)),
            )
            table.add(
                route=route.label,
                client=f"{prefix}SDK",
                p50_us=_us(sdk50),
                p95_us=_us(percentile(paired.sdk, 0.95)),
                vs_httpx=_ratio(sdk50, raw50),
                extra_us=_us(extra),
            )
            summary[f"sdk_loopback_{route.key}_{mode}_vs_httpx"] = _ratio(sdk50, raw50)
            summary[f"sdk_loopback_{route.key}_{mode}_extra_us"] = _us(extra)
    return LoopbackResult(table, recorded, summary)


# --- the whole access round's open(), over loopback -------------------------------------------------
OPEN_VAULT = "bench-open-vault"
OPEN_USER = "customer-7"
OPEN_TEXT = "Customer 7 escalated twice this month: call back before noon, Lisbon time."
OPEN_FULL = (40, 10)  # timed rounds of each kind: warm, and first opens (each with a fresh client)
OPEN_QUICK = (2, 1)
OPEN_WARMUP = (3, 1)  # warm rounds of each kind run first and discarded (full, quick)
GRANT_MARGIN_S = 20  # timing stops this long before the grant expires: an expired grant no longer opens
DECISION_S = 120.0
ZK_DIR = Path(__file__).resolve().parents[2] / "zk"

# The steps of a round, as rows name them.
VIEW, ITEM, KEYS, CHECKS, MONITOR, WHOLE = "view", "item", "keys", "checks", "monitor", "round"


@dataclass(frozen=True, slots=True)
class _Approved:
    """An approved request of the bench's requester client: what it takes to open it again and again."""

    request_id: str
    memory_id: str
    key: Any  # reliquary_sdk.RequesterKey: the grant is sealed to it
    client_id: str
    secret: str
    expires_at: int  # the grant's end (its lifetime is the service's, 300 s)


def _approved_request(served: Served) -> _Approved:
    """A memory in a vault of its own, a device of the SDK's enrolled in it (its context policy) and the
    vault's trust and quorum policies, all through the SDK as a tenant admin would; then one access
    request of a requester client, proved on the device and decided by the access flow (seconds)."""
    from reliquary_sdk import ClientCredentials, Reliquary, RequesterKey
    from reliquary_sdk.prove import Device, NodeProver

    from infra.local.seed import SUPPORT_QUORUM, SUPPORT_TRUST, support_rules
    from reliquary.identity.scopes import Role, RoleBinding

    with NodeProver(ZK_DIR) as prover:
        device = Device.generate(prover)
        with Reliquary(served.url, auth=ClientCredentials(served.client_id, served.secret)) as admin:
            admin.vaults.create(OPEN_VAULT)
            sealed = admin.memories.add(OPEN_VAULT, text=OPEN_TEXT, user_id=OPEN_USER)
            admin.vaults.put_policy(OPEN_VAULT, "context", {"circuit": "context_proof", **device.policy()})
            admin.vaults.put_policy(OPEN_VAULT, "trust", {**SUPPORT_TRUST, "rules": support_rules()})
            admin.vaults.put_policy(OPEN_VAULT, "quorum", SUPPORT_QUORUM)
        # The requester reads the log too (the keys and the consistency proofs open() fetches).
        row, secret = served.api.runtime.identity.create_client(
            TENANT,
            "bench requester",
            [RoleBinding(Role.REQUESTER, OPEN_VAULT), RoleBinding(Role.AUDITOR, None)],
        )
        key = RequesterKey.generate()
        with Reliquary(served.url, auth=ClientCredentials(row.client_id, secret)) as requester:
            handle = requester.access.request(
                OPEN_VAULT, sealed.item_id, purpose="support", prove=device, key=key
            )
            view = handle.wait(timeout=DECISION_S, interval=0.2)
            if view.status != "approved":
                raise RuntimeError(f"the bench's access request was not approved (it is {view.status})")
            expires_at = requester.access.item(handle.request_id).grant_expires_at
    return _Approved(handle.request_id, sealed.item_id, key, row.client_id, secret, expires_at)


class _Steps:
    """Seconds per named step of one round."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, call: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        value = call()
        self.seconds[name] = time.perf_counter() - began
        return value


def _bearer(auth: Any) -> dict[str, str]:
    """The SDK's cached token as raw httpx sends it: both paths present the same one."""
    token = auth.cached_token
    if token is None:
        raise RuntimeError("the SDK holds no token")
    return {"Authorization": f"Bearer {token}"}


def _json_of(response: httpx.Response) -> Any:
    response.raise_for_status()
    return response.json()


@dataclass
class _OpenRounds:
    """One round of each kind, on the same approved request: the SDK's open() whole, the same open taken
    apart step by step through the SDK's public calls, and raw httpx with the core's open_grant."""

    url: str
    approved: _Approved
    auth: Any  # the requester's ClientCredentials: one token, cached, shared by every client here
    held: Any  # an AccessRequest holding the decided view
    core_key: Any
    core_ring: Any
    expected: bytes

    def _check(self, plaintext: bytes) -> None:
        if plaintext != self.expected:
            raise RuntimeError("an open returned other bytes than the memory's")

    def fresh_client(self) -> Reliquary:
        from reliquary_sdk import Reliquary

        return Reliquary(self.url, auth=self.auth, sleep=_no_retry)

    def sdk_whole(self, client: Reliquary) -> dict[str, float]:
        steps = _Steps()
        opened = steps.run(
            WHOLE, lambda: client.access.get(self.approved.request_id, key=self.approved.key).open()
        )
        self._check(opened.plaintext)
        return steps.seconds

    def sdk_held(self) -> dict[str, float]:
        steps = _Steps()
        self._check(steps.run(WHOLE, self.held.open).plaintext)
        return steps.seconds

    def sdk_apart(self, client: Reliquary, *, first: bool) -> dict[str, float]:
        """``AccessRequest.open()``'s steps in its order, each timed (the view GET is ``access.get``'s)."""
        from reliquary_sdk.opening import open_approved

        steps, request_id, key = _Steps(), self.approved.request_id, self.approved.key
        handle = steps.run(VIEW, lambda: client.access.get(request_id, key=key))
        sealed = steps.run(ITEM, lambda: client.access.item(request_id))
        keys = steps.run(KEYS, client.trusted_keys) if first else client.trusted_keys()
        view = handle.view
        if view is None:
            raise RuntimeError("the handle holds no view after access.get")
        opened = steps.run(
            CHECKS,
            lambda: open_approved(
                view, sealed, key=key, keys=keys, tenant_id=client.tenant_id(), falcon=client.falcon
            ),
        )
        steps.run(MONITOR, lambda: client.observe_checkpoint(opened.receipt.checkpoint))
        self._check(opened.plaintext)
        return steps.seconds

    def raw(self, http: httpx.Client, *, first: bool) -> dict[str, float]:
        """What a careful caller of raw httpx and the core does: the same GETs with the same token, the
        core's open_grant pinned to the request and item (no receipt, record, chain or monitor)."""
        import base64

        from reliquary.crypto import grants

        steps, request_id, bearer = _Steps(), self.approved.request_id, _bearer(self.auth)
        began = time.perf_counter()
        ring = (
            steps.run(KEYS, lambda: _core_ring(_json_of(http.get("/v1/audit/keys", headers=bearer))))
            if first
            else self.core_ring
        )
        view = steps.run(
            VIEW, lambda: _json_of(http.get(f"/v1/access-requests/{request_id}", headers=bearer))
        )
        item = steps.run(
            ITEM, lambda: _json_of(http.get(f"/v1/access-requests/{request_id}/item", headers=bearer))
        )
        plaintext = steps.run(
            CHECKS,
            lambda: grants.open_grant(
                base64.b64decode(view["grant"]["grant"], validate=True),
                base64.b64decode(item["envelope"], validate=True),
                requester_private_key=self.core_key,
                service_keys=ring,
                now=int(time.time()),
                request_id=request_id,
                expected=(TENANT, OPEN_VAULT, self.approved.memory_id),
            ),
        )
        steps.seconds[WHOLE] = time.perf_counter() - began
        self._check(plaintext)
        return steps.seconds


def _core_ring(published: dict[str, Any]) -> Any:
    """The core's key ring of ``GET /v1/audit/keys``'s service keys."""
    import base64

    from reliquary.crypto.signing import KeyRing, SignatureAlgorithm, VerifyingKey

    return KeyRing(
        [
            VerifyingKey(SignatureAlgorithm(k["algorithm"]), base64.b64decode(k["public_key"], validate=True))
            for k in published["service_keys"]
        ]
    )


@contextlib.contextmanager
def _state_dir() -> Iterator[None]:
    """The SDK's default monitor keeps its JSON file in a directory of the run's, not the user's."""
    import tempfile

    from reliquary_sdk.client import STATE_DIR_ENV

    before = os.environ.get(STATE_DIR_ENV)
    with tempfile.TemporaryDirectory(prefix="bench-sdk-state-") as directory:
        os.environ[STATE_DIR_ENV] = directory
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(STATE_DIR_ENV, None)
            else:
                os.environ[STATE_DIR_ENV] = before


def _kinds_in_turn(
    kinds: dict[str, Callable[[], dict[str, float]]], rounds: int, warmup: int, deadline: float
) -> dict[str, list[dict[str, float]]]:
    """``rounds`` of every kind (the order rotating each time, so drift lands on all alike), after
    ``warmup`` discarded; fewer when the grant's end comes near."""
    names = list(kinds)
    found: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for index in range(warmup + rounds):
        if time.time() >= deadline:
            break
        turn = index % len(names)
        for name in names[turn:] + names[:turn]:
            seconds = kinds[name]()
            if index >= warmup:
                found[name].append(seconds)
    if any(not values for values in found.values()):
        raise RuntimeError("the grant expired before any round was timed")
    return found


def _with_fresh(
    call: Callable[[Reliquary], dict[str, float]], make: Callable[[], Reliquary]
) -> Callable[[], dict[str, float]]:
    """``call`` on a client made for it (outside the timing) and closed after."""

    def run() -> dict[str, float]:
        with make() as client:
            return call(client)

    return run


def _with_fresh_http(
    url: str, call: Callable[[httpx.Client], dict[str, float]]
) -> Callable[[], dict[str, float]]:
    import httpx

    def run() -> dict[str, float]:
        with httpx.Client(base_url=url, timeout=30) as http:
            return call(http)

    return run


_RAW_STEPS = {
    KEYS: "  GET the keys + the core's key ring",
    VIEW: "  GET the view",
    ITEM: "  GET the sealed item",
    CHECKS: "  core open_grant (grant and item only)",
}
_SDK_STEPS = {
    VIEW: "  GET the view (access.get)",
    ITEM: "  GET the sealed item (access.item)",
    KEYS: "  GET the keys (trusted_keys, once per client)",
    CHECKS: "  offline checks (opening.open_approved)",
    MONITOR: "  monitor step (observe_checkpoint)",
}
SDK_OPEN = "access.get(id).open()"
SDK_HELD = "handle.open(), the decided view held"
RAW_ROUND = "the same GETs + core open_grant"
FIRST, WARM = "first open, fresh client", "warm"


def _ms(values: list[dict[str, float]], step: str, fraction: float = 0.5) -> float:
    return 1e3 * percentile([v[step] for v in values], fraction)


def _paired_ms(
    sdk: list[dict[str, float]], sdk_step: str, raw: list[dict[str, float]], raw_step: str
) -> float:
    """The median of the differences round by round (both ran in the same turn): steadier than the
    difference of medians when the server's time swings."""
    return 1e3 * percentile([s[sdk_step] - r[raw_step] for s, r in zip(sdk, raw, strict=True)], 0.5)


def _add_open_rows(
    table: Table, label: str, found: dict[str, list[dict[str, float]]], summary: dict[str, object]
) -> None:
    raw, apart, whole = found["raw"], found["apart"], found["sdk"]
    steps = [s for s in (KEYS, VIEW, ITEM, CHECKS, MONITOR) if s in apart[0]]
    raw_ms, sdk_ms = _ms(raw, WHOLE), _ms(whole, WHOLE)

    def add(path: str, step: str, values: list[dict[str, float]], name: str, **extra: Cell) -> None:
        table.add(
            round=label,
            path=path,
            step=step,
            p50_ms=_ms(values, name),
            p95_ms=_ms(values, name, 0.95),
            **extra,
        )

    add("httpx + core", RAW_ROUND, raw, WHOLE)
    for step in steps:
        if step in _RAW_STEPS:
            add("httpx + core", _RAW_STEPS[step], raw, step, share=100 * _ms(raw, step) / raw_ms)
    add(
        "SDK",
        SDK_OPEN,
        whole,
        WHOLE,
        vs_base=_ratio(sdk_ms, raw_ms),
        extra_ms=_paired_ms(whole, WHOLE, raw, WHOLE),
    )
    if "held" in found:
        add("SDK", SDK_HELD, found["held"], WHOLE)
    for step in steps:
        counterpart = _ms(raw, step) if step in _RAW_STEPS else None
        add(
            "SDK",
            _SDK_STEPS[step],
            apart,
            step,
            vs_base=_ratio(_ms(apart, step), counterpart) if counterpart else None,
            extra_ms=_paired_ms(apart, step, raw, step) if counterpart else None,
            share=100 * _ms(apart, step) / sdk_ms,
        )
    parts = {_SDK_STEPS[s].strip(): _ms(apart, s) for s in steps}
    largest = max(parts, key=parts.__getitem__)
    offline = _ms(apart, CHECKS) + _ms(apart, MONITOR)
    table.footer.append(
        f"   {label}: SDK open {sdk_ms:,.1f} ms, {_ratio(sdk_ms, raw_ms):.2f}x httpx + core"
        f" ({raw_ms:,.1f} ms); dominated by {largest} ({100 * parts[largest] / sdk_ms:.0f} %);"
        f" checks + monitor {offline:,.1f} ms"
    )
    key = "first" if label == FIRST else "warm"
    summary[f"sdk_open_{key}_ms"] = sdk_ms
    summary[f"sdk_open_{key}_vs_baseline"] = _ratio(sdk_ms, raw_ms)
    summary[f"sdk_open_{key}_checks_ms"] = _ms(apart, CHECKS)
    summary[f"sdk_open_{key}_monitor_ms"] = _ms(apart, MONITOR)


def open_table(served: Served, *, quick: bool) -> tuple[Table, dict[str, object]]:
    """One approved request (outside the timings), then its open() again and again: warm (one client,
    the keys fetched) and first opens (a fresh client each), each beside the same GETs over raw httpx
    and the core's open_grant, and taken apart."""
    import httpx
    from reliquary_sdk import ClientCredentials, Reliquary
    from reliquary_sdk.client import AccessRequest

    from reliquary.crypto.kem import HybridPrivateKey
    from reliquary_native import load_oqs

    load_oqs()  # the checkpoints' Falcon-512 lines: the core's liboqs stands in for the falcon extra's
    warm_rounds, first_rounds = OPEN_QUICK if quick else OPEN_FULL
    warmup = OPEN_WARMUP[1] if quick else OPEN_WARMUP[0]
    with _state_dir():
        approved = _approved_request(served)
        deadline = approved.expires_at - GRANT_MARGIN_S
        auth = ClientCredentials(approved.client_id, approved.secret)
        with (
            Reliquary(served.url, auth=auth, sleep=_no_retry) as client,
            httpx.Client(base_url=served.url, timeout=30) as http,
        ):
            held: AccessRequest = client.access.get(approved.request_id, key=approved.key)
            held.open()  # the keys fetched, the checkpoint remembered: what "warm" means
            rounds = _OpenRounds(
                url=served.url,
                approved=approved,
                auth=auth,
                held=held,
                core_key=HybridPrivateKey.from_private_bytes(approved.key.private_bytes()),
                core_ring=_core_ring(_json_of(http.get("/v1/audit/keys", headers=_bearer(auth)))),
                expected=OPEN_TEXT.encode(),
            )
            warm = _kinds_in_turn(
                {
                    "sdk": lambda: rounds.sdk_whole(client),
                    "held": rounds.sdk_held,
                    "apart": lambda: rounds.sdk_apart(client, first=False),
                    "raw": lambda: rounds.raw(http, first=False),
                },
                warm_rounds,
                warmup,
                deadline,
            )
        first = _kinds_in_turn(
            {
                "sdk": _with_fresh(rounds.sdk_whole, rounds.fresh_client),
                "apart": _with_fresh(lambda c: rounds.sdk_apart(c, first=True), rounds.fresh_client),
                "raw": _with_fresh_http(served.url, lambda h: rounds.raw(h, first=True)),
            },
            first_rounds,
            0,
            deadline,
        )
    counts = f"{len(warm['sdk'])} warm rounds and {len(first['sdk'])} first opens of each kind"
    table = Table(
        key="sdk_open",
        title=f"The access round's open() over loopback, one approved request opened again: {counts}",
        columns=[
            Column("round", "round"),
            Column("path", "path"),
            Column("step", "step"),
            Column("p50_ms", "p50 ms", ",.2f"),
            Column("p95_ms", "p95 ms", ",.2f"),
            Column("vs_base", "x httpx+core", ".2f"),
            Column("extra_ms", "over it ms (pair p50)", ",.2f"),
            Column("share", "% of round", ".0f"),
        ],
        notes=[
            (
                "SDK: the view GET, the sealed item GET, the keys GET (a client's first open only), the "
                "grant and envelope, the receipt (3 checkpoint signatures, inclusion), the logged record and "
                "the 7-statement chain checked, the checkpoint fed through the monitor (a JSON file, already "
                "holding it); httpx + core: the same GETs with the same token and the core's open_grant only"
            ),
            (
                "the indented rows are each round taken apart (timed in a round of their own, in open()'s "
                "order, through the SDK's public calls); x httpx+core compares each with the same step of "
                "the raw path, over it is the median of their round-by-round differences; a fresh client is "
                "made outside the timing but opens its own connection"
            ),
            (
                "the access request itself (nonce, proof, flow: seconds) is made once, before any timing; "
                "the server shares this process and its 2 cores with the client"
            ),
        ],
    )
    summary: dict[str, object] = {}
    _add_open_rows(table, WARM, warm, summary)
    _add_open_rows(table, FIRST, first, summary)
    return table, summary


# --- the client's own cost: a mock transport replaying the recorded answers ----------------------------
def _replay(recorded: dict[str, Recorded]) -> Callable[[httpx.Request], httpx.Response]:
    import httpx

    by_path = {route.path: recorded[route.key] for route in ROUTES}
    by_path["/v1/oauth2/token"] = recorded["token"]

    def answer(request: httpx.Request) -> httpx.Response:
        found = by_path.get(request.url.path)
        if found is None:
            raise RuntimeError("the mock transport has no answer for this path")
        return httpx.Response(found.status, headers=found.headers, content=found.content)

    return answer


def _model_only(route: Route, content: bytes) -> Callable[[], object] | None:
    """The pydantic validation the SDK does on this answer, alone (None: no model, a problem)."""
    from reliquary_sdk import models

    found: dict[str, type[BaseModel]] = {
        "health": models.Health,
        "vault": models.VaultDetailView,
        "memories": models.MemoryList,
    }
    model = found.get(route.key)
    if model is None:
        return None
    data = json.loads(content)
    return lambda: model.model_validate(data)


def _no_model(client: Reliquary, route: Route) -> Callable[[], object] | None:
    """The SDK's call of this route without its pydantic model: the decoded JSON as is."""
    from reliquary_sdk.client import Call

    if route.problem:
        return None
    call: Call[object] = Call("GET", route.path, params=route.params)
    return lambda: client.call(call)


def _segment_only(route: Route) -> Callable[[], object]:
    """The percent-encoding of the id in the route's path (``client._seg``, through ``httpx.URL``)."""
    from reliquary_sdk.client import _seg

    vault = MISSING_VAULT if route.problem else VAULT
    return lambda: _seg(vault)


def mock_table(recorded: dict[str, Recorded], budget: Budget) -> tuple[Table, dict[str, object]]:
    import httpx
    from reliquary_sdk import AsyncReliquary, ClientCredentials, Reliquary

    url = "http://api.bench.invalid"
    handler = _replay(recorded)
    token = json.loads(recorded["token"].content)["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    loop = asyncio.new_event_loop()

    async def async_handler(request: httpx.Request) -> httpx.Response:
        return handler(request)

    auth = ClientCredentials("bench-client", "bench-secret")
    client = Reliquary(url, auth=auth, transport=httpx.MockTransport(handler), sleep=_no_retry)
    http = httpx.Client(base_url=url, transport=httpx.MockTransport(handler))
    aclient = AsyncReliquary(
        url, auth=auth, transport=httpx.MockTransport(async_handler), sleep=_no_retry_async
    )
    ahttp = httpx.AsyncClient(base_url=url, transport=httpx.MockTransport(async_handler))

    def on_loop(call: Callable[[], Awaitable[object]]) -> Callable[[], object]:
        return lambda: loop.run_until_complete(call())

    table = Table(
        key="sdk_mock",
        title="SDK per call over raw httpx, httpx.MockTransport replaying the served API's recorded answers",
        columns=[
            Column("route", "route"),
            Column("client", "client"),
            Column("median_us", "median µs", ",.1f"),
            Column("p99_us", "p99 µs", ",.1f"),
            Column("vs_httpx", "x httpx", ".2f"),
            Column("extra_us", "over httpx µs", ",.1f"),
        ],
        notes=[
            (
                "no network and no server: what is left is each client's own work on the same answer "
                "(httpx's request building and response handling on both sides; the SDK's token flow, "
                "retry bookkeeping, problem parsing and pydantic models on top)"
            ),
            (
                "async rows: each call runs on one event loop with run_until_complete, the same for both; "
                "'SDK, JSON as is' is the SDK's call without the route's model; indented rows are parts of "
                "the SDK's call alone: the model's validation of the decoded answer, the path id's encoding"
            ),
        ],
    )
    summary: dict[str, object] = {}
    try:
        client.health()  # the token, once (the mock's recorded token answer)
        for route in ROUTES:
            cases: dict[str, Case | Callable[[], object]] = {
                "httpx": _raw_sync(http, route, bearer),
                "SDK": _sdk_sync(client, route),
                "async httpx": on_loop(_raw_async(ahttp, route, bearer)),
                "async SDK": on_loop(_sdk_async(aclient, route)),
            }
            no_model = _no_model(client, route)
            model = _model_only(route, recorded[route.key].content)
            if no_model is not None and model is not None:
                cases["SDK, JSON as is"] = no_model
                cases["  pydantic model alone"] = model
            if route.path != "/v1/health":
                cases["  path id encoding alone (_seg)"] = _segment_only(route)
            stats = measure(cases, budget)
            _add_mock_rows(table, route, stats, summary)
    finally:
        client.close()
        http.close()
        loop.run_until_complete(aclient.aclose())
        loop.run_until_complete(ahttp.aclose())
        loop.close()
    return table, summary


def _add_mock_rows(table: Table, route: Route, stats: dict[str, Stats], summary: dict[str, object]) -> None:
    for name, found in stats.items():
        baseline = stats["async httpx" if name.startswith("async") else "httpx"]
        is_baseline = name in ("httpx", "async httpx")
        is_part = name.startswith("  ")
        table.add(
            route=route.label,
            client=name,
            median_us=found.median_us,
            p99_us=found.p99_us,
            vs_httpx=None if is_baseline or is_part else _ratio(found.median_ns, baseline.median_ns),
            extra_us=None if is_baseline or is_part else found.median_us - baseline.median_us,
        )
    summary[f"sdk_mock_{route.key}_vs_httpx"] = _ratio(stats["SDK"].median_ns, stats["httpx"].median_ns)
    summary[f"sdk_mock_{route.key}_extra_us"] = stats["SDK"].median_us - stats["httpx"].median_us
    summary[f"sdk_mock_{route.key}_async_extra_us"] = (
        stats["async SDK"].median_us - stats["async httpx"].median_us
    )


# --- grant opening on the client --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _IssuedGrant:
    grant: bytes
    item: bytes
    plaintext: bytes


def _issue_grants(sizes: tuple[int, ...]) -> tuple[Any, Any, dict[int, _IssuedGrant]]:
    """The service's signer (ML-DSA-65, the configured default), a requester key pair, and per size one
    grant and sealed item the core made, as the API hands them over."""
    from reliquary_sdk.crypto import RequesterKey

    from reliquary.crypto import envelope, grants
    from reliquary.crypto import signing as core_signing
    from reliquary.crypto.envelope import VaultKey
    from reliquary.crypto.kem import HybridPrivateKey, HybridPublicKey
    from reliquary.crypto.scope import ItemScope
    from tests.bench.crypto_bench import DEFAULT_SIGNER

    signer = core_signing.SigningKey.generate(DEFAULT_SIGNER)
    vault_key = VaultKey(version=1, private_key=HybridPrivateKey.generate())
    requester = RequesterKey.generate()
    issued = {}
    for size in sizes:
        scope = ItemScope(TENANT, VAULT, f"item-{size}", 1, "application/octet-stream")
        plaintext = os.urandom(size)
        sealed = envelope.seal(
            plaintext,
            scope=scope,
            vault_public_key=vault_key.private_key.public_key(),
            key_version=1,
            signer=signer,
        )
        data_key = envelope.unwrap_data_key(
            sealed, scope=scope, vault_key=vault_key, keyring=core_signing.KeyRing([signer.verifying_key])
        )
        grant = grants.issue(
            request_id=f"req-{size}",
            scope=scope,
            data_key=data_key,
            requester_public_key=HybridPublicKey.from_bytes(requester.public_bytes()),
            issued_at=NOW,
            ttl_seconds=300,
            signer=signer,
        )
        issued[size] = _IssuedGrant(grant.to_bytes(), sealed.to_bytes(), plaintext)
    return signer, requester, issued


def _grant_cases(signer: Any, requester: Any, issued: _IssuedGrant) -> dict[str, Callable[[], object]]:
    """The core's open, the SDK's, and the SDK's open taken apart into its primitives (the same calls
    ``reliquary_sdk.crypto.open_grant`` makes, on the same bytes)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from reliquary_sdk import crypto as sdk_crypto

    from reliquary.crypto import grants
    from reliquary.crypto import signing as core_signing
    from reliquary.crypto.kem import HybridPrivateKey

    ring = sdk_crypto.KeyRing([sdk_crypto.PublicKey(signer.algorithm.value, signer.public_key)])
    core_ring = core_signing.KeyRing([signer.verifying_key])
    core_key = HybridPrivateKey.from_private_bytes(requester.private_bytes())
    item_id = f"item-{len(issued.plaintext)}"
    request_id = f"req-{len(issued.plaintext)}"

    def sdk_open() -> bytes:
        return sdk_crypto.open_grant(
            issued.grant,
            issued.item,
            requester_key=requester,
            service_keys=ring,
            now=NOW + 10,
            request_id=request_id,
            expected=(TENANT, VAULT, item_id),
        ).plaintext

    def core_open() -> bytes:
        return grants.open_grant(
            issued.grant,
            issued.item,
            requester_private_key=core_key,
            service_keys=core_ring,
            now=NOW + 10,
            request_id=request_id,
            expected=(TENANT, VAULT, item_id),
        )

    if sdk_open() != issued.plaintext or core_open() != issued.plaintext:
        raise RuntimeError("a grant the core issued does not open to its plaintext")
    parsed = sdk_crypto._parse_grant(issued.grant)
    sealed = sdk_crypto._parse_envelope(issued.item)
    aad = sdk_crypto._item_aad(parsed, sealed.sealed_key_version)
    grant_message = sdk_crypto._GRANT_DOMAIN + parsed.signed
    item_message = (
        sdk_crypto._ENVELOPE_DOMAIN + sdk_crypto._ENVELOPE_MAGIC + sealed.header + sealed.length_and_tag + aad
    )
    data_key = requester._open(parsed.sealed_key, parsed.fields)
    aes = AESGCM(data_key)

    def signatures() -> None:
        ring.verify(parsed.signer_key_id, parsed.signature_algorithm, grant_message, parsed.signature)
        ring.verify(sealed.signer_key_id, sealed.signature_algorithm, item_message, sealed.signature)

    return {
        "core": core_open,
        "SDK": sdk_open,
        "  2 ML-DSA-65 verifications (grant, item)": signatures,
        "  HPKE open of the data key": lambda: requester._open(parsed.sealed_key, parsed.fields),
        "  AES-256-GCM decryption of the body": lambda: aes.decrypt(sealed.nonce, sealed.body, aad),
        "  parsing grant and item": lambda: (
            sdk_crypto._parse_grant(issued.grant),
            sdk_crypto._parse_envelope(issued.item),
        ),
    }


def grant_table(budget: Budget, sizes: tuple[int, ...] = GRANT_SIZES) -> tuple[Table, dict[str, object]]:
    signer, requester, issued = _issue_grants(sizes)
    table = Table(
        key="sdk_grant",
        title=(
            "Grant opening on the client: reliquary_sdk.crypto.open_grant vs the core's open_grant on the "
            f"same grant and item ({signer.algorithm.value} service key)"
        ),
        columns=[
            Column("size", "item"),
            Column("op", "op"),
            Column("median_us", "median µs", ",.1f"),
            Column("p99_us", "p99 µs", ",.1f"),
            Column("vs_core", "x core", ".2f"),
            Column("share", "% of SDK open", ".0f"),
        ],
        notes=[
            (
                "each open checks both service signatures, the validity window, the requester's key, the "
                "pinned request and item, then opens the data key (HPKE: ML-KEM-768 + X25519) and the body "
                "(AES-256-GCM); the core verifies ML-DSA-65 with liboqs, the SDK with cryptography/OpenSSL"
            ),
            "the indented rows are the SDK's open taken apart: the same calls on the same bytes",
        ],
    )
    summary: dict[str, object] = {}
    for size in sizes:
        stats = measure(_grant_cases(signer, requester, issued[size]), budget)
        sdk_ns, core_ns = stats["SDK"].median_ns, stats["core"].median_ns
        for name, found in stats.items():
            table.add(
                size=_size_label(size),
                op=name,
                median_us=found.median_us,
                p99_us=found.p99_us,
                vs_core=_ratio(found.median_ns, core_ns) if name == "SDK" else None,
                share=100 * found.median_ns / sdk_ns if name.startswith("  ") else None,
            )
        parts = {name.strip(): s.median_ns for name, s in stats.items() if name.startswith("  ")}
        largest = max(parts, key=parts.__getitem__)
        table.footer.append(
            f"   {_size_label(size)}: SDK {sdk_ns / 1e3:,.0f} µs, {_ratio(sdk_ns, core_ns):.2f}x the core's;"
            f" dominated by {largest} ({100 * parts[largest] / sdk_ns:.0f} %)"
        )
        key = _size_label(size).replace(" ", "").lower()
        summary[f"sdk_open_grant_{key}_us"] = stats["SDK"].median_us
        summary[f"sdk_open_grant_{key}_vs_core"] = _ratio(sdk_ns, core_ns)
    return table, summary


# --- receipts and chains on the client ---------------------------------------------------------------
def _receipt_cases() -> dict[str, Callable[[], object]]:
    """A receipt of a log of ``RECEIPT_LOG_SIZE`` entries, its checkpoint signed by the deployment's three
    checkpoint keys: the core's check, the SDK's (from the API's JSON) and the SDK's parts."""
    from reliquary_sdk import audit as sdk_audit

    from reliquary.audit import merkle, receipts
    from reliquary.audit.checkpoint import CHECKPOINT_ALGORITHMS, Checkpoint, sign_checkpoint
    from reliquary.audit.note import NoteSigner
    from reliquary.crypto.signing import SigningKey

    origin = f"{ORIGIN_PREFIX}/{TENANT}"
    signers = [NoteSigner(ORIGIN_PREFIX, SigningKey.generate(a)) for a in CHECKPOINT_ALGORITHMS]
    entries = [
        json.dumps({"request_id": f"req-{i}", "decision": "approve", "time": NOW + i}).encode()
        for i in range(RECEIPT_LOG_SIZE)
    ]
    leaves = [merkle.SHA256.hash_leaf(e) for e in entries]
    index = RECEIPT_LOG_SIZE * 2 // 3
    note = sign_checkpoint(Checkpoint(origin, len(leaves), merkle.root_of(leaves)), signers)
    proof = merkle.assemble(
        merkle.inclusion_plan(index, len(leaves)), lambda n: merkle.root_of(leaves[n.begin : n.end])
    )
    receipt = receipts.Receipt(origin, f"req-{index}", index, note, len(leaves), tuple(proof))
    as_json = json.loads(json.dumps(receipt.to_dict()))
    entry = entries[index]
    core_keys = [s.verifier for s in signers]
    keys = [sdk_audit.NoteVerifier.from_vkey(s.verifier.to_vkey()) for s in signers]

    def core() -> object:
        return receipts.verify_receipt(receipts.Receipt.from_dict(as_json), entry, core_keys, origin=origin)

    def sdk() -> object:
        return sdk_audit.verify_receipt(as_json, entry, keys, origin=origin, required=keys)

    if sdk_audit.verify_receipt(as_json, entry, keys, origin=origin).root_hash != core().root_hash:  # type: ignore[attr-defined]
        raise RuntimeError("the SDK and the core read different checkpoints from one receipt")
    text, lines = sdk_audit._split(note)
    by_algorithm = {k.algorithm: (k, sig) for k, (_, _, sig) in zip(keys, lines, strict=True)}
    leaf, path, root = merkle.SHA256.hash_leaf(entry), list(proof), merkle.root_of(leaves)

    def signature(algorithm: str) -> Callable[[], None]:
        key, sig = by_algorithm[algorithm]
        return lambda: key.key.verify(text, sig)

    return {
        "core": core,
        "SDK": sdk,
        "SDK, Falcon unchecked (without the extra)": lambda: sdk_audit.verify_receipt(
            as_json, entry, keys, origin=origin, falcon="skip"
        ),
        "  Ed25519 signature": signature("Ed25519"),
        "  ML-DSA-65 signature": signature("ML-DSA-65"),
        "  Falcon-512 signature (liboqs, the falcon extra)": signature("Falcon-512"),
        f"  inclusion proof ({len(proof)} hashes)": lambda: sdk_audit.verify_inclusion(
            index, len(leaves), leaf, path, root
        ),
    }


def _chain_cases() -> dict[str, Callable[[], object]]:
    """An approving chain of the usual shape (context, trust, 4 votes, tally: 7 statements) the core
    signed, as the API carries it: the core's parse and check, the SDK's, and the SDK's parts."""
    from reliquary_sdk import chain as sdk_chain
    from reliquary_sdk import jcs

    from reliquary.flow.attestation import Subject, parse_chain, verify_chain
    from reliquary.flow.memory import MemoryStageKeys, sign_chain

    stage_keys = MemoryStageKeys()
    subject = Subject(TENANT, VAULT, "customer-42-notes", "req-chain", "a" * 64, "b" * 64)
    body = [a.to_json() for a in sign_chain(stage_keys.signers, subject, issued_at=NOW)]
    published = stage_keys.published()
    keys = sdk_chain.StageKeys.from_json(published.to_json())
    sdk_subject = sdk_chain.Subject(**subject.to_json())

    def core() -> object:
        return verify_chain(parse_chain(copy.deepcopy(body)), published, subject=subject, now=NOW)

    def sdk() -> object:
        return sdk_chain.verify_chain(sdk_chain.parse_chain(body), keys, subject=sdk_subject, now=NOW)

    verified = sdk_chain.verify_chain(sdk_chain.parse_chain(body), keys, subject=sdk_subject, now=NOW)
    if not verified.approves or verified.digest != core().digest:  # type: ignore[attr-defined]
        raise RuntimeError("the SDK and the core judge the bench's chain differently")
    parsed = sdk_chain.parse_chain(body)
    signed = [(keys.key_for(a), a.statement.signed_bytes(), a.signature) for a in parsed]

    def signatures() -> None:
        for key, message, signature in signed:
            if key is None:
                raise RuntimeError("a statement's key is not published")
            key.verify(message, signature)

    return {
        "core (parse + verify_chain)": core,
        "SDK (parse + verify_chain)": sdk,
        f"  {len(parsed)} ML-DSA-65 verifications": signatures,
        # signed_bytes() is cached on a parsed statement: this is its work, uncached.
        f"  {len(parsed)} statements' canonical JSON (JCS)": lambda: [
            jcs.canonicalize(a.statement.to_json()) for a in parsed
        ],
        "  parse_chain": lambda: sdk_chain.parse_chain(body),
    }


def verification_table(budget: Budget) -> tuple[Table, dict[str, object]]:
    table = Table(
        key="sdk_verify",
        title="Receipts and attestation chains checked on the client: the SDK vs the core, the same inputs",
        columns=[
            Column("what", "what"),
            Column("op", "op"),
            Column("median_us", "median µs", ",.1f"),
            Column("p99_us", "p99 µs", ",.1f"),
            Column("vs_core", "x core", ".2f"),
            Column("share", "% of SDK", ".0f"),
        ],
        notes=[
            (
                f"receipt: leaf of a {RECEIPT_LOG_SIZE:,}-entry log, its checkpoint signed by Ed25519, "
                "ML-DSA-65 and Falcon-512 (the deployment's checkpoint keys), every signature checked and "
                "required; the SDK reads the API's JSON form, the core its Receipt.from_dict of it"
            ),
            (
                "chain: 7 statements (context, trust, 4 votes, tally) from the API's JSON; the core verifies "
                "ML-DSA-65 with liboqs, the SDK with cryptography/OpenSSL (Falcon-512 needs liboqs in both)"
            ),
        ],
    )
    summary: dict[str, object] = {}
    for what, cases, core_name, sdk_name in (
        ("receipt", _receipt_cases(), "core", "SDK"),
        ("chain", _chain_cases(), "core (parse + verify_chain)", "SDK (parse + verify_chain)"),
    ):
        stats = measure(cases, budget)
        core_ns, sdk_ns = stats[core_name].median_ns, stats[sdk_name].median_ns
        for name, found in stats.items():
            part = name.startswith("  ")
            table.add(
                what=what,
                op=name,
                median_us=found.median_us,
                p99_us=found.p99_us,
                vs_core=None if part or name == core_name else _ratio(found.median_ns, core_ns),
                share=100 * found.median_ns / sdk_ns if part else None,
            )
        parts = {name.strip(): s.median_ns for name, s in stats.items() if name.startswith("  ")}
        largest = max(parts, key=parts.__getitem__)
        table.footer.append(
            f"   {what}: SDK {sdk_ns / 1e3:,.0f} µs, {_ratio(sdk_ns, core_ns):.2f}x the core's;"
            f" dominated by {largest} ({100 * parts[largest] / sdk_ns:.0f} %)"
        )
        summary[f"sdk_{what}_us"] = stats[sdk_name].median_us
        summary[f"sdk_{what}_vs_core"] = _ratio(sdk_ns, core_ns)
    return table, summary


def sdk_tables(*, quick: bool, budget: Budget) -> SdkBenchResult:
    """Every table of the section: loopback, the access round's open(), mock transport, grant opening,
    receipts and chains."""
    with served_api() as served:
        loopback = loopback_table(served, quick=quick)
        opening, open_summary = open_table(served, quick=quick)
    mock, mock_summary = mock_table(loopback.recorded, budget)
    grant, grant_summary = grant_table(budget)
    verified, verify_summary = verification_table(budget)
    summary = {**loopback.summary, **open_summary, **mock_summary, **grant_summary, **verify_summary}
    return SdkBenchResult([loopback.table, opening, mock, grant, verified], summary)
