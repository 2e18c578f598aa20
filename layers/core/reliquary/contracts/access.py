"""The access state machine's input (docs/access-flow.md) and the name of its execution.

Callers (the SDK, the local runtime, the API) validate a request here before starting an execution, so a
malformed request is refused with a typed error instead of failing inside the state machine, where it
could not be logged to a tenant's log. The execution is named after (tenant, request): Step Functions
refuses a second execution of the same name, so a request id is decided once per tenant.
"""

from __future__ import annotations

from reliquary.flow.executions import execution_name
from reliquary.flow.state import FlowRequest

# The execution's input is the flow's admitted request: one model (reliquary.flow.state).
AccessRequest = FlowRequest

__all__ = ["AccessRequest", "execution_name"]
