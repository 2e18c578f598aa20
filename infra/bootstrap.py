"""Create a deployment's first API client: the operator tenant and an operator client (`tenants:manage`),
whose secret is printed once. Everything else goes through the API (POST /v1/tenants creates a tenant and
its first tenant-admin).

    python -m infra.bootstrap --stack reliquary-dev [--region eu-west-1] [--name "ops laptop"]

It reads the stack's API function configuration (its RELIQUARY_* environment: the identity table, the
token keys, the operator tenant) with the caller's own AWS credentials, which need DynamoDB write on the
identity table and kms:GetPublicKey on the token key (an account administrator has both). Run it again to
add another operator client; the tenant is created once. Locally: AWS_ENDPOINT_URL=http://127.0.0.1:4566
and the local stack's name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import boto3

from reliquary.adapters.identity_factory import build_identity_service
from reliquary.config import ENV_PREFIX, Settings
from reliquary.errors import ConflictError, ReliquaryError
from reliquary.identity.scopes import Role, RoleBinding


@dataclass(frozen=True)
class OperatorClient:
    tenant_id: str
    client_id: str
    client_secret: str
    tenant_created: bool


def api_settings(stack: str, session: Any, endpoint_url: str | None) -> tuple[Settings, str | None]:
    """The settings the stack's API function runs with (its RELIQUARY_* environment), and the API's URL
    (None locally, where the stack has no API Gateway)."""
    return function_settings(stack, session, endpoint_url, "ApiFunctionArn")


def function_settings(
    stack: str, session: Any, endpoint_url: str | None, output: str
) -> tuple[Settings, str | None]:
    """The settings the stack's function named by the output ``output`` (e.g. ``EncryptFunctionArn``)
    runs with (its RELIQUARY_* environment), and the API's URL (None locally)."""
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in session.client("cloudformation", endpoint_url=endpoint_url)
        .describe_stacks(StackName=stack)["Stacks"][0]
        .get("Outputs", [])
    }
    if output not in outputs:
        raise SystemExit(f"error: stack {stack} has no {output} output (is it RELIQUARY's?)")
    configuration = session.client("lambda", endpoint_url=endpoint_url).get_function_configuration(
        FunctionName=outputs[output]
    )
    variables: dict[str, Any] = configuration.get("Environment", {}).get("Variables", {})
    # By field name, never through os.environ: the process's environment stays the operator's own. A
    # list setting travels as JSON, as Settings reads it from an environment.
    values: dict[str, Any] = {}
    for name, value in variables.items():
        if name.startswith(ENV_PREFIX):
            text = str(value)
            values[name.removeprefix(ENV_PREFIX).lower()] = json.loads(text) if text.startswith("[") else text
    return Settings.model_validate(values), outputs.get("ApiUrl")


def bootstrap(settings: Settings, name: str) -> OperatorClient:
    identity = build_identity_service(settings)
    tenant = settings.operator_tenant
    created = True
    try:
        identity.create_tenant(tenant, "Operator")
    except ConflictError:
        created = False  # bootstrapped before: add another operator client
    client, secret = identity.create_client(tenant, name, [RoleBinding(Role.OPERATOR, None)])
    return OperatorClient(tenant, client.client_id, secret, created)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.bootstrap", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--stack", required=True, help="the CloudFormation stack's name")
    parser.add_argument(
        "--region", default=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION"))
    )
    parser.add_argument("--name", default="operator", help="a name for the new operator client")
    args = parser.parse_args(argv)
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    try:
        settings, url = api_settings(args.stack, boto3.session.Session(region_name=args.region), endpoint)
        made = bootstrap(settings, args.name)
    except ReliquaryError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    print(f"operator tenant: {made.tenant_id} ({'created' if made.tenant_created else 'existed'})")
    print(f"client_id:       {made.client_id}")
    print(f"client_secret:   {made.client_secret}   (shown once; only its scrypt hash is stored)")
    where = url.rstrip("/") if url else "the API"
    print(f"token:           POST {where}/v1/oauth2/token (client credentials), then POST /v1/tenants")
    return 0


if __name__ == "__main__":
    sys.exit(main())
