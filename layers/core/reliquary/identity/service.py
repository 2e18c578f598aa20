"""The identity domain: tenants, API clients and their secrets, roles, access tokens, rate limits.

Pure: storage and the token key come in as ports, time as a clock. The tenant a caller acts for comes
only from ``authorize`` (a verified token checked against the client's current row), never from input.

- ``authenticate`` + ``issue_token`` are the token endpoint (OAuth2 client credentials);
- ``authorize`` is every other request: it verifies the token, counts the request against the client's
  rate, and reads the client (strongly consistent) so a revoked client, a secret rotated with
  ``revoke_tokens`` or a role taken away stops its tokens at once. A token of a person (``ps-``) is
  checked against the person's row the same way, and an enrollment token only while it is the person's
  pending enrollment.
- People sign in with passkeys (``identity.passkeys``): an enrollment token registers one passkey; a
  passkey sign-in gets a session token (the scopes of the person's roles and ``webauthn:register``).
Both count the request themselves (``check_rate``): the API does not call ``check_rate`` again.
"""

from __future__ import annotations

import hmac
import secrets as random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reliquary.crypto.scope import validate_id
from reliquary.errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    NotFoundError,
    PasskeyError,
    RateLimitedError,
)
from reliquary.identity import passkeys, secrets
from reliquary.identity.models import (
    USER_HANDLE_BYTES,
    Caller,
    Challenge,
    Client,
    ClientStatus,
    IssuedToken,
    Person,
    PersonStatus,
    StoredClient,
    StoredCredential,
    Tenant,
    is_challenge_id,
    is_client_id,
    is_person_id,
    new_challenge_id,
    new_client_id,
    new_person_id,
    validate_client_id,
    validate_credential_id,
    validate_name,
    validate_person_id,
)
from reliquary.identity.ports import IdentityRepository, PeopleRepository, TokenSigner
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
from reliquary.identity.tokens import ENROLLMENT_SCOPES, TokenIssuer, TokenVerifier, VerifiedToken

Clock = Callable[[], int]
FIRST_CLIENT_NAME = "tenant administrator"
RETRY_AFTER_SECONDS = 1
# The only roles a person can hold: people approve and audit; clients do everything else.
PERSON_ROLES = frozenset({Role.APPROVER, Role.AUDITOR})


@dataclass(frozen=True, slots=True)
class WebAuthnConfig:
    """The relying party: its id, its name, the origins ceremonies may run on, lifetimes."""

    rp_id: str = "localhost"
    rp_name: str = "RELIQUARY"
    origins: tuple[str, ...] = ("http://localhost:3000",)
    challenge_ttl_seconds: int = 300
    enrollment_ttl_seconds: int = 86_400


@dataclass(frozen=True, slots=True)
class Enrollment:
    """An enrollment token (scope ``webauthn:register`` only) and when it expires: it registers one
    passkey, and stops when used, replaced by a new one, or the person is revoked."""

    token: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class Ceremony:
    """A stored challenge's id and the options the browser passes to ``navigator.credentials``."""

    challenge_id: str
    options: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: IssuedToken
    person: Person


def system_clock() -> int:
    return int(time.time())


