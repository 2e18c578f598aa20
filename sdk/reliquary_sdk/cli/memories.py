"""``reliquary memories``: add one or import many (JSON Lines), list, forget a person, agent or run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.table import Table

from reliquary_sdk.cli.output import EXIT_UNAVAILABLE, CliError, dump, usage
from reliquary_sdk.cli.state import state

app = typer.Typer(help="Memories of a vault: add (one, or --file JSONL), list, forget.")

MAX_IMPORT_BYTES: Final = 64 << 20
MAX_LINE_BYTES: Final = 6 << 20  # the API's body limit
# The members a JSONL line may hold: memories.add's keyword arguments.
LINE_MEMBERS: Final = {
    "text": str,
    "content": str,
    "content_type": str,
    "user_id": str,
    "agent_id": str,
    "run_id": str,
    "tags": dict,
    "ttl_seconds": int,
    "sensitivity": str,
    "memory_id": str,
}
OWNERS: Final = ("user_id", "agent_id", "run_id")
MAX_IDLE_ROUNDS: Final = 3

UserId = Annotated[str | None, typer.Option("--user-id", help="The person the memories are about.")]
AgentId = Annotated[str | None, typer.Option("--agent-id", help="The agent they belong to.")]
RunId = Annotated[str | None, typer.Option("--run-id", help="The run they belong to.")]


def _one_owner(user_id: str | None, agent_id: str | None, run_id: str | None) -> dict[str, str]:
    given = {k: v for k, v in zip(OWNERS, (user_id, agent_id, run_id), strict=True) if v is not None}
    if len(given) != 1:
        raise usage("give exactly one of --user-id, --agent-id, --run-id")
    return given


def _check_line(number: int, value: Any) -> dict[str, Any]:
    where = f"line {number}"
    if not isinstance(value, dict):
        raise usage(f"{where}: a line is a JSON object")
    unknown = sorted(set(value) - set(LINE_MEMBERS))
    if unknown:
        raise usage(f"{where}: unknown members", hint=", ".join(unknown[:5]))
    for key, kind in LINE_MEMBERS.items():
        if key in value and (not isinstance(value[key], kind) or isinstance(value[key], bool)):
            raise usage(f"{where}: {key} must be a {kind.__name__}")
    if ("text" in value) == ("content" in value):
        raise usage(f"{where}: exactly one of text and content (base64)")
    if sum(k in value for k in OWNERS) != 1:
        raise usage(f"{where}: exactly one of user_id, agent_id, run_id")
    if "tags" in value and not all(isinstance(v, str) for v in value["tags"].values()):
        raise usage(f"{where}: tags map strings to strings")
    return value


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any], str]]:
    """Every line of the file checked before anything is sent: (line number, memory, its raw text)."""
    if path.stat().st_size > MAX_IMPORT_BYTES:
        raise usage("the file is larger than 64 MiB: split it")
    found = []
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            if len(raw) > MAX_LINE_BYTES:
                raise usage(f"line {number}: longer than the API's 6 MB body limit")
            try:
                text = raw.decode("utf-8")
                value = json.loads(text)
            except ValueError:
                raise usage(f"line {number}: not JSON (UTF-8)") from None
            found.append((number, _check_line(number, value), text.strip()))
    if not found:
        raise usage("the file holds no memories")
    return found


def import_key(vault_id: str, number: int, line: str) -> str:
    """The line's Idempotency-Key: the same vault, line number and line give the same key, so running an
    interrupted import again adds nothing twice."""
    digest = hashlib.sha256(f"{vault_id}\n{number}\n{line}".encode()).hexdigest()
    return f"import-{digest[:48]}"


@app.command("add")
def memories_add(
    ctx: typer.Context,
    vault_id: Annotated[str, typer.Argument(help="The vault.")],
    text: Annotated[str | None, typer.Argument(help="The memory's text (or use --file).")] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="JSON Lines: one memory per line (memories.add's members)."),
    ] = None,
    user_id: UserId = None,
    agent_id: AgentId = None,
    run_id: RunId = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE; repeat.")] = None,
    ttl_seconds: Annotated[int | None, typer.Option("--ttl-seconds", min=1)] = None,
    sensitivity: Annotated[str | None, typer.Option("--sensitivity")] = None,
    memory_id: Annotated[str | None, typer.Option("--memory-id")] = None,
) -> None:
    """Seal one memory (TEXT with one owner), or import a JSON Lines file with a progress bar."""
    run = state(ctx)
    if (text is None) == (file is None):
        raise usage("give the memory's TEXT or --file, not both")
    if file is not None:
        if any(v is not None for v in (user_id, agent_id, run_id, tag, ttl_seconds, sensitivity, memory_id)):
            raise usage("with --file, each line carries its own owner, tags and options")
        _import(run, vault_id, file)
        return
    tags = {}
    for item in tag or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise usage("a tag is KEY=VALUE")
        tags[key] = value
    sealed = run.client().memories.add(
        vault_id,
        text=text,
        **_one_owner(user_id, agent_id, run_id),
        tags=tags or None,
        ttl_seconds=ttl_seconds,
        sensitivity=sensitivity,
        memory_id=memory_id,
    )
    run.output.result(
        dump(sealed),
        lambda c: c.print(f"sealed {sealed.item_id} v{sealed.version} ({sealed.size} B) in {vault_id}"),
    )


def _import(run: Any, vault_id: str, file: Path) -> None:
    lines = read_jsonl(file)
    api = run.client()
    added: list[dict[str, Any]] = []
    with run.output.progress(f"importing into {vault_id}", total=len(lines)) as advance:
        for number, memory, raw in lines:
            try:
                sealed = api.memories.add(
                    vault_id, **memory, idempotency_key=import_key(vault_id, number, raw)
                )
            except Exception as exc:
                run.output.note(
                    f"stopped at line {number} after {len(added)} added; running the same import again "
                    "adds nothing twice (each line's idempotency key is fixed)"
                )
                raise exc from None
            added.append({"line": number, "memory_id": sealed.item_id, "version": sealed.version})
            advance()
    run.output.result(
        {"vault_id": vault_id, "added": len(added), "memories": added},
        lambda c: c.print(f"imported {len(added)} memories into {vault_id}"),
    )


@app.command("list")
def memories_list(
    ctx: typer.Context,
    vault_id: Annotated[str, typer.Argument(help="The vault.")],
    user_id: UserId = None,
    agent_id: AgentId = None,
    run_id: RunId = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many.")] = None,
) -> None:
    """Metadata of the vault's memories (never their content), all pages."""
    run = state(ctx)
    found = []
    for memory in run.client().memories.list(vault_id, user_id=user_id, agent_id=agent_id, run_id=run_id):
        found.append(memory)
        if limit is not None and len(found) >= limit:
            break

    def show(console: Any) -> None:
        table = Table("memory", "owner", "state", "v", "size", "sensitivity", "tags")
        for m in found:
            owner = next((f"{k[:-3]}:{getattr(m, k)}" for k in OWNERS if getattr(m, k)), "-")
            tags = ", ".join(f"{k}={v}" for k, v in sorted(m.tags.items()))
            table.add_row(m.memory_id, owner, m.state, str(m.version), str(m.size), m.sensitivity, tags)
        console.print(table)
        console.print(f"{len(found)} memories")

    run.output.result({"vault_id": vault_id, "memories": dump(found)}, show)


