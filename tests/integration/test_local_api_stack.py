"""The API's part of the local stack, deployed from template.yaml on a moto server: the API function with
its resolved environment, the access-token key as KMS creates it in the cloud (an ES256 signing key),
the identity table; and serve_api running an app over loopback with that environment's settings,
reaching the stack through the moto endpoint.

The app is a small one of the test's own (the real one needs modules still being written); what it
checks is what the real one relies on: the settings it is built with reach the stack's resources."""

from __future__ import annotations

import base64
import json
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from infra.local.api import serve_api
from infra.local.runtime import LocalStack, free_port, local_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("own_stack")]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with local_stack(free_port(), stack_name=f"api-{uuid.uuid4().hex[:6]}") as deployed:
        yield deployed


def test_the_api_function_is_deployed_with_the_stacks_resources(stack: LocalStack) -> None:
    environment = stack.lambdas.environment("ApiFunction")
    assert environment["RELIQUARY_IDENTITY_TABLE"] == stack.resources["IdentityTable"]
    assert environment["RELIQUARY_VAULTS_TABLE"] == stack.resources["VaultsTable"]
    assert environment["RELIQUARY_ENCRYPT_FUNCTION"] == stack.outputs["EncryptFunctionArn"]
    # The state machine named in the template is the one the runtime created after the stack.
    assert environment["RELIQUARY_ACCESS_STATE_MACHINE_ARN"] == stack.access_state_machine_arn
    assert environment["RELIQUARY_TOKEN_SIGNING_KEY_ID"] == stack.outputs["TokenSigningKeyArn"]
    assert json.loads(environment["RELIQUARY_TOKEN_PREVIOUS_KEY_IDS"]) == []  # B is retired by default
    assert (environment["AWS_ENDPOINT_URL"], environment["AWS_ACCESS_KEY_ID"]) == (stack.endpoint, "local")
    # No REST API locally (serve_api stands in), and no output that would name one.
    assert "RestApi" not in stack.resources
    assert "ApiUrl" not in stack.outputs
    assert "TokenKeyBArn" not in stack.outputs
    table = stack.client("dynamodb").describe_table(TableName=stack.resources["IdentityTable"])["Table"]
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["TenantIndex"]


def test_kms_keys_are_created_as_the_template_declares_them(stack: LocalStack) -> None:
    kms = stack.client("kms")
    token = kms.describe_key(KeyId=stack.outputs["TokenSigningKeyArn"])["KeyMetadata"]
    assert (token["KeySpec"], token["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    root = kms.describe_key(KeyId=stack.outputs["RootKeyArn"])["KeyMetadata"]
    assert (root["KeySpec"], root["KeyUsage"]) == ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    assert kms.get_key_rotation_status(KeyId=stack.outputs["RootKeyArn"])["KeyRotationEnabled"] is True
    # The key policy is the template's, as JSON text (as KMS returns it).
    policy = json.loads(kms.get_key_policy(KeyId=token["KeyId"], PolicyName="default")["Policy"])
    assert {s["Sid"] for s in policy["Statement"]} == {
        "EnableAccountAdministration",
        "ApiSignsAndPublishes",
        "OnlyTheApiSigns",
    }


def _token_app(runtime: Callable[[], Any]) -> FastAPI:
    """Signs a JWS signing input with the configured key in KMS and returns the public key, as the token
    signer will. (MessageType RAW: moto does not implement DIGEST, it hashes the digest again.)"""
    app = FastAPI()

    @app.get("/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/sign")
    def sign() -> dict[str, str]:
        kms, settings = runtime()
        signature = kms.sign(
            KeyId=settings.token_signing_key_id,
            Message=b"header.claims",
            MessageType="RAW",
            SigningAlgorithm="ECDSA_SHA_256",
        )["Signature"]
        public = kms.get_public_key(KeyId=settings.token_signing_key_id)["PublicKey"]
        return {
            "signature": base64.b64encode(signature).decode(),
            "public_key": base64.b64encode(public).decode(),
            "issuer": settings.token_issuer,
        }

    return app


def _kms_runtime(settings: Any) -> tuple[Any, Any]:
    client = boto3.session.Session().client(
        "kms", region_name=settings.region, endpoint_url=settings.endpoint_url
    )
    return client, settings


def test_serve_api_runs_an_app_with_the_api_functions_settings_against_the_stack(stack: LocalStack) -> None:
    with (
        serve_api(stack, free_port(), create_app=_token_app, build_runtime=_kms_runtime) as served,
        urllib.request.urlopen(f"{served.url}/sign", timeout=10) as response,  # noqa: S310  (loopback)
    ):
        signed = json.loads(response.read())
    assert signed["issuer"] == served.url
    public = serialization.load_der_public_key(base64.b64decode(signed["public_key"]))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    # Verifies: the stack's token key signed it (raises InvalidSignature otherwise).
    public.verify(base64.b64decode(signed["signature"]), b"header.claims", ec.ECDSA(hashes.SHA256()))
