"""The ``reliquary`` command: the root, its global options, and how every run ends.

``ReliquaryGroup.main`` runs the command tree without click's own exit handling, so that every way a
run can end is decided here: a usage error exits 1, an API refusal 2, a verification failure 3, an
unavailable service 4 (``output.EXIT_CODES``), each as one line on stderr (JSON with ``--json``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.table import Table
from typer import _click as click  # typer vendors click; its exception types are these
from typer._completion_shared import get_completion_script  # typer's own scripts (typer is pinned)
from typer.core import TyperGroup

from reliquary_sdk.cli import access, admin, audit, local, memories, profile_commands, vaults
from reliquary_sdk.cli.output import EXIT_CODES, EXIT_INTERRUPTED, EXIT_USAGE, CliError, Output, usage
from reliquary_sdk.cli.state import State, state

PROG = "reliquary"
COMPLETE_VAR = "_RELIQUARY_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


def _epilog() -> str:
    codes = "; ".join(f"{code} {meaning.split(':')[0]}" for code, meaning in EXIT_CODES.items())
    return f"Exit codes: {codes}. Docs: docs/cli.md."


class ReliquaryGroup(TyperGroup):
    """The root group: decides the exit code and the error line of every run (see the module doc)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,  # noqa: ARG002  (always handled here)
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        run = State(json="--json" in (argv[: argv.index("--")] if "--" in argv else argv))
        run.output = Output(json_mode=run.json)
        extra.setdefault("obj", run)
        try:
            result = super().main(
                argv, prog_name or PROG, complete_var or COMPLETE_VAR, standalone_mode=False, **extra
            )
            code = result if isinstance(result, int) and not isinstance(result, bool) else 0
        except click.exceptions.UsageError as exc:
            hint = exc.ctx.command_path + " --help" if exc.ctx is not None else f"{PROG} --help"
            code = run.output.error(CliError(exc.format_message(), hint=f"see `{hint}`"))
        except click.exceptions.ClickException as exc:
            code = run.output.error(CliError(exc.format_message()))
        except typer.Exit as exc:
            code = exc.exit_code
        except (typer.Abort, KeyboardInterrupt):
            run.output.error(CliError("interrupted", code="interrupted", exit_code=EXIT_INTERRUPTED))
            code = EXIT_INTERRUPTED
        except Exception as exc:  # noqa: BLE001  (classify re-raises what it does not know: a bug)
            code = run.output.error(exc)
        finally:
            run.close()
        sys.exit(code)


app = typer.Typer(
    cls=ReliquaryGroup,
    name=PROG,
    help="RELIQUARY from the command line: tenants, clients, vaults, memories, access, the audit log.",
    epilog=_epilog(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option("--url", envvar="RELIQUARY_URL", help="The API's base URL.", show_envvar=True),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", "-p", envvar="RELIQUARY_PROFILE", help="The profile to use.", show_envvar=True
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Machine output: one JSON document on stdout, errors as JSON on stderr."),
    ] = False,
) -> None:
    """Credentials: a profile's client, or RELIQUARY_CLIENT_ID and RELIQUARY_CLIENT_SECRET."""
    run = state(ctx)
    run.url, run.profile, run.json = url, profile, json_output
    run.output.json_mode = json_output


@app.command()
def health(ctx: typer.Context) -> None:
    """Ask the API whether it is up (no credentials needed)."""
    run = state(ctx)
    answer = run.client(authenticated=False).health()
    value = {"url": run.target().url, "status": answer.status, "version": answer.version}

    def show(console: Any) -> None:
        console.print(f"{value['url']}: [green]{answer.status}[/] (version {answer.version})")

    run.output.result(value, show)


@app.command()
def completion(
    ctx: typer.Context,
    shell: Annotated[str, typer.Argument(help="bash, zsh or fish.")],
) -> None:
    """Print the shell completion script, e.g. `reliquary completion bash >
    ~/.local/share/bash-completion/completions/reliquary` (or use --install-completion)."""
    if shell not in SHELLS:
        raise usage("the shell is bash, zsh or fish")
    script = get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell)
    if state(ctx).json:
        state(ctx).output.result({"shell": shell, "script": script})
    else:
        sys.stdout.write(script + "\n")


@app.command("exit-codes")
def exit_codes(ctx: typer.Context) -> None:
    """List the exit codes and what each means."""

    def show(console: Any) -> None:
        table = Table("code", "meaning")
        for code, meaning in EXIT_CODES.items():
            table.add_row(str(code), meaning)
        console.print(table)

    state(ctx).output.result({str(k): v for k, v in EXIT_CODES.items()}, show)


app.add_typer(profile_commands.app, name="profile")
app.add_typer(admin.tenants, name="tenant")
app.add_typer(admin.clients, name="client")
app.add_typer(vaults.app, name="vault")
app.add_typer(memories.app, name="memories")
app.add_typer(audit.app, name="audit")
access.register(app)
local.register(app)


def main() -> None:
    """The console script's entry point."""
    app(prog_name=PROG)


__all__ = ["EXIT_USAGE", "app", "main"]
