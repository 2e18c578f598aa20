"""What a deployed function's process sees when Lambda imports its handler: template.yaml's variables for
the function and those the Lambda runtime sets, for the cold-start bench and the handler-import tests.

The template's intrinsics resolve to names and ARNs of the right shape (the dev stage, the parameters'
defaults): no handler reads them at import, they only have to parse. The runtime's variables include
``LAMBDA_TASK_ROOT`` (powertools' Tracer traces, and patches, only where it is set) and, for a function
with ``Tracing: Active``, the X-Ray daemon's address.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.template import IntrinsicResolver, function_environment, load_template

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
# functions/<name> -> the function's logical id in template.yaml
FUNCTIONS = {
    "encrypt": "EncryptFunction",
    "audit_append": "AuditAppendFunction",
    "verify_proof": "VerifyProofFunction",
    "score_trust": "ScoreTrustFunction",
    "agent_vote": "AgentVoteFunction",
    "api": "ApiFunction",
}


class _Placeholders(IntrinsicResolver):
    def __init__(self, template: Mapping[str, Any]) -> None:
        self._template = template
        self._parameters = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}
        self._parameters["Stage"] = "dev"
        self._pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": "reliquary-dev",
        }

    def ref(self, name: str) -> str:
        return self._pseudo.get(name) or self._parameters.get(name) or f"reliquary-dev-{name}"

    def attribute(self, logical_id: str, attribute: str) -> str:
        return f"arn:aws:placeholder:{REGION}:{ACCOUNT}:{logical_id}/{attribute}"

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self._template["Conditions"][name]))

    def unresolvable(self, function: str) -> Exception:
        return ValueError(f"no placeholder for {function} in a function's environment")


@functools.cache
def lambda_env(name: str) -> Mapping[str, str]:
    """The environment of ``functions/<name>`` on Lambda, as its handler module is imported."""
    logical_id = FUNCTIONS[name]
    template = load_template()
    properties = template["Resources"][logical_id]["Properties"]
    resolved = _Placeholders(template).resolve(function_environment(logical_id))
    runtime = {
        "AWS_LAMBDA_FUNCTION_NAME": f"reliquary-dev-{logical_id}",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(properties.get("MemorySize", 128)),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{properties['Runtime']}",
        "LAMBDA_TASK_ROOT": str(REPO / "functions" / name),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": str(properties["Handler"]),
    }
    if properties.get("Tracing") == "Active":
        runtime |= {
            "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
            "_AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129",
            "_AWS_XRAY_DAEMON_PORT": "2000",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        }
    return {**runtime, **{k: str(v) for k, v in resolved.items()}}
