"""Roles and scopes: the matrix, vault binding rules, what a token's scopes allow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reliquary.errors import ForbiddenError, InvalidRequestError, InvalidScopeError
from reliquary.identity.scopes import (
    MAX_ROLE_BINDINGS,
    ROLE_SCOPES,
    TENANT_WIDE_ROLES,
    Grants,
    Role,
    RoleBinding,
    Scope,
    parse_scope,
    scopes_for,
    validate_bindings,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "identity.md"
VAULT_SCOPES = {
    "vaults:read",
    "vaults:admin",
    "memories:read",
    "memories:write",
    "access:request",
    "access:read",
    "access:approve",
}

# The matrix, written out: a change to ROLE_SCOPES must change this table (and docs/identity.md).
EXPECTED = {
    "tenant-admin": {"tenant:admin", "vaults:create", "audit:read", "audit:export"} | VAULT_SCOPES,
    "vault-admin": {"vaults:read", "vaults:admin", "memories:read", "memories:write", "access:read"},
    "writer": {"vaults:read", "memories:read", "memories:write"},
    "requester": {"vaults:read", "memories:read", "access:request"},
    "approver": {"vaults:read", "access:read", "access:approve"},
    "auditor": {"audit:read", "audit:export", "vaults:read", "memories:read"},
    "operator": {"tenants:manage"},
}


def test_the_role_scope_matrix() -> None:
    assert {role.value: {s.value for s in scopes} for role, scopes in ROLE_SCOPES.items()} == EXPECTED
    assert set(ROLE_SCOPES) == set(Role)


def test_no_role_but_the_operator_manages_tenants() -> None:
    holders = {role for role, scopes in ROLE_SCOPES.items() if Scope.TENANTS_MANAGE in scopes}
    assert holders == {Role.OPERATOR}


def test_the_vault_bound_scopes() -> None:
    assert {s.value for s in Scope if s.vault_bound} == VAULT_SCOPES


def test_the_documented_matrix_is_the_code() -> None:
    """docs/identity.md's table (a row per role, a column per scope, "x" where granted) is ROLE_SCOPES."""
    lines = DOCS.read_text(encoding="utf-8").splitlines()
    after = lines[lines.index("<!-- role-scope-matrix -->") + 1 :]
    first = next(i for i, line in enumerate(after) if line.startswith("|"))
    table = []
    for line in after[first:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip("|").split("|")])
    header, body = table[0], table[2:]
    scopes = [re.sub(r"`", "", cell) for cell in header[1:]]
    assert set(scopes) == {s.value for s in Scope}
    documented = {
        re.sub(r"`", "", row[0]): {scope for scope, cell in zip(scopes, row[1:], strict=True) if cell == "x"}
        for row in body
    }
    assert documented == EXPECTED


@pytest.mark.parametrize("role", sorted(TENANT_WIDE_ROLES))
def test_tenant_wide_roles_refuse_a_vault(role: Role) -> None:
    with pytest.raises(InvalidRequestError, match="whole tenant") as caught:
        RoleBinding(role, "v1")
    assert caught.value.code == "invalid_request"
    assert RoleBinding(role).vault_id is None


def test_the_tenant_wide_roles() -> None:
    assert {Role.TENANT_ADMIN, Role.AUDITOR, Role.OPERATOR} == TENANT_WIDE_ROLES


@pytest.mark.parametrize("role", sorted(set(Role) - TENANT_WIDE_ROLES))
def test_vault_roles_bind_to_a_vault_or_the_tenant(role: Role) -> None:
    assert RoleBinding(role, "v1").vault_id == "v1"
    assert RoleBinding(role).vault_id is None


def test_binding_text_round_trips() -> None:
    for binding in (RoleBinding(Role.WRITER, "v-1.a"), RoleBinding(Role.AUDITOR)):
        assert RoleBinding.parse(str(binding)) == binding
    assert str(RoleBinding(Role.WRITER, "v1")) == "writer/v1"


