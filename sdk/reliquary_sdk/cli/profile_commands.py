"""``reliquary profile``: list, add, choose and remove profiles (secrets are never printed)."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.table import Table

from reliquary_sdk.cli.output import usage
from reliquary_sdk.cli.profiles import ENV_CLIENT_SECRET, Profile, check_url
from reliquary_sdk.cli.state import state

app = typer.Typer(help="Profiles: an API URL and a client, in $XDG_CONFIG_HOME/reliquary/config.json (0600).")


@app.command("list")
def list_profiles(ctx: typer.Context) -> None:
    """The profiles (never their secrets); the default is marked."""
    run = state(ctx)
    default = run.config.default()
    found = [{**p.public(), "default": p.name == default} for p in run.config.profiles().values()]

    def show(console: Any) -> None:
        table = Table("", "name", "url", "client", "secret", "audit keys", "dev")
        for p in found:
            table.add_row(
                "*" if p["default"] else "",
                p["name"],
                p["url"],
                p["client_id"] or "-",
                p["client_secret"] or "-",
                str(p["audit_keys_pinned"] or "-"),
                "yes" if p["dev"] else "",
            )
        console.print(table)

    run.output.result({"default": default, "profiles": found}, show)


@app.command("set")
def set_profile(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The profile's name.")],
    url: Annotated[str, typer.Option("--url", help="The API's base URL.")],
    client_id: Annotated[str | None, typer.Option("--client-id", help="The client id.")] = None,
    default: Annotated[bool, typer.Option("--default", help="Make it the default profile.")] = False,
) -> None:
    """Add or replace a profile. The secret is read from RELIQUARY_CLIENT_SECRET or asked for (hidden),
    never taken as an argument (arguments show in `ps` and shell history)."""
    run = state(ctx)
    secret = None
    if client_id is not None:
        secret = os.environ.get(ENV_CLIENT_SECRET) or typer.prompt("client secret", hide_input=True)
        if not secret:
            raise usage("a client id needs its secret")
    profile = Profile(name=name, url=check_url(url), client_id=client_id, client_secret=secret)
    run.config.put(profile, make_default=default)
    run.output.result(profile.public(), lambda c: c.print(f"saved profile {name} ({run.config.path})"))


@app.command("use")
def use_profile(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Make a profile the default."""
    run = state(ctx)
    run.config.set_default(name)
    run.output.result({"default": name}, lambda c: c.print(f"default profile: {name}"))


@app.command("remove")
def remove_profile(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Forget a profile (and its secret)."""
    run = state(ctx)
    if not run.config.remove(name):
        raise usage("no such profile", hint="`reliquary profile list`")
    run.output.result({"removed": name}, lambda c: c.print(f"removed profile {name}"))
