"""``reliquary audit``: check the tenant's log as a monitor does, and export it.

``verify`` fetches the latest signed checkpoint, verifies it with the audit keys (pinned in the profile
on first use, or ``--keys FILE``), and accepts it only as an extension of the last checkpoint this
machine saw (the SDK's ``LogMonitor``, its store under ``$XDG_STATE_HOME/reliquary``); a fork or a
rewritten history exits 3 with both checkpoints shown. Receipts given with ``--receipt`` are checked
against their own checkpoint and that checkpoint against the log.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Final

import httpx
import typer

from reliquary_sdk.audit import (
    Checkpoint,
    FalconPolicy,
    NoteVerifier,
    ProofError,
    hash_leaf,
    open_checkpoint,
    verify_consistency,
    verify_inclusion,
    verify_receipt,
)
from reliquary_sdk.cli.output import EXIT_VERIFICATION, CliError, dump, usage
from reliquary_sdk.cli.profiles import state_dir
from reliquary_sdk.cli.state import State, state
from reliquary_sdk.client import Reliquary
from reliquary_sdk.monitor import LogMonitor

app = typer.Typer(help="The tenant's transparency log: verify it as a monitor, export it.")

EXPORT_FORMAT: Final = "reliquary-audit-export/v1"
MAX_KEYS_FILE_BYTES: Final = 1 << 20
LOCAL_STORE: Final = "checkpoints-local.json"  # `reliquary dev` profiles' logs (reset --local forgets them)
SHARED_STORE: Final = "checkpoints.json"


def store_path(run: State) -> Path:
    """The monitor's store: the local runtime's logs apart, since each fresh runtime is a new log."""
    profile = run.target().profile
    local = profile is not None and profile.dev and run.target().url == profile.url
    return state_dir() / (LOCAL_STORE if local else SHARED_STORE)


def _b64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ProofError("a hash is base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError("a hash is not base64") from None


def read_keys_file(path: Path) -> tuple[str | None, list[str]]:
    """(origin if given, verifier keys) from a file: GET /v1/audit/keys's JSON, a JSON list of vkeys, or
    one vkey a line."""
    raw = path.read_bytes()
    if len(raw) > MAX_KEYS_FILE_BYTES:
        raise usage("the keys file is larger than 1 MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise usage("the keys file is not UTF-8 text") from None
    origin: Any = None
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        origin, data = data.get("origin"), data.get("verifier_keys")
    if not isinstance(data, list) or not data or not all(isinstance(k, str) for k in data):
        raise usage("the keys file holds no verifier keys")
    if origin is not None and not isinstance(origin, str):
        raise usage("the keys file's origin is not a string")
    return origin, data


def _verifiers(vkeys: list[str]) -> list[NoteVerifier]:
    try:
        return [NoteVerifier.from_vkey(k) for k in vkeys]
    except (ValueError, TypeError):
        raise usage("a verifier key is malformed") from None
    except Exception as exc:
        raise CliError(
            "a verifier key is malformed", code="invalid_key", exit_code=EXIT_VERIFICATION
        ) from exc


def trusted_keys(
    run: State, api: Reliquary, keys_file: Path | None
) -> tuple[str, list[str], str, Callable[[], None]]:
    """(origin, verifier keys, where they came from, pin): a file, the profile's pins, or the API's keys,
    which ``pin()`` stores in the profile once something verified with them (trust on first use)."""
    target = run.target()
    profile = target.profile if target.profile is not None and target.profile.url == target.url else None
    if keys_file is not None:
        origin, vkeys = read_keys_file(keys_file)
        if origin is None:
            origin = profile.audit_origin if profile and profile.audit_origin else api.audit.keys().origin
        return origin, vkeys, "file", lambda: None
    if profile is not None and profile.audit_keys and profile.audit_origin:
        served = api.audit.keys()
        if sorted(served.verifier_keys) != sorted(profile.audit_keys):
            run.output.warn(
                "the service publishes other audit keys than the ones pinned in this profile; verifying with "
                "the pinned ones (if they were rotated, check the new ones out of band and pass --keys FILE)"
            )
        return profile.audit_origin, list(profile.audit_keys), "pinned", lambda: None
    served = api.audit.keys()
    if profile is None:
        run.output.warn("no profile to pin the audit keys in: trusting the served keys for this run only")
        return served.origin, list(served.verifier_keys), "served, not pinned", lambda: None
    chosen = profile

    def pin() -> None:
        run.config.put(replace(chosen, audit_origin=served.origin, audit_keys=tuple(served.verifier_keys)))
        run.output.note(f"pinned {len(served.verifier_keys)} audit keys in profile {chosen.name} (first use)")

    return served.origin, list(served.verifier_keys), "served, pinned now", pin


def _checkpoint_json(checkpoint: Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    return {
        "origin": checkpoint.origin,
        "size": checkpoint.size,
        "root_hash": base64.b64encode(checkpoint.root_hash).decode("ascii"),
    }


def _receipt(
    path: Path,
    *,
    api: Reliquary,
    verifiers: list[NoteVerifier],
    origin: str,
    falcon: FalconPolicy,
    head: Checkpoint,
) -> dict[str, Any]:
    """A receipt file (an access request's JSON, or {"receipt", "entry"}) checked: its entry is in its
    checkpoint's tree, and that tree is a prefix of the log this machine follows."""
    try:
        data = json.loads(path.read_bytes())
    except ValueError:
        raise usage("a receipt file is not JSON") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("receipt"), dict)
        or not isinstance(data.get("entry"), str)
    ):
        raise usage("a receipt file holds a receipt and its entry (an access request's JSON)")
    checkpoint = verify_receipt(
        data["receipt"], data["entry"], verifiers, origin=origin, required=verifiers, falcon=falcon
    )
    if checkpoint.size > head.size:
        raise ProofError("the receipt's checkpoint is newer than the log's")
    proof = (
        []
        if checkpoint.size in (head.size, 0)
        else [_b64(h) for h in api.audit.consistency(checkpoint.size, head.size).proof]
    )
    verify_consistency(checkpoint.size, head.size, checkpoint.root_hash, head.root_hash, proof)
    return {
        "file": str(path),
        "request_id": data["receipt"].get("request_id"),
        "leaf_index": data["receipt"].get("leaf_index"),
        "tree_size": checkpoint.size,
        "verified": True,
    }


