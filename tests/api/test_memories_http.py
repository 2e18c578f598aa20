"""The memory API over real HTTP: add (text or bytes, tags, TTL, sensitivity, idempotent), list and get
(metadata only, filtered by scope, paged), delete (a signed deletion receipt), forget one user everywhere
(resumable), and history (versions, key events, access decisions with their log entries and proofs).

A client of acme's agent-memory vault with the writer and requester roles does what an agent does; the
tenant admin rotates the vault's key; the tenant's auditor reads the log."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from infra.local.seed import SUPPORT_VAULT
from reliquary.audit import merkle
from reliquary.audit.checkpoint import open_checkpoint
from reliquary.errors import InvalidSignatureError, RootMismatchError
from reliquary.identity.scopes import Role, RoleBinding
from tests.support.api import ITEM, OTHER_MEMORY, ApiWorld
from tests.support.api_flows import AuditKeys, client_headers, decided, service_keyring, verify_shred_receipt

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MEMORIES = f"/v1/vaults/{SUPPORT_VAULT}/memories"
# What a listed memory says: metadata only (no content, no envelope, no key material).
LISTED_FIELDS = {
    "memory_id",
    "versions",
    "version",
    "state",
    "user_id",
    "agent_id",
    "run_id",
    "content_type",
    "size",
    "tags",
    "sensitivity",
    "key_version",
    "created_at",
    "expires_at",
    "shredded_at",
}
VERSION_FIELDS = LISTED_FIELDS - {"memory_id", "versions"}
FORGOTTEN = 64  # more than one forget call answers (its receipts are capped at 256 KB, ~54 of them)


@pytest.fixture(scope="module")
def agent(world: ApiWorld) -> dict[str, str]:
    """An agent's client: writer and requester of the agent-memory vault."""
    _, headers = client_headers(
        world, RoleBinding(Role.WRITER, SUPPORT_VAULT), RoleBinding(Role.REQUESTER, SUPPORT_VAULT)
    )
    return headers


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _add(world: ApiWorld, headers: dict[str, str], body: dict[str, Any], **extra: str) -> dict[str, Any]:
    answer = world.http.post(MEMORIES, json=body, headers={**headers, **extra})
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == f"{MEMORIES}/{answer.json()['item_id']}"
    result: dict[str, Any] = answer.json()
    return result


def _current_key_version(world: ApiWorld, headers: dict[str, str]) -> int:
    answer = world.http.get(f"/v1/vaults/{SUPPORT_VAULT}", headers=headers)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["current_key_version"])


