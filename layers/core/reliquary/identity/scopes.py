"""Scopes, roles and what a token's scopes allow.

A scope is a string of the token's space-separated ``scope`` claim. Tenant-wide scopes stand alone
(``audit:read``). A vault-bound scope is either bare (``memories:write``: on every vault of the tenant) or
bound to one vault (``memories:write/<vault id>``; ``/`` never occurs in an id, so the split is exact).
Roles are named sets of scopes, bound to the whole tenant or to one vault (``RoleBinding``);
``scopes_for`` turns a client's bindings into the token's scope strings, and ``Grants`` answers what a
verified token allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from reliquary.crypto.scope import validate_id
from reliquary.errors import ForbiddenError, InvalidRequestError, InvalidScopeError

VAULT_SEPARATOR = "/"
# Far more than any role set needs; keeps a client's token well under the verifier's size cap.
MAX_ROLE_BINDINGS = 32
# A token request's scope parameter: longer than every scope a client can hold, written out.
MAX_SCOPE_TEXT = 8192


class Scope(StrEnum):
    # Tenant-wide only.
    TENANT_ADMIN = "tenant:admin"  # clients and their roles
    VAULTS_CREATE = "vaults:create"
    AUDIT_READ = "audit:read"
    AUDIT_EXPORT = "audit:export"
    TENANTS_MANAGE = "tenants:manage"  # create tenants: only clients of the operator tenant
    WEBAUTHN_REGISTER = "webauthn:register"  # register a passkey: only persons (enrollment, session)
    # Vault-bound: on every vault (bare) or on one (``scope/<vault id>``).
    VAULTS_READ = "vaults:read"
    VAULTS_ADMIN = "vaults:admin"  # keys, policies
    MEMORIES_READ = "memories:read"  # metadata, history
    MEMORIES_WRITE = "memories:write"  # add, delete, forget
    ACCESS_REQUEST = "access:request"  # nonces, access requests
    ACCESS_READ = "access:read"  # every access request of the vault
    ACCESS_APPROVE = "access:approve"  # people approving

    @property
    def vault_bound(self) -> bool:
        return self in VAULT_SCOPES


VAULT_SCOPES = frozenset(
    {
        Scope.VAULTS_READ,
        Scope.VAULTS_ADMIN,
        Scope.MEMORIES_READ,
        Scope.MEMORIES_WRITE,
        Scope.ACCESS_REQUEST,
        Scope.ACCESS_READ,
        Scope.ACCESS_APPROVE,
    }
)


class Role(StrEnum):
    TENANT_ADMIN = "tenant-admin"
    VAULT_ADMIN = "vault-admin"
    WRITER = "writer"
    REQUESTER = "requester"
    APPROVER = "approver"
    AUDITOR = "auditor"
    OPERATOR = "operator"  # only in the operator tenant (IdentityService enforces it)


ROLE_SCOPES: Mapping[Role, frozenset[Scope]] = {
    Role.TENANT_ADMIN: frozenset(
        {Scope.TENANT_ADMIN, Scope.VAULTS_CREATE, Scope.AUDIT_READ, Scope.AUDIT_EXPORT} | VAULT_SCOPES
    ),
    Role.VAULT_ADMIN: frozenset(
        {Scope.VAULTS_READ, Scope.VAULTS_ADMIN, Scope.MEMORIES_READ, Scope.MEMORIES_WRITE, Scope.ACCESS_READ}
    ),
    Role.WRITER: frozenset({Scope.VAULTS_READ, Scope.MEMORIES_READ, Scope.MEMORIES_WRITE}),
    Role.REQUESTER: frozenset({Scope.VAULTS_READ, Scope.MEMORIES_READ, Scope.ACCESS_REQUEST}),
    Role.APPROVER: frozenset({Scope.VAULTS_READ, Scope.ACCESS_READ, Scope.ACCESS_APPROVE}),
    Role.AUDITOR: frozenset({Scope.AUDIT_READ, Scope.AUDIT_EXPORT, Scope.VAULTS_READ, Scope.MEMORIES_READ}),
    Role.OPERATOR: frozenset({Scope.TENANTS_MANAGE}),
}

# Roles holding a tenant-wide scope: bound to a vault they would mean nothing coherent.
TENANT_WIDE_ROLES = frozenset(role for role, scopes in ROLE_SCOPES.items() if scopes - VAULT_SCOPES)


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """A role on the whole tenant (``vault_id`` None) or on one vault of it."""

    role: Role
    vault_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.role, Role):
            raise InvalidRequestError("unknown role", field="roles")
        if self.vault_id is None:
            return
        validate_id("vault_id", self.vault_id)
        if self.role in TENANT_WIDE_ROLES:
            raise InvalidRequestError(
                "this role applies to the whole tenant and cannot be bound to a vault", field="roles"
            )

    @classmethod
    def parse(cls, text: str) -> RoleBinding:
        """``role`` or ``role/<vault id>`` (the stored and the API's form)."""
        role_text, separator, vault_id = text.partition(VAULT_SEPARATOR)
        try:
            role = Role(role_text)
        except ValueError:
            raise InvalidRequestError("unknown role", field="roles") from None
        return cls(role, vault_id if separator else None)

    def __str__(self) -> str:
        return self.role.value if self.vault_id is None else f"{self.role}{VAULT_SEPARATOR}{self.vault_id}"


def validate_bindings(bindings: Iterable[RoleBinding]) -> tuple[RoleBinding, ...]:
    """The bindings, deduplicated and in a stable order; 1 to MAX_ROLE_BINDINGS of them."""
    unique = sorted(set(bindings), key=str)
    if not unique or len(unique) > MAX_ROLE_BINDINGS:
        raise InvalidRequestError(f"a client has 1 to {MAX_ROLE_BINDINGS} roles", field="roles")
    return tuple(unique)


def _without_covered(scopes: set[str]) -> frozenset[str]:
    """Drop ``scope/<vault>`` where the bare scope (every vault) is present too."""
    return frozenset(
        s for s in scopes if VAULT_SEPARATOR not in s or s.partition(VAULT_SEPARATOR)[0] not in scopes
    )


def scopes_for(bindings: Iterable[RoleBinding]) -> frozenset[str]:
    """The token scope strings the bindings grant (a binding to one vault gives ``scope/<vault>``)."""
    granted: set[str] = set()
    for binding in bindings:
        for scope in ROLE_SCOPES[binding.role]:
            if scope.vault_bound and binding.vault_id is not None:
                granted.add(f"{scope}{VAULT_SEPARATOR}{binding.vault_id}")
            else:
                granted.add(scope.value)
    return _without_covered(granted)


def _parse_scope_token(token: str) -> str:
    name, separator, vault_id = token.partition(VAULT_SEPARATOR)
    try:
        scope = Scope(name)
    except ValueError:
        raise InvalidScopeError("unknown scope", field="scope") from None
    if separator:
        if not scope.vault_bound:
            raise InvalidScopeError("a tenant-wide scope cannot name a vault", field="scope")
        try:
            validate_id("vault_id", vault_id)
        except InvalidRequestError:
            raise InvalidScopeError("a scope names a malformed vault id", field="scope") from None
    return token


def parse_scope(text: str) -> frozenset[str]:
    """A space-separated scope string (RFC 6749 section 3.3) as a set; InvalidScopeError for anything
    that is not a known scope. The empty string is the empty set."""
    if not isinstance(text, str) or len(text) > MAX_SCOPE_TEXT:
        raise InvalidScopeError("the scope is not a space-separated list of scopes", field="scope")
    tokens = text.split(" ") if text else []
    if any(not token for token in tokens):
        raise InvalidScopeError("the scope is not a space-separated list of scopes", field="scope")
    return frozenset(_parse_scope_token(token) for token in tokens)


def format_scope(scopes: Iterable[str]) -> str:
    return " ".join(sorted(scopes))


@dataclass(frozen=True, slots=True)
class Grants:
    """What a verified token allows: its scope strings, as ``scopes_for`` and ``parse_scope`` make them."""

    scopes: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Grants:
        return cls(parse_scope(text))

    def allows(self, scope: Scope, vault_id: str | None = None) -> bool:
        """Whether ``scope`` is granted: a tenant-wide scope takes no vault; a vault-bound one is asked
        for one vault, or with ``vault_id`` None for every vault (only a bare grant allows that)."""
        if not scope.vault_bound:
            if vault_id is not None:
                raise ValueError(f"{scope} is tenant-wide: ask without a vault")
            return scope.value in self.scopes
        if scope.value in self.scopes:
            return True
        return vault_id is not None and f"{scope}{VAULT_SEPARATOR}{vault_id}" in self.scopes

    def require(self, scope: Scope, vault_id: str | None = None) -> None:
        """ForbiddenError unless ``allows``; the message names the scope, never the vault asked for."""
        if not self.allows(scope, vault_id):
            raise ForbiddenError("the access token does not allow this", scope=scope.value)

    def allows_somewhere(self, scope: Scope) -> bool:
        """Whether ``scope`` is granted at all: a tenant-wide one, or a vault-bound one on at least one
        vault (bare, or bound to a vault)."""
        if not scope.vault_bound:
            return scope.value in self.scopes
        return self.vaults_with(scope) != frozenset()

    def require_any(self, scope: Scope, *alternatives: Scope) -> None:
        """ForbiddenError naming ``scope`` (never an alternative, nor a vault) unless ``scope`` or one of
        ``alternatives`` is granted somewhere (``allows_somewhere``)."""
        if not any(self.allows_somewhere(s) for s in (scope, *alternatives)):
            raise ForbiddenError("the access token does not allow this", scope=scope.value)

    def vaults_with(self, scope: Scope) -> frozenset[str] | None:
        """The vaults ``scope`` is granted on; None when it is granted on every vault."""
        if not scope.vault_bound:
            raise ValueError(f"{scope} is tenant-wide: it is not granted per vault")
        if scope.value in self.scopes:
            return None
        prefix = f"{scope}{VAULT_SEPARATOR}"
        return frozenset(s.removeprefix(prefix) for s in self.scopes if s.startswith(prefix))

    def covers(self, scope: str) -> bool:
        """Whether a scope string (as ``parse_scope`` returns them) is within these grants: ``s/<vault>``
        is within a bare ``s``."""
        name, separator, _vault_id = scope.partition(VAULT_SEPARATOR)
        return scope in self.scopes or (separator != "" and name in self.scopes)

    def narrowed_to(self, granted: frozenset[str]) -> Grants:
        """What both allow: the token's scopes cut down to what the client's roles grant now (a role
        taken away since the token was issued stops at once)."""
        kept: set[str] = set()
        allowed = Grants(granted)
        for scope in self.scopes:
            name, separator, _vault_id = scope.partition(VAULT_SEPARATOR)
            if allowed.covers(scope):
                kept.add(scope)
            elif not separator and Scope(name).vault_bound:
                kept.update(s for s in granted if s.startswith(f"{name}{VAULT_SEPARATOR}"))
        return Grants(_without_covered(kept))

    def __str__(self) -> str:
        return format_scope(self.scopes)
