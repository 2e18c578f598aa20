"""``reliquary tenant`` and ``reliquary client``: tenants (operator) and API clients (tenant-admin).

A client's secret is printed exactly once, when the API hands it out (create, rotate), and said to be
shown once; ``--save-profile NAME`` stores it in a profile instead of the terminal's scrollback.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import typer
from rich.table import Table

from reliquary_sdk import models
from reliquary_sdk.cli.output import dump, usage
from reliquary_sdk.cli.profiles import Profile, valid_name
from reliquary_sdk.cli.state import State, state

tenants = typer.Typer(help="Tenants (the operator's).")
clients = typer.Typer(help="API clients of the tenant (a tenant-admin's): create, rotate, revoke, list.")

SHOWN_ONCE = "the secret is shown once: store it now (the service keeps only its hash)"
ROLES = ", ".join(r.value for r in models.Role)
SaveProfile = Annotated[
    str | None,
    typer.Option("--save-profile", help="Store the client and its secret in this profile (not printed)."),
]


def parse_role(text: str) -> models.RoleIn:
    """``ROLE`` (the whole tenant) or ``ROLE:VAULT`` (one vault)."""
    role, _, vault = text.partition(":")
    try:
        parsed = models.Role(role)
    except ValueError:
        raise usage(f"a role is one of {ROLES}, optionally :VAULT") from None
    if ":" in text and not vault:
        raise usage("ROLE:VAULT needs a vault id after the colon")
    return models.RoleIn(role=parsed, vault_id=vault or None)


def _check_profile_name(name: str | None) -> None:
    if name is not None and not valid_name(name):
        raise usage("a profile name is 1-64 of letters, digits, '.', '_' and '-'")


def _secret_out(run: State, client_id: str, secret: str | None, save: str | None) -> dict[str, Any]:
    """The secret's part of the answer: saved to a profile (and not shown), or shown once."""
    if secret is None:
        return {"client_secret": None}
    if save is not None:
        existing = run.config.get(save)
        base = existing or Profile(name=save, url=run.target().url)
        run.config.put(replace(base, url=run.target().url, client_id=client_id, client_secret=secret))
        return {"client_secret": None, "saved_to_profile": save}
    run.output.warn(SHOWN_ONCE)
    return {"client_secret": secret, "secret_shown_once": True}


def _show_secret(console: Any, value: dict[str, Any]) -> None:
    if value.get("saved_to_profile"):
        console.print(f"secret saved to profile {value['saved_to_profile']} (not shown)")
    elif value.get("client_secret"):
        console.print(f"client secret: [bold]{value['client_secret']}[/]  (shown once)")


@tenants.command("create")
def tenant_create(
    ctx: typer.Context,
    tenant_id: Annotated[str, typer.Argument(help="The new tenant's id.")],
    name: Annotated[str, typer.Option("--name", help="Its display name.")],
    save_profile: SaveProfile = None,
) -> None:
    """Create a tenant and its first tenant-admin client (an operator client's profile)."""
    run = state(ctx)
    _check_profile_name(save_profile)
    created = run.client().tenants.create(tenant_id, name)
    admin = created.admin.client
    value = {
        "tenant": dump(created.tenant),
        "admin": dump(admin),
        **_secret_out(run, admin.client_id, created.admin.client_secret, save_profile),
    }

    def show(console: Any) -> None:
        console.print(f"tenant [bold]{created.tenant.tenant_id}[/] ({created.tenant.name})")
        console.print(f"tenant-admin client: {admin.client_id}")
        _show_secret(console, value)

    run.output.result(value, show)


@clients.command("create")
def client_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The client's name.")],
    role: Annotated[list[str], typer.Option("--role", "-r", help=f"ROLE or ROLE:VAULT ({ROLES}); repeat.")],
    did: Annotated[
        str | None, typer.Option("--did", help="A did:key: the client signs its own assertions, no secret.")
    ] = None,
    save_profile: SaveProfile = None,
) -> None:
    """Create a client with its roles; its secret is shown once (or saved with --save-profile)."""
    run = state(ctx)
    _check_profile_name(save_profile)
    roles = [parse_role(r) for r in role]
    created = run.client().clients.create(name, roles, did=did)
    client = created.client
    value = {
        "client": dump(client),
        **_secret_out(run, client.client_id, created.client_secret, save_profile),
    }

    def show(console: Any) -> None:
        bound = ", ".join(r.role.value + (f":{r.vault_id}" if r.vault_id else "") for r in client.roles)
        console.print(f"client [bold]{client.client_id}[/] ({client.name}): {bound}")
        _show_secret(console, value)

    run.output.result(value, show)


@clients.command("rotate")
def client_rotate(
    ctx: typer.Context,
    client_id: Annotated[str, typer.Argument(help="The client's id.")],
    revoke_tokens: Annotated[
        bool, typer.Option("--revoke-tokens", help="Also refuse the tokens issued before.")
    ] = False,
    save_profile: SaveProfile = None,
) -> None:
    """A new secret for a client: the old one stops at once. Shown once (or saved with --save-profile)."""
    run = state(ctx)
    _check_profile_name(save_profile)
    rotated = run.client().clients.rotate_secret(client_id, revoke_tokens=revoke_tokens)
    value = {
        "client_id": rotated.client_id,
        "tokens_revoked": revoke_tokens,
        **_secret_out(run, rotated.client_id, rotated.client_secret, save_profile),
    }

    def show(console: Any) -> None:
        console.print(f"rotated the secret of {rotated.client_id}; the old secret no longer works")
        _show_secret(console, value)

    run.output.result(value, show)


@clients.command("revoke")
def client_revoke(
    ctx: typer.Context, client_id: Annotated[str, typer.Argument(help="The client's id.")]
) -> None:
    """Revoke a client: its secret and every token stop at once."""
    run = state(ctx)
    revoked = run.client().clients.revoke(client_id)
    run.output.result(dump(revoked), lambda c: c.print(f"revoked {revoked.client_id} ({revoked.status})"))


@clients.command("list")
def client_list(ctx: typer.Context) -> None:
    """The tenant's clients (never a secret)."""
    run = state(ctx)
    listed = run.client().clients.list().clients

    def show(console: Any) -> None:
        table = Table("client", "name", "roles", "status", "auth")
        for c in listed:
            roles = ", ".join(r.role.value + (f":{r.vault_id}" if r.vault_id else "") for r in c.roles)
            table.add_row(c.client_id, c.name, roles, c.status, "did:key" if c.did else "secret")
        console.print(table)

    run.output.result({"clients": dump(listed)}, show)
