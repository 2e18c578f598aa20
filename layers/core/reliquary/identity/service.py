"""The identity domain: tenants, API clients and their secrets, roles, access tokens, rate limits.

Pure: storage and the token key come in as ports, time as a clock. The tenant a caller acts for comes
only from ``authorize`` (a verified token checked against the client's current row), never from input.

- ``authenticate`` + ``issue_token`` are the token endpoint (OAuth2 client credentials);
- ``authorize`` is every other request: it verifies the token, counts the request against the client's
  rate, and reads the client (strongly consistent) so a revoked client, a secret rotated with
  ``revoke_tokens`` or a role taken away stops its tokens at once.
Both count the request themselves (``check_rate``): the API does not call ``check_rate`` again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

from reliquary.crypto.scope import validate_id
from reliquary.errors import (
    AuthenticationError,
    ConflictError,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    NotFoundError,
    RateLimitedError,
)
from reliquary.identity import assertions, secrets
from reliquary.identity.did import DidKey
from reliquary.identity.models import (
    Caller,
    Client,
    ClientStatus,
    IssuedToken,
    StoredClient,
    Tenant,
    is_client_id,
    new_client_id,
    validate_client_id,
    validate_name,
)
from reliquary.identity.ports import IdentityRepository, TokenSigner
from reliquary.identity.scopes import (
    Grants,
    Role,
    RoleBinding,
    Scope,
    format_scope,
    parse_scope,
    scopes_for,
    validate_bindings,
)
from reliquary.identity.tokens import TokenIssuer, TokenVerifier

Clock = Callable[[], int]
FIRST_CLIENT_NAME = "tenant administrator"
RETRY_AFTER_SECONDS = 1


def system_clock() -> int:
    return int(time.time())


class IdentityService:
    def __init__(
        self,
        *,
        repository: IdentityRepository,
        signer: TokenSigner,
        previous_keys: Sequence[Mapping[str, Any]] = (),
        issuer: str,
        audience: str,
        token_ttl_seconds: int,
        operator_tenant: str,
        requests_per_second: int,
        clock: Clock = system_clock,
    ) -> None:
        """Tokens are signed by ``signer`` and verified under its key and ``previous_keys``: JWKs of the
        other keys the JWKS publishes (one that signed before, while its tokens may be unexpired, or one
        about to sign: docs/identity.md, "Rotating the token key")."""
        self._repository = repository
        self._issuer = TokenIssuer(signer, issuer=issuer, audience=audience, ttl_seconds=token_ttl_seconds)
        # The signer's key first; a key listed twice counts once.
        keys = [signer.public_jwk(), *previous_keys]
        self._verifier = TokenVerifier(keys, issuer=issuer, audience=audience)
        # What a client assertion's aud may name (RFC 7523 3: the token endpoint, or the issuer).
        self._assertion_audiences = frozenset({issuer, issuer.rstrip("/") + assertions.TOKEN_ENDPOINT_PATH})
        self._operator_tenant = operator_tenant
        self._requests_per_second = requests_per_second
        self._clock = clock

    # ------------------------------------------------------------------------------ tenants, clients
    def create_tenant(self, tenant_id: str, name: str) -> tuple[Tenant, Client, str]:
        """A new tenant and its first client, a tenant administrator (and the operator, in the operator
        tenant); the secret is returned here and never again. ConflictError if the tenant exists."""
        validate_id("tenant_id", tenant_id)
        now = self._clock()
        tenant = Tenant(tenant_id=tenant_id, name=validate_name("name", name), created_at=now)
        roles = [RoleBinding(Role.TENANT_ADMIN)]
        if tenant_id == self._operator_tenant:
            roles.append(RoleBinding(Role.OPERATOR))
        stored, secret = self._new_client(tenant_id, FIRST_CLIENT_NAME, roles, now)
        self._repository.create_tenant(tenant, stored)
        return tenant, stored.client, secret

    def get_tenant(self, tenant_id: str) -> Tenant:
        validate_id("tenant_id", tenant_id)
        return self._repository.get_tenant(tenant_id)

    @overload
    def create_client(
        self, tenant_id: str, name: str, roles: Sequence[RoleBinding], *, did: None = None
    ) -> tuple[Client, str]: ...
    @overload
    def create_client(
        self, tenant_id: str, name: str, roles: Sequence[RoleBinding], *, did: str
    ) -> tuple[Client, None]: ...
    def create_client(
        self, tenant_id: str, name: str, roles: Sequence[RoleBinding], *, did: str | None = None
    ) -> tuple[Client, str | None]:
        """A new client of an existing tenant; its secret is returned here and never again. With ``did``
        (a did:key: InvalidDidError otherwise) the client has no secret and authenticates with
        private_key_jwt assertions signed by that key."""
        self.get_tenant(tenant_id)
        name, now = validate_name("name", name), self._clock()
        if did is not None:
            client = self._client(tenant_id, name, roles, now, did=DidKey.parse(did).did)
            self._repository.create_client(StoredClient(client, None))
            return client, None
        stored, secret = self._new_client(tenant_id, name, roles, now)
        self._repository.create_client(stored)
        return stored.client, secret

    def list_clients(self, tenant_id: str) -> list[Client]:
        validate_id("tenant_id", tenant_id)
        return self._repository.list_clients(tenant_id)

    def get_client(self, tenant_id: str, client_id: str) -> Client:
        """NotFoundError for a client of another tenant, exactly as for one that does not exist."""
        validate_id("tenant_id", tenant_id)
        validate_client_id(client_id)
        client = self._repository.get_client(client_id).client
        if client.tenant_id != tenant_id:
            raise NotFoundError("no such client")
        return client

    def rotate_secret(self, tenant_id: str, client_id: str, *, revoke_tokens: bool) -> str:
        """A new secret (returned here and never again); the old one stops working at once. With
        ``revoke_tokens`` the tokens already issued stop too; without, they run out their lifetime."""
        client = self._active_client(tenant_id, client_id)
        if client.did is not None:
            raise ConflictError("the client authenticates with its did:key and has no secret")
        secret = secrets.new_secret()
        now = self._clock()
        self._repository.rotate_secret(
            tenant_id,
            client.client_id,
            secret_hash=secrets.hash_secret(secret),
            rotated_at=now,
            not_before=now + 1 if revoke_tokens else None,
        )
        return secret

    def revoke_client(self, tenant_id: str, client_id: str) -> Client:
        """The client can no longer get tokens, and its tokens stop at once. Revoking again is a no-op."""
        client = self.get_client(tenant_id, client_id)
        if not client.active:
            return client
        return self._repository.revoke(tenant_id, client_id, not_before=self._clock() + 1)

    def set_roles(self, tenant_id: str, client_id: str, roles: Sequence[RoleBinding]) -> Client:
        """Replace the client's roles. Its tokens keep their scopes only as far as the new roles grant
        them (``authorize`` narrows every token to the client's current roles)."""
        self._active_client(tenant_id, client_id)
        return self._repository.set_roles(tenant_id, client_id, self._checked_roles(tenant_id, roles))

    # ------------------------------------------------------------------------------ the token endpoint
    def authenticate(self, client_id: str, secret: str) -> Client:
        """The client whose id and secret these are. InvalidClientError, with one message, for an
        unknown id, a wrong secret or a revoked client; an unknown id costs the same scrypt work as a
        known one. Counts against the client's rate (RateLimitedError), so guessing is throttled."""
        if not is_client_id(client_id):
            raise InvalidClientError
        self.check_rate(client_id, self._clock())
        try:
            stored: StoredClient | None = self._repository.get_client(client_id)
        except NotFoundError:
            stored = None
        # A client with a did:key has no secret: it costs the same scrypt work as an unknown id, and fails.
        secret_hash = stored.secret_hash if stored is not None else None
        matches = secrets.verify_secret(secret, secret_hash or secrets.DUMMY_HASH)
        if stored is None or secret_hash is None or not matches or not stored.client.active:
            raise InvalidClientError
        if secrets.needs_rehash(secret_hash):
            self._upgrade_hash(client_id, secret, secret_hash)
        return stored.client

    def authenticate_assertion(self, assertion: object, client_id: str | None = None) -> Client:
        """The client a ``private_key_jwt`` assertion (RFC 7523) authenticates: signed by the did:key the
        client was registered with, claims as ``identity.assertions`` checks them, and a ``jti`` never
        used before (recorded until the assertion expires, so a replay is refused). ``client_id`` is the
        form's, which must match. InvalidClientError, with one message, for every failure; counts
        against the client's rate like ``authenticate``."""
        claimed = assertions.asserted_client(assertion, client_id)
        now = self._clock()
        self.check_rate(claimed, now)
        try:
            client = self._repository.get_client(claimed).client
        except NotFoundError:
            assertions.reject("unknown client")
        if client.did is None or not client.active:
            assertions.reject("not an active client with a did:key")
        claims = assertions.verify_assertion(
            assertion,
            client_id=claimed,
            key=DidKey.parse(client.did),
            audiences=self._assertion_audiences,
            now=now,
        )
        try:
            self._repository.use_assertion_id(
                claimed, claims.jti, expires_at=claims.expires_at + assertions.LEEWAY_SECONDS, now=now
            )
        except ConflictError:
            assertions.reject("replayed jti")
        return client

    def issue_token(self, client: Client, requested_scope: str | None = None) -> IssuedToken:
        """An access token for an authenticated client: every scope its roles grant, or the
        ``requested_scope`` (space-separated), which must lie within them (InvalidScopeError)."""
        if not client.active:
            raise InvalidClientError
        granted = self._granted(client)
        if requested_scope is None:
            scopes = granted
        else:
            scopes = parse_scope(requested_scope)
            if not all(Grants(granted).covers(scope) for scope in scopes):
                raise InvalidScopeError("the client's roles do not grant the scope asked for", field="scope")
        now = self._clock()
        # Never before the client's not_before: a token issued in the second of a rotation stays valid.
        issued_at = max(now, client.not_before)
        token = self._issuer.issue(
            client_id=client.client_id, tenant_id=client.tenant_id, scopes=scopes, issued_at=issued_at
        )
        return IssuedToken(
            access_token=token,
            expires_in=issued_at + self._issuer.ttl_seconds - now,
            scope=format_scope(scopes),
        )

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JSON Web Key Set of ``/.well-known/jwks.json``: the signing key first, then the previous
        keys whose tokens are still accepted."""
        return self._verifier.jwks()

    # ------------------------------------------------------------------------------ every request
    def authorize(self, token: object) -> Caller:
        """Who is calling: AuthenticationError unless the token verifies, its client exists, is active,
        belongs to the token's tenant, and was not revoked (or its secret rotated with revoke_tokens)
        after the token was issued. RateLimitedError past the client's rate."""
        now = self._clock()
        verified = self._verifier.verify(token, now=now)
        self.check_rate(verified.client_id, now)
        try:
            client = self._repository.get_client(verified.client_id).client
        except NotFoundError:
            raise AuthenticationError from None
        if (
            not client.active
            or client.tenant_id != verified.tenant_id
            or verified.issued_at < client.not_before
        ):
            raise AuthenticationError
        return Caller(
            tenant_id=client.tenant_id,
            client_id=client.client_id,
            grants=Grants(verified.scopes).narrowed_to(self._granted(client)),
            jti=verified.jti,
            expires_at=verified.expires_at,
            roles=client.roles,
        )

    def check_rate(self, client_id: str, now: int) -> None:
        """Count one request of the client in the one-second window ``now``; RateLimitedError (retry
        after a second) past ``requests_per_second``."""
        if self._repository.count_request(client_id, now) > self._requests_per_second:
            raise RateLimitedError("too many requests", retry_after=RETRY_AFTER_SECONDS)

    # ------------------------------------------------------------------------------ internals
    def _granted(self, client: Client) -> frozenset[str]:
        granted = scopes_for(client.roles)
        if client.tenant_id != self._operator_tenant:  # a stored operator role elsewhere grants nothing
            granted -= {Scope.TENANTS_MANAGE.value}
        return granted

    def _checked_roles(self, tenant_id: str, roles: Sequence[RoleBinding]) -> tuple[RoleBinding, ...]:
        bindings = validate_bindings(roles)
        if tenant_id != self._operator_tenant and any(b.role is Role.OPERATOR for b in bindings):
            raise InvalidRequestError("the operator role exists only in the operator tenant", field="roles")
        return bindings

    def _new_client(
        self, tenant_id: str, name: str, roles: Sequence[RoleBinding], now: int
    ) -> tuple[StoredClient, str]:
        secret = secrets.new_secret()
        return StoredClient(self._client(tenant_id, name, roles, now), secrets.hash_secret(secret)), secret

    def _client(
        self, tenant_id: str, name: str, roles: Sequence[RoleBinding], now: int, *, did: str | None = None
    ) -> Client:
        return Client(
            client_id=new_client_id(),
            tenant_id=tenant_id,
            name=name,
            roles=self._checked_roles(tenant_id, roles),
            status=ClientStatus.ACTIVE,
            created_at=now,
            secret_rotated_at=now,
            not_before=0,
            did=did,
        )

    def _active_client(self, tenant_id: str, client_id: str) -> Client:
        client = self.get_client(tenant_id, client_id)
        if not client.active:
            raise ConflictError("the client is revoked")
        return client

    def _upgrade_hash(self, client_id: str, secret: str, old_hash: str) -> None:
        # Stored under parameters cheaper than today's: rehash while the secret is at hand. Losing the race
        # to a rotation is fine (the rotation's hash is already current).
        try:
            self._repository.replace_secret_hash(
                client_id, old_hash=old_hash, new_hash=secrets.hash_secret(secret)
            )
        except ConflictError:
            return
