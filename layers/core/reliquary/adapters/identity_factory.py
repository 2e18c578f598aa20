"""Builds the identity service from the one Settings object (once per cold start of the API function).

Kept apart from ``factory`` so the other functions never import the token verifier (python-jose).
"""

from __future__ import annotations

from reliquary.adapters.clients import aws_client, dynamodb_client, table_config
from reliquary.adapters.identity_store import DynamoDBIdentityRepository
from reliquary.adapters.token_keys import load_token_keys
from reliquary.config import Settings
from reliquary.errors import ConfigurationError
from reliquary.identity.service import IdentityService, WebAuthnConfig, system_clock


def build_identity_service(settings: Settings) -> IdentityService:
    if not settings.token_signing_key_id:
        # No fallback to a key generated in memory: each container would sign with its own key.
        raise ConfigurationError("RELIQUARY_TOKEN_SIGNING_KEY_ID is required to issue and verify tokens")
    keys = load_token_keys(
        aws_client(settings, "kms"), settings.token_signing_key_id, settings.token_previous_key_ids
    )
    # One adapter over IdentityTable for clients and people alike.
    repository = DynamoDBIdentityRepository(
        table_config(settings, settings.identity_table), dynamodb_client(settings)
    )
    return IdentityService(
        repository=repository,
        people=repository,
        signer=keys.signer,
        previous_keys=keys.previous,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        token_ttl_seconds=settings.token_ttl_seconds,
        operator_tenant=settings.operator_tenant,
        requests_per_second=settings.client_requests_per_second,
        webauthn=WebAuthnConfig(
            rp_id=settings.webauthn_rp_id,
            rp_name=settings.webauthn_rp_name,
            origins=settings.webauthn_origins,
            challenge_ttl_seconds=settings.webauthn_challenge_ttl_seconds,
            enrollment_ttl_seconds=settings.enrollment_ttl_seconds,
        ),
        clock=system_clock,
    )