def _pages(world: ApiWorld, headers: dict[str, str], **query: str | int) -> Iterator[dict[str, Any]]:
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {**query, **({"cursor": cursor} if cursor else {})}
        answer = world.http.get(MEMORIES, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        page: dict[str, Any] = answer.json()
        yield page
        cursor = page["next_cursor"]
        if cursor is None:
            return


def _listed(world: ApiWorld, headers: dict[str, str], **query: str | int) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for page in _pages(world, headers, **query):
        for memory in page["memories"]:
            assert memory["memory_id"] not in found, "a memory listed twice"
            found[memory["memory_id"]] = memory
    return found


def _problem(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = answer.json()
    assert problem["code"] == code
    assert problem["status"] == status
    return problem


# ---------------------------------------------------------------------------------------------- add
def test_add_text_with_tags_ttl_and_sensitivity(world: ApiWorld, agent: dict[str, str]) -> None:
    user = _unique("user")
    before = int(time.time())
    sealed = _add(
        world,
        agent,
        {
            "text": "prefers the blue plan, café at 9",
            "user_id": user,
            "tags": {"topic": "billing", "source": "chat"},
            "ttl_seconds": 3600,
            "sensitivity": "confidential",
        },
    )
    after = int(time.time())
    size = len("prefers the blue plan, café at 9".encode())
    assert sealed["size"] == size
    assert sealed["version"] == 1
    assert sealed["content_type"] == "text/plain; charset=utf-8"
    assert sealed["key_version"] == _current_key_version(world, agent)
    assert before + 3600 <= sealed["expires_at"] <= after + 3600

    (version,) = world.http.get(f"{MEMORIES}/{sealed['item_id']}", headers=agent).json()["versions"]
    assert set(version) == VERSION_FIELDS
    assert version["state"] == "live"
    assert version["user_id"] == user
    assert version["agent_id"] is None
    assert version["run_id"] is None
    assert version["tags"] == {"topic": "billing", "source": "chat"}
    assert version["sensitivity"] == "confidential"
    assert version["expires_at"] == sealed["expires_at"]
    assert version["size"] == size


def test_add_bytes_in_base64(world: ApiWorld, agent: dict[str, str]) -> None:
    content = bytes(range(256)) + b"\xff\xfe not utf-8"
    sealed = _add(
        world,
        agent,
        {
            "memory_id": _unique("blob"),
            "content": base64.b64encode(content).decode(),
            "agent_id": "triage-bot",
        },
    )
    assert sealed["size"] == len(content)
    assert sealed["content_type"] == "application/octet-stream"
    assert sealed["expires_at"] is None
    typed = _add(
        world,
        agent,
        {
            "content": base64.b64encode(b"%PDF-1.7").decode(),
            "content_type": "application/pdf",
            "run_id": "run-7",
        },
    )
    assert typed["content_type"] == "application/pdf"
    (version,) = world.http.get(f"{MEMORIES}/{typed['item_id']}", headers=agent).json()["versions"]
    assert version["run_id"] == "run-7"
    assert version["sensitivity"] == "restricted"  # the default


def test_an_idempotency_key_replays_the_same_memory_and_refuses_another_body(
    world: ApiWorld, agent: dict[str, str]
) -> None:
    key = _unique("add")
    body = {"text": "met at the Lisbon office", "user_id": "customer-7", "tags": {"k": "v"}}
    first = _add(world, agent, body, **{"Idempotency-Key": key})
    again = world.http.post(MEMORIES, json=body, headers={**agent, "Idempotency-Key": key})
    assert again.status_code == 201, again.text
    assert again.json() == first
    assert again.headers["x-request-id"] == key
    # One memory, one version: the retry sealed nothing.
    versions = world.http.get(f"{MEMORIES}/{first['item_id']}", headers=agent).json()["versions"]
    assert [v["version"] for v in versions] == [1]

    other = world.http.post(
        MEMORIES, json={**body, "text": "met at the Porto office"}, headers={**agent, "Idempotency-Key": key}
    )
    problem = _problem(other, 409, "idempotency_conflict")
    assert "Porto" not in other.text
    assert "Lisbon" not in other.text
    assert problem["request_id"] == key
    versions = world.http.get(f"{MEMORIES}/{first['item_id']}", headers=agent).json()["versions"]
    assert [v["version"] for v in versions] == [1]


@pytest.mark.parametrize(
    "scope",
    [
        {},
        {"user_id": "u-1", "agent_id": "a-1"},
        {"user_id": "u-1", "run_id": "r-1"},
        {"agent_id": "a-1", "run_id": "r-1"},
        {"user_id": "u-1", "agent_id": "a-1", "run_id": "r-1"},
    ],
    ids=["none", "user+agent", "user+run", "agent+run", "all three"],
)
def test_a_memory_belongs_to_exactly_one_user_agent_or_run(
    world: ApiWorld, agent: dict[str, str], scope: dict[str, str]
) -> None:
    memory_id = _unique("scoped")
    answer = world.http.post(
        MEMORIES, json={"memory_id": memory_id, "text": "marker-scope-text", **scope}, headers=agent
    )
    _problem(answer, 400, "invalid_request")
    assert "marker-scope-text" not in answer.text
    _problem(world.http.get(f"{MEMORIES}/{memory_id}", headers=agent), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"content": "not*base64!marker"}, None),
        ({"content": "YQ"}, None),  # padding missing
        ({"content": "bWFya2VyYQ==="}, None),  # padding in excess
        ({"text": "a", "content": "YQ=="}, "body"),
        ({}, "body"),
        ({"text": "a", "ttl_seconds": 0}, "body.ttl_seconds"),
        ({"text": "a", "sensitivity": "marker-secret"}, "body.sensitivity"),
        ({"text": "a", "tags": {f"t{n}": "v" for n in range(33)}}, "body.tags"),
        ({"text": "a", "tenant_id": "globex"}, "body.tenant_id"),
    ],
    ids=[
        "bad base64",
        "no padding",
        "excess padding",
        "text and content",
        "no content",
        "ttl 0",
        "sensitivity",
        "33 tags",
        "tenant",
    ],
)
def test_bad_bodies_are_400_and_seal_nothing(
    world: ApiWorld, agent: dict[str, str], body: dict[str, Any], location: str | None
) -> None:
    memory_id = _unique("bad")
    answer = world.http.post(MEMORIES, json={"memory_id": memory_id, "user_id": "u-1", **body}, headers=agent)
    problem = _problem(answer, 400, "invalid_request")
    assert "marker" not in answer.text
    assert "bWFya2Vy" not in answer.text
    if location is None:  # the content is checked after the schema: the field is named
        assert problem["details"] == {"field": "content"}
        assert problem["detail"] == "content must be base64"
    else:
        assert location in {e["location"] for e in problem["errors"]}
    _problem(world.http.get(f"{MEMORIES}/{memory_id}", headers=agent), 404, "not_found")