class IdentityService:
    def __init__(
        self,
        *,
        repository: IdentityRepository,
        people: PeopleRepository,
        signer: TokenSigner,
        previous_keys: Sequence[Mapping[str, Any]] = (),
        issuer: str,
        audience: str,
        token_ttl_seconds: int,
        operator_tenant: str,
        requests_per_second: int,
        webauthn: WebAuthnConfig = WebAuthnConfig(),
        clock: Clock = system_clock,
    ) -> None:
        """Tokens are signed by ``signer`` and verified under its key and ``previous_keys``: JWKs of the
        other keys the JWKS publishes (one that signed before, while its tokens may be unexpired, or one
        about to sign: docs/identity.md, "Rotating the token key")."""
        self._repository = repository
        self._people = people
        self._webauthn = webauthn
        self._issuer = TokenIssuer(signer, issuer=issuer, audience=audience, ttl_seconds=token_ttl_seconds)
        # The signer's key first; a key listed twice counts once.
        keys = [signer.public_jwk(), *previous_keys]
        self._verifier = TokenVerifier(keys, issuer=issuer, audience=audience)
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

    def create_client(self, tenant_id: str, name: str, roles: Sequence[RoleBinding]) -> tuple[Client, str]:
        """A new client of an existing tenant; its secret is returned here and never again."""
        self.get_tenant(tenant_id)
        stored, secret = self._new_client(tenant_id, validate_name("name", name), roles, self._clock())
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
        secret_hash = stored.secret_hash if stored is not None else secrets.DUMMY_HASH
        matches = secrets.verify_secret(secret, secret_hash)
        if stored is None or not matches or not stored.client.active:
            raise InvalidClientError
        if secrets.needs_rehash(stored.secret_hash):
            self._upgrade_hash(client_id, secret, stored.secret_hash)
        return stored.client

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
        if is_person_id(verified.client_id):
            return self._authorize_person(verified)
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

    def _authorize_person(self, verified: VerifiedToken) -> Caller:
        try:
            person = self._people.get_person(verified.client_id)
        except NotFoundError:
            raise AuthenticationError from None
        if (
            not person.active
            or person.tenant_id != verified.tenant_id
            or verified.issued_at < person.not_before
        ):
            raise AuthenticationError
        if verified.scopes == ENROLLMENT_SCOPES and not _same(person.enrollment_jti, verified.jti):
            # An enrollment token used, replaced by a newer one, or never the person's stops at once.
            raise AuthenticationError
        return Caller(
            tenant_id=person.tenant_id,
            client_id=person.person_id,
            grants=Grants(verified.scopes).narrowed_to(_person_scopes(person)),
            jti=verified.jti,
            expires_at=verified.expires_at,
            roles=person.roles,
            kind="person",
        )

    def check_rate(self, client_id: str, now: int) -> None:
        """Count one request of the client in the one-second window ``now``; RateLimitedError (retry
        after a second) past ``requests_per_second``."""
        if self._repository.count_request(client_id, now) > self._requests_per_second:
            raise RateLimitedError("too many requests", retry_after=RETRY_AFTER_SECONDS)

    # ------------------------------------------------------------------------------ people
    def create_person(
        self, tenant_id: str, name: str, roles: Sequence[RoleBinding]
    ) -> tuple[Person, Enrollment]:
        """A new person of an existing tenant and its enrollment token (returned here only)."""
        self.get_tenant(tenant_id)
        person = Person(
            person_id=new_person_id(),
            tenant_id=tenant_id,
            name=validate_name("name", name),
            roles=_checked_person_roles(roles),
            status=PersonStatus.ACTIVE,
            created_at=self._clock(),
            not_before=0,
            user_handle=random.token_bytes(USER_HANDLE_BYTES),
        )
        self._people.create_person(person)
        return self._enroll(person)

    def list_persons(self, tenant_id: str) -> list[Person]:
        validate_id("tenant_id", tenant_id)
        return self._people.list_persons(tenant_id)

    def get_person(self, tenant_id: str, person_id: str) -> Person:
        """NotFoundError for a person of another tenant, exactly as for one that does not exist."""
        validate_id("tenant_id", tenant_id)
        validate_person_id(person_id)
        person = self._people.get_person(person_id)
        if person.tenant_id != tenant_id:
            raise NotFoundError("no such person")
        return person

    def person_credentials(self, person: Person) -> list[StoredCredential]:
        return self._people.list_credentials(person)

    def new_enrollment(self, tenant_id: str, person_id: str) -> Enrollment:
        """A new enrollment token for an active person; any earlier one stops at once."""
        person = self.get_person(tenant_id, person_id)
        if not person.active:
            raise ConflictError("the person is revoked")
        return self._enroll(person)[1]

    def set_person_roles(self, tenant_id: str, person_id: str, roles: Sequence[RoleBinding]) -> Person:
        person = self.get_person(tenant_id, person_id)
        if not person.active:
            raise ConflictError("the person is revoked")
        return self._people.set_person_roles(tenant_id, person_id, _checked_person_roles(roles))

    def revoke_person(self, tenant_id: str, person_id: str) -> Person:
        """The person's tokens (sessions and enrollment) stop at once; its passkeys sign in no more.
        Revoking again is a no-op."""
        person = self.get_person(tenant_id, person_id)
        if not person.active:
            return person
        return self._people.revoke_person(tenant_id, person_id, not_before=self._clock() + 1)

    def remove_credential(self, tenant_id: str, person_id: str, credential_id: str) -> None:
        self.get_person(tenant_id, person_id)
        self._people.remove_credential(tenant_id, person_id, validate_credential_id(credential_id))

    # ------------------------------------------------------------------------------ passkeys
    def registration_options(self, caller: Caller) -> Ceremony:
        """Options to register a passkey for the calling person (a token with ``webauthn:register``)."""
        person = self._registering_person(caller)
        challenge = self._new_challenge(
            "registration", tenant_id=person.tenant_id, person_id=person.person_id, token_jti=caller.jti
        )
        options = passkeys.registration_options(
            rp_id=self._webauthn.rp_id,
            rp_name=self._webauthn.rp_name,
            person=person,
            challenge=challenge.challenge,
            exclude=self._people.list_credentials(person),
            timeout_seconds=self._webauthn.challenge_ttl_seconds,
        )
        return Ceremony(challenge.challenge_id, options)

    def register_passkey(
        self, caller: Caller, *, challenge_id: object, credential: object, label: str | None
    ) -> StoredCredential:
        """Verify a registration response over the caller's own challenge and store the credential; an
        enrollment token is consumed by it. PasskeyError if it does not verify (the challenge is spent
        either way); ConflictError if the enrollment was used meanwhile or the person has too many."""
        person = self._registering_person(caller)
        challenge = self._take_challenge(challenge_id)
        if (
            challenge.purpose != "registration"
            or challenge.person_id != person.person_id
            or challenge.tenant_id != person.tenant_id
        ):
            raise PasskeyError("challenge")
        stored = passkeys.verify_registration(
            credential,
            expected_challenge=challenge.challenge,
            person=person,
            rp_id=self._webauthn.rp_id,
            origins=self._webauthn.origins,
            label=label,
            now=self._clock(),
        )
        enrollment = caller.jti if caller.grants.scopes == ENROLLMENT_SCOPES else None
        self._people.add_credential(stored, enrollment_jti=enrollment)
        return stored

    def authentication_options(self) -> Ceremony:
        """Options for a passkey sign-in: discoverable credentials, user verification required."""
        challenge = self._new_challenge("authentication")
        options = passkeys.authentication_options(
            rp_id=self._webauthn.rp_id,
            challenge=challenge.challenge,
            timeout_seconds=self._webauthn.challenge_ttl_seconds,
        )
        return Ceremony(challenge.challenge_id, options)

    def sign_in(self, *, challenge_id: object, credential: object) -> SignedIn:
        """A session token for the person whose passkey signed the challenge. The challenge is spent
        first (a failed attempt spends it too); then the credential, its person (active), the assertion,
        and the counter, advanced conditionally (of two uses of one assertion, one passes). Every refusal
        is PasskeyError."""
        challenge = self._take_challenge(challenge_id)
        credential_id = passkeys.credential_id_of(credential)
        try:
            stored = self._people.get_credential(credential_id)
            person = self._people.get_person(stored.person_id)
        except NotFoundError:
            raise PasskeyError("credential") from None
        now = self._clock()
        self.check_rate(person.person_id, now)
        if not person.active or person.tenant_id != stored.tenant_id:
            raise PasskeyError("credential")
        verified = passkeys.verify_sign_in(
            credential,
            challenge=challenge,
            credential=stored,
            person=person,
            rp_id=self._webauthn.rp_id,
            origins=self._webauthn.origins,
        )
        try:
            self._people.advance_sign_count(
                stored.credential_id, stored.sign_count, verified.sign_count, used_at=now
            )
        except ConflictError:
            raise PasskeyError("sign_count") from None
        scopes = _person_scopes(person)
        issued_at = max(now, person.not_before)
        token = self._issuer.issue(
            client_id=person.person_id, tenant_id=person.tenant_id, scopes=scopes, issued_at=issued_at
        )
        issued = IssuedToken(
            access_token=token,
            expires_in=issued_at + self._issuer.ttl_seconds - now,
            scope=format_scope(scopes),
        )
        return SignedIn(issued, person)

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
        client = Client(
            client_id=new_client_id(),
            tenant_id=tenant_id,
            name=name,
            roles=self._checked_roles(tenant_id, roles),
            status=ClientStatus.ACTIVE,
            created_at=now,
            secret_rotated_at=now,
            not_before=0,
        )
        return StoredClient(client, secrets.hash_secret(secret)), secret

    def _active_client(self, tenant_id: str, client_id: str) -> Client:
        client = self.get_client(tenant_id, client_id)
        if not client.active:
            raise ConflictError("the client is revoked")
        return client

    def _enroll(self, person: Person) -> tuple[Person, Enrollment]:
        now = self._clock()
        issued_at = max(now, person.not_before)
        ttl = self._webauthn.enrollment_ttl_seconds
        token = self._issuer.issue(
            client_id=person.person_id,
            tenant_id=person.tenant_id,
            scopes=ENROLLMENT_SCOPES,
            issued_at=issued_at,
            ttl_seconds=ttl,
        )
        verified = self._verifier.verify(token, now=now)
        person = self._people.set_enrollment(
            person.tenant_id, person.person_id, jti=verified.jti, expires_at=verified.expires_at
        )
        return person, Enrollment(token=token, expires_at=issued_at + ttl)

    def _registering_person(self, caller: Caller) -> Person:
        if caller.kind != "person":
            raise ForbiddenError("only a person registers passkeys", scope=Scope.WEBAUTHN_REGISTER.value)
        caller.grants.require(Scope.WEBAUTHN_REGISTER)
        person = self._people.get_person(caller.client_id)
        if not person.active or person.tenant_id != caller.tenant_id:
            raise AuthenticationError
        return person

    def _new_challenge(
        self,
        purpose: str,
        *,
        tenant_id: str | None = None,
        person_id: str | None = None,
        token_jti: str | None = None,
    ) -> Challenge:
        challenge = Challenge(
            challenge_id=new_challenge_id(),
            challenge=passkeys.new_challenge(),
            purpose="registration" if purpose == "registration" else "authentication",
            expires_at=self._clock() + self._webauthn.challenge_ttl_seconds,
            tenant_id=tenant_id,
            person_id=person_id,
            token_jti=token_jti,
        )
        self._people.put_challenge(challenge)
        return challenge

    def _take_challenge(self, challenge_id: object) -> Challenge:
        if not is_challenge_id(challenge_id):
            raise PasskeyError("challenge")
        challenge = self._people.take_challenge(str(challenge_id), now=self._clock())
        if challenge is None:
            raise PasskeyError("challenge")
        return challenge

    def _upgrade_hash(self, client_id: str, secret: str, old_hash: str) -> None:
        # Stored under parameters cheaper than today's: rehash while the secret is at hand. Losing the race
        # to a rotation is fine (the rotation's hash is already current).
        try:
            self._repository.replace_secret_hash(
                client_id, old_hash=old_hash, new_hash=secrets.hash_secret(secret)
            )
        except ConflictError:
            return


def _same(expected: str | None, given: str) -> bool:
    return expected is not None and hmac.compare_digest(expected.encode(), given.encode())


def _person_scopes(person: Person) -> frozenset[str]:
    """A person's session scopes: its roles' and ``webauthn:register`` (to add another passkey)."""
    return scopes_for(person.roles) | ENROLLMENT_SCOPES


def _checked_person_roles(roles: Sequence[RoleBinding]) -> tuple[RoleBinding, ...]:
    bindings = validate_bindings(roles)
    if any(b.role not in PERSON_ROLES for b in bindings):
        raise InvalidRequestError("a person holds only the approver and auditor roles", field="roles")
    return bindings
