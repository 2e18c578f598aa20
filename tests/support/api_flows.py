"""What a client of the served API does besides calling it: get a token for a client of its own, poll an
access request until it is decided, and check what it was given as an outsider would (the grant opened
with its own key, the log's receipts and proofs, the attestation chain, the deletion receipts).

Only the encrypt service's public signing keys are read from its store (as ``LocalAccess.open_grant``
does): the API does not publish them, and a client needs them to check a grant or a deletion receipt."""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from infra.local.access import FUNCTIONS
from infra.local.requester import Requester
from infra.local.seed import TENANT
from reliquary import jcs
from reliquary.audit.note import NoteVerifier, Policy
from reliquary.audit.receipts import Receipt, verify_receipt
from reliquary.crypto.grants import open_grant
from reliquary.crypto.signing import KeyRing, SignatureAlgorithm
from reliquary.flow.attestation import StageKeys, VerifiedChain, parse_chain, verify_chain
from reliquary.identity.scopes import RoleBinding
from reliquary.vaults.service import shred_message
from tests.support.api import ApiClient, ApiWorld

DECISION_SECONDS = 120.0
POLL_SECONDS = 0.1


def client_headers(
    world: ApiWorld, *bindings: RoleBinding, tenant: str = TENANT
) -> tuple[ApiClient, dict[str, str]]:
    """A new client of ``tenant`` with ``bindings`` and the Authorization header of a token of its own
    (a client of its own: its trust history is its own too)."""
    client = world.new_client(tenant, *bindings)
    answer = world.http.post(
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.secret),
    )
    assert answer.status_code == 200, answer.text
    return client, {"Authorization": f"Bearer {answer.json()['access_token']}"}


def decided(world: ApiWorld, location: str, headers: dict[str, str]) -> dict[str, Any]:
    """Poll ``location`` until the request is no longer pending; every pending answer says when to poll
    again (Retry-After). Polled faster than it says: the local flow decides in about a second."""
    deadline = time.monotonic() + DECISION_SECONDS
    while True:
        answer = world.http.get(location, headers=headers)
        assert answer.status_code == 200, answer.text
        view: dict[str, Any] = answer.json()
        if view["status"] != "pending":
            assert "retry-after" not in answer.headers
            return view
        assert answer.headers["retry-after"] == "1"
        assert time.monotonic() < deadline, f"{location} still pending after {DECISION_SECONDS:.0f} s"
        time.sleep(POLL_SECONDS)


def service_keyring(world: ApiWorld) -> KeyRing:
    """The encrypt service's public signing keys (envelopes, grants, deletion receipts), as stored."""
    from reliquary.adapters.factory import build_vault_service
    from reliquary.config import get_settings

    with world.stack.lambdas.environment_of(FUNCTIONS["encrypt"]):
        return build_vault_service(get_settings()).service_keys.keyring


def open_approved(world: ApiWorld, view: dict[str, Any], requester: Requester) -> bytes:
    """The requester's side of an approved request: verify the grant and the sealed item it unlocks (the
    envelope as stored, as an SDK fetches it) and decrypt the plaintext with the requester's own key."""
    from reliquary.adapters.factory import build_vault_service
    from reliquary.config import get_settings

    grant = view["grant"]
    scope = (TENANT, view["vault_id"], view["memory_id"])
    with world.stack.lambdas.environment_of(FUNCTIONS["encrypt"]):
        service = build_vault_service(get_settings())
        _, envelope = service.load_envelope(*scope, version=grant["version"])
        keyring = service.service_keys.keyring
    return open_grant(
        base64.b64decode(grant["grant"]),
        envelope,
        requester_private_key=requester.key,
        service_keys=keyring,
        now=int(time.time()),
        request_id=view["request_id"],
        expected=scope,
    )


def verify_shred_receipt(keyring: KeyRing, vault_id: str, receipt: dict[str, Any]) -> None:
    """A deletion receipt is the encrypt service's signature over (tenant, vault, item, versions, time)."""
    message = shred_message(TENANT, vault_id, receipt["item_id"], receipt["versions"], receipt["shredded_at"])
    keyring.verify(
        bytes.fromhex(receipt["signer_key_id"]),
        SignatureAlgorithm.parse(receipt["signature_algorithm"]),
        message,
        base64.b64decode(receipt["signature"]),
    )


@dataclass(frozen=True)
class AuditKeys:
    """``GET /v1/audit/keys``: all an outsider needs to check the log and the attestation chains."""

    origin: str
    verifiers: tuple[NoteVerifier, ...]
    stage_keys: StageKeys

    @property
    def policy(self) -> Policy:
        return Policy.all_of(*self.verifiers)

    @classmethod
    def fetch(cls, world: ApiWorld, headers: dict[str, str]) -> AuditKeys:
        answer = world.http.get("/v1/audit/keys", headers=headers)
        assert answer.status_code == 200, answer.text
        published = answer.json()
        verifiers = tuple(NoteVerifier.from_vkey(key) for key in published["verifier_keys"])
        assert verifiers, "no checkpoint verifier key is published"
        return cls(published["origin"], verifiers, StageKeys.from_json(published["stage_keys"]))

    def verify_receipt(self, view: dict[str, Any]) -> int:
        """The decision's receipt: its logged entry is in the log under a checkpoint every published key
        signed. Returns the checkpoint's tree size."""
        checkpoint = verify_receipt(
            Receipt.from_dict(view["receipt"]),
            view["entry"].encode("utf-8"),
            list(self.verifiers),
            origin=self.origin,
            required=self.policy,
        )
        return int(checkpoint.size)

    def verify_chain(self, view: dict[str, Any], requester: Requester) -> VerifiedChain:
        """The attestation chain of the decision: the one the logged entry names (its JCS digest), signed
        by the published stage keys, about this very request and requester key."""
        chain = view["attestation_chain"]
        digest = hashlib.sha256(jcs.canonicalize(chain)).hexdigest()
        entry = jcs.parse(view["entry"].encode("utf-8"))
        if not isinstance(entry, dict) or not digest == view["chain_sha256"] == entry["chain_sha256"]:
            raise ValueError("the chain is not the one the logged entry names")
        verified = verify_chain(parse_chain(chain), self.stage_keys)
        subject = verified.subject
        assert (subject.tenant_id, subject.vault_id, subject.item_id, subject.request_id) == (
            TENANT,
            view["vault_id"],
            view["memory_id"],
            view["request_id"],
        )
        assert subject.requester_key_sha256 == hashlib.sha256(requester.public_key).hexdigest()
        return verified
