"""The REST API's clients: ``Reliquary`` (sync) and ``AsyncReliquary``, over httpx.

Every route is described once, as a ``Call`` (method, path, query, body, whether it is a write); the
resource classes build calls and hand them to their client's runner, so the sync and async clients share
one description of the API and differ only in how they send. Each route is typed once too: ``Call[T]``
carries its answer's model, and a resource is ``Vaults[Sync]`` or ``Vaults[Async]``, so a type checker sees
``client.vaults.get(...)`` answer a ``VaultDetailView`` (an awaitable of one on the async client).

Retries: a call is retried, with exponential backoff and full jitter (or the ``Retry-After`` the service
sent), when the answer is ``429`` or a ``5xx``, or when no answer came (a timeout, a reset), and only when
repeating it is safe: a GET, PUT or DELETE, or a POST carrying an ``Idempotency-Key``. The SDK sends a
fresh key on every write (kept across its retries), so a retried write happens once on the service.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import os
import random
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, Generic, Literal, ParamSpec, Protocol, Self, TypeVar, overload

import httpx
from pydantic import BaseModel, ValidationError

from reliquary_sdk import models as m
from reliquary_sdk._version import __version__
from reliquary_sdk.anchors import AnchorCheck, AnchorSource, open_anchor, verify_against_anchor
from reliquary_sdk.audit import FalconPolicy, ProofError, open_checkpoint
from reliquary_sdk.auth import OAuth2Auth
from reliquary_sdk.crypto import RequesterKey
from reliquary_sdk.errors import (
    ReliquaryError,
    TimeoutError,  # noqa: A004  (the SDK's own, a TransportError)
    TransportError,
    UnexpectedResponseError,
    error_from_response,
    parse_retry_after,
)
from reliquary_sdk.monitor import LogMonitor, StaleProofError
from reliquary_sdk.opening import NotApprovedError, OpenedMemory, TrustedKeys, open_approved

__all__ = [
    "AccessRequest",
    "Answer",
    "AsyncAccessRequest",
    "AsyncReliquary",
    "Call",
    "Reliquary",
    "RetryPolicy",
]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
PolicyKind = Literal["context", "trust", "quorum"]
Json = Any
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request to the API, described without sending it."""

    method: str
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Json = None
    idempotency_key: str | None = None
    accept: str = "application/json"
    model: type[T] | None = None  # the answer's model; None: the decoded JSON (or text) as is

    def query(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if v is not None}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry and how long to wait: full jitter over an exponential ceiling."""

    retries: int = 3
    base_delay: float = 0.25
    max_delay: float = 20.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * (2**attempt)))


def _retryable_status(status: int) -> bool:
    return status == httpx.codes.TOO_MANY_REQUESTS or status >= httpx.codes.INTERNAL_SERVER_ERROR


def _safe_to_repeat(request: httpx.Request) -> bool:
    return request.method in _SAFE_METHODS or "Idempotency-Key" in request.headers


def _decode(call: Call[Any], response: httpx.Response) -> Json:
    if response.status_code == httpx.codes.NO_CONTENT or not response.content:
        return None
    if call.accept != "application/json":
        return response.text
    try:
        data = response.json()
    except ValueError:
        raise UnexpectedResponseError("the answer is not JSON", status=response.status_code) from None
    if call.model is None or not issubclass(call.model, BaseModel):
        return data
    try:
        return call.model.model_validate(data)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) or "(the body)" for e in exc.errors()[:5])
        message = f"the answer is not a {call.model.__name__} (at {where})"
        raise UnexpectedResponseError(message, status=response.status_code) from None


def _merged(first: Json, items: str, found: list[Any]) -> Json:
    """The first page, its list member holding every page's items, no further cursor."""
    if isinstance(first, BaseModel):
        return first.model_copy(update={items: found, "next_cursor": None})
    return {**first, items: found, "next_cursor": None}


class _Cursors:
    """The cursors a listing was given: one seen twice would loop for ever."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def next(self, cursor: str | None) -> str | None:
        if cursor in self._seen:
            raise UnexpectedResponseError("the service gave the same page cursor twice")
        if cursor:
            self._seen.add(cursor)
        return cursor or None


def _page(page: Json, items: str) -> tuple[list[Any], str | None]:
    """A page's items (its member ``items``) and its ``next_cursor``."""
    if isinstance(page, BaseModel):
        found, cursor = getattr(page, items, None), getattr(page, "next_cursor", None)
    elif isinstance(page, dict):
        found, cursor = page.get(items), page.get("next_cursor")
    else:
        found, cursor = None, None
    if not isinstance(found, list) or not (cursor is None or isinstance(cursor, str)):
        raise UnexpectedResponseError("the answer is not a page")
    return found, cursor


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful answer: its decoded value, its status and its headers."""

    value: Json
    status: int
    headers: httpx.Headers

    @property
    def retry_after(self) -> float | None:
        """Seconds the service asked to wait before asking again (``Retry-After``), if it said."""
        return parse_retry_after(self.headers.get("Retry-After"))


Item = TypeVar("Item")
Params = ParamSpec("Params")


class Sync:
    """The synchronous client's mode: a resource method answers its route's model."""


class Async:
    """The asyncio client's mode: a resource method answers an awaitable of it."""


Mode = TypeVar("Mode", Sync, Async)


@dataclass(frozen=True, slots=True)
class Listing(Generic[T, Item]):
    """A list route: its call, answering pages (``T``), and the page member holding the items (of type
    ``Item``, which only the type checker reads)."""

    call: Call[T]
    items: str


# --- resources: each method describes its route ----------------------------------------------------
class _Resource(Generic[Mode]):
    """Routes of one kind: ``_run`` sends a call, ``_pages`` iterates a list's items over its pages,
    ``_all`` reads every page and answers the first with the list member holding every page's items.
    ``Mode`` (``Sync`` or ``Async``) is only static: it picks the types the routes answer."""

    def __init__(
        self,
        run: Callable[[Call[Any]], Any],
        pages: Callable[[Call[Any], str], Any],
        everything: Callable[[Call[Any], str], Any],
    ) -> None:
        self._run = run
        self._pages = pages
        self._all = everything


Description = TypeVar("Description")


class _Method(ABC, Generic[Params, Description]):
    """A resource method made from a function describing its route (written once for both clients):
    the bound method sends the description with the resource's runner. The subclasses' overloaded
    ``__get__`` give each client's static answer type; at run time the runner's answer is returned."""

    def __init__(self, describe: Callable[Concatenate[Any, Params], Description]) -> None:
        self._describe = describe
        self.__doc__ = describe.__doc__

    @abstractmethod
    def _send(self, resource: _Resource[Any], description: Description) -> Any:
        """Hand the description to the resource's runner; the runner's answer."""

    def _bind(self, resource: _Resource[Any]) -> Callable[Params, Any]:
        describe, send = self._describe, self._send

        @functools.wraps(describe)
        def method(*args: Params.args, **kwargs: Params.kwargs) -> Any:
            return send(resource, describe(resource, *args, **kwargs))

        return method


