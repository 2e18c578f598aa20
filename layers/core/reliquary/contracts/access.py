"""The access state machine's input (docs/access-flow.md) and the name of its execution.

Callers (the SDK, the local runtime, the API) validate a request here before starting an execution, so a
malformed request is refused with a typed error instead of failing inside the state machine, where it
could not be logged to a tenant's log. The execution is named after (tenant, request): Step Functions
refuses a second execution of the same name, so a request id is decided once per tenant.
"""

from __future__ import annotations

import hashlib
import re

from reliquary.flow.state import FlowRequest

# Step Functions execution names: 1-80 characters, none of whitespace, brackets, wildcards or
# " # % \ ^ | ~ ` $ & , ; : /  (and no control characters).
_EXECUTION_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,80}$")


# The execution's input is the flow's admitted request: one model (reliquary.flow.state).
AccessRequest = FlowRequest


def execution_name(tenant_id: str, request_id: str) -> str:
    """The execution name of a tenant's request: readable when it fits Step Functions' rules, else hashed.

    ``_`` never occurs in an identifier, so ``<tenant>_<request>`` cannot be read two ways."""
    readable = f"{tenant_id}_{request_id}"
    if _EXECUTION_NAME.match(readable):
        return readable
    digest = hashlib.sha256(f"{tenant_id}\n{request_id}".encode()).hexdigest()
    return f"h-{digest[:64]}"
