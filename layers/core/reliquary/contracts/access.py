"""The access state machine's input (DESIGN.md, "The access flow") and the name of its execution.

Callers (the SDK, the local runtime, the API) validate a request here before starting an execution, so a
malformed request is refused with a typed error instead of failing inside the state machine, where it
could not be logged to a tenant's log. The execution is named after (tenant, request): Step Functions
refuses a second execution of the same name, so a request id is decided once per tenant.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from reliquary.contracts.common import Base64Bytes, Identifier
from reliquary.contracts.verify_proof import ContextProofIn
from reliquary.crypto.kem import PUBLIC_KEY_LEN
from reliquary.zk.replay import NONCE_HEX

# Step Functions execution names: 1-80 characters, none of whitespace, brackets, wildcards or
# " # % \ ^ | ~ ` $ & , ; : /  (and no control characters).
_EXECUTION_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,80}$")


class PrincipalIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # As the audit log can hash it (reliquary.audit.records.principal_hash): one line, no control
    # characters. A subject the log refuses would leave the request's decision unrecordable.
    subject: Annotated[
        str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")
    ]
    roles: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=64
    )


class AccessRequest(BaseModel):
    """One access request: the input of an access state machine execution."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: Identifier
    tenant_id: Identifier
    vault_id: Identifier
    item_id: Identifier
    principal: PrincipalIn
    requester_public_key: Annotated[Base64Bytes, Field(min_length=PUBLIC_KEY_LEN, max_length=PUBLIC_KEY_LEN)]
    context_proof: ContextProofIn
    nonce: Annotated[str, StringConstraints(pattern=rf"^[0-9a-f]{{{NONCE_HEX}}}$")]
    purpose: Annotated[str, StringConstraints(max_length=256)] = ""
    # Where the request comes from, as the front door saw it (e.g. the API's region or the caller's
    # network location), never as the requester claims it: trust history and the watchdog compare it.
    region: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "unknown"

    def execution_input(self) -> str:
        """The execution's input document (every field present: the state machine reads each one)."""
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"))


def execution_name(tenant_id: str, request_id: str) -> str:
    """The execution name of a tenant's request: readable when it fits Step Functions' rules, else hashed.

    ``_`` never occurs in an identifier, so ``<tenant>_<request>`` cannot be read two ways."""
    readable = f"{tenant_id}_{request_id}"
    if _EXECUTION_NAME.match(readable):
        return readable
    digest = hashlib.sha256(f"{tenant_id}\n{request_id}".encode()).hexdigest()
    return f"h-{digest[:64]}"
