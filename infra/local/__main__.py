"""`make run`: RELIQUARY on this machine, without Docker or a cloud.

Starts moto on 127.0.0.1 (port 4566, or RELIQUARY_MOTO_PORT / --port) with its Step Functions interpreter,
creates every resource of template.yaml through its CloudFormation, runs the Lambda functions in this
process, seeds a demo tenant (vaults, policies, sealed items, enrolled devices), runs an approved and a
denied access request through the access state machine, prints what was decided and why, and keeps
serving the AWS endpoint until stopped (Ctrl-C). ``--no-serve`` stops after the demonstration;
``--no-demo`` leaves the demonstration's requests out (the stack, the seeded demo tenant, its identity
and the API only: ready in about half the time). ``--nodes`` also starts local IPFS (js-ipfs) and Arweave
(arlocal) nodes (``make nodes-setup`` installs them), seeds vaults whose bodies go there and anchors the
tenant's log (docs/storage.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shlex
import signal
import sys
import threading
import time
import warnings
from typing import Any

from infra.local.api import DEFAULT_API_PORT
from infra.local.runtime import DEFAULT_PORT, LocalRuntimeError


def _line(title: str, detail: str = "", ms: float | None = None) -> None:
    timing = f"{ms:8.1f} ms" if ms is not None else " " * 11
    print(f"  {timing}  {title:<44} {detail}", flush=True)


def _quiet_libraries() -> None:
    # moto warns about every resource type its CloudFormation skips (handled: created through the API)
    # and its Step Functions parser logs each Fail state loudly; neither is news to a user.
    warnings.filterwarnings("ignore", module="moto")
    for name in ("moto", "werkzeug", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _show_decision(label: str, execution: Any, ms: float) -> None:
    output = execution.output or {}
    _line(label, f"{output.get('decision', execution.status)} in {execution.seconds * 1000:.0f} ms", ms)
    for reason in output.get("reasons", []):
        print(f"               reason: {reason}")
    trust = output.get("trust") or {}
    if trust:
        factors = sorted(trust.get("factors", []), key=lambda f: f["contribution"])[:4]
        shown = ", ".join(f"{f['name']} {f['contribution']:+.3f}" for f in factors)
        print(f"               trust:  {trust['score']:.3f} ({trust['band']}); largest deductions: {shown}")
        print(f"               rules:  {trust['rules']['effect']} ({trust['rules'].get('reason') or '-'})")
    for vote in output.get("votes", []):
        veto = " VETO" if vote.get("veto") else ""
        agent, cast, confidence = vote["agent"], vote["vote"], vote["confidence"]
        print(f"               vote:   {agent:<10} {cast:<7} {confidence:.2f}{veto}  {vote['rationale']}")


def _show_chain(chain: Any) -> None:
    for attestation in chain.attestations:
        statement = attestation.statement
        claim = ", ".join(
            f"{k}={str(v)[:16]}" for k, v in sorted(statement.claim.items()) if k != "proof_hash"
        )
        print(
            f"               {statement.stage.value:<14} by {attestation.signer.value:<12} "
            f"key {attestation.key_id.hex()}  {statement.digest[:16]}  {claim}"
        )


def _expect(execution: Any, decision: str) -> Any:
    """The execution, if it ended as the demonstration expects; else a clear error saying how it ended."""
    if execution.status != "SUCCEEDED" or execution.decision != decision:
        states = " > ".join(execution.states_entered())
        raise LocalRuntimeError(
            f"the demonstration expected {decision}, the execution ended {execution.status} "
            f"({execution.error or execution.decision}) after {states}"
        )
    return execution


def _refusals(access: Any, request: Any, approved: Any, agent: Any) -> None:
    """What the demonstration shows being refused: a replayed proof, and an approval forged by a caller
    with invoke rights (the log refuses it, so no grant follows)."""
    print("\nThe same proof replayed under another request id (a stolen request):")
    replay = request.model_copy(update={"request_id": f"{request.request_id}-replayed"})
    began = time.perf_counter()
    denied = _expect(access.decide(replay), "deny")
    _show_decision("run the access state machine", denied, (time.perf_counter() - began) * 1000)
    size = access.verify_receipt(denied)
    _line("verify the denial's receipt", f"leaf {(denied.output or {})['receipt']['leaf_index']} of {size}")

    print("\nAn approval forged by a caller who may invoke audit-append (no chain behind it):")
    forged = access.forge_approval(approved, request_id=f"{request.request_id}-forged")
    _line("record_decision with a hand-made approval", f"refused: {forged['code']} ({forged['message']})")
    granted = access.try_grant(approved, request_id=f"{request.request_id}-forged", requester=agent)
    _line("grant for that request id", f"refused: {granted['code']} ({granted['message']})")


def _port_from_environment(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SystemExit(f"error: {name}={value!r} is not a TCP port (1-65535)")
    return int(value)


def _tenant_identity(api: Any, demo: Any) -> tuple[str, str]:
    """Without the demonstration (which makes it with a support agent's client): the demo tenant's
    identity in the API, the tenant and its first client, a tenant-admin."""
    began = time.perf_counter()
    _, admin, admin_secret = api.runtime.identity.create_tenant(demo.tenant, "Demo tenant")
    _line(
        "create the tenant's API client",
        f"tenant-admin {admin.client_id}",
        (time.perf_counter() - began) * 1000,
    )
    return admin.client_id, admin_secret


def _api_demo(api: Any, access: Any, demo: Any, agent: Any) -> tuple[Any, tuple[str, str]]:
    """The REST API on the same stack: the demo tenant's identity, a client, and a curl session that
    works (token, seal, list, an access request proved on the device, its decision)."""
    import json  # noqa: PLC0415
    import tempfile  # noqa: PLC0415
    import uuid  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    from infra.local.api import ApiSession, access_request_body  # noqa: PLC0415
    from infra.local.seed import SUPPORT_VAULT  # noqa: PLC0415
    from reliquary.identity.scopes import Role, RoleBinding  # noqa: PLC0415

    identity = api.runtime.identity
    began = time.perf_counter()
    _, admin, admin_secret = identity.create_tenant(demo.tenant, "Demo tenant")
    client, secret = identity.create_client(
        demo.tenant,
        "support agent",
        [RoleBinding(Role.WRITER, SUPPORT_VAULT), RoleBinding(Role.REQUESTER, SUPPORT_VAULT)],
    )
    _line(
        "create the tenant's API clients",
        f"tenant-admin {admin.client_id}; support agent {client.client_id} (writer, requester)",
        (time.perf_counter() - began) * 1000,
    )
    with httpx.Client(base_url=api.url, timeout=60) as http:
        began = time.perf_counter()
        token = (
            http.post(
                "/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, secret)
            )
            .raise_for_status()
            .json()
        )
        _line(
            "POST /v1/oauth2/token",
            f"ES256, {token['expires_in']} s: {token['scope']}",
            (time.perf_counter() - began) * 1000,
        )
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        began = time.perf_counter()
        sealed = (
            http.post(
                f"/v1/vaults/{SUPPORT_VAULT}/memories",
                json={"text": "prefers email, never phone", "user_id": "customer-42"},
                headers=bearer,
            )
            .raise_for_status()
            .json()
        )
        _line(
            f"POST /v1/vaults/{SUPPORT_VAULT}/memories",
            f"201 {sealed['item_id']} v{sealed['version']}",
            (time.perf_counter() - began) * 1000,
        )
        began = time.perf_counter()
        request_id = f"api-{uuid.uuid4().hex}"
        request = access.request(
            agent, demo.tenant, SUPPORT_VAULT, "customer-42-notes", request_id=request_id
        )
        answer = http.post(
            "/v1/access-requests",
            json=access_request_body(request),
            headers={**bearer, "Idempotency-Key": request_id},
        )
        if answer.status_code != 202:
            raise LocalRuntimeError(f"POST /v1/access-requests answered {answer.status_code}: {answer.text}")
        while (view := http.get(answer.headers["Location"], headers=bearer).raise_for_status().json())[
            "status"
        ] == "pending":
            time.sleep(0.2)
        _line(
            "POST /v1/access-requests, then poll",
            f"{view['status']}: {'; '.join(view['reasons']) or 'granted'}",
            (time.perf_counter() - began) * 1000,
        )

    # A fresh proof for the printed session (a proof's nonce is used once).
    session_id = f"api-{uuid.uuid4().hex}"
    proved = access.request(agent, demo.tenant, SUPPORT_VAULT, "customer-42-notes", request_id=session_id)
    with tempfile.NamedTemporaryFile("w", prefix="reliquary-access-", suffix=".json", delete=False) as body:
        json.dump(access_request_body(proved), body)
    session = ApiSession(
        url=api.url,
        client_id=client.client_id,
        client_secret=secret,
        vault_id=SUPPORT_VAULT,
        user_id="customer-42",
        memory_text="likes the blue plan",
        access_request_file=body.name,
        access_request_id=session_id,
    )
    return session, (admin.client_id, admin_secret)


def write_profile_file(path: str, api: Any, tenant_admin: tuple[str, str]) -> None:
    """For `reliquary dev`: the API's URL, the demo tenant's tenant-admin client and an operator client
    (the operator tenant's first client), written 0600 and renamed into place whole, so the command gets
    its profiles without a secret crossing the terminal."""
    from pathlib import Path  # noqa: PLC0415

    from reliquary.identity.scopes import Role, RoleBinding  # noqa: PLC0415

    identity = api.runtime.identity
    tenant = api.settings.operator_tenant
    identity.create_tenant(tenant, "Operator")
    operator, operator_secret = identity.create_client(tenant, "operator", [RoleBinding(Role.OPERATOR, None)])
    document = {
        "format": "reliquary-local-profile/v1",
        "url": api.url,
        "tenant_admin": {"client_id": tenant_admin[0], "client_secret": tenant_admin[1]},
        "operator": {"client_id": operator.client_id, "client_secret": operator_secret},
    }
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        json.dump(document, out)
    partial.replace(target)


def _approval_demo(api: Any, access: Any, demo: Any, agent: Any) -> tuple[Any, Any]:
    """An approver of the support vault (to enrol in a browser) and a step-up request that waits for one."""
    import uuid  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    from infra.local.api import access_request_body, create_approver, start_waiting_request  # noqa: PLC0415
    from infra.local.seed import STEP_UP_PURPOSE, SUPPORT_VAULT  # noqa: PLC0415
    from reliquary.identity.scopes import Role, RoleBinding  # noqa: PLC0415

    identity = api.runtime.identity
    admin = identity.create_client(demo.tenant, "people admin", [RoleBinding(Role.TENANT_ADMIN, None)])
    responder = identity.create_client(
        demo.tenant, "incident responder", [RoleBinding(Role.REQUESTER, SUPPORT_VAULT)]
    )
    began = time.perf_counter()
    request_id = f"api-{uuid.uuid4().hex}"
    proved = access.request(
        agent,
        demo.tenant,
        SUPPORT_VAULT,
        "customer-42-notes",
        purpose=STEP_UP_PURPOSE,
        region="office-lisbon",
        request_id=request_id,
    )
    with httpx.Client(base_url=api.url, timeout=60) as http:

        def bearer(client: Any, secret: str) -> dict[str, str]:
            answer = http.post(
                "/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, secret)
            )
            return {"Authorization": f"Bearer {answer.raise_for_status().json()['access_token']}"}

        admin_headers = bearer(*admin)
        approver = create_approver(http, admin=admin_headers, vault_id=SUPPORT_VAULT, name="Dana Approver")
        waiting = start_waiting_request(
            http,
            approver=admin_headers,
            requester=bearer(*responder),
            request_body=access_request_body(proved),
            request_id=request_id,
        )
    _line(
        "POST /v1/people, then a step-up request",
        f"{approver.person_id} may approve {SUPPORT_VAULT}; {request_id} ({STEP_UP_PURPOSE}) waits",
        (time.perf_counter() - began) * 1000,
    )
    return approver, waiting


def _print_token_command(url: str, tenant_admin: tuple[str, str]) -> None:
    """Without the demonstration's curl session: how to get a token of the demo tenant-admin."""
    credentials = shlex.quote(f"{tenant_admin[0]}:{tenant_admin[1]}")
    read = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
    print("\nA token of the demo tenant's tenant-admin (it lasts 15 minutes):")
    print(f"  API={shlex.quote(url)}")
    token = f'-d grant_type=client_credentials "$API/v1/oauth2/token" | {read}'
    print(f"  TOKEN=$(curl -sS -u {credentials} {token})")


def _start_nodes(cleanup: contextlib.ExitStack) -> Any:
    """The local IPFS and Arweave nodes, stopped when ``cleanup`` closes."""
    from infra.local.nodes import local_nodes  # noqa: PLC0415

    began = time.perf_counter()
    running = cleanup.enter_context(local_nodes())
    _line(
        "start the local IPFS and Arweave nodes",
        f"js-ipfs {running.ipfs.url} (Kubo RPC API), arlocal {running.arweave.url}",
        (time.perf_counter() - began) * 1000,
    )
    return running


def _fund_wallets(stack: Any, arweave_url: str) -> None:
    from infra.local.nodes import fund_wallets  # noqa: PLC0415

    began = time.perf_counter()
    addresses = fund_wallets(stack, arweave_url)
    shown = ", ".join(f"{use}: {address}" for use, address in addresses.items())
    _line("fund the Arweave wallets on arlocal", shown, (time.perf_counter() - began) * 1000)


def _permanent_demo(access: Any, demo: Any, agent: Any, arweave_url: str) -> None:
    """An item of each archive vault through the access flow: its body read back from the node, checked,
    and opened with the grant."""
    import urllib.request  # noqa: PLC0415

    from infra.local.seed import ARCHIVE_PREFIX  # noqa: PLC0415

    print("\nThe same request against the vaults whose bodies are on IPFS and Arweave:")
    with urllib.request.urlopen(f"{arweave_url}/mine", timeout=10):  # noqa: S310 (mine the seeded bodies)
        pass
    item = "customer-42-notes"
    for vault in (v for v in demo.vaults if v.startswith(ARCHIVE_PREFIX)):
        began = time.perf_counter()
        request = access.request(agent, demo.tenant, vault, item, purpose="support", region="office-lisbon")
        decided = access.decide(request)
        _show_decision(f"the access state machine on {vault}", decided, (time.perf_counter() - began) * 1000)
        approved = _expect(decided, "approve")
        began = time.perf_counter()
        plaintext = access.open_grant(approved, agent)
        if plaintext != demo.items[item]:
            raise LocalRuntimeError(f"the item granted from {vault} does not match what was sealed")
        _line(
            "open the grant with the requester's key",
            f"{len(plaintext)} B; the body read from {vault.removeprefix(ARCHIVE_PREFIX)}, checked first",
            (time.perf_counter() - began) * 1000,
        )


def _anchor_demo(url: str, tenant_admin: tuple[str, str], access: Any, demo: Any, arweave_url: str) -> None:
    """The tenant's log anchored on arlocal (audit-append's ``anchor`` action, as the schedule runs it),
    its block recorded once mined, then checked from the anchor as an outsider: the SDK reads the note
    from the Arweave node (never from the service) and proves the service's latest checkpoint of one
    history with it."""
    import urllib.request  # noqa: PLC0415

    from reliquary_sdk import ClientCredentials, Reliquary  # noqa: PLC0415
    from reliquary_sdk.anchors import AnchorSource  # noqa: PLC0415

    print(f"\nThe tenant's log anchored in public (arlocal at {arweave_url}):")
    began = time.perf_counter()
    anchored = access.invoke("audit-append", {"action": "anchor", "tenant_id": demo.tenant})["anchored"]
    if anchored is None:
        _line("anchor the latest checkpoint", "nothing to anchor: the log is empty")
        return
    _line(
        "anchor the latest checkpoint",
        f"tree size {anchored['tree_size']} in transaction {anchored['locator']}",
        (time.perf_counter() - began) * 1000,
    )
    with urllib.request.urlopen(f"{arweave_url}/mine", timeout=10):  # noqa: S310 (a loopback URL)
        pass
    began = time.perf_counter()
    confirmed = access.invoke("audit-append", {"action": "anchor", "tenant_id": demo.tenant})["confirmed"]
    blocks = ", ".join(f"block {c['block']['height']}" for c in confirmed) or "not mined yet"
    _line("record its block once mined", blocks, (time.perf_counter() - began) * 1000)
    began = time.perf_counter()
    with Reliquary(url, auth=ClientCredentials(*tenant_admin)) as client:
        check = client.verify_newest_anchor(AnchorSource(arweave_gateway=arweave_url))
    if check is None:
        raise LocalRuntimeError("the anchor just made is not listed by GET /v1/audit/anchors")
    _line(
        "verify the log from its anchor (SDK)",
        f"anchored size {check.anchored.size}, service's {check.presented.size}: {check.relation}",
        (time.perf_counter() - began) * 1000,
    )


def run(
    port: int,
    *,
    serve: bool,
    api_port: int = DEFAULT_API_PORT,
    profile_file: str | None = None,
    demo_requests: bool = True,
    nodes: bool = False,
) -> None:
    from infra.local.access import LocalAccess  # noqa: PLC0415
    from infra.local.api import (  # noqa: PLC0415
        browser_url,
        print_api_session,
        print_approval_demo,
        serve_api,
    )
    from infra.local.requester import Prover  # noqa: PLC0415
    from infra.local.runtime import local_stack  # noqa: PLC0415
    from infra.local.seed import seed  # noqa: PLC0415

    print(
        f"RELIQUARY local runtime: moto on http://127.0.0.1:{port}, functions in this process\n", flush=True
    )
    started = time.perf_counter()
    # The functions log JSON lines and metrics to stdout, as on Lambda; here they would bury the story.
    quiet = {
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
        # The approval page's origin (on localhost, the passkeys' RP id): the API and agent-vote check it.
        "RELIQUARY_WEBAUTHN_ORIGINS": json.dumps([browser_url(f"http://127.0.0.1:{api_port}")]),
        # Every run is a new deployment (moto keeps nothing, the keys are new), so its logs get a name of
        # their own: a client that remembers the last run's checkpoints sees a new log, not a fork of it.
        "RELIQUARY_AUDIT_ORIGIN": f"reliquary.local-{secrets.token_hex(4)}/audit",
    }
    outer = contextlib.ExitStack()
    running = _start_nodes(outer) if nodes else None
    if running is not None:
        quiet |= {
            "RELIQUARY_IPFS_API_URL": running.ipfs.url,
            "RELIQUARY_ARWEAVE_URL": running.arweave.url,
            "RELIQUARY_AUDIT_ANCHOR_BACKEND": "arweave",
        }
    with outer, local_stack(port, environment=quiet) as stack, Prover() as prover:
        _line(
            "create template.yaml's stack",
            f"{len(stack.resources)} resources, {len(stack.created_through_api)} of them through the API "
            "(state machine, alarms, bucket policies)",
            (time.perf_counter() - started) * 1000,
        )
        access = LocalAccess(stack, prover)
        if running is not None:
            _fund_wallets(stack, running.arweave.url)
        began = time.perf_counter()
        demo = seed(access, permanent=("ipfs", "arweave") if running is not None else ())
        _line(
            "seed the demo tenant",
            f"{demo.tenant}: vaults {', '.join(demo.vaults)}; {len(demo.items)} items each; "
            f"{len(demo.requesters)} devices",
            (time.perf_counter() - began) * 1000,
        )
        if demo_requests:
            _demonstrate(access, demo)
            if running is not None:
                # The second device: the first one has the refusals above in its history.
                _permanent_demo(access, demo, demo.requester(1), running.arweave.url)

        print(f"\nThe REST API (the API function's app) at http://127.0.0.1:{api_port}:")
        with serve_api(stack, api_port) as api, contextlib.ExitStack() as cleanup:
            shown = None
            if demo_requests:
                session, tenant_admin = _api_demo(api, access, demo, demo.requester(0))
                # The printed session's request body lives as long as the runtime that can answer it.
                cleanup.callback(os.unlink, session.access_request_file)
                shown = (session, *_approval_demo(api, access, demo, demo.requester(0)))
            else:
                tenant_admin = _tenant_identity(api, demo)
            if running is not None:
                _anchor_demo(api.url, tenant_admin, access, demo, running.arweave.url)
            if profile_file is not None:
                write_profile_file(profile_file, api, tenant_admin)
            if not serve:
                return
            if shown is not None:
                print("\nTry it (a token lasts 15 minutes; the access request's proof is used once):")
                print_api_session(shown[0])
                print(
                    "\nApprove the waiting request in a browser (it waits as long as the support vault's "
                    "quorum policy says, 10 minutes by default, then is denied):"
                )
                print_approval_demo(shown[1], shown[2])
            elif profile_file is None:  # with a profile file, the secret goes there, not to the terminal
                _print_token_command(api.url, tenant_admin)
            _serve(port, stack)


def _demonstrate(access: Any, demo: Any) -> None:
    """The demonstration's requests through the state machine: approved (its receipt, chain and grant
    checked as an outsider), then the refusals."""
    from infra.local.seed import SUPPORT_VAULT  # noqa: PLC0415

    agent = demo.requester(0)
    item = "customer-42-notes"
    print(f"\nAn access request by {agent.subject} for {demo.tenant}/{SUPPORT_VAULT}/{item}:")
    began = time.perf_counter()
    request = access.request(
        agent, demo.tenant, SUPPORT_VAULT, item, purpose="support", region="office-lisbon"
    )
    _line(
        "prove the context on the device",
        "context_proof, bound to the request and a fresh nonce",
        (time.perf_counter() - began) * 1000,
    )
    began = time.perf_counter()
    approved = _expect(access.decide(request), "approve")
    _show_decision("run the access state machine", approved, (time.perf_counter() - began) * 1000)
    began = time.perf_counter()
    size = access.verify_receipt(approved)
    _line(
        "verify the receipt as an outsider",
        f"leaf {(approved.output or {})['receipt']['leaf_index']} of {size}, "
        "checkpoint signed by Ed25519 + ML-DSA-65 + Falcon-512",
        (time.perf_counter() - began) * 1000,
    )
    began = time.perf_counter()
    chain = access.verify_chain(approved)
    _line(
        "verify the attestation chain as an outsider",
        f"{len(chain.attestations)} statements, every one ML-DSA-65 by its function's published key",
        (time.perf_counter() - began) * 1000,
    )
    _show_chain(chain)
    began = time.perf_counter()
    plaintext = access.open_grant(approved, agent)
    if plaintext != demo.items[item]:
        raise LocalRuntimeError("the granted item does not match what was sealed")
    _line(
        "open the grant with the requester's key",
        f"{len(plaintext)} B, matches the sealed item",
        (time.perf_counter() - began) * 1000,
    )

    _refusals(access, request, approved, agent)


def _serve(port: int, stack: Any) -> None:
    print(
        f"\nServing the API (above) and the AWS endpoint: http://127.0.0.1:{port} (AWS_ENDPOINT_URL, or "
        f"localstack-client with LOCALSTACK_HOST=127.0.0.1:{port}); any credentials.\n"
        f"  access state machine: {stack.access_state_machine_arn}\n"
        f"  e.g. aws --endpoint-url http://127.0.0.1:{port} stepfunctions list-executions "
        f"--state-machine-arn {stack.access_state_machine_arn}\n"
        "Ctrl-C stops.",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    print("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local", description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--port", type=int, default=_port_from_environment("RELIQUARY_MOTO_PORT", DEFAULT_PORT)
    )
    parser.add_argument(
        "--api-port", type=int, default=_port_from_environment("RELIQUARY_API_PORT", DEFAULT_API_PORT)
    )
    parser.add_argument("--no-serve", action="store_true", help="stop once ready, without serving")
    parser.add_argument(
        "--no-demo",
        action="store_true",
        help="no demonstration requests: the stack, the seeded demo tenant, its identity and the API only",
    )
    parser.add_argument(
        "--profile-file",
        metavar="PATH",
        help="write (0600) the API's URL, the demo tenant-admin and an operator client for `reliquary dev`",
    )
    parser.add_argument(
        "--nodes",
        action="store_true",
        help="also start local IPFS and Arweave nodes (make nodes-setup), with vaults whose bodies go there",
    )
    args = parser.parse_args(argv)
    _quiet_libraries()
    try:
        run(
            args.port,
            serve=not args.no_serve,
            api_port=args.api_port,
            profile_file=args.profile_file,
            demo_requests=not args.no_demo,
            nodes=args.nodes,
        )
    except LocalRuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"error: a dependency is missing ({exc}); run `make setup` first", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