# --------------------------------------------------------------------------------------- list, get
def test_list_is_metadata_only(world: ApiWorld, agent: dict[str, str]) -> None:
    secret = f"the door code is {uuid.uuid4().hex}"
    raw = b"\x00binary " + uuid.uuid4().bytes
    user = _unique("private")
    text_memory = _add(world, agent, {"text": secret, "user_id": user, "tags": {"kind": "note"}})
    bytes_memory = _add(world, agent, {"content": base64.b64encode(raw).decode(), "user_id": user})
    listed = _listed(world, agent, limit=100)
    assert {text_memory["item_id"], bytes_memory["item_id"]} <= set(listed)
    mine = _listed(world, agent, user_id=user)
    assert set(mine) == {text_memory["item_id"], bytes_memory["item_id"]}

    forbidden = {
        secret,
        base64.b64encode(secret.encode()).decode(),
        secret.encode().hex(),
        base64.b64encode(raw).decode(),
        raw.hex(),
    }
    for memory in listed.values():
        assert set(memory) == LISTED_FIELDS
        for name, value in memory.items():
            text = json.dumps(value)
            # Ids, states, content types, tags and numbers: nothing the size of a key or a ciphertext.
            assert len(text) < 160, name
            assert not any(f in text for f in forbidden), name
    for memory_id in (text_memory["item_id"], bytes_memory["item_id"]):
        detail = world.http.get(f"{MEMORIES}/{memory_id}", headers=agent)
        assert not any(f in detail.text for f in forbidden)
        assert set(detail.json()) == {"memory_id", "versions"}
        assert all(set(v) == VERSION_FIELDS for v in detail.json()["versions"])
    assert mine[text_memory["item_id"]]["size"] == len(secret)
    assert mine[bytes_memory["item_id"]]["size"] == len(raw)


def test_list_filters_by_user_agent_or_run(world: ApiWorld, agent: dict[str, str]) -> None:
    user, bot, run = _unique("user"), _unique("bot"), _unique("run")
    by_user = {_add(world, agent, {"text": f"u{n}", "user_id": user})["item_id"] for n in range(3)}
    by_agent = {_add(world, agent, {"text": f"a{n}", "agent_id": bot})["item_id"] for n in range(2)}
    by_run = {_add(world, agent, {"text": "r", "run_id": run})["item_id"]}

    assert set(_listed(world, agent, user_id=user)) == by_user
    assert set(_listed(world, agent, agent_id=bot)) == by_agent
    assert set(_listed(world, agent, run_id=run)) == by_run
    assert all(
        m["agent_id"] == bot and m["user_id"] is None for m in _listed(world, agent, agent_id=bot).values()
    )
    assert _listed(world, agent, user_id=_unique("nobody")) == {}
    everything = set(_listed(world, agent, limit=100))
    assert by_user | by_agent | by_run <= everything
    # One scope at a time.
    _problem(
        world.http.get(MEMORIES, params={"user_id": user, "run_id": run}, headers=agent),
        400,
        "invalid_request",
    )


def test_pages_walk_every_memory_once(world: ApiWorld, agent: dict[str, str]) -> None:
    user = _unique("paged")
    sealed = {_add(world, agent, {"text": f"p{n}", "user_id": user})["item_id"] for n in range(7)}
    pages = list(_pages(world, agent, user_id=user, limit=3))
    assert [len(p["memories"]) for p in pages] == [3, 3, 1]
    walked = [m["memory_id"] for p in pages for m in p["memories"]]
    assert len(walked) == len(set(walked)) == 7
    assert set(walked) == sealed
    assert walked == sorted(walked)  # in memory id order
    # The whole vault, two at a time, is the same as the whole vault at once.
    small = [m["memory_id"] for p in _pages(world, agent, limit=2) for m in p["memories"]]
    assert len(small) == len(set(small))
    assert set(small) == set(_listed(world, agent, limit=100))