@pytest.mark.parametrize(
    "text", ["owner", "writer/", "writer/a#b", "writer/v1/v2", "auditor/v1", "", "WRITER"]
)
def test_malformed_bindings_are_refused_without_echo(text: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        RoleBinding.parse(text)
    if text:
        assert text not in caught.value.message


def test_a_role_must_be_a_role() -> None:
    with pytest.raises(InvalidRequestError, match="unknown role"):
        RoleBinding("writer")  # type: ignore[arg-type]


def test_bindings_are_deduplicated_and_bounded() -> None:
    writer = RoleBinding(Role.WRITER, "v1")
    assert validate_bindings([writer, writer, RoleBinding(Role.AUDITOR)]) == (
        RoleBinding(Role.AUDITOR),
        writer,
    )
    with pytest.raises(InvalidRequestError):
        validate_bindings([])
    too_many = [RoleBinding(Role.WRITER, f"v{i}") for i in range(MAX_ROLE_BINDINGS + 1)]
    with pytest.raises(InvalidRequestError):
        validate_bindings(too_many)
    assert len(validate_bindings(too_many[:MAX_ROLE_BINDINGS])) == MAX_ROLE_BINDINGS


def test_scopes_of_a_vault_binding_name_the_vault() -> None:
    assert scopes_for([RoleBinding(Role.WRITER, "v1")]) == {
        "vaults:read/v1",
        "memories:read/v1",
        "memories:write/v1",
    }


def test_scopes_of_a_tenant_binding_are_bare() -> None:
    assert scopes_for([RoleBinding(Role.TENANT_ADMIN)]) == EXPECTED["tenant-admin"]
    assert scopes_for([RoleBinding(Role.AUDITOR)]) == EXPECTED["auditor"]


def test_a_bare_scope_covers_its_vault_bound_ones() -> None:
    scopes = scopes_for([RoleBinding(Role.WRITER, "v1"), RoleBinding(Role.REQUESTER)])
    assert scopes == {"vaults:read", "memories:read", "memories:write/v1", "access:request"}


def test_parse_scope() -> None:
    assert parse_scope("") == frozenset()
    assert parse_scope("audit:read memories:write/v1 audit:read") == {"audit:read", "memories:write/v1"}


@pytest.mark.parametrize(
    "text",
    [
        "audit:read/v1",  # tenant-wide with a vault
        "memories:delete",  # no such scope
        "memories:write/",  # an empty vault id
        "memories:write/a#b",  # a malformed vault id
        "audit:read  memories:read",  # two spaces
        " audit:read",
        "audit:read\tmemories:read",
        "x" * 9000,
    ],
)
def test_malformed_scopes_are_invalid_scope(text: str) -> None:
    with pytest.raises(InvalidScopeError) as caught:
        parse_scope(text)
    assert caught.value.code == "invalid_scope"
    assert caught.value.http_status == 400
    assert text.strip() not in caught.value.message


def test_a_bare_grant_allows_every_vault() -> None:
    grants = Grants(frozenset({"memories:write", "audit:read"}))
    assert grants.allows(Scope.MEMORIES_WRITE, "v1")
    assert grants.allows(Scope.MEMORIES_WRITE)
    assert grants.allows(Scope.AUDIT_READ)
    assert not grants.allows(Scope.MEMORIES_READ, "v1")
    assert not grants.allows(Scope.AUDIT_EXPORT)
    assert grants.vaults_with(Scope.MEMORIES_WRITE) is None


def test_a_vault_grant_allows_that_vault_only() -> None:
    grants = Grants(frozenset({"memories:write/v1", "vaults:read/v2"}))
    assert grants.allows(Scope.MEMORIES_WRITE, "v1")
    assert not grants.allows(Scope.MEMORIES_WRITE, "v2")
    assert not grants.allows(Scope.MEMORIES_WRITE)  # "every vault" needs the bare scope
    assert not grants.allows(Scope.MEMORIES_WRITE, "v")  # no prefix matching
    assert not grants.allows(Scope.MEMORIES_WRITE, "v1/x")
    assert grants.vaults_with(Scope.MEMORIES_WRITE) == frozenset({"v1"})
    assert grants.vaults_with(Scope.VAULTS_READ) == frozenset({"v2"})
    assert grants.vaults_with(Scope.ACCESS_READ) == frozenset()


def test_tenant_wide_scopes_are_not_asked_per_vault() -> None:
    grants = Grants(frozenset({"audit:read"}))
    with pytest.raises(ValueError, match="tenant-wide"):
        grants.allows(Scope.AUDIT_READ, "v1")
    with pytest.raises(ValueError, match="tenant-wide"):
        grants.vaults_with(Scope.AUDIT_READ)


def test_require_raises_forbidden_without_the_vault() -> None:
    grants = Grants(frozenset({"memories:read/v1"}))
    grants.require(Scope.MEMORIES_READ, "v1")
    with pytest.raises(ForbiddenError) as caught:
        grants.require(Scope.MEMORIES_WRITE, "secret-vault-name")
    assert caught.value.code == "forbidden"
    assert caught.value.http_status == 403
    assert "secret-vault-name" not in str(caught.value.to_dict())
    assert caught.value.details == {"scope": "memories:write"}


def test_a_scope_granted_somewhere() -> None:
    one_vault = Grants(frozenset({"access:request/v1", "audit:export"}))
    assert one_vault.allows_somewhere(Scope.ACCESS_REQUEST)  # on one vault is somewhere
    assert Grants(frozenset({"access:request"})).allows_somewhere(Scope.ACCESS_REQUEST)
    assert not one_vault.allows_somewhere(Scope.ACCESS_READ)
    assert one_vault.allows_somewhere(Scope.AUDIT_EXPORT)  # tenant-wide: granted or not
    assert not one_vault.allows_somewhere(Scope.AUDIT_READ)


def test_require_any_names_the_first_scope_only() -> None:
    requester = Grants(frozenset({"access:request/v1", "vaults:read/v1"}))
    requester.require_any(Scope.AUDIT_READ, Scope.ACCESS_REQUEST)
    Grants(frozenset({"audit:read"})).require_any(Scope.AUDIT_READ, Scope.ACCESS_REQUEST)
    writer = Grants(frozenset({"memories:write/secret-vault-name", "access:read/secret-vault-name"}))
    with pytest.raises(ForbiddenError) as caught:
        writer.require_any(Scope.AUDIT_READ, Scope.ACCESS_REQUEST)
    assert caught.value.details == {"scope": "audit:read"}
    assert "secret-vault-name" not in str(caught.value.to_dict())
    with pytest.raises(ForbiddenError):
        Grants(frozenset()).require_any(Scope.AUDIT_READ)


def test_covers() -> None:
    grants = Grants(frozenset({"memories:write", "vaults:read/v1", "audit:read"}))
    assert grants.covers("memories:write/v9")
    assert grants.covers("memories:write")
    assert grants.covers("vaults:read/v1")
    assert not grants.covers("vaults:read")
    assert not grants.covers("vaults:read/v2")
    assert grants.covers("audit:read")
    assert not grants.covers("audit:export")


def test_narrowing_to_the_current_roles() -> None:
    token = Grants(frozenset({"memories:write", "vaults:read/v1", "audit:read", "memories:read/v2"}))
    now_granted = frozenset({"memories:write/v1", "vaults:read", "memories:read/v3"})
    # A bare scope shrinks to the vaults still granted; a vault scope stays if still covered; the rest go.
    assert token.narrowed_to(now_granted).scopes == {"memories:write/v1", "vaults:read/v1"}
    assert token.narrowed_to(frozenset()).scopes == frozenset()
    assert token.narrowed_to(token.scopes) == token


def test_grants_print_as_a_scope_claim() -> None:
    assert str(Grants(frozenset({"vaults:read", "audit:read"}))) == "audit:read vaults:read"
    assert Grants.parse("vaults:read audit:read") == Grants(frozenset({"vaults:read", "audit:read"}))
