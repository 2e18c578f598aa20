"""The one settings object. Read from the environment once per cold start (``get_settings``).

Names of environment variables are the field names with the ``RELIQUARY_`` prefix (any case); a field
with a ``validation_alias`` is read from that variable first (``AWS_REGION``, ``AWS_ENDPOINT_URL``), then
from its prefixed name. A tuple field is written as JSON (``["a", "b"]``; ``null`` leaves the default).
template.yaml sets them for every function. An explicit argument to a constructor (or a key of the mapping
given to ``Settings.model_validate``, which calls the constructor) always wins over the environment.

These are the rules of pydantic-settings' ``BaseSettings`` with this configuration, which ``Settings`` used
before: its import loaded asyncio and nine settings sources for the one used here (this module took 35 CPU
ms to import with it, 6 without). ``tests/unit/test_config.py`` checks the two read every environment alike.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

from reliquary.errors import ConfigurationError

ENV_PREFIX = "RELIQUARY_"


def _keys(name: str, field: FieldInfo) -> tuple[str, ...]:
    """The keys a field is validated from, the preferred first: its alias (if it has one), its name."""
    alias = field.validation_alias
    return (alias, name) if isinstance(alias, str) else (name,)


def _from_environment(name: str, field: FieldInfo, text: str) -> Any:
    if get_origin(field.annotation) is not tuple:
        return text
    try:
        return json.loads(text)
    except ValueError:
        # The variable's name only: its value may be anything, a secret pasted by mistake included.
        raise ConfigurationError(
            f'{ENV_PREFIX}{name.upper()} is not JSON (a list is written as ["a", "b"])'
        ) from None


def _values(
    fields: Mapping[str, FieldInfo], environ: Mapping[str, str], given: Mapping[str, Any]
) -> dict[str, Any]:
    """What pydantic validates: the environment's values under the arguments', keyed as pydantic-settings
    keyed them (the same values, errors and error locations).

    A field's variable is its alias, then the prefixed name, in any case; a tuple's value is JSON, where
    ``null`` is no value. An argument matches a field's alias or name in any case and is passed under the
    preferred key, or under its own spelling when that is exactly the alias or the name; other arguments
    are passed on, and ignored.
    """
    variables = {variable.lower(): text for variable, text in environ.items()}
    spellings: dict[str, list[str]] = {}
    for spelled in given:
        spellings.setdefault(spelled.lower(), []).append(spelled)
    unclaimed = dict(given)
    found: dict[str, Any] = {}
    passed: dict[str, Any] = {}
    respelled: list[tuple[tuple[str, ...], str]] = []
    for name, field in fields.items():
        keys = _keys(name, field)
        for key in keys:
            text = variables.get(key.lower() if key != name else (ENV_PREFIX + name).lower())
            if text is not None:
                value = _from_environment(name, field, text)
                if value is not None:
                    found[key] = value
                break
        matched = [
            spelled for key in keys for spelled in spellings.get(key.lower(), ()) if spelled in unclaimed
        ]
        if matched:
            passed[keys[0]] = given[matched[0]]
            for spelled in matched:
                del unclaimed[spelled]
            exact = next((key for key in keys if key in given), None)
            if exact is not None:
                respelled.append((keys, exact))
    values = {**found, **passed, **unclaimed}
    for keys, spelled in respelled:
        value = values.pop(keys[0])
        for key in keys[1:]:
            values.pop(key, None)
        values[spelled] = value
    return values


class _EnvironmentModel(BaseModel):
    """A model whose constructor fills what it is not given from the environment (module docstring)."""

    def __init__(self, **values: Any) -> None:
        super().__init__(**_values(type(self).model_fields, os.environ, values))


class Settings(_EnvironmentModel):
    # validate_default: the defaults are checked as given values are (BaseSettings did the same).
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, validate_default=True)

    stage: Literal["local", "dev", "prod"] = "local"
    region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    # Set for local development and tests (moto); unset on AWS.
    endpoint_url: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL")

    vaults_table: str = "reliquary-vaults"
    items_table: str = "reliquary-items"
    idempotency_table: str = "reliquary-idempotency"
    items_bucket: str = "reliquary-items"
    audit_table: str = "reliquary-audit"
    replay_table: str = "reliquary-replay"
    history_table: str = "reliquary-history"
    agent_memory_table: str = "reliquary-agent-memory"
    audit_bucket: str = "reliquary-audit"
    # Tenants, API clients (hashed secrets, roles) and per-client rate windows (the API function only).
    identity_table: str = "reliquary-identity"
    # Requests waiting for people's step-up approval (agent-vote writes; the API reads the views only).
    approvals_table: str = "reliquary-approvals"

    root_of_trust: Literal["kms", "local"] = "local"
    kms_key_id: str | None = None
    # Local development root key: generated on first use, kept outside the repository.
    local_root_key_path: Path = Path.home() / ".reliquary" / "root.key"

    # Items whose ciphertext (plaintext + 16-byte tag) is larger than this go to S3; only the pointer and
    # the detached envelope (wrapped data key, signature) stay in DynamoDB.
    large_item_threshold: int = Field(default=256 * 1024, ge=1024)
    # A synchronous Lambda invocation carries at most 6 MB of JSON, so about 4.4 MiB of base64 plaintext.
    max_item_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # Algorithm the service signs envelopes, grants and receipts with.
    signature_algorithm: Literal["ML-DSA-65", "Falcon-512", "Ed25519"] = "ML-DSA-65"
    # Algorithms whose service keys verifiers trust. Post-quantum only by default: a classical key,
    # even one of ours, must not be able to vouch for an envelope or a grant.
    accepted_signature_algorithms: tuple[Literal["ML-DSA-65", "Falcon-512", "Ed25519"], ...] = (
        "ML-DSA-65",
        "Falcon-512",
    )
    # Lifetime of a grant issued to a requester.
    grant_ttl_seconds: int = Field(default=300, ge=1, le=86_400)
    # A logged approval opens its item only this long after it was decided (then: a new request).
    approval_max_age_seconds: int = Field(default=900, ge=1, le=86_400)
    # Unwrapped vault private keys stay in a warm container's memory this long (0: unwrap every time).
    vault_key_cache_seconds: float = Field(default=60.0, ge=0, le=3600)
    # Idempotency records live this long (powertools default is one hour).
    idempotency_ttl_seconds: int = Field(default=3600, ge=60)
    # A context-proof nonce must be used within this many seconds of being issued.
    nonce_ttl_seconds: int = Field(default=300, ge=10, le=3600)
    # A folder of a real ceremony's zero-knowledge verification keys (<circuit>.vkey.json and
    # <circuit>.signals.json for every circuit), read at cold start. Unset: the development ceremony's
    # keys shipped with the core, which production refuses (zk/README.md, Ceremony).
    zk_keys_dir: Path | None = None
    # The name of this deployment's transparency logs: each tenant's log has the checkpoint origin
    # "<audit_origin>/<tenant id>", and the checkpoint keys are named "<audit_origin>" (a schema-less
    # URL, as c2sp.org/tlog-checkpoint recommends; set it to a name you control).
    audit_origin: str = Field(
        default="reliquary.local/audit", pattern=r"^[a-z0-9][a-z0-9.-]*(/[A-Za-z0-9._-]+)*$", max_length=128
    )
    # How long an append whose entries are committed may wait for a checkpoint another appender of the
    # same log (in the same process) is about to publish, when others are queued; an idle log publishes
    # at once (docs/audit-log.md, "When a checkpoint is published"). 0: every group publishes its own.
    audit_checkpoint_interval_ms: int = Field(default=25, ge=0, le=1000)
    # How long entries appended for a promise (sequenced only) may wait in a process before the append
    # that finds them due integrates them and publishes a checkpoint (or 256 of them: one entry bundle);
    # a receipt asked for integrates at once. Longer: fewer writes per entry under load (about a second,
    # as Tessera-style logs publish), later checkpoints for promised entries.
    audit_promise_integration_ms: int = Field(default=1000, ge=0, le=60_000)

    # --- permanent storage: IPFS and Arweave (docs/storage.md) ----------------------------------
    # A Kubo-compatible node's RPC API (e.g. http://127.0.0.1:5001) and an Arweave node or gateway that
    # accepts transactions (e.g. https://arweave.net). Unset: vaults cannot opt in to that backend and
    # checkpoints are not anchored there.
    ipfs_api_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$", max_length=512)
    arweave_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$", max_length=512)
    # Each request to either node gives up after this long (a transient error: the flow retries it).
    permanent_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # The Arweave wallet's key: a KMS RSA_4096 SIGN_VERIFY key (RSASSA_PSS_SHA_256) whose private half
    # never leaves KMS. Unset: a 4096-bit key generated on first use, stored wrapped by the root of trust.
    arweave_wallet_key_id: str | None = None
    # Where each tenant log's latest checkpoint is anchored in public ("none": not anchored).
    audit_anchor_backend: Literal["none", "ipfs", "arweave"] = "none"

    # --- the API (functions/api) ----------------------------------------------------------------
    # Access tokens: ES256 JWTs signed by a KMS ECC_NIST_P256 key. `token_signing_key_id` signs; the
    # previous keys stay in the JWKS (and keep verifying) until the tokens they signed have expired.
    token_signing_key_id: str | None = None
    token_previous_key_ids: tuple[str, ...] = ()
    token_issuer: str = Field(default="https://reliquary.local", max_length=256)
    token_audience: str = Field(default="reliquary-api", max_length=256)
    token_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    # The service's DID, whose document /.well-known/did.json serves (its checkpoint, stage and token keys).
    # Default: did:web of the token issuer's host (``did_for_issuer``).
    service_did: str = Field(default="", pattern=r"^$|^did:web:[A-Za-z0-9.%-]+(:[A-Za-z0-9._~-]+)*$")
    # The tenant whose clients may hold `tenants:manage` (create tenants): the operator's own tenant.
    operator_tenant: str = Field(default="operator", pattern=r"^[A-Za-z0-9][A-Za-z0-9.:@-]{0,127}$")
    # Per-client request budget of the API (a fixed one-second window, shared by every API container).
    client_requests_per_second: int = Field(default=50, ge=1, le=10_000)
    # WebAuthn (people's passkeys): the relying party id (the site's registrable domain, which passkeys
    # are bound to), its display name, the origins pages may run ceremonies from (a JSON list), how
    # long a ceremony's challenge lives, and how long a person's enrollment token lives.
    webauthn_rp_id: str = Field(default="localhost", pattern=r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
    webauthn_rp_name: str = Field(default="RELIQUARY", min_length=1, max_length=64)
    webauthn_origins: tuple[str, ...] = Field(default=("http://localhost:3000",), min_length=1, max_length=16)
    webauthn_challenge_ttl_seconds: int = Field(default=300, ge=30, le=900)
    enrollment_ttl_seconds: int = Field(default=86_400, ge=300, le=7 * 86_400)
    # The ARNs the API invokes and starts (set by template.yaml for the API function).
    encrypt_function: str = "reliquary-encrypt"
    verify_proof_function: str = "reliquary-verify-proof"
    score_trust_function: str = "reliquary-score-trust"
    agent_vote_function: str = "reliquary-agent-vote"
    audit_append_function: str = "reliquary-audit-append"
    access_state_machine_arn: str | None = None

    @model_validator(mode="after")
    def _origins_are_origins(self) -> Settings:
        for origin in self.webauthn_origins:
            scheme, _, host = origin.partition("://")
            # An origin is scheme://host[:port], nothing after; http only for a local host.
            local = host.split(":")[0] in {"localhost", "127.0.0.1"}
            if scheme not in {"https", "http"} or (scheme == "http" and not local) or not host or "/" in host:
                raise ValueError(f"RELIQUARY_WEBAUTHN_ORIGINS: {origin!r} is not an https origin")
        return self

    @model_validator(mode="after")
    def _service_did_defaults_to_the_issuer(self) -> Settings:
        if not self.service_did:
            # A frozen model: the derived default is set once, here, as pydantic's own __init__ would.
            object.__setattr__(self, "service_did", did_for_issuer(self.token_issuer))
        return self

    @model_validator(mode="after")
    def _signer_is_accepted(self) -> Settings:
        if self.signature_algorithm not in self.accepted_signature_algorithms:
            raise ValueError(
                f"RELIQUARY_SIGNATURE_ALGORITHM={self.signature_algorithm} must be one of "
                f"RELIQUARY_ACCEPTED_SIGNATURE_ALGORITHMS {list(self.accepted_signature_algorithms)}"
            )
        return self

    @model_validator(mode="after")
    def _anchor_backend_has_a_node(self) -> Settings:
        backend = self.audit_anchor_backend
        url = {"ipfs": self.ipfs_api_url, "arweave": self.arweave_url}.get(backend, "")
        if url is None:
            name = "RELIQUARY_IPFS_API_URL" if backend == "ipfs" else "RELIQUARY_ARWEAVE_URL"
            raise ValueError(f"RELIQUARY_AUDIT_ANCHOR_BACKEND={backend} needs {name}")
        return self


_DNS_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
_LOOPBACK = frozenset({"127.0.0.1", "::1"})


def did_for_issuer(issuer: str) -> str:
    """``did:web:`` and the token issuer's host (``%3A`` and the port, when it has one). did:web names
    hosts, never IP addresses: a loopback address (a local run) is ``localhost``; another address, or a
    host that is no DNS name, is refused (set ``RELIQUARY_SERVICE_DID``)."""
    parts = urlsplit(issuer)
    host = (parts.hostname or "").lower()
    host = "localhost" if host in _LOOPBACK else host
    if _DNS_NAME.fullmatch(host) is None or host.replace(".", "").isdigit():
        raise ValueError("the token issuer's host cannot name a did:web: set RELIQUARY_SERVICE_DID")
    return f"did:web:{host}%3A{parts.port}" if parts.port else f"did:web:{host}"


@functools.cache
def get_settings() -> Settings:
    """The settings of this process, read once (a Lambda cold start reads them once)."""
    return Settings()