@app.command("forget")
def memories_forget(
    ctx: typer.Context,
    vault_id: Annotated[str, typer.Argument(help="The vault.")],
    user_id: UserId = None,
    agent_id: AgentId = None,
    run_id: RunId = None,
) -> None:
    """Crypto-shred every memory of one person (or agent, or run), calling until the API says complete."""
    run = state(ctx)
    owner = _one_owner(user_id, agent_id, run_id)
    api = run.client()
    receipts: list[Any] = []
    shredded = already = calls = idle = 0
    with run.output.progress(f"forgetting in {vault_id}", total=None) as advance:
        while True:
            answer = api.memories.forget(vault_id, **owner)
            calls += 1
            shredded += answer.shredded
            already += answer.already_shredded
            receipts.extend(answer.receipts)
            advance(answer.shredded + answer.already_shredded)
            if answer.complete:
                break
            idle = idle + 1 if answer.shredded + answer.already_shredded == 0 else 0
            if idle >= MAX_IDLE_ROUNDS:
                raise CliError(
                    f"the service said incomplete {idle} times without shredding anything",
                    code="no_progress",
                    exit_code=EXIT_UNAVAILABLE,
                    hint="run it again later; what was shredded stays shredded",
                )
    value = {
        "vault_id": vault_id,
        "shredded": shredded,
        "already_shredded": already,
        "calls": calls,
        "complete": True,
        "receipts": dump(receipts),
    }
    run.output.result(
        value,
        lambda c: c.print(
            f"forgot {shredded} memories in {vault_id} ({already} already shredded; {calls} calls); "
            f"{len(receipts)} signed receipts (--json shows them)"
        ),
    )
