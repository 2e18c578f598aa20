"""DIDs over real HTTP: a client registered with a did:key gets tokens with private_key_jwt (no secret,
single-use assertions, one method per request), and the service's did:web document at
/.well-known/did.json is all an outsider needs to verify a decision's receipt and attestation chain."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from infra.local.seed import SUPPORT_VAULT, TENANT
from reliquary.errors import DidResolutionError
from reliquary.identity.assertions import JWT_BEARER
from reliquary.identity.did import DidKeySigner, KeyType, resolve_did_web
from reliquary.identity.jws import sign_json
from reliquary.identity.service_did import published_keys
from tests.support.api import ApiWorld
from tests.support.api_flows import AuditKeys, decided

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "/v1/oauth2/token"


def _did_client(world: ApiWorld, key_type: KeyType, role: str = "requester") -> tuple[str, DidKeySigner]:
    """A client of the demo tenant registered by its tenant-admin with a did:key (no secret)."""
    signer = DidKeySigner.generate(key_type)
    answer = world.http.post(
        "/v1/clients",
        json={
            "name": f"agent {uuid.uuid4().hex[:6]}",
            "roles": [{"role": role, "vault_id": SUPPORT_VAULT}],
            "did": signer.did,
        },
        headers=world.headers("tenant-admin"),
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["client_secret"] is None
    assert created["client"]["did"] == signer.did
    return created["client"]["client_id"], signer


def _assertion(world: ApiWorld, client_id: str, signer: DidKeySigner, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": world.url + TOKEN,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
        **changes,
    }
    return sign_json(signer, claims)


def _token(world: ApiWorld, form: Mapping[str, str], **extra: Any) -> httpx.Response:
    return world.http.post(TOKEN, data={"grant_type": "client_credentials", **form}, **extra)


def _invalid_client(answer: httpx.Response) -> None:
    assert answer.status_code == 401, answer.text
    body = answer.json()
    assert (body["code"], body["error"]) == ("invalid_client", "invalid_client")
    assert body["error_description"] == "client authentication failed"
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("key_type", list(KeyType))
def test_a_did_client_gets_a_token_with_private_key_jwt(world: ApiWorld, key_type: KeyType) -> None:
    client_id, signer = _did_client(world, key_type)
    assertion = _assertion(world, client_id, signer)
    form = {"client_assertion_type": JWT_BEARER, "client_assertion": assertion, "client_id": client_id}
    answer = _token(world, form)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    token = answer.json()["access_token"]
    vaults = world.http.get("/v1/vaults", headers={"Authorization": f"Bearer {token}"})
    assert vaults.status_code == 200, vaults.text
    # The same assertion again is a replay.
    _invalid_client(_token(world, form))
    # The issuer is an audience too; the form's client_id is optional.
    issuer_aud = _assertion(world, client_id, signer, aud=world.url)
    assert (
        _token(world, {"client_assertion_type": JWT_BEARER, "client_assertion": issuer_aud}).status_code
        == 200
    )


def test_assertions_that_do_not_hold_are_invalid_client(world: ApiWorld) -> None:
    client_id, signer = _did_client(world, KeyType.ED25519)
    stranger = DidKeySigner.generate(KeyType.ED25519)
    now = int(time.time())
    for assertion in (
        _assertion(world, client_id, stranger),  # another key
        _assertion(world, client_id, signer, aud="reliquary-api"),
        _assertion(world, client_id, signer, exp=now + 3600),
        _assertion(world, client_id, signer, exp=now - 120),
        _assertion(world, client_id, signer, sub="cl-" + "0" * 24),
        "not.a.jws",
    ):
        _invalid_client(_token(world, {"client_assertion_type": JWT_BEARER, "client_assertion": assertion}))
    other_id, _ = _did_client(world, KeyType.ED25519)
    mismatched = {
        "client_assertion_type": JWT_BEARER,
        "client_assertion": _assertion(world, client_id, signer),
    }
    _invalid_client(_token(world, {**mismatched, "client_id": other_id}))


def test_a_did_client_has_no_secret_and_one_method_per_request(world: ApiWorld) -> None:
    client_id, signer = _did_client(world, KeyType.P256)
    _invalid_client(_token(world, {}, auth=(client_id, "rqs_" + "a" * 43)))
    _invalid_client(_token(world, {"client_id": client_id, "client_secret": ""}))
    assertion = _assertion(world, client_id, signer)
    both = _token(
        world, {"client_assertion_type": JWT_BEARER, "client_assertion": assertion}, auth=(client_id, "x")
    )
    assert both.status_code == 400, both.text
    assert both.json()["error"] == "invalid_request"
    for form in (
        {"client_assertion": assertion},
        {
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            "client_assertion": assertion,
        },
        {"client_assertion_type": JWT_BEARER},
        {"client_assertion_type": JWT_BEARER, "client_assertion": assertion, "client_secret": "x"},
    ):
        answer = _token(world, form)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_request"
    # A did:key client's secret cannot be rotated: it has none.
    rotated = world.http.post(
        f"/v1/clients/{client_id}/secret", json={}, headers=world.headers("tenant-admin")
    )
    assert rotated.status_code == 409, rotated.text
    # And a secret client cannot use an assertion.
    secret_client = world.client("writer")
    forged = _assertion(world, secret_client.client_id, signer)
    _invalid_client(_token(world, {"client_assertion_type": JWT_BEARER, "client_assertion": forged}))


def test_creating_a_client_with_a_bad_did_is_invalid_request(world: ApiWorld) -> None:
    for did in (
        "did:web:example.com",
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW",
        "did:key:zQ3s",
    ):
        answer = world.http.post(
            "/v1/clients",
            json={"name": "agent", "roles": [{"role": "writer"}], "did": did},
            headers=world.headers("tenant-admin"),
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] in {"invalid_did", "invalid_request"}
        assert did not in answer.text


class LoopbackFetcher:
    """Fetches https://localhost:<port>/... from the API served on http://127.0.0.1:<port>: a stand-in for
    the TLS terminator in front of a deployment. Follows no redirect."""

    def __init__(self, world: ApiWorld) -> None:
        self.world = world
        self.urls: list[str] = []

    def fetch(self, url: str) -> tuple[int, Mapping[str, str], bytes]:
        self.urls.append(url)
        parts = urlsplit(url)
        assert parts.scheme == "https"
        assert parts.hostname == "localhost"
        assert parts.port == urlsplit(self.world.url).port
        answer = self.world.http.get(parts.path, follow_redirects=False)
        return answer.status_code, answer.headers, answer.content


def test_an_outsider_verifies_a_receipt_and_a_chain_with_the_did_document_alone(world: ApiWorld) -> None:
    # The requester is an agent with a did:key: its token comes from private_key_jwt.
    client_id, signer = _did_client(world, KeyType.ML_DSA_65)
    answer = _token(
        world, {"client_assertion_type": JWT_BEARER, "client_assertion": _assertion(world, client_id, signer)}
    )
    assert answer.status_code == 200, answer.text
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    device = world.enrol()
    request_id, body = world.access_request(device)
    started = world.http.post(
        "/v1/access-requests", json=body, headers={**headers, "Idempotency-Key": request_id}
    )
    assert started.status_code == 202, started.text
    view = decided(world, started.headers["location"], headers)
    assert view["status"] == "approved", view["reasons"]

    # Only the DID document: no token, no /v1/audit/keys.
    did = world.api.settings.service_did
    document = resolve_did_web(did, LoopbackFetcher(world))
    published = published_keys(document, did)
    (log,) = [s for s in document["service"] if s["id"] == did + "#transparency-log"]
    outsider = AuditKeys(
        f"{log['checkpointKeyName']}/{TENANT}", published.checkpoint_verifiers, published.stage_keys
    )
    assert outsider.verify_receipt(view) > view["receipt"]["leaf_index"]
    chain = outsider.verify_chain(view, device)
    assert chain.approves

    # A document whose key was swapped under its id is refused before anything is verified with it.
    tampered = {**document, "verificationMethod": [dict(m) for m in document["verificationMethod"]]}
    stage = next(m for m in tampered["verificationMethod"] if "#stage-" in m["id"])
    other = next(m for m in tampered["verificationMethod"] if "#stage-" in m["id"] and m is not stage)
    stage["publicKeyMultibase"] = other["publicKeyMultibase"]
    with pytest.raises(DidResolutionError):
        published_keys(tampered, did)


def test_the_service_did_document_is_public_and_resolves(world: ApiWorld) -> None:
    # A decision first: audit-append creates the checkpoint keys when it starts, the flow functions their
    # stage keys on first use (the world's setup ran none of them).
    device = world.enrol()
    request_id, body = world.access_request(device)
    started = world.http.post(
        "/v1/access-requests",
        json=body,
        headers={**world.headers("requester"), "Idempotency-Key": request_id},
    )
    assert started.status_code == 202, started.text
    decided(world, started.headers["location"], world.headers("requester"))
    did = world.api.settings.service_did
    port = urlsplit(world.url).port
    assert did == f"did:web:localhost%3A{port}"
    answer = world.http.get("/.well-known/did.json")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/did+json"
    assert answer.headers["cache-control"] == "public, max-age=300"
    fetcher = LoopbackFetcher(world)
    document = resolve_did_web(did, fetcher)
    assert fetcher.urls == [f"https://localhost:{port}/.well-known/did.json"]
    assert document == answer.json()
    fragments = [m["id"].removeprefix(did) for m in document["verificationMethod"]]
    assert sum(f.startswith("#checkpoint-ed25519-") for f in fragments) == 1
    assert sum(f.startswith("#checkpoint-ml-dsa-65-") for f in fragments) == 1
    assert sum(f.startswith("#checkpoint-falcon-512-") for f in fragments) == 1
    assert {f.split("-")[0] for f in fragments} == {"#checkpoint", "#stage", "#token"}
    assert document["assertionMethod"] == [m["id"] for m in document["verificationMethod"]]
    # The keys are the ones the authenticated routes publish.
    keys = published_keys(document, did)
    audit = world.http.get("/v1/audit/keys", headers=world.headers("auditor")).json()
    assert sorted(v.to_vkey() for v in keys.checkpoint_verifiers) == sorted(audit["verifier_keys"])
    assert sorted(keys.stage_keys.to_json(), key=str) == sorted(audit["stage_keys"], key=str)
    jwks = world.http.get("/.well-known/jwks.json").json()["keys"]
    assert [k["kid"] for k in keys.token_keys] == [k["kid"] for k in jwks]
    # Stable: the same document again.
    assert world.http.get("/.well-known/did.json").json() == document