@app.command("verify")
def audit_verify(
    ctx: typer.Context,
    keys: Annotated[
        Path | None, typer.Option("--keys", help="Trusted verifier keys (a file) instead of the pins.")
    ] = None,
    receipt: Annotated[
        list[Path] | None,
        typer.Option("--receipt", help="A receipt to verify (an access request's JSON); repeat."),
    ] = None,
    skip_falcon: Annotated[
        bool,
        typer.Option("--skip-falcon", help="Leave Falcon-512 signatures unchecked (said in the output)."),
    ] = False,
) -> None:
    """Verify the latest checkpoint and that it extends the last one seen here (exit 3 on a fork)."""
    run = state(ctx)
    api = run.client()
    falcon: FalconPolicy = "skip" if skip_falcon else "check"
    origin, vkeys, source, pin = trusted_keys(run, api, keys)
    verifiers = _verifiers(vkeys)
    monitor = LogMonitor(verifiers, path=store_path(run), required=verifiers, falcon=falcon)
    with run.output.spinner("fetching the checkpoint"):
        note = str(api.audit.checkpoint()).encode("utf-8")

        def proof(old: int, new: int) -> list[bytes]:
            return [_b64(h) for h in api.audit.consistency(old, new).proof]

        update = monitor.update(origin, note, proof)
    pin()
    checked = [
        _receipt(path, api=api, verifiers=verifiers, origin=origin, falcon=falcon, head=update.checkpoint)
        for path in receipt or []
    ]
    value = {
        "origin": origin,
        "checkpoint": _checkpoint_json(update.checkpoint),
        "previous": _checkpoint_json(update.previous),
        "first_seen": update.previous is None,
        "consistent": True,
        "keys": {"source": source, "count": len(vkeys), "falcon": "unchecked" if skip_falcon else "checked"},
        "receipts": checked,
        "store": str(monitor.store.path) if hasattr(monitor.store, "path") else None,
    }

    def show(console: Any) -> None:
        cp = update.checkpoint
        root = base64.b64encode(cp.root_hash).decode("ascii")
        console.print(f"[green]verified[/] {origin}: size {cp.size}, root {root}")
        if update.previous is None:
            console.print(
                "first checkpoint seen on this machine for this log: remembered (trusted on first use)"
            )
        elif update.grew:
            console.print(f"consistent with the last one seen here (size {update.previous.size})")
        else:
            console.print("the same checkpoint as the last one seen here")
        console.print(
            f"keys: {len(vkeys)} ({source}); Falcon-512 {'UNCHECKED' if skip_falcon else 'checked'}"
        )
        for item in checked:
            console.print(
                f"receipt {item['file']}: leaf {item['leaf_index']} of {item['tree_size']} verified"
            )

    run.output.result(value, show)