class _Answering(_Method[Params, Description], Generic[Params, Description, T]):
    """A method answering one value: ``T`` (sync), ``Awaitable[T]`` (async)."""

    @overload
    def __get__(self, resource: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, resource: _Resource[Sync], owner: type[Any]) -> Callable[Params, T]: ...
    @overload
    def __get__(self, resource: _Resource[Async], owner: type[Any]) -> Callable[Params, Awaitable[T]]: ...
    def __get__(self, resource: _Resource[Any] | None, owner: type[Any]) -> Any:
        return self if resource is None else self._bind(resource)


class _Route(_Answering[Params, Call[T], T]):
    """One call, answering its model."""

    def _send(self, resource: _Resource[Any], description: Call[T]) -> Any:
        return resource._run(description)


class _AllPages(_Answering[Params, Listing[T, Any], T]):
    """Every page read now, answered as the first page with its list holding all the items."""

    def _send(self, resource: _Resource[Any], description: Listing[T, Any]) -> Any:
        return resource._all(description.call, description.items)


class _Pages(_Method[Params, Listing[Any, Item]]):
    """A list's items, fetched a page at a time as the iteration goes: ``Iterator[Item]`` (sync),
    ``AsyncIterator[Item]`` (async)."""

    def _send(self, resource: _Resource[Any], description: Listing[Any, Item]) -> Any:
        return resource._pages(description.call, description.items)

    @overload
    def __get__(self, resource: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, resource: _Resource[Sync], owner: type[Any]) -> Callable[Params, Iterator[Item]]: ...
    @overload
    def __get__(
        self, resource: _Resource[Async], owner: type[Any]
    ) -> Callable[Params, AsyncIterator[Item]]: ...
    def __get__(self, resource: _Resource[Any] | None, owner: type[Any]) -> Any:
        return self if resource is None else self._bind(resource)


Body = Mapping[str, Any] | m.RequestBody


def _dump(value: Body) -> dict[str, Any]:
    """A body member given as a model or as a mapping, as JSON."""
    return value.body() if isinstance(value, m.RequestBody) else dict(value)


def _key(idempotency_key: str | None) -> str:
    return idempotency_key or str(uuid.uuid4())


class Vaults(_Resource[Mode]):
    @_Route
    def create(
        self,
        vault_id: str,
        *,
        custodians: Sequence[Body] | None = None,
        recovery_threshold: int | None = None,
        permanent_storage: str | None = None,
        acknowledge_permanence: bool = False,
        idempotency_key: str | None = None,
    ) -> Call[m.CreateVaultResult]:
        """A new vault. ``permanent_storage="ipfs"`` or ``"arweave"`` keeps every item body there for good
        (erasure is crypto-shredding only), and needs ``acknowledge_permanence=True``."""
        body: dict[str, Any] = {"vault_id": vault_id}
        if custodians is not None:
            body["custodians"] = [_dump(c) for c in custodians]
        if recovery_threshold is not None:
            body["recovery_threshold"] = recovery_threshold
        if permanent_storage is not None:
            body["permanent_storage"] = permanent_storage
        if acknowledge_permanence:
            body["acknowledge_permanence"] = True
        return Call(
            "POST",
            "/v1/vaults",
            json=body,
            idempotency_key=_key(idempotency_key),
            model=m.CreateVaultResult,
        )

    @_Pages
    def list(self, *, limit: int | None = None) -> Listing[m.VaultList, m.VaultView]:
        """Every vault the token may read, page by page as the iteration goes."""
        return Listing(Call("GET", "/v1/vaults", params={"limit": limit}, model=m.VaultList), "vaults")

    @_Route
    def get(self, vault_id: str) -> Call[m.VaultDetailView]:
        return Call("GET", f"/v1/vaults/{_seg(vault_id)}", model=m.VaultDetailView)

    @_Route
    def get_policy(self, vault_id: str, kind: PolicyKind) -> Call[m.PolicyView]:
        return Call("GET", f"/v1/vaults/{_seg(vault_id)}/policies/{_seg(kind)}", model=m.PolicyView)

    @_Route
    def put_policy(
        self,
        vault_id: str,
        kind: PolicyKind,
        policy: Body,
        *,
        idempotency_key: str | None = None,
    ) -> Call[m.PolicyView]:
        path = f"/v1/vaults/{_seg(vault_id)}/policies/{_seg(kind)}"
        return Call(
            "PUT", path, json=_dump(policy), idempotency_key=_key(idempotency_key), model=m.PolicyView
        )

    @_Route
    def rotate_key(self, vault_id: str, *, idempotency_key: str | None = None) -> Call[m.RotateResult]:
        path = f"/v1/vaults/{_seg(vault_id)}/keys/rotate"
        return Call("POST", path, idempotency_key=_key(idempotency_key), model=m.RotateResult)

    @_Route
    def rewrap_keys(self, vault_id: str, *, idempotency_key: str | None = None) -> Call[m.RewrapResult]:
        path = f"/v1/vaults/{_seg(vault_id)}/keys/rewrap"
        return Call("POST", path, idempotency_key=_key(idempotency_key), model=m.RewrapResult)

    @_Route
    def retire_key(
        self, vault_id: str, key_version: int, *, idempotency_key: str | None = None
    ) -> Call[m.RetireResult]:
        path = f"/v1/vaults/{_seg(vault_id)}/keys/{int(key_version)}/retire"
        return Call("POST", path, idempotency_key=_key(idempotency_key), model=m.RetireResult)

    @_Route
    def issue_nonce(self, vault_id: str, *, idempotency_key: str | None = None) -> Call[m.Nonce]:
        path = f"/v1/vaults/{_seg(vault_id)}/nonces"
        return Call("POST", path, idempotency_key=_key(idempotency_key), model=m.Nonce)


def _owner(user_id: str | None, agent_id: str | None, run_id: str | None) -> dict[str, str | None]:
    return {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}


