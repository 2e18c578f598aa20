"""The name of a tenant's access execution: Step Functions refuses a second execution of the same name,
so a request id is decided once per tenant (the callers that start executions: the API, the SDK, the
local runtime)."""

from __future__ import annotations

import hashlib
import re

# Step Functions execution names: 1-80 characters, none of whitespace, brackets, wildcards or
# " # % \ ^ | ~ ` $ & , ; : /  (and no control characters).
_EXECUTION_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,80}$")


def execution_name(tenant_id: str, request_id: str) -> str:
    """The execution name of a tenant's request: readable when it fits Step Functions' rules, else hashed.

    ``_`` never occurs in an identifier, so ``<tenant>_<request>`` cannot be read two ways."""
    readable = f"{tenant_id}_{request_id}"
    if _EXECUTION_NAME.match(readable):
        return readable
    digest = hashlib.sha256(f"{tenant_id}\n{request_id}".encode()).hexdigest()
    return f"h-{digest[:64]}"
