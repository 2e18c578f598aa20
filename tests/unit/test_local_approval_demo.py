"""`make run`'s approval demonstration (infra/local/api.py), over an httpx transport that plays the API:
the approval page's address for a browser, the approver's enrollment link, a request that must wait for
a person, and what is printed. (tests/browser/test_approval_page.py runs the same helpers against the
served API.)"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from infra.local.api import (
    Approver,
    WaitingRequest,
    approval_page_url,
    browser_url,
    create_approver,
    print_approval_demo,
    start_waiting_request,
)
from infra.local.runtime import LocalRuntimeError

ADMIN = {"Authorization": "Bearer admin"}
REQUESTER = {"Authorization": "Bearer requester"}
PERSON = "ps-" + "0" * 24


def _client(answer: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(base_url="http://127.0.0.1:3000", transport=httpx.MockTransport(answer))


def test_the_page_is_opened_on_localhost_the_passkeys_domain() -> None:
    assert browser_url("http://127.0.0.1:3000") == "http://localhost:3000"
    assert approval_page_url("http://127.0.0.1:3000") == "http://localhost:3000/approve"
    assert approval_page_url("https://api.example.test/prod") == "https://api.example.test/prod/approve"


def test_an_approver_of_the_vault_is_created_with_a_single_use_enrollment_link() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        person = {"person_id": PERSON, "name": "Dana"}
        enrollment = {"token": "e.y.j", "expires_at": 1777716000}
        return httpx.Response(201, json={"person": person, "enrollment": enrollment})

    with _client(answer) as http:
        approver = create_approver(http, admin=ADMIN, vault_id="agent-memory", name="Dana")
    assert approver == Approver(
        person_id=PERSON,
        name="Dana",
        page_url="http://localhost:3000/approve",
        enrollment_url="http://localhost:3000/approve#enroll=e.y.j",
        enrollment_expires_at=1777716000,  # 2026-05-02T10:00:00Z
    )
    (request,) = sent
    assert (request.method, request.url.path) == ("POST", "/v1/people")
    assert request.headers["authorization"] == "Bearer admin"
    assert json.loads(request.content) == {
        "name": "Dana",
        "roles": [{"role": "approver", "vault_id": "agent-memory"}],
    }


def test_a_refused_person_stops_the_demonstration_with_the_answer() -> None:
    with (
        _client(lambda _: httpx.Response(403, json={"code": "forbidden"})) as http,
        pytest.raises(LocalRuntimeError, match="POST /v1/people answered 403"),
    ):
        create_approver(http, admin=ADMIN, vault_id="agent-memory", name="Dana")


def _flow(listed_after: int | None, status: str = "pending") -> Callable[[httpx.Request], httpx.Response]:
    """The API: the request is accepted, then listed for approval after ``listed_after`` polls (never:
    None, and the request is ``status``)."""
    polls = {"n": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            assert request.headers["idempotency-key"] == "req-1"
            assert request.headers["authorization"] == "Bearer requester"
            return httpx.Response(202, headers={"Location": "/v1/access-requests/req-1"}, json={})
        if request.url.path == "/v1/approvals":
            assert request.headers["authorization"] == "Bearer admin"
            polls["n"] += 1
            waiting = listed_after is not None and polls["n"] > listed_after
            return httpx.Response(200, json={"approvals": [{"request_id": "req-1"}] if waiting else []})
        return httpx.Response(200, json={"status": status})

    return answer


def test_the_request_is_returned_once_it_waits_for_a_person() -> None:
    with _client(_flow(listed_after=2)) as http:
        waiting = start_waiting_request(
            http, approver=ADMIN, requester=REQUESTER, request_body={}, request_id="req-1"
        )
    assert waiting == WaitingRequest("req-1", "http://127.0.0.1:3000/v1/access-requests/req-1")


def test_a_request_decided_without_a_person_is_reported() -> None:
    with (
        _client(_flow(listed_after=None, status="approved")) as http,
        pytest.raises(LocalRuntimeError, match="decided without a person: approved"),
    ):
        start_waiting_request(http, approver=ADMIN, requester=REQUESTER, request_body={}, request_id="req-1")


def test_what_make_run_prints_opens_the_page_and_polls_the_request() -> None:
    lines: list[str] = []
    approver = Approver(
        PERSON, "Dana", "http://localhost:3000/approve", "http://localhost:3000/approve#enroll=t", 1777716000
    )
    print_approval_demo(
        approver, WaitingRequest("req-1", "http://127.0.0.1:3000/v1/access-requests/req-1"), lines.append
    )
    text = "\n".join(lines)
    assert "http://localhost:3000/approve#enroll=t" in text
    assert "approval page:   http://localhost:3000/approve" in text
    assert "once, before 2026-05-02 10:00 UTC:" in text
    assert '"http://127.0.0.1:3000/v1/access-requests/req-1"' in text
    assert PERSON in text