def verify_export_lines(
    lines: list[bytes], verifiers: list[NoteVerifier], origin: str, falcon: FalconPolicy
) -> int:
    """An export checked line by line (header checkpoint, then each entry's inclusion proof, no index
    missing or repeated); the number of entries."""
    if not lines:
        raise ProofError("the export is empty")
    try:
        header = json.loads(lines[0])
    except ValueError:
        raise ProofError("the export's header is not JSON") from None
    if (
        not isinstance(header, dict)
        or header.get("format") != EXPORT_FORMAT
        or header.get("origin") != origin
    ):
        raise ProofError("the export is not an export of this log")
    checkpoint = open_checkpoint(
        str(header.get("checkpoint", "")).encode("utf-8"),
        verifiers,
        origin=origin,
        required=verifiers,
        falcon=falcon,
    )
    start, end = header.get("start"), header.get("end")
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= checkpoint.size):
        raise ProofError("the export's range is not within its checkpoint")
    if len(lines) - 1 != end - start:
        raise ProofError("the export does not hold its whole range")
    for offset, raw in enumerate(lines[1:]):
        try:
            line = json.loads(raw)
        except ValueError:
            raise ProofError("an export line is not JSON") from None
        if not isinstance(line, dict) or line.get("type") != "entry" or line.get("index") != start + offset:
            raise ProofError("an export's entries are missing, repeated or out of order")
        proof = line.get("inclusion_proof")
        if not isinstance(proof, list):
            raise ProofError("an entry has no inclusion proof")
        verify_inclusion(
            start + offset,
            checkpoint.size,
            hash_leaf(_b64(line.get("entry"))),
            [_b64(h) for h in proof],
            checkpoint.root_hash,
        )
    return end - start


@app.command("export")
def audit_export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the export (JSON Lines).")],
    start: Annotated[int, typer.Option("--start", min=0, help="The first entry.")] = 0,
    end: Annotated[
        int | None, typer.Option("--end", min=0, help="One past the last entry (default: all).")
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Check every entry's inclusion proof.")
    ] = True,
    keys: Annotated[
        Path | None, typer.Option("--keys", help="Trusted verifier keys (a file) instead of the pins.")
    ] = None,
    skip_falcon: Annotated[
        bool, typer.Option("--skip-falcon", help="Leave Falcon-512 signatures unchecked.")
    ] = False,
) -> None:
    """Export entries with their inclusion proofs, download them with a progress bar, verify them."""
    run = state(ctx)
    api = run.client()
    if end is not None and end < start:
        raise usage("--end comes after --start")
    export = api.audit.export(start, end)
    data = bytearray()
    with run.output.progress("downloading the export", total=export.bytes or None) as advance:  # noqa: SIM117
        with httpx.Client(timeout=60) as http, http.stream("GET", export.download_url) as answer:
            if answer.status_code != 200:
                raise CliError("the export's download failed", code="unavailable", exit_code=4)
            for chunk in answer.iter_bytes():
                data.extend(chunk)
                advance(len(chunk))
    lines = bytes(data).splitlines()
    entries = export.end - export.start
    if verify:
        origin, vkeys, _, pin = trusted_keys(run, api, keys)
        entries = verify_export_lines(lines, _verifiers(vkeys), origin, "skip" if skip_falcon else "check")
        pin()
    out.write_bytes(bytes(data))
    value = {**dump(export), "out": str(out), "entries": entries, "verified": verify}
    value.pop("download_url")  # a bearer capability for five minutes: not for logs
    run.output.result(
        value,
        lambda c: c.print(
            f"exported entries {export.start}..{export.end} of {export.tree_size} to {out} "
            f"({len(data)} B){'; every inclusion proof verified' if verify else ''}"
        ),
    )
