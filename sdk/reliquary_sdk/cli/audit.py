"""``reliquary audit``: check the tenant's log as a monitor does, and export it.

``verify`` fetches the latest signed checkpoint, verifies it with the audit keys (pinned in the profile
on first use, or ``--keys FILE``), and accepts it only as an extension of the last checkpoint this
machine saw (the SDK's ``LogMonitor``, its store under ``$XDG_STATE_HOME/reliquary``); a fork or a
rewritten history exits 3 with both checkpoints shown. Receipts given with ``--receipt`` are checked
against their own checkpoint and that checkpoint against the log. ``--anchor`` also reads the newest
checkpoint the service anchored in public from a gateway named here (never from the service), and proves
the log's checkpoint and each receipt's of one history with it: a split view exits 3 with both
checkpoints shown. ``anchors`` lists the anchored checkpoints.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Final

import httpx
import typer
from rich.table import Table

from reliquary_sdk.anchors import AnchorCheck, AnchorSource, open_anchor, verify_against_anchor
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
from reliquary_sdk.models import AnchorView
from reliquary_sdk.monitor import LogMonitor

app = typer.Typer(help="The tenant's transparency log: verify it as a monitor, export it.")

EXPORT_FORMAT: Final = "reliquary-audit-export/v1"
MAX_KEYS_FILE_BYTES: Final = 1 << 20
LOCAL_STORE: Final = "checkpoints-local.json"  # `reliquary dev` profiles' logs (reset --local forgets them)
SHARED_STORE: Final = "checkpoints.json"
ENV_IPFS_GATEWAY: Final = "RELIQUARY_IPFS_GATEWAY"
ENV_IPFS_API: Final = "RELIQUARY_IPFS_API"
ENV_ARWEAVE_GATEWAY: Final = "RELIQUARY_ARWEAVE_GATEWAY"
_GATEWAY_OPTIONS: Final = {
    "ipfs": f"--ipfs-gateway URL or --ipfs-api URL ({ENV_IPFS_GATEWAY}, {ENV_IPFS_API})",
    "arweave": f"--arweave-gateway URL ({ENV_ARWEAVE_GATEWAY})",
}


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
    anchored_note: bytes | None = None,
) -> dict[str, Any]:
    """A receipt file (an access request's JSON, or {"receipt", "entry"}) checked: its entry is in its
    checkpoint's tree, that tree is a prefix of the log this machine follows, and (with
    ``anchored_note``) of one history with the newest anchored checkpoint."""
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
    checked: dict[str, Any] = {
        "file": str(path),
        "request_id": data["receipt"].get("request_id"),
        "leaf_index": data["receipt"].get("leaf_index"),
        "tree_size": checkpoint.size,
        "verified": True,
    }
    if anchored_note is not None:
        check = verify_against_anchor(
            data["receipt"]["checkpoint"].encode("utf-8"),
            anchored_note,
            verifiers,
            origin=origin,
            proof=lambda old, new: [_b64(h) for h in api.audit.consistency(old, new).proof],
            required=verifiers,
            falcon=falcon,
        )
        checked["anchor"] = check.relation
    return checked


def anchor_source(
    ipfs_gateway: str | None, ipfs_api: str | None, arweave_gateway: str | None
) -> AnchorSource:
    """The gateways named on the command line or in the environment (at least one)."""
    if ipfs_gateway is None and ipfs_api is None and arweave_gateway is None:
        raise usage(
            "--anchor needs a gateway to read the anchored checkpoint from (never the service)",
            hint=f"pass {_GATEWAY_OPTIONS['ipfs']} or {_GATEWAY_OPTIONS['arweave']}",
        )
    for url in (ipfs_gateway, ipfs_api, arweave_gateway):
        if url is not None and not url.startswith(("http://", "https://")):
            raise usage("a gateway URL must be http(s)://host[:port][/path]")
    if ipfs_gateway is not None and ipfs_api is not None:
        raise usage("an IPFS path gateway or a Kubo RPC API, not both")
    return AnchorSource(ipfs_gateway=ipfs_gateway, ipfs_api=ipfs_api, arweave_gateway=arweave_gateway)


def newest_anchor(
    api: Reliquary,
    source: AnchorSource,
    verifiers: list[NoteVerifier],
    origin: str,
    falcon: FalconPolicy,
) -> tuple[AnchorView, bytes] | None:
    """The newest anchor listed and its note, fetched from ``source`` and checked (CID or digest, the
    pinned keys, the listing's size and root); None when nothing is anchored yet."""
    listing = api.audit.anchors(limit=1)
    if listing.origin != origin:
        raise CliError(
            "the service lists anchors of another log",
            code="unexpected_response",
            exit_code=EXIT_VERIFICATION,
        )
    if not listing.anchors:
        return None
    anchor = listing.anchors[0]
    if not source.serves(anchor.backend):
        where = _GATEWAY_OPTIONS.get(anchor.backend)
        raise usage(
            "no gateway for the backend the newest anchor is on",
            hint=f"pass {where}" if where else "this CLI does not know that backend; update it",
        )
    note = source.fetch(anchor)
    open_anchor(anchor, note, verifiers, origin=origin, required=verifiers, falcon=falcon)
    return anchor, note


def _anchor_json(anchor: AnchorView, check: AnchorCheck) -> dict[str, Any]:
    return {
        "backend": anchor.backend,
        "locator": anchor.locator,
        "note_sha256": anchor.note_sha256,
        "tree_size": anchor.tree_size,
        "root_hash": anchor.root_hash,
        "anchored_at": anchor.anchored_at,
        "log_index": anchor.log_index,
        "block": anchor.block.model_dump() if anchor.block else None,
        "relation": check.relation,
        "consistent": True,
    }


_RELATIONS: Final = {
    "same": "the log's checkpoint is the anchored one",
    "anchor_older": "the log extends it",
    "anchor_newer": "it extends the log's checkpoint",
}


def _when(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


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
    anchor: Annotated[
        bool,
        typer.Option(
            "--anchor",
            help="Also check the newest checkpoint anchored in public, read from a gateway (exit 3 on a "
            "split view).",
        ),
    ] = False,
    ipfs_gateway: Annotated[
        str | None,
        typer.Option(
            "--ipfs-gateway",
            envvar=ENV_IPFS_GATEWAY,
            show_envvar=True,
            help="An IPFS path gateway (GET URL/ipfs/CID) for --anchor.",
        ),
    ] = None,
    ipfs_api: Annotated[
        str | None,
        typer.Option(
            "--ipfs-api",
            envvar=ENV_IPFS_API,
            show_envvar=True,
            help="A Kubo RPC API (POST URL/api/v0/cat) for --anchor, instead of a path gateway.",
        ),
    ] = None,
    arweave_gateway: Annotated[
        str | None,
        typer.Option(
            "--arweave-gateway",
            envvar=ENV_ARWEAVE_GATEWAY,
            show_envvar=True,
            help="An Arweave gateway (GET URL/TX_ID) for --anchor.",
        ),
    ] = None,
) -> None:
    """Verify the latest checkpoint and that it extends the last one seen here (exit 3 on a fork); with
    --anchor, that it and each receipt are of one history with the newest anchored checkpoint."""
    run = state(ctx)
    api = run.client()
    falcon: FalconPolicy = "skip" if skip_falcon else "check"
    gateways = anchor_source(ipfs_gateway, ipfs_api, arweave_gateway) if anchor else None
    origin, vkeys, source, pin = trusted_keys(run, api, keys)
    verifiers = _verifiers(vkeys)
    monitor = LogMonitor(verifiers, path=store_path(run), required=verifiers, falcon=falcon)
    with run.output.spinner("fetching the checkpoint"):
        note = str(api.audit.checkpoint()).encode("utf-8")

        def proof(old: int, new: int) -> list[bytes]:
            return [_b64(h) for h in api.audit.consistency(old, new).proof]

        update = monitor.update(origin, note, proof)
    pin()
    anchored: tuple[AnchorView, bytes] | None = None
    anchor_check: AnchorCheck | None = None
    if gateways is not None:
        with run.output.spinner("reading the newest anchored checkpoint"):
            anchored = newest_anchor(api, gateways, verifiers, origin, falcon)
            if anchored is not None:
                anchor_check = verify_against_anchor(
                    note,
                    anchored[1],
                    verifiers,
                    origin=origin,
                    proof=proof,
                    required=verifiers,
                    falcon=falcon,
                    anchor=anchored[0],
                )
    checked = [
        _receipt(
            path,
            api=api,
            verifiers=verifiers,
            origin=origin,
            falcon=falcon,
            head=update.checkpoint,
            anchored_note=anchored[1] if anchored else None,
        )
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
    if gateways is not None:
        value["anchor"] = _anchor_json(anchored[0], anchor_check) if anchored and anchor_check else None

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
        if gateways is not None:
            if anchored is None or anchor_check is None:
                console.print("anchor: nothing anchored in public yet")
            else:
                listed = anchored[0]
                block = f", block {listed.block.height}" if listed.block else ", not in a block yet"
                console.print(
                    f"[green]anchor[/] size {listed.tree_size} on {listed.backend} {listed.locator} "
                    f"(anchored {_when(listed.anchored_at)}{block}): {_RELATIONS[anchor_check.relation]}"
                )
        for item in checked:
            against = f"; {_RELATIONS[item['anchor']]}" if "anchor" in item else ""
            console.print(
                f"receipt {item['file']}: leaf {item['leaf_index']} of {item['tree_size']} verified{against}"
            )

    run.output.result(value, show)


@app.command("anchors")
def audit_anchors(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="How many, newest first.")] = 20,
) -> None:
    """List the checkpoints the service anchored in public (IPFS CIDs, Arweave transactions), newest first."""
    run = state(ctx)
    listing = run.client().audit.anchors(limit=limit)

    def show(console: Any) -> None:
        if not listing.anchors:
            console.print(f"{listing.origin}: nothing anchored in public yet")
            return
        table = Table("tree size", "backend", "locator", "anchored", "block", "log entry")
        for item in listing.anchors:
            block = str(item.block.height) if item.block else "pending"
            table.add_row(
                str(item.tree_size),
                item.backend,
                item.locator,
                _when(item.anchored_at),
                block,
                str(item.log_index),
            )
        console.print(table)

    run.output.result(dump(listing), show)


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
