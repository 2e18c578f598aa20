"""Approvers on a local stack: persons of the demo tenant with a passkey held by the software
authenticator, written to the stack's IdentityTable as the identity service writes them, and their
answers to a waiting request (the approval challenge signed by their authenticator)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from infra.local.runtime import REGION, LocalStack
from reliquary.adapters.dynamodb import TableConfig
from reliquary.adapters.identity_store import DynamoDBIdentityRepository
from reliquary.flow.approvals import approval_challenge
from reliquary.identity.models import Person, PersonStatus, StoredCredential, new_person_id
from reliquary.identity.scopes import Role, RoleBinding
from tests.support.authenticator import ORIGIN, RP_ID, SoftAuthenticator, b64url, register_passkey


@dataclass
class StackApprover:
    person: Person
    authenticator: SoftAuthenticator
    credential: StoredCredential

    @property
    def person_id(self) -> str:
        return self.person.person_id

    def sign(self, challenge: bytes) -> dict[str, Any]:
        """An AuthenticationResponseJSON over ``challenge`` by this person's passkey."""
        options = {"challenge": b64url(challenge), "rpId": RP_ID}
        return self.authenticator.authenticate(options, credential_id=self.credential.credential_id)

    def answer(self, request: dict[str, str], decision: str = "approve", **bound: Any) -> dict[str, Any]:
        """agent-vote's ``approve`` event for ``request`` (its ids), as the API relays it; ``bound``
        changes what the signed challenge binds (a forgery)."""
        nonce, issued_at = secrets.token_hex(16), int(time.time())
        values = {
            "tenant_id": request["tenant_id"],
            "request_id": request["request_id"],
            "vault_id": request["vault_id"],
            "item_id": request["item_id"],
            "decision": decision,
            "person_id": self.person_id,
            "nonce": nonce,
            "issued_at": issued_at,
        }
        credential = self.sign(approval_challenge(**{**values, **bound}))
        return {
            "action": "approve",
            "tenant_id": values["tenant_id"],
            "request_id": values["request_id"],
            "person_id": self.person_id,
            "decision": decision,
            "nonce": nonce,
            "issued_at": issued_at,
            "credential": credential,
        }


def people_of(stack: LocalStack) -> DynamoDBIdentityRepository:
    table = TableConfig(stack.resources["IdentityTable"], REGION, stack.endpoint)
    return DynamoDBIdentityRepository(table, stack.client("dynamodb"))


def add_approver(
    stack: LocalStack, tenant_id: str, *, roles: tuple[RoleBinding, ...] = (RoleBinding(Role.APPROVER),)
) -> StackApprover:
    """A person of ``tenant_id`` with ``roles`` and one registered passkey, stored on the stack."""
    person = Person(
        person_id=new_person_id(),
        tenant_id=tenant_id,
        name="Grace Hopper",
        roles=roles,
        status=PersonStatus.ACTIVE,
        created_at=int(time.time()),
        not_before=0,
        user_handle=secrets.token_bytes(32),
    )
    repository = people_of(stack)
    repository.create_person(person)
    # The page origin agent-vote accepts answers from, as this stack configured it (the shared world's is
    # its served approval page).
    configured = stack.lambdas.environment("AgentVoteFunction").get("RELIQUARY_WEBAUTHN_ORIGINS")
    origin = json.loads(configured)[0] if configured else ORIGIN
    authenticator, credential = register_passkey(
        person, now=person.created_at, authenticator=SoftAuthenticator(origin=origin)
    )
    repository.add_credential(credential, enrollment_jti=None)
    return StackApprover(repository.get_person(person.person_id), authenticator, credential)
