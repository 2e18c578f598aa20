"""``reliquary vault``: vaults created from templates (a vault and its policies in one file)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from reliquary_sdk.cli import templates
from reliquary_sdk.cli.access import ZkDir, device_entries, enrol
from reliquary_sdk.cli.output import EXIT_REFUSED, CliError, dump, usage
from reliquary_sdk.cli.state import State, state
from reliquary_sdk.client import Reliquary
from reliquary_sdk.errors import ReliquaryError

app = typer.Typer(help="Vaults: create one from a template, apply a template's policies, show one.")
TemplateOption = Annotated[
    str, typer.Option("--template", "-t", help="A built-in template's name (`vault templates`) or a file.")
]
DevicesOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--device",
        help="A device file (`device new`) to enrol: its entry joins the context policy. Repeat.",
    ),
]


def _with_devices(
    run: State, template: templates.VaultTemplate, paths: list[Path] | None, zk_dir: Path | None
) -> templates.VaultTemplate:
    """The template whose context policy also accepts these devices (checked before anything is sent)."""
    entries = device_entries(paths or [], zk_dir, run)
    if not entries:
        return template
    context = enrol(template.policies.get("context"), entries)
    return replace(template, policies={**template.policies, "context": context})


def _apply(run: State, api: Reliquary, vault_id: str, template: templates.VaultTemplate) -> list[str]:
    """Set the template's policies in order, with progress; the kinds set. A refusal names what was set."""
    done: list[str] = []
    kinds = [k for k in templates.POLICY_KINDS if k in template.policies]
    with run.output.progress(f"policies of {vault_id}", total=len(kinds)) as advance:
        for kind in kinds:
            try:
                api.vaults.put_policy(vault_id, kind, template.policies[kind])
            except ReliquaryError as exc:
                set_so_far = ", ".join(done) or "none"
                exc.detail = (
                    f"the {kind} policy was refused ({exc.detail or exc.code}); set so far: {set_so_far}"
                )
                raise
            done.append(kind)
            advance()
    return done


@app.command("create")
def vault_create(
    ctx: typer.Context,
    vault_id: Annotated[str, typer.Argument(help="The new vault's id.")],
    template: TemplateOption,
    device: DevicesOption = None,
    zk_dir: ZkDir = None,
    permanent: Annotated[
        str | None,
        typer.Option(
            "--permanent",
            help="Keep every item body on `ipfs` or `arweave`, where it can never be deleted (erasure is "
            "crypto-shredding only). Needs --acknowledge-permanence.",
        ),
    ] = None,
    acknowledge_permanence: Annotated[
        bool,
        typer.Option(
            "--acknowledge-permanence", help="Say you know bodies on permanent storage stay for good."
        ),
    ] = False,
) -> None:
    """Create a vault and set its template's policies (the template is checked before anything is sent);
    --device enrols devices in its context policy."""
    if permanent not in (None, "ipfs", "arweave"):
        raise usage("--permanent is ipfs or arweave")
    if permanent is not None and not acknowledge_permanence:
        raise usage(
            f"bodies on {permanent} can never be deleted, only crypto-shredded: "
            "add --acknowledge-permanence to opt in"
        )
    run = state(ctx)
    chosen = _with_devices(run, templates.load(template), device, zk_dir)
    api = run.client()
    created = api.vaults.create(
        vault_id,
        custodians=chosen.vault.get("custodians"),
        recovery_threshold=chosen.vault.get("recovery_threshold"),
        permanent_storage=permanent,
        acknowledge_permanence=acknowledge_permanence,
    )
    try:
        applied = _apply(run, api, vault_id, chosen)
    except ReliquaryError as exc:
        raise CliError(
            f"created the vault, but {exc.detail}",
            code=exc.code,
            exit_code=EXIT_REFUSED,
            hint="fix the template, then `reliquary vault apply VAULT --template ...`",
        ) from None
    value = {"vault": dump(created), "template": chosen.name, "policies_set": applied}

    def show(console: Any) -> None:
        console.print(
            f"vault [bold]{vault_id}[/] (key version {created.key_version}) from template {chosen.name}: "
            f"{', '.join(applied)} policies set"
        )
        if "context" not in applied:
            console.print("no context policy yet: enrol devices (`reliquary device new`) to allow access")
        if created.permanent_storage:
            console.print(
                f"item bodies go to {created.permanent_storage} for good: shredding destroys their keys, "
                "never the ciphertext"
            )

    run.output.result(value, show)


@app.command("apply")
def vault_apply(
    ctx: typer.Context,
    vault_id: Annotated[str, typer.Argument(help="An existing vault's id.")],
    template: Annotated[
        str | None,
        typer.Option("--template", "-t", help="A built-in template's name (`vault templates`) or a file."),
    ] = None,
    device: DevicesOption = None,
    zk_dir: ZkDir = None,
) -> None:
    """Set a template's policies on an existing vault; --device enrols devices in its context policy
    (with no template: added to the vault's current context policy, its other devices kept)."""
    run = state(ctx)
    if template is None and not device:
        raise usage("give a --template, a --device to enrol, or both")
    api = run.client()
    if template is not None:
        chosen = _with_devices(run, templates.load(template), device, zk_dir)
    else:
        entries = device_entries(device or [], zk_dir, run)
        current = api.vaults.get_policy(vault_id, "context").policy
        context = enrol(dict(current) if current else None, entries)
        chosen = templates.VaultTemplate(
            "devices", "the vault's context policy and the devices", {"context": context}
        )
    applied = _apply(run, api, vault_id, chosen)
    run.output.result(
        {"vault_id": vault_id, "template": chosen.name, "policies_set": applied},
        lambda c: c.print(f"{vault_id}: {', '.join(applied)} policies set from {chosen.name}"),
    )


@app.command("show")
def vault_show(ctx: typer.Context, vault_id: Annotated[str, typer.Argument(help="The vault's id.")]) -> None:
    """A vault, its key versions and its three policies."""
    run = state(ctx)
    api = run.client()
    detail = api.vaults.get(vault_id)
    policies = {kind: api.vaults.get_policy(vault_id, kind).policy for kind in templates.POLICY_KINDS}
    value = {"vault": dump(detail), "policies": policies}

    def show(console: Any) -> None:
        console.print_json(data=value)

    run.output.result(value, show)


@app.command("templates")
def vault_templates(
    ctx: typer.Context,
    show_name: Annotated[str | None, typer.Option("--show", help="Print one template's JSON.")] = None,
) -> None:
    """The built-in templates (or one of them, whole, to copy and edit)."""
    run = state(ctx)
    if show_name is not None:
        one = templates.load(show_name)
        body = {
            "format": templates.TEMPLATE_FORMAT,
            "name": one.name,
            "description": one.description,
            **({"vault": one.vault} if one.vault else {}),
            "policies": one.policies,
        }
        run.output.result(body)
        return
    found = [t.summary() for t in templates.builtins()]

    def show(console: Any) -> None:
        table = Table("template", "policies", "description")
        for t in found:
            table.add_row(t["name"], ", ".join(t["policies"]), t["description"])
        console.print(table)

    run.output.result({"templates": found}, show)
