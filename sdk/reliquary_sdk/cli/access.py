"""Devices, context proofs and access: ``reliquary device``, ``proof generate``, ``access request``.

A device is a secret seed in a 0600 file (``prove.Device``); its context-policy entry (commitments, the
region root, the pattern) is public and is what a vault admin enrols (``vault create/apply --device``).
Proving runs the checkout's zk prover (``prove.NodeProver``: ``--zk-dir``, else ``$RELIQUARY_ZK_DIR``,
else ``./zk``; Node.js 20+).

``access request`` is the SDK's whole round: a nonce, a proof bound to the request, the request, a wait
that keeps the service's ``Retry-After`` pace, then ``handle.open()``: the grant, the envelope, the
receipt, the logged record, the attestation chain and the log's consistency with what this machine saw
before (the same monitor store as ``audit verify``) are all checked before a byte of plaintext is shown.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from reliquary_sdk.audit import FalconPolicy
from reliquary_sdk.cli.audit import _verifiers, store_path
from reliquary_sdk.cli.output import EXIT_UNAVAILABLE, CliError, usage
from reliquary_sdk.cli.profiles import write_private
from reliquary_sdk.cli.state import State, state
from reliquary_sdk.crypto import RequesterKey
from reliquary_sdk.monitor import LogMonitor
from reliquary_sdk.opening import NotApprovedError, OpenedMemory, TrustedKeys
from reliquary_sdk.prove import Device, NodeProver

devices = typer.Typer(help="Devices: a secret seed file and the context-policy entry that enrols it.")
proofs = typer.Typer(help="Context proofs, for tools that submit access requests themselves.")
access = typer.Typer(help="Access requests: prove, wait for the decision, open the grant here.")

KEY_FILE_HEADER: Final = "reliquary-requester-key-v1"
CONTEXT_CIRCUIT: Final = "context_proof"
MAX_SMALL_FILE: Final = 1 << 16

DeviceOption = Annotated[Path, typer.Option("--device", "-d", help="The device seed file (`device new`).")]
ZkDir = Annotated[
    Path | None,
    typer.Option("--zk-dir", help="RELIQUARY's zk directory (default: $RELIQUARY_ZK_DIR, else ./zk)."),
]
KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help="The requester key file the grant is sealed to: read, or made (0600) when it does not exist.",
    ),
]


def prover(zk_dir: Path | None) -> NodeProver:
    """The zk prover; ``ProverUnavailableError`` (exit 4) says what is missing."""
    return NodeProver(zk_dir)


def load_device(path: Path, node: NodeProver, run: State) -> Device:
    """A device file, refused plainly when it is not one (never showing its content)."""
    if not path.is_file():
        raise usage("no such device file", hint="`reliquary device new FILE` makes one")
    if path.stat().st_size > MAX_SMALL_FILE:
        raise usage("not a RELIQUARY device file")
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        run.output.warn("the device file is readable by others: whoever reads it proves as this device")
    try:
        return Device.load(path, node)
    except (ValueError, UnicodeDecodeError):
        raise usage("not a RELIQUARY device file") from None


def device_entries(paths: list[Path], zk_dir: Path | None, run: State) -> list[dict[str, Any]]:
    """The context-policy entries of device files (each proved by the prover from the device's seed)."""
    if not paths:
        return []
    with prover(zk_dir) as node:
        return [load_device(path, node, run).policy() for path in paths]


def enrol(policy: dict[str, Any] | None, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """``policy`` (a context policy, or none) that also accepts the devices of ``entries``: their device
    and pattern commitments added; every device must prove the same allowed regions as the policy."""
    merged: dict[str, Any] = dict(policy or {"circuit": CONTEXT_CIRCUIT})
    if merged.get("circuit", CONTEXT_CIRCUIT) != CONTEXT_CIRCUIT:
        raise usage(f"devices enrol in a {CONTEXT_CIRCUIT} policy; this one is for another circuit")
    for entry in entries:
        region = entry.get("region_root")
        if merged.get("region_root") not in (None, region):
            raise usage("a device proves other allowed regions than the vault's context policy")
        merged["region_root"] = region
        if "min_pattern_matches" not in merged and "min_pattern_matches" in entry:
            merged["min_pattern_matches"] = entry["min_pattern_matches"]
        for member in ("device_commitments", "pattern_commitments"):
            known = list(merged.get(member, []))
            known += [c for c in entry.get(member, []) if c not in known]
            merged[member] = known
    return merged


def load_or_make_key(path: Path | None, run: State) -> RequesterKey:
    """The requester key in ``path`` (made and saved 0600 when the file does not exist); a fresh key kept
    in memory when no path is given (enough to open the grant in the same run)."""
    if path is None:
        return RequesterKey.generate()
    if not path.exists():
        key = RequesterKey.generate()
        encoded = base64.b64encode(key.private_bytes()).decode("ascii")
        write_private(path, f"{KEY_FILE_HEADER}\n{encoded}\n")
        run.output.note(f"made a requester key in {path} (0600): keep it to open this request's grant")
        return key
    if not path.is_file() or path.stat().st_size > MAX_SMALL_FILE:
        raise usage("not a RELIQUARY requester key file")
    try:
        lines = path.read_text(encoding="ascii").splitlines()
        if len(lines) == 2 and lines[0] == KEY_FILE_HEADER:
            return RequesterKey.from_private_bytes(base64.b64decode(lines[1], validate=True))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        pass
    raise usage("not a RELIQUARY requester key file")


def _policy_value(path: Path, entry: dict[str, Any]) -> dict[str, Any]:
    return {"file": str(path), "policy": entry, "context_policy": enrol(None, [entry])}


@devices.command("new")
def device_new(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Where to write the device's secret seed (mode 0600).")],
    zk_dir: ZkDir = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Make a device: its secret seed in FILE (0600) and the context-policy entry that enrols it."""
    run = state(ctx)
    if path.exists() and not force:
        raise usage("the device file exists already (a seed is never overwritten silently)", hint="--force")
    with prover(zk_dir) as node:
        device = Device.generate(node)
        with run.output.spinner("deriving the device's commitments"):
            entry = device.policy()
        path.parent.mkdir(parents=True, exist_ok=True)
        device.save(path)
    value = _policy_value(path, entry)

    def show(console: Any) -> None:
        console.print(f"device seed written to {path} (0600): whoever holds it proves as this device")
        console.print("enrol it: `reliquary vault apply VAULT --device FILE` (a vault admin); its entry:")
        console.print_json(data=entry)

    run.output.result(value, show)


@devices.command("show")
def device_show(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A device file.")],
    zk_dir: ZkDir = None,
) -> None:
    """The context-policy entry of a device file (never its seed)."""
    run = state(ctx)
    entry = device_entries([path], zk_dir, run)[0]
    run.output.result(_policy_value(path, entry), lambda c: c.print_json(data=entry))


@proofs.command("generate")
def proof_generate(
    ctx: typer.Context,
    vault_id: Annotated[str, typer.Argument(help="The vault.")],
    memory_id: Annotated[str, typer.Argument(help="The memory (item) to ask for.")],
    device: DeviceOption,
    key: Annotated[
        Path,
        typer.Option(
            "--key", help="The requester key file the proof binds (read, or made 0600 when missing)."
        ),
    ],
    purpose: Annotated[str | None, typer.Option("--purpose", help="The request's purpose.")] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="The request id the proof binds (default: new).")
    ] = None,
    zk_dir: ZkDir = None,
) -> None:
    """A context proof for one request: a nonce from the vault, the proof bound to the tenant, vault,
    memory, request id and requester key, and the body of `POST /v1/access-requests` (send it with the
    request id as its Idempotency-Key)."""
    run = state(ctx)
    requester = load_or_make_key(key, run)
    api = run.client()
    chosen = request_id or f"cli-{os.urandom(16).hex()}"
    with prover(zk_dir) as node:
        loaded = load_device(device, node, run)
        nonce = api.vaults.issue_nonce(vault_id).nonce
        with run.output.spinner("proving the device's context (a few seconds)"):
            proof = loaded.prove(
                tenant_id=api.tenant_id(),
                vault_id=vault_id,
                item_id=memory_id,
                request_id=chosen,
                requester_public_key=requester.public_bytes(),
                nonce=nonce,
            )
    body: dict[str, Any] = {
        "vault_id": vault_id,
        "memory_id": memory_id,
        "requester_public_key": requester.public_key_b64(),
        "context_proof": proof,
        "nonce": nonce,
    }
    if purpose is not None:
        body["purpose"] = purpose
    value = {"request_id": chosen, "tenant_id": api.tenant_id(), "idempotency_key": chosen, "body": body}
    run.output.result(value)


def _opening_keys(run: State, served: Any) -> TrustedKeys:
    """The keys an approval is checked with: the served ones, except that the checkpoint keys pinned in
    the profile (by `audit verify`) win, as they do there."""
    keys = TrustedKeys.from_api(served)
    target = run.target()
    profile = target.profile if target.profile is not None and target.profile.url == target.url else None
    if profile is not None and profile.audit_keys and profile.audit_origin:
        if sorted(served.verifier_keys) != sorted(profile.audit_keys):
            run.output.warn(
                "the service publishes other audit keys than the ones pinned in this profile; checking the "
                "receipt with the pinned ones"
            )
        keys = replace(
            keys, origin=profile.audit_origin, verifiers=tuple(_verifiers(list(profile.audit_keys)))
        )
    return keys


def _summary(opened: OpenedMemory, out: Path | None, falcon: str) -> dict[str, Any]:
    chain = opened.chain
    return {
        "request_id": opened.request_id,
        "status": "approved",
        "vault_id": opened.vault_id,
        "memory_id": opened.memory_id,
        "item_version": opened.item_version,
        "content_type": opened.content_type,
        "bytes": len(opened.plaintext),
        "grant_expires_at": opened.grant_expires_at,
        "out": str(out) if out is not None else None,
        "verified": {
            "grant": True,
            "receipt": {
                "origin": opened.receipt.origin,
                "leaf_index": opened.receipt.leaf_index,
                "tree_size": opened.receipt.tree_size,
            },
            "chain": {
                "digest": chain.digest,
                "stages": list(chain.stages),
                "agents": list(chain.agents),
                "approvers_required": chain.approvers_required,
                "approved_by": list(chain.approved_by),
            },
            "log": {"consistent": True, "falcon": falcon},
        },
    }


@access.command("request")
def access_request(
    ctx: typer.Context,
    vault_id: Annotated[str, typer.Argument(help="The vault.")],
    memory_id: Annotated[str, typer.Argument(help="The memory (item) to read.")],
    device: DeviceOption,
    purpose: Annotated[str, typer.Option("--purpose", help="Why (the vault's rules read it).")],
    key: KeyOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the plaintext here (0600), not to stdout.")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait for the decision.")
    ] = 300.0,
    skip_falcon: Annotated[
        bool,
        typer.Option("--skip-falcon", help="Leave Falcon-512 checkpoint signatures unchecked (said)."),
    ] = False,
    zk_dir: ZkDir = None,
) -> None:
    """Prove, ask, wait for the decision and open the grant here (every check before the plaintext)."""
    run = state(ctx)
    if out is not None and out.is_dir():
        raise usage("--out names a directory")
    requester = load_or_make_key(key, run)
    api = run.client()
    with prover(zk_dir) as node:
        loaded = load_device(device, node, run)
        with run.output.spinner("proving the device's context and sending the request"):
            handle = api.access.request(vault_id, memory_id, purpose=purpose, prove=loaded, key=requester)
    with run.output.spinner(f"waiting for the decision on {handle.request_id}"):
        try:
            view = handle.wait(timeout=timeout)  # each pause is the service's Retry-After when it sends one
        except TimeoutError:
            raise CliError(
                "the access request was not decided in time",
                code="timeout",
                exit_code=EXIT_UNAVAILABLE,
                hint=f"it may still be decided: its id is {handle.request_id}",
            ) from None
    if view.status != "approved":
        raise NotApprovedError(view.status, view.reasons)
    falcon: FalconPolicy = "skip" if skip_falcon else "check"
    with run.output.spinner("opening: grant, envelope, receipt, chain, log consistency"):
        keys = _opening_keys(run, api.audit.keys())
        monitor = LogMonitor(keys.verifiers, path=store_path(run), required=keys.verifiers, falcon=falcon)
        opener = run.client(trusted_keys=keys, monitor=monitor, falcon=falcon)
        opened = opener.access.get(handle.request_id, key=requester).open()
    value = _summary(opened, out, "unchecked" if skip_falcon else "checked")
    if out is not None:
        write_private(out, opened.plaintext)
    elif run.json:
        value["content_b64"] = base64.b64encode(opened.plaintext).decode("ascii")
    if run.json:
        run.output.result(value)
        return
    if out is None:
        sys.stdout.buffer.write(opened.plaintext)
        sys.stdout.flush()
    run.output.note(
        f"opened {memory_id} v{opened.item_version} ({len(opened.plaintext)} B"
        f"{', written to ' + str(out) if out else ''}): grant, receipt (leaf {opened.receipt.leaf_index} of "
        f"{opened.receipt.tree_size}), chain of {len(opened.chain.stages)} stages and the log's consistency "
        f"verified{'; Falcon-512 UNCHECKED' if skip_falcon else ''}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(devices, name="device")
    app.add_typer(proofs, name="proof")
    app.add_typer(access, name="access")


__all__ = ["device_entries", "enrol", "register"]