class Memories(_Resource[Mode]):
    @_Route
    def add(
        self,
        vault_id: str,
        text: str | None = None,
        *,
        content: bytes | str | None = None,
        content_type: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        ttl_seconds: int | None = None,
        sensitivity: str | None = None,
        memory_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[m.SealResult]:
        """Seal a memory: ``text``, or ``content`` (bytes, or already base64); exactly one of user/agent/run
        id: ``client.memories.add(vault, "prefers email", user_id="customer-42")``."""
        if isinstance(content, bytes | bytearray | memoryview):
            content = base64.b64encode(bytes(content)).decode("ascii")
        body = {
            "text": text,
            "content": content,
            "content_type": content_type,
            **_owner(user_id, agent_id, run_id),
            "tags": dict(tags) if tags is not None else None,
            "ttl_seconds": ttl_seconds,
            "sensitivity": sensitivity,
            "memory_id": memory_id,
        }
        body = {k: v for k, v in body.items() if v is not None}
        path = f"/v1/vaults/{_seg(vault_id)}/memories"
        return Call("POST", path, json=body, idempotency_key=_key(idempotency_key), model=m.SealResult)

    @_Pages
    def list(
        self,
        vault_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        limit: int | None = None,
    ) -> Listing[m.MemoryList, m.MemoryView]:
        params = {**_owner(user_id, agent_id, run_id), "limit": limit}
        return Listing(
            Call("GET", f"/v1/vaults/{_seg(vault_id)}/memories", params=params, model=m.MemoryList),
            "memories",
        )

    @_Route
    def get(self, vault_id: str, memory_id: str) -> Call[m.MemoryDetail]:
        return Call("GET", f"/v1/vaults/{_seg(vault_id)}/memories/{_seg(memory_id)}", model=m.MemoryDetail)

    @_Route
    def delete(
        self, vault_id: str, memory_id: str, *, idempotency_key: str | None = None
    ) -> Call[m.ShredResult]:
        path = f"/v1/vaults/{_seg(vault_id)}/memories/{_seg(memory_id)}"
        return Call("DELETE", path, idempotency_key=_key(idempotency_key), model=m.ShredResult)

    @_Route
    def forget(
        self,
        vault_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[m.ForgetResult]:
        """One bounded forget call; ``complete: false`` in the answer means call again."""
        path = f"/v1/vaults/{_seg(vault_id)}/memories"
        params = _owner(user_id, agent_id, run_id)
        return Call(
            "DELETE", path, params=params, idempotency_key=_key(idempotency_key), model=m.ForgetResult
        )

    @_AllPages
    def history(
        self, vault_id: str, memory_id: str, *, limit: int | None = None
    ) -> Listing[m.History, m.DecisionView]:
        """A memory's whole history: its versions, its vault's key events and every access decision,
        read page by page (``limit`` decisions a page) until the last (``next_cursor`` is then None)."""
        return Listing(_history_call(vault_id, memory_id, limit), "decisions")

    @_Pages
    def decisions(
        self, vault_id: str, memory_id: str, *, limit: int | None = None
    ) -> Listing[m.History, m.DecisionView]:
        """The access decisions on a memory, fetched a page at a time as the iteration goes."""
        return Listing(_history_call(vault_id, memory_id, limit), "decisions")


def _history_call(vault_id: str, memory_id: str, limit: int | None) -> Call[m.History]:
    path = f"/v1/vaults/{_seg(vault_id)}/memories/{_seg(memory_id)}/history"
    return Call("GET", path, params={"limit": limit}, model=m.History)


class Audit(_Resource[Mode]):
    @_Route
    def checkpoint(self) -> Call[str]:
        """The latest signed checkpoint, the signed note's text byte for byte."""
        return Call("GET", "/v1/audit/checkpoint", accept="text/plain")

    @_Route
    def entry(self, index: int, *, tree_size: int | None = None) -> Call[m.EntryProof]:
        """The entry and its inclusion proof."""
        return Call(
            "GET", f"/v1/audit/entries/{int(index)}", params={"tree_size": tree_size}, model=m.EntryProof
        )

    @_Route
    def consistency(self, first: int, second: int | None = None) -> Call[m.ConsistencyProof]:
        return Call(
            "GET",
            "/v1/audit/consistency",
            params={"first": first, "second": second},
            model=m.ConsistencyProof,
        )

    @_Route
    def keys(self) -> Call[m.AuditKeys]:
        return Call("GET", "/v1/audit/keys", model=m.AuditKeys)

    @_Route
    def anchors(self, *, limit: int | None = None) -> Call[m.AnchorList]:
        """The log's checkpoints anchored on IPFS or Arweave, newest first (``limit`` 1..100)."""
        return Call("GET", "/v1/audit/anchors", params={"limit": limit}, model=m.AnchorList)

    @_Route
    def export(
        self, start: int, end: int | None = None, *, idempotency_key: str | None = None
    ) -> Call[m.ExportView]:
        body = {"start": start} if end is None else {"start": start, "end": end}
        return Call(
            "POST",
            "/v1/audit/exports",
            json=body,
            idempotency_key=_key(idempotency_key),
            model=m.ExportView,
        )


class People(_Resource[Mode]):
    @_Route
    def create(
        self, name: str, roles: Sequence[Body], *, idempotency_key: str | None = None
    ) -> Call[m.CreatedPerson]:
        body = {"name": name, "roles": [_dump(r) for r in roles]}
        return Call(
            "POST", "/v1/people", json=body, idempotency_key=_key(idempotency_key), model=m.CreatedPerson
        )

    @_Route
    def list(self) -> Call[m.PersonList]:
        return Call("GET", "/v1/people", model=m.PersonList)

    @_Route
    def get(self, person_id: str) -> Call[m.PersonView]:
        return Call("GET", f"/v1/people/{_seg(person_id)}", model=m.PersonView)

    @_Route
    def new_enrollment(self, person_id: str, *, idempotency_key: str | None = None) -> Call[m.EnrollmentView]:
        path = f"/v1/people/{_seg(person_id)}/enrollment"
        return Call("POST", path, idempotency_key=_key(idempotency_key), model=m.EnrollmentView)

    @_Route
    def set_roles(
        self, person_id: str, roles: Sequence[Body], *, idempotency_key: str | None = None
    ) -> Call[m.PersonView]:
        body = {"roles": [_dump(r) for r in roles]}
        path = f"/v1/people/{_seg(person_id)}/roles"
        return Call("PUT", path, json=body, idempotency_key=_key(idempotency_key), model=m.PersonView)

    @_Route
    def revoke(self, person_id: str, *, idempotency_key: str | None = None) -> Call[m.PersonView]:
        return Call(
            "DELETE",
            f"/v1/people/{_seg(person_id)}",
            idempotency_key=_key(idempotency_key),
            model=m.PersonView,
        )

    @_Route
    def remove_credential(
        self, person_id: str, credential_id: str, *, idempotency_key: str | None = None
    ) -> Call[None]:
        path = f"/v1/people/{_seg(person_id)}/credentials/{_seg(credential_id)}"
        return Call("DELETE", path, idempotency_key=_key(idempotency_key))


class Approvals(_Resource[Mode]):
    @_Route
    def list(self) -> Call[m.ApprovalList]:
        return Call("GET", "/v1/approvals", model=m.ApprovalList)

    @_Route
    def challenge(
        self, request_id: str, decision: str, *, idempotency_key: str | None = None
    ) -> Call[m.ApprovalChallenge]:
        path = f"/v1/approvals/{_seg(request_id)}/challenge"
        body = {"decision": decision}
        return Call("POST", path, json=body, idempotency_key=_key(idempotency_key), model=m.ApprovalChallenge)

    @_Route
    def answer(
        self,
        request_id: str,
        *,
        decision: str,
        nonce: str,
        issued_at: int,
        credential: Mapping[str, Any],
        idempotency_key: str | None = None,
    ) -> Call[m.ApprovalState]:
        body = {"decision": decision, "nonce": nonce, "issued_at": issued_at, "credential": dict(credential)}
        path = f"/v1/approvals/{_seg(request_id)}"
        return Call("POST", path, json=body, idempotency_key=_key(idempotency_key), model=m.ApprovalState)


class Tenants(_Resource[Mode]):
    @_Route
    def create(
        self, tenant_id: str, name: str, *, idempotency_key: str | None = None
    ) -> Call[m.CreatedTenant]:
        """A customer tenant and its first tenant-admin client, with its secret (shown once)."""
        body = {"tenant_id": tenant_id, "name": name}
        return Call(
            "POST", "/v1/tenants", json=body, idempotency_key=_key(idempotency_key), model=m.CreatedTenant
        )


class Clients(_Resource[Mode]):
    @_Route
    def create(
        self,
        name: str,
        roles: Sequence[Body],
        *,
        did: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[m.CreatedClient]:
        """A client and its secret (shown once); with a ``did`` (a did:key) no secret: private_key_jwt."""
        body: dict[str, Any] = {"name": name, "roles": [_dump(r) for r in roles]}
        if did is not None:
            body["did"] = did
        return Call(
            "POST", "/v1/clients", json=body, idempotency_key=_key(idempotency_key), model=m.CreatedClient
        )

    @_Route
    def list(self) -> Call[m.ClientList]:
        return Call("GET", "/v1/clients", model=m.ClientList)

    @_Route
    def get(self, client_id: str) -> Call[m.ClientView]:
        return Call("GET", f"/v1/clients/{_seg(client_id)}", model=m.ClientView)

    @_Route
    def set_roles(
        self, client_id: str, roles: Sequence[Body], *, idempotency_key: str | None = None
    ) -> Call[m.ClientView]:
        body = {"roles": [_dump(r) for r in roles]}
        path = f"/v1/clients/{_seg(client_id)}/roles"
        return Call("PUT", path, json=body, idempotency_key=_key(idempotency_key), model=m.ClientView)

    @_Route
    def rotate_secret(
        self, client_id: str, *, revoke_tokens: bool = False, idempotency_key: str | None = None
    ) -> Call[m.NewSecret]:
        """A new secret (the old one stops at once); ``revoke_tokens`` also refuses earlier tokens."""
        body = {"revoke_tokens": revoke_tokens}
        path = f"/v1/clients/{_seg(client_id)}/secret"
        return Call("POST", path, json=body, idempotency_key=_key(idempotency_key), model=m.NewSecret)

    @_Route
    def revoke(self, client_id: str, *, idempotency_key: str | None = None) -> Call[m.ClientView]:
        path = f"/v1/clients/{_seg(client_id)}"
        return Call("DELETE", path, idempotency_key=_key(idempotency_key), model=m.ClientView)


class WebAuthn(_Resource[Mode]):
    """Passkey ceremonies. Registration runs under a person's enrollment token (``BearerToken``);
    sign-in needs no token and answers a ``Session`` whose token the approval routes take."""

    @_Route
    def registration_options(self, *, idempotency_key: str | None = None) -> Call[m.CeremonyView]:
        return _ceremony("/v1/webauthn/registration/options", {}, m.CeremonyView, idempotency_key)

    @_Route
    def register(
        self,
        challenge_id: str,
        credential: Mapping[str, Any],
        *,
        label: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[m.Registered]:
        body: dict[str, Any] = {"challenge_id": challenge_id, "credential": dict(credential)}
        if label is not None:
            body["label"] = label
        return _ceremony("/v1/webauthn/registration/verify", body, m.Registered, idempotency_key)

    @_Route
    def authentication_options(self, *, idempotency_key: str | None = None) -> Call[m.CeremonyView]:
        return _ceremony("/v1/webauthn/authentication/options", {}, m.CeremonyView, idempotency_key)

    @_Route
    def sign_in(
        self, challenge_id: str, credential: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Call[m.Session]:
        body = {"challenge_id": challenge_id, "credential": dict(credential)}
        return _ceremony("/v1/webauthn/authentication/verify", body, m.Session, idempotency_key)


ModelT = TypeVar("ModelT", bound=BaseModel)


def _ceremony(
    path: str, body: dict[str, Any], model: type[ModelT], idempotency_key: str | None
) -> Call[ModelT]:
    return Call("POST", path, json=body, idempotency_key=_key(idempotency_key), model=model)


class WellKnown(_Resource[Mode]):
    """The service's published keys: no token needed."""

    @_Route
    def jwks(self) -> Call[m.JsonWebKeySet]:
        """The access tokens' ES256 keys, by ``kid``."""
        return Call("GET", "/.well-known/jwks.json", model=m.JsonWebKeySet)

    @_Route
    def did(self) -> Call[m.DidDocument]:
        """The service's did:web document: its checkpoint, stage and token keys."""
        return Call("GET", "/.well-known/did.json", model=m.DidDocument)


_HEALTH = Call("GET", "/v1/health", model=m.Health)


def _seg(value: str) -> str:
    """A path segment: percent-encoded, so an id can never reach another route."""
    if not isinstance(value, str) or not value:
        raise ValueError("a path id is a non-empty string")
    return httpx.URL("/").copy_with(path="/" + value.replace("/", "%2F")).raw_path.decode("ascii").lstrip("/")


def _new_access_call(
    *,
    vault_id: str,
    memory_id: str,
    request_id: str,
    requester_public_key: str,
    context_proof: Body,
    nonce: str,
    purpose: str | None,
) -> Call[m.AccessRequestView]:
    body: dict[str, Any] = {
        "vault_id": vault_id,
        "memory_id": memory_id,
        "requester_public_key": requester_public_key,
        "context_proof": _dump(context_proof),
        "nonce": nonce,
    }
    if purpose is not None:
        body["purpose"] = purpose
    # The request id is the Idempotency-Key: the context proof binds it, so the caller chooses it.
    return Call(
        "POST", "/v1/access-requests", json=body, idempotency_key=request_id, model=m.AccessRequestView
    )


# --- the runners ---------------------------------------------------------------------------------
class _Base:
    def __init__(
        self,
        base_url: str,
        *,
        auth: OAuth2Auth | httpx.Auth | None,
        timeout: float | httpx.Timeout,
        retries: int | RetryPolicy,
        rng: random.Random | None,
        trusted_keys: TrustedKeys | None = None,
        monitor: LogMonitor | None = None,
        falcon: FalconPolicy = "check",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Pinned keys are never replaced; without them the published ones are fetched once and kept.
        self._trusted = trusted_keys
        self._monitor = monitor
        self.falcon: FalconPolicy = falcon
        if isinstance(auth, OAuth2Auth):
            auth.bind(self.base_url)
        self._auth = auth
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry = retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries=retries)
        self._rng = rng or random.SystemRandom()
        self._headers = {"User-Agent": f"reliquary-sdk/{__version__}"}

    def tenant_id(self) -> str:
        """The caller's tenant, from its current access token's ``tenant`` claim (fetched by the last
        call). ``ValueError`` before any call, or with an auth that is no ``OAuth2Auth``."""
        token = self._auth.cached_token if isinstance(self._auth, OAuth2Auth) else None
        if token is None:
            raise ValueError("no access token yet to read the tenant from: pass tenant_id=")
        return token_tenant(token)

    def _monitor_for(self, keys: TrustedKeys) -> LogMonitor:
        """The client's log monitor: the one given, else one over the JSON file in the state directory,
        trusting the checkpoint keys the client trusts (every one must have signed)."""
        if self._monitor is None:
            path = default_state_dir() / "checkpoints.json"
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._monitor = LogMonitor(keys.verifiers, path=path, required=keys.verifiers, falcon=self.falcon)
        return self._monitor

    def _request(
        self, http: httpx.Client | httpx.AsyncClient, call: Call[Any], cursor: str | None = None
    ) -> httpx.Request:
        params = call.query()
        if cursor is not None:
            params["cursor"] = cursor
        headers = {"Accept": call.accept}
        if call.idempotency_key is not None:
            headers["Idempotency-Key"] = call.idempotency_key
        return http.build_request(call.method, call.path, params=params, json=call.json, headers=headers)

    def _outcome(
        self, request: httpx.Request, response: httpx.Response, attempt: int
    ) -> float | ReliquaryError:
        """The delay before a retry, or the error to raise."""
        error = error_from_response(response)
        if (
            _retryable_status(response.status_code)
            and _safe_to_repeat(request)
            and attempt < self.retry.retries
        ):
            return self.retry.delay(attempt, error.retry_after, self._rng)
        return error

    def _failure(self, request: httpx.Request, exc: Exception, attempt: int) -> float | ReliquaryError:
        if isinstance(exc, httpx.TimeoutException):
            error: ReliquaryError = TimeoutError("the request timed out")
        elif isinstance(exc, httpx.TransportError):
            error = TransportError("the request got no answer")
        elif isinstance(exc, ReliquaryError):  # the token endpoint's, from the auth flow
            error = exc
        else:
            raise exc
        if error.retryable and _safe_to_repeat(request) and attempt < self.retry.retries:
            return self.retry.delay(attempt, error.retry_after, self._rng)
        return error


class Reliquary(_Base):
    """The synchronous client. ``with Reliquary(url, auth=ClientCredentials(id, secret)) as api: ...``"""

    def __init__(
        self,
        base_url: str,
        *,
        auth: OAuth2Auth | httpx.Auth | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retries: int | RetryPolicy = 3,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        trusted_keys: TrustedKeys | None = None,
        monitor: LogMonitor | None = None,
        falcon: FalconPolicy = "check",
    ) -> None:
        """``trusted_keys`` pins the keys approvals are checked with (else ``GET /v1/audit/keys``'s,
        fetched once); ``monitor`` remembers the log's checkpoints (else a JSON file under
        ``default_state_dir()``); ``falcon``: ``"skip"`` leaves Falcon-512 checkpoint lines unchecked
        where the ``falcon`` extra is missing (see ``audit.open_note``)."""
        super().__init__(
            base_url,
            auth=auth,
            timeout=timeout,
            retries=retries,
            rng=rng,
            trusted_keys=trusted_keys,
            monitor=monitor,
            falcon=falcon,
        )
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url, timeout=self._timeout, transport=transport, headers=self._headers
        )
        self.vaults: Vaults[Sync] = Vaults(self.call, self.paginate, self.everything)
        self.memories: Memories[Sync] = Memories(self.call, self.paginate, self.everything)
        self.audit: Audit[Sync] = Audit(self.call, self.paginate, self.everything)
        self.people: People[Sync] = People(self.call, self.paginate, self.everything)
        self.approvals: Approvals[Sync] = Approvals(self.call, self.paginate, self.everything)
        self.tenants: Tenants[Sync] = Tenants(self.call, self.paginate, self.everything)
        self.clients: Clients[Sync] = Clients(self.call, self.paginate, self.everything)
        self.webauthn: WebAuthn[Sync] = WebAuthn(self.call, self.paginate, self.everything)
        self.well_known: WellKnown[Sync] = WellKnown(self.call, self.paginate, self.everything)
        self.access = Access(self)

    def __enter__(self) -> Reliquary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def health(self) -> Json:
        return self.call(_HEALTH)

    def trusted_keys(self) -> TrustedKeys:
        """The keys approvals are checked with: the pinned ones, else the published ones (fetched once)."""
        if self._trusted is None:
            self._trusted = TrustedKeys.from_api(self.audit.keys())
        return self._trusted

    def observe_checkpoint(self, note: bytes) -> None:
        """Feed a checkpoint of the caller's tenant log through the client's monitor (fetching the
        consistency proof it needs): ``LogForkError`` if it contradicts one seen before."""
        keys = self.trusted_keys()
        monitor = self._monitor_for(keys)
        monitor.observe(keys.origin, note, lambda a, b: _proof_hashes(self.audit.consistency(a, b)))

    def audit_anchors(self, *, limit: int | None = None) -> m.AnchorList:
        """The tenant log's anchored checkpoints, newest first (``GET /v1/audit/anchors``)."""
        return self.audit.anchors(limit=limit)

    def verify_newest_anchor(
        self, source: AnchorSource, *, presented: bytes | None = None
    ) -> AnchorCheck | None:
        """Fetch the newest anchored checkpoint from ``source`` (never from the service), check its bytes
        and signatures, and prove ``presented`` (a signed checkpoint note; default: the service's latest)
        of one history with it. ``None`` when nothing is anchored yet. ``SplitViewError`` with both notes
        when they are not one history; ``AnchorUnavailableError`` when the gateway does not answer;
        ``AnchorIntegrityError`` when it serves another body or the listing does not describe it."""
        keys = self.trusted_keys()
        listing = self.audit.anchors(limit=1)
        if listing.origin != keys.origin:
            raise UnexpectedResponseError("the anchor listing is for another log")
        if not listing.anchors:
            return None
        anchor = listing.anchors[0]
        note = source.fetch(anchor)
        trusted = keys.verifiers
        open_anchor(anchor, note, trusted, origin=keys.origin, required=trusted, falcon=self.falcon)
        if presented is None:
            presented = str(self.audit.checkpoint()).encode("utf-8")
        return verify_against_anchor(
            presented,
            note,
            trusted,
            origin=keys.origin,
            proof=lambda a, b: _proof_hashes(self.audit.consistency(a, b)),
            required=trusted,
            falcon=self.falcon,
            anchor=anchor,
        )

    def call(self, call: Call[Any], *, cursor: str | None = None) -> Json:
        """Send ``call``, retrying where safe; its decoded answer, or a typed error."""
        return self.exchange(call, cursor=cursor).value

    def exchange(self, call: Call[Any], *, cursor: str | None = None) -> Answer:
        """As ``call``, with the answer's status and headers (``Retry-After``, ``Location``)."""
        request = self._request(self._http, call, cursor)
        attempt = 0
        while True:
            try:
                response = self._http.send(request, auth=self._auth or httpx.USE_CLIENT_DEFAULT)
            except (httpx.TransportError, ReliquaryError) as exc:
                outcome = self._failure(request, exc, attempt)
            else:
                if response.is_success:
                    return Answer(_decode(call, response), response.status_code, response.headers)
                outcome = self._outcome(request, response, attempt)
            if isinstance(outcome, ReliquaryError):
                raise outcome
            self._sleep(outcome)
            attempt += 1

    def paginate(self, call: Call[Any], items: str) -> Iterator[Json]:
        """Each item of every page, fetching the next page (``next_cursor``) only when reached."""
        cursors, cursor = _Cursors(), None
        while True:
            found, cursor = _page(self.call(call, cursor=cursor), items)
            yield from found
            if not cursors.next(cursor):
                return

    def everything(self, call: Call[Any], items: str) -> Json:
        """Every page read now; the first, with ``items`` holding all of theirs."""
        first = self.call(call)
        found, cursor = _page(first, items)
        cursors, every = _Cursors(), list(found)
        while cursors.next(cursor):
            found, cursor = _page(self.call(call, cursor=cursor), items)
            every.extend(found)
        return _merged(first, items, every)


class AsyncReliquary(_Base):
    """The asyncio client, the same resources with ``await`` (and ``async for`` over lists)."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: OAuth2Auth | httpx.Auth | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retries: int | RetryPolicy = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        trusted_keys: TrustedKeys | None = None,
        monitor: LogMonitor | None = None,
        falcon: FalconPolicy = "check",
    ) -> None:
        super().__init__(
            base_url,
            auth=auth,
            timeout=timeout,
            retries=retries,
            rng=rng,
            trusted_keys=trusted_keys,
            monitor=monitor,
            falcon=falcon,
        )
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=self._timeout, transport=transport, headers=self._headers
        )
        self.vaults: Vaults[Async] = Vaults(self.call, self.paginate, self.everything)
        self.memories: Memories[Async] = Memories(self.call, self.paginate, self.everything)
        self.audit: Audit[Async] = Audit(self.call, self.paginate, self.everything)
        self.people: People[Async] = People(self.call, self.paginate, self.everything)
        self.approvals: Approvals[Async] = Approvals(self.call, self.paginate, self.everything)
        self.tenants: Tenants[Async] = Tenants(self.call, self.paginate, self.everything)
        self.clients: Clients[Async] = Clients(self.call, self.paginate, self.everything)
        self.webauthn: WebAuthn[Async] = WebAuthn(self.call, self.paginate, self.everything)
        self.well_known: WellKnown[Async] = WellKnown(self.call, self.paginate, self.everything)
        self.access = AsyncAccess(self)

    async def __aenter__(self) -> AsyncReliquary:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def health(self) -> Json:
        return await self.call(_HEALTH)

    async def trusted_keys(self) -> TrustedKeys:
        if self._trusted is None:
            self._trusted = TrustedKeys.from_api(await self.audit.keys())
        return self._trusted

    async def observe_checkpoint(self, note: bytes) -> None:
        keys = await self.trusted_keys()
        monitor = self._monitor_for(keys)
        # The monitor asks for its proof synchronously: fetch the one it will need first.
        needed = _needed_proof(monitor, keys.origin, note)
        proof = [] if needed is None else _proof_hashes(await self.audit.consistency(*needed))

        def fetched(first: int, second: int) -> list[bytes]:
            if (first, second) != needed:
                raise StaleProofError("the remembered checkpoint moved on: open again")
            return proof

        monitor.observe(keys.origin, note, fetched)

    async def audit_anchors(self, *, limit: int | None = None) -> m.AnchorList:
        """The tenant log's anchored checkpoints, newest first (``GET /v1/audit/anchors``)."""
        return await self.audit.anchors(limit=limit)

    async def verify_newest_anchor(
        self, source: AnchorSource, *, presented: bytes | None = None
    ) -> AnchorCheck | None:
        """``Reliquary.verify_newest_anchor``, awaited: the gateway is read in a worker thread and the one
        consistency proof the check needs is fetched first."""
        keys = await self.trusted_keys()
        listing = await self.audit.anchors(limit=1)
        if listing.origin != keys.origin:
            raise UnexpectedResponseError("the anchor listing is for another log")
        if not listing.anchors:
            return None
        anchor = listing.anchors[0]
        note = await asyncio.to_thread(source.fetch, anchor)
        trusted = keys.verifiers
        anchored = open_anchor(
            anchor, note, trusted, origin=keys.origin, required=trusted, falcon=self.falcon
        )
        if presented is None:
            presented = str(await self.audit.checkpoint()).encode("utf-8")
        shown = open_checkpoint(presented, trusted, origin=keys.origin, required=trusted, falcon=self.falcon)
        needed = (min(anchored.size, shown.size), max(anchored.size, shown.size))
        proof = [] if needed[0] == needed[1] else _proof_hashes(await self.audit.consistency(*needed))

        def fetched(first: int, second: int) -> list[bytes]:
            if (first, second) != needed:
                raise StaleProofError("the check asked for another proof than the one fetched")
            return proof

        return verify_against_anchor(
            presented,
            note,
            trusted,
            origin=keys.origin,
            proof=fetched,
            required=trusted,
            falcon=self.falcon,
            anchor=anchor,
        )

    async def call(self, call: Call[Any], *, cursor: str | None = None) -> Json:
        return (await self.exchange(call, cursor=cursor)).value

    async def exchange(self, call: Call[Any], *, cursor: str | None = None) -> Answer:
        request = self._request(self._http, call, cursor)
        attempt = 0
        while True:
            try:
                response = await self._http.send(request, auth=self._auth or httpx.USE_CLIENT_DEFAULT)
            except (httpx.TransportError, ReliquaryError) as exc:
                outcome = self._failure(request, exc, attempt)
            else:
                if response.is_success:
                    return Answer(_decode(call, response), response.status_code, response.headers)
                outcome = self._outcome(request, response, attempt)
            if isinstance(outcome, ReliquaryError):
                raise outcome
            await self._sleep(outcome)
            attempt += 1

    async def paginate(self, call: Call[Any], items: str) -> AsyncIterator[Json]:
        cursors, cursor = _Cursors(), None
        while True:
            found, cursor = _page(await self.call(call, cursor=cursor), items)
            for item in found:
                yield item
            if not cursors.next(cursor):
                return

    async def everything(self, call: Call[Any], items: str) -> Json:
        first = await self.call(call)
        found, cursor = _page(first, items)
        cursors, every = _Cursors(), list(found)
        while cursors.next(cursor):
            found, cursor = _page(await self.call(call, cursor=cursor), items)
            every.extend(found)
        return _merged(first, items, every)


# --- access requests ---------------------------------------------------------------------------
_DECIDED = frozenset({"approved", "denied", "failed"})


def _access_path(request_id: str) -> Call[m.AccessRequestView]:
    return Call("GET", f"/v1/access-requests/{_seg(request_id)}", model=m.AccessRequestView)


def _item_path(request_id: str) -> Call[m.SealedItemView]:
    return Call("GET", f"/v1/access-requests/{_seg(request_id)}/item", model=m.SealedItemView)


class Prover(Protocol):
    """What proves a request's context (``prove.Device``, or any object of this shape): the context proof
    ``POST /v1/access-requests`` takes, bound to these values."""

    def prove(
        self,
        *,
        tenant_id: str,
        vault_id: str,
        item_id: str,
        request_id: str,
        requester_public_key: bytes,
        nonce: str,
    ) -> Mapping[str, Any]: ...


STATE_DIR_ENV = "RELIQUARY_STATE_DIR"


def default_state_dir() -> Path:
    """Where the SDK keeps what it remembers (the log checkpoints it saw): ``$RELIQUARY_STATE_DIR``, else
    ``$XDG_STATE_HOME/reliquary``, else ``~/.local/state/reliquary``."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "reliquary"


def token_tenant(token: str) -> str:
    """The ``tenant`` claim of an access token (read, not verified: the service checks what the proof
    binds, so a wrong value only makes the proof fail). ``ValueError`` when the token carries none."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        raise ValueError("not a JWT") from None
    tenant = claims.get("tenant") if isinstance(claims, dict) else None
    if not isinstance(tenant, str) or not tenant:
        raise ValueError("the token names no tenant")
    return tenant


def _proof_hashes(answer: Json) -> list[bytes]:
    proof = answer.proof if isinstance(answer, m.ConsistencyProof) else None
    if proof is None:
        raise UnexpectedResponseError("the answer is not a consistency proof")
    try:
        return [base64.b64decode(h, validate=True) for h in proof]
    except (binascii.Error, ValueError):
        raise ProofError("a proof hash is not base64") from None


def _needed_proof(monitor: LogMonitor, origin: str, note: bytes) -> tuple[int, int] | None:
    """The (first, second) sizes of the consistency proof ``monitor.observe`` will ask for ``note``."""
    known = monitor.latest(origin)
    size = _note_size(note)
    if known is None or size is None or size == known.size:
        return None
    return (min(size, known.size), max(size, known.size))


def _note_size(note: bytes) -> int | None:
    lines = note.split(b"\n", 3)
    try:
        return int(lines[1]) if len(lines) > 2 else None
    except ValueError:
        return None


class _Handle:
    """What both handles share: the last view, the service's ``Retry-After``, the polling schedule."""

    def __init__(self, request_id: str, answer: Answer | None) -> None:
        self.request_id = request_id
        self.view: m.AccessRequestView | None = None
        self.retry_after: float | None = None
        if answer is not None:
            self._take(answer)

    def _take(self, answer: Answer) -> m.AccessRequestView:
        if not isinstance(answer.value, m.AccessRequestView):
            raise UnexpectedResponseError("the answer is not an access request")
        self.view = answer.value
        self.retry_after = answer.retry_after
        return answer.value

    @property
    def status(self) -> str:
        return self.view.status if self.view is not None else "unknown"

    @property
    def decided(self) -> bool:
        return self.status in _DECIDED

    def _decided_view(self) -> m.AccessRequestView:
        if self.view is None:  # pragma: no cover - decided implies a view
            raise UnexpectedResponseError("no view of the access request")
        return self.view

    def _next_delay(self, backoff: float, deadline: float) -> float:
        """The service's ``Retry-After`` when it sent one, else ``backoff``; past ``deadline``: give up."""
        delay = self.retry_after if self.retry_after is not None else backoff
        if time.monotonic() + delay > deadline:
            raise TimeoutError("the access request was not decided in time")
        return delay


class AccessRequest(_Handle):
    """A submitted access request: ``refresh()`` reads it, ``wait()`` polls until it is decided and
    ``open()`` opens an approved one on this side (the key it was sealed to: the one ``request`` was
    given, or ``key=``)."""

    def __init__(
        self,
        client: Reliquary,
        request_id: str,
        answer: Answer | None = None,
        *,
        key: RequesterKey | None = None,
    ) -> None:
        super().__init__(request_id, answer)
        self._client = client
        self.key = key

    def refresh(self) -> m.AccessRequestView:
        return self._take(self._client.exchange(_access_path(self.request_id)))

    def wait(
        self, *, timeout: float = 300.0, interval: float = 1.0, max_interval: float = 10.0
    ) -> m.AccessRequestView:
        """Poll until approved, denied or failed; the decided view. ``TimeoutError`` past ``timeout``.

        Each wait is the ``Retry-After`` of the last answer when it had one (the service's pace), else
        an exponential backoff from ``interval`` up to ``max_interval``.
        """
        deadline = time.monotonic() + timeout
        backoff = interval
        while not self.decided:
            self._client._sleep(self._next_delay(backoff, deadline))
            self.refresh()
            backoff = min(backoff * 2, max_interval)
        return self._decided_view()

    def open(self, *, key: RequesterKey | None = None, now: int | None = None) -> OpenedMemory:
        """Open the approved memory here: fetch the sealed item, check the grant, the envelope, the
        receipt and the attestation chain with the trusted keys (``opening.open_approved``), and feed the
        receipt's checkpoint through the client's log monitor. ``NotApprovedError`` when the request is
        not approved (pending: ``wait()`` first); ``LogForkError`` when the log contradicts one seen
        before; the check's typed error when anything does not hold."""
        view = self.view if self.decided and self.view is not None else self.refresh()
        requester = _requester_key(key or self.key)
        opening = _opening_tenant(self._client, view)
        sealed = self._client.call(_item_path(self.request_id))
        keys = self._client.trusted_keys()
        opened = open_approved(
            view,
            _sealed(sealed),
            key=requester,
            keys=keys,
            tenant_id=opening,
            now=now,
            falcon=self._client.falcon,
        )
        self._client.observe_checkpoint(opened.receipt.checkpoint)
        return opened


class AsyncAccessRequest(_Handle):
    def __init__(
        self,
        client: AsyncReliquary,
        request_id: str,
        answer: Answer | None = None,
        *,
        key: RequesterKey | None = None,
    ) -> None:
        super().__init__(request_id, answer)
        self._client = client
        self.key = key

    async def refresh(self) -> m.AccessRequestView:
        return self._take(await self._client.exchange(_access_path(self.request_id)))

    async def wait(
        self,
        *,
        timeout: float = 300.0,  # noqa: ASYNC109  (a polling deadline, as the sync handle's)
        interval: float = 1.0,
        max_interval: float = 10.0,
    ) -> m.AccessRequestView:
        deadline = time.monotonic() + timeout
        backoff = interval
        while not self.decided:
            await self._client._sleep(self._next_delay(backoff, deadline))
            await self.refresh()
            backoff = min(backoff * 2, max_interval)
        return self._decided_view()

    async def open(self, *, key: RequesterKey | None = None, now: int | None = None) -> OpenedMemory:
        view = self.view if self.decided and self.view is not None else await self.refresh()
        requester = _requester_key(key or self.key)
        opening = _opening_tenant(self._client, view)
        sealed = await self._client.call(_item_path(self.request_id))
        keys = await self._client.trusted_keys()
        opened = open_approved(
            view,
            _sealed(sealed),
            key=requester,
            keys=keys,
            tenant_id=opening,
            now=now,
            falcon=self._client.falcon,
        )
        await self._client.observe_checkpoint(opened.receipt.checkpoint)
        return opened


def _requester_key(key: RequesterKey | None) -> RequesterKey:
    if key is None:
        raise ValueError("the requester key the grant was sealed to: pass key=")
    return key


def _opening_tenant(client: _Base, view: m.AccessRequestView) -> str:
    """Refuse a request that was not approved before anything is fetched; the caller's tenant."""
    if view.status != "approved" or view.grant is None:
        raise NotApprovedError(view.status, view.reasons)
    return client.tenant_id()


def _sealed(value: Json) -> m.SealedItemView:
    if not isinstance(value, m.SealedItemView):
        raise UnexpectedResponseError("the answer is not a sealed item")
    return value


def _new_request_id() -> str:
    return f"sdk-{uuid.uuid4().hex}"


def _nonce_of(value: Json) -> str:
    if not isinstance(value, m.Nonce):
        raise UnexpectedResponseError("the answer is not a nonce")
    return value.nonce


class Access:
    def __init__(self, client: Reliquary) -> None:
        self._client = client

    def request(
        self,
        vault_id: str,
        memory_id: str,
        *,
        purpose: str,
        prove: Prover,
        key: RequesterKey,
        request_id: str | None = None,
        tenant_id: str | None = None,
    ) -> AccessRequest:
        """Ask to read a memory: a nonce from the vault, a context proof bound to this request from
        ``prove`` (a ``prove.Device``), then the request (``submit``). The handle keeps ``key`` for
        ``open()``. ``tenant_id``: the caller's tenant, else read from its access token."""
        request_id = request_id or _new_request_id()
        nonce = _nonce_of(self._client.vaults.issue_nonce(vault_id))
        proof = prove.prove(
            tenant_id=tenant_id or self._client.tenant_id(),
            vault_id=vault_id,
            item_id=memory_id,
            request_id=request_id,
            requester_public_key=key.public_bytes(),
            nonce=nonce,
        )
        handle = self.submit(
            vault_id=vault_id,
            memory_id=memory_id,
            request_id=request_id,
            requester_public_key=key.public_key_b64(),
            context_proof=proof,
            nonce=nonce,
            purpose=purpose,
        )
        handle.key = key
        return handle

    def submit(
        self,
        *,
        vault_id: str,
        memory_id: str,
        request_id: str,
        requester_public_key: str,
        context_proof: Body,
        nonce: str,
        purpose: str | None = None,
    ) -> AccessRequest:
        """The request as the API takes it, with a proof made elsewhere (bound to ``request_id``)."""
        call = _new_access_call(
            vault_id=vault_id,
            memory_id=memory_id,
            request_id=request_id,
            requester_public_key=requester_public_key,
            context_proof=context_proof,
            nonce=nonce,
            purpose=purpose,
        )
        return AccessRequest(self._client, request_id, self._client.exchange(call))

    def get(self, request_id: str, *, key: RequesterKey | None = None) -> AccessRequest:
        handle = AccessRequest(self._client, request_id, key=key)
        handle.refresh()
        return handle

    def item(self, request_id: str) -> m.SealedItemView:
        """The sealed item of one's own approved request (``GET /v1/access-requests/{id}/item``)."""
        return _sealed(self._client.call(_item_path(request_id)))


class AsyncAccess:
    def __init__(self, client: AsyncReliquary) -> None:
        self._client = client

    async def request(
        self,
        vault_id: str,
        memory_id: str,
        *,
        purpose: str,
        prove: Prover,
        key: RequesterKey,
        request_id: str | None = None,
        tenant_id: str | None = None,
    ) -> AsyncAccessRequest:
        request_id = request_id or _new_request_id()
        nonce = _nonce_of(await self._client.vaults.issue_nonce(vault_id))
        # Proving takes seconds of CPU in another process: off the event loop.
        proof = await asyncio.to_thread(
            prove.prove,
            tenant_id=tenant_id or self._client.tenant_id(),
            vault_id=vault_id,
            item_id=memory_id,
            request_id=request_id,
            requester_public_key=key.public_bytes(),
            nonce=nonce,
        )
        handle = await self.submit(
            vault_id=vault_id,
            memory_id=memory_id,
            request_id=request_id,
            requester_public_key=key.public_key_b64(),
            context_proof=proof,
            nonce=nonce,
            purpose=purpose,
        )
        handle.key = key
        return handle

    async def submit(
        self,
        *,
        vault_id: str,
        memory_id: str,
        request_id: str,
        requester_public_key: str,
        context_proof: Body,
        nonce: str,
        purpose: str | None = None,
    ) -> AsyncAccessRequest:
        call = _new_access_call(
            vault_id=vault_id,
            memory_id=memory_id,
            request_id=request_id,
            requester_public_key=requester_public_key,
            context_proof=context_proof,
            nonce=nonce,
            purpose=purpose,
        )
        return AsyncAccessRequest(self._client, request_id, await self._client.exchange(call))

    async def get(self, request_id: str, *, key: RequesterKey | None = None) -> AsyncAccessRequest:
        handle = AsyncAccessRequest(self._client, request_id, key=key)
        await handle.refresh()
        return handle

    async def item(self, request_id: str) -> m.SealedItemView:
        return _sealed(await self._client.call(_item_path(request_id)))