@pytest.mark.parametrize(
    "cursor", ["garbage", "eyJ9", "A" * 1024, "!!"], ids=["word", "bad json", "long", "symbols"]
)
def test_a_garbage_cursor_is_400(world: ApiWorld, agent: dict[str, str], cursor: str) -> None:
    answer = world.http.get(MEMORIES, params={"cursor": cursor}, headers=agent)
    _problem(answer, 400, "invalid_request")
    assert cursor not in answer.text


def test_a_cursor_is_for_its_own_listing(world: ApiWorld, agent: dict[str, str]) -> None:
    user = _unique("cursor")
    for n in range(3):
        _add(world, agent, {"text": f"c{n}", "user_id": user})
    first = world.http.get(MEMORIES, params={"user_id": user, "limit": 1}, headers=agent).json()
    assert first["next_cursor"]
    other = world.http.get(
        MEMORIES, params={"user_id": _unique("other"), "cursor": first["next_cursor"]}, headers=agent
    )
    problem = _problem(other, 400, "invalid_request")
    assert problem["details"] == {"field": "cursor"}
    unscoped = world.http.get(MEMORIES, params={"cursor": first["next_cursor"]}, headers=agent)
    _problem(unscoped, 400, "invalid_request")


def test_get_returns_every_version(world: ApiWorld, agent: dict[str, str]) -> None:
    memory_id = _unique("versions")
    first = _add(world, agent, {"memory_id": memory_id, "text": "one", "run_id": "r-1", "tags": {"n": "1"}})
    second = _add(world, agent, {"memory_id": memory_id, "text": "two!", "run_id": "r-1"})
    third = _add(
        world,
        agent,
        {"memory_id": memory_id, "content": base64.b64encode(b"three").decode(), "agent_id": "a-1"},
    )
    assert [first["version"], second["version"], third["version"]] == [1, 2, 3]
    detail = world.http.get(f"{MEMORIES}/{memory_id}", headers=agent).json()
    assert detail["memory_id"] == memory_id
    versions = detail["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [v["size"] for v in versions] == [3, 4, 5]
    assert [v["run_id"] for v in versions] == ["r-1", "r-1", None]
    assert [v["agent_id"] for v in versions] == [None, None, "a-1"]
    assert [v["tags"] for v in versions] == [{"n": "1"}, {}, {}]
    assert [v["content_type"] for v in versions] == ["text/plain; charset=utf-8"] * 2 + [
        "application/octet-stream"
    ]
    assert all(v["state"] == "live" for v in versions)
    # Listed once, as its latest version (in that scope when one is asked for).
    assert _listed(world, agent, run_id="r-1")[memory_id]["version"] == 2
    assert _listed(world, agent, run_id="r-1")[memory_id]["versions"] == 2
    assert _listed(world, agent, agent_id="a-1")[memory_id]["version"] == 3


def test_get_of_a_memory_that_is_not_there_is_404(world: ApiWorld, agent: dict[str, str]) -> None:
    _problem(world.http.get(f"{MEMORIES}/{_unique('none')}", headers=agent), 404, "not_found")
    # Another tenant's memory is not there for acme, whatever its id.
    answer = world.http.get(f"{MEMORIES}/{OTHER_MEMORY}", headers=agent)
    _problem(answer, 404, "not_found")
    assert OTHER_MEMORY not in answer.text


# ------------------------------------------------------------------------------------ delete, forget
def test_delete_crypto_shreds_with_a_signed_receipt(world: ApiWorld, agent: dict[str, str]) -> None:
    memory_id = _unique("delete")
    for text in ("first", "second"):
        _add(world, agent, {"memory_id": memory_id, "text": text, "user_id": "customer-9"})
    before = int(time.time())
    answer = world.http.delete(f"{MEMORIES}/{memory_id}", headers=agent)
    assert answer.status_code == 200, answer.text
    receipt = answer.json()
    assert set(receipt) == {
        "item_id",
        "versions",
        "shredded_at",
        "signer_key_id",
        "signature_algorithm",
        "signature",
    }
    assert receipt["item_id"] == memory_id
    assert receipt["versions"] == [1, 2]
    assert before <= receipt["shredded_at"] <= int(time.time())
    assert receipt["signature_algorithm"] == "ML-DSA-65"
    assert len(bytes.fromhex(receipt["signer_key_id"])) == 8
    keyring = service_keyring(world)
    verify_shred_receipt(keyring, SUPPORT_VAULT, receipt)
    # The receipt covers exactly what it names: another version list or time does not verify.
    for forged in ({**receipt, "versions": [1]}, {**receipt, "shredded_at": receipt["shredded_at"] + 1}):
        with pytest.raises(InvalidSignatureError):
            verify_shred_receipt(keyring, SUPPORT_VAULT, forged)
    with pytest.raises(InvalidSignatureError):
        verify_shred_receipt(keyring, "payroll", receipt)

    versions = world.http.get(f"{MEMORIES}/{memory_id}", headers=agent).json()["versions"]
    assert [(v["state"], v["shredded_at"]) for v in versions] == [("shredded", receipt["shredded_at"])] * 2

    # Deleting again is idempotent: 200 and a receipt for the same versions and time (signed anew).
    again = world.http.delete(f"{MEMORIES}/{memory_id}", headers=agent)
    assert again.status_code == 200, again.text
    repeated = again.json()
    assert {k: repeated[k] for k in ("item_id", "versions", "shredded_at", "signer_key_id")} == {
        k: receipt[k] for k in ("item_id", "versions", "shredded_at", "signer_key_id")
    }
    verify_shred_receipt(keyring, SUPPORT_VAULT, repeated)
    _problem(world.http.delete(f"{MEMORIES}/{_unique('none')}", headers=agent), 404, "not_found")


def test_forget_shreds_every_memory_of_one_user_resumably(world: ApiWorld, agent: dict[str, str]) -> None:
    user, neighbour = _unique("forget-me"), _unique("keep-me")
    doomed = {_add(world, agent, {"text": f"f{n}", "user_id": user})["item_id"] for n in range(FORGOTTEN)}
    kept = {_add(world, agent, {"text": f"k{n}", "user_id": neighbour})["item_id"] for n in range(2)}
    # A memory whose older version was the user's and whose newer one is an agent's: only the user's
    # version is forgotten.
    shared = _unique("shared")
    _add(world, agent, {"memory_id": shared, "text": "theirs", "user_id": user})
    _add(world, agent, {"memory_id": shared, "text": "the bot's", "agent_id": "support-bot"})
    doomed.add(shared)

    keyring = service_keyring(world)
    answers: list[dict[str, Any]] = []
    while not (answers and answers[-1]["complete"]):
        assert len(answers) < 10, "forget never completes"
        answer = world.http.delete(MEMORIES, params={"user_id": user}, headers=agent)
        assert answer.status_code == 200, answer.text
        answers.append(answer.json())
    assert len(answers) >= 2, "one call forgot everything: the resumable path was not exercised"
    assert answers[0]["complete"] is False
    receipts = [r for a in answers for r in a["receipts"]]
    assert sorted(r["item_id"] for r in receipts) == sorted(doomed)  # one receipt each, none twice
    shredded_so_far = 0
    for summary in answers:  # each call counts what earlier calls shredded as already shredded
        assert summary["shredded"] == len(summary["receipts"])
        assert summary["already_shredded"] == shredded_so_far
        shredded_so_far += summary["shredded"]
    for receipt in receipts:
        verify_shred_receipt(keyring, SUPPORT_VAULT, receipt)
        assert receipt["versions"] == [1]
    assert sum(a["shredded"] for a in answers) == FORGOTTEN + 1

    forgotten = _listed(world, agent, user_id=user)
    assert set(forgotten) == doomed
    assert all(m["state"] == "shredded" for m in forgotten.values())
    assert all(m["state"] == "live" for m in _listed(world, agent, user_id=neighbour).values())
    assert set(_listed(world, agent, user_id=neighbour)) == kept
    shared_versions = world.http.get(f"{MEMORIES}/{shared}", headers=agent).json()["versions"]
    assert [v["state"] for v in shared_versions] == ["shredded", "live"]
    assert world.http.get(f"{MEMORIES}/{ITEM}", headers=agent).json()["versions"][0]["state"] == "live"

    # Forgetting again finds nothing left to shred.
    again = world.http.delete(MEMORIES, params={"user_id": user}, headers=agent).json()
    assert again == {"receipts": [], "shredded": 0, "already_shredded": FORGOTTEN + 1, "complete": True}


@pytest.mark.parametrize(
    "params",
    [{}, {"user_id": "u", "agent_id": "a"}, {"user_id": "bad id!"}],
    ids=["no scope", "two scopes", "malformed"],
)
def test_forget_needs_exactly_one_well_formed_scope(
    world: ApiWorld, agent: dict[str, str], params: dict[str, str]
) -> None:
    answer = world.http.delete(MEMORIES, params=params, headers=agent)
    _problem(answer, 400, "invalid_request")
    assert "bad id!" not in answer.text


# ---------------------------------------------------------------------------------------------- history
def test_history_lists_versions_key_events_and_logged_decisions(
    world: ApiWorld, agent: dict[str, str]
) -> None:
    admin = world.headers("tenant-admin")
    memory_id = _unique("history")
    key_before = _current_key_version(world, agent)
    _add(world, agent, {"memory_id": memory_id, "text": "before the rotation", "user_id": "customer-42"})
    rotated = world.http.post(f"/v1/vaults/{SUPPORT_VAULT}/keys/rotate", headers=admin)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["key_version"] == key_before + 1
    _add(world, agent, {"memory_id": memory_id, "text": "after the rotation", "user_id": "customer-42"})

    # An access decision on the memory, through the API.
    requester = world.enrol()
    request_id, body = world.access_request(requester, item=memory_id)
    started = world.http.post(
        "/v1/access-requests", json=body, headers={**agent, "Idempotency-Key": request_id}
    )
    assert started.status_code == 202, started.text
    view = decided(world, started.headers["location"], agent)
    assert view["status"] in {"approved", "denied"}

    answer = world.http.get(f"{MEMORIES}/{memory_id}/history", headers=agent)
    assert answer.status_code == 200, answer.text
    history = answer.json()
    assert history["memory_id"] == memory_id
    assert [(v["version"], v["key_version"]) for v in history["versions"]] == [
        (1, key_before),
        (2, key_before + 1),
    ]
    events = [(e["kind"], e["key_version"]) for e in history["key_events"]]
    assert events[0] == ("created", 1)
    assert ("rotated", key_before + 1) in events
    times = [e["at"] for e in history["key_events"]]
    assert times == sorted(times)
    (decision,) = history["decisions"]
    assert decision["request_id"] == request_id
    assert decision["decision"] == ("approve" if view["status"] == "approved" else "deny")
    assert decision["index"] == view["receipt"]["leaf_index"]
    assert history["next_cursor"] is None

    # The entry at that index, with an inclusion proof that verifies against the signed checkpoint.
    auditor = world.headers("auditor")
    keys = AuditKeys.fetch(world, auditor)
    entry_answer = world.http.get(f"/v1/audit/entries/{decision['index']}", headers=auditor)
    assert entry_answer.status_code == 200, entry_answer.text
    proved = entry_answer.json()
    entry = base64.b64decode(proved["entry"])
    assert entry == view["entry"].encode("utf-8")
    record = json.loads(entry)
    assert (record["request_id"], record["item_id"], record["vault_id"]) == (
        request_id,
        memory_id,
        SUPPORT_VAULT,
    )
    checkpoint_text = world.http.get("/v1/audit/checkpoint", headers=auditor)
    assert checkpoint_text.status_code == 200
    assert checkpoint_text.headers["content-type"].startswith("text/plain")
    assert proved["checkpoint"] == checkpoint_text.text
    checkpoint = open_checkpoint(
        checkpoint_text.text.encode("utf-8"), keys.verifiers, origin=keys.origin, required=keys.policy
    )
    assert checkpoint.size == proved["tree_size"] > decision["index"]
    proof = [base64.b64decode(h) for h in proved["inclusion_proof"]]
    merkle.verify_inclusion(
        proved["index"], checkpoint.size, merkle.SHA256.hash_leaf(entry), proof, checkpoint.root_hash
    )
    # Another entry's bytes do not verify at that index.
    tampered = entry.replace(b'"v":1', b'"v":2')
    assert tampered != entry
    with pytest.raises(RootMismatchError):
        merkle.verify_inclusion(
            proved["index"], checkpoint.size, merkle.SHA256.hash_leaf(tampered), proof, checkpoint.root_hash
        )


def test_history_of_a_memory_with_no_decision_and_of_none(world: ApiWorld, agent: dict[str, str]) -> None:
    memory_id = _unique("quiet")
    _add(world, agent, {"memory_id": memory_id, "text": "nobody asked", "agent_id": "bot-1"})
    history = world.http.get(f"{MEMORIES}/{memory_id}/history", headers=agent).json()
    assert [v["version"] for v in history["versions"]] == [1]
    assert history["decisions"] == []
    assert history["key_events"][0]["kind"] == "created"
    _problem(world.http.get(f"{MEMORIES}/{_unique('none')}/history", headers=agent), 404, "not_found")
