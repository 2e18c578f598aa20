"""`make run`: a local demonstration of what RELIQUARY does so far, on moto, without Docker or a cloud.

It starts moto's server on 127.0.0.1 (port 4566, the LocalStack edge port, or RELIQUARY_MOTO_PORT),
creates the tables from template.yaml, a versioned bucket and a KMS key, and then drives the real
encrypt handler (real boto3 calls over HTTP to moto) through a vault's life: create with custodians,
seal, grant, open on the requester's side, rotate, rewrap, retire, recover with custodian shares,
crypto-shred, then the transparency log (receipts verified as an outsider would, fsck catching a tampered
tile), then a zero-knowledge context proof made fresh on the requester's side and verified once. Every
key is generated at run time. The full local runtime (state machine, API) replaces this with the issue
that builds it.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

REGION = "us-east-1"


class DemoError(RuntimeError):
    """A demonstration step did not do what it should; the message says which and why."""


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@contextmanager
def moto_server(port: int) -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415  (a dev dependency)
    except ImportError as exc:
        raise DemoError("moto is not installed: run `make setup` first") from exc
    if not _port_is_free("127.0.0.1", port):
        raise DemoError(
            f"port {port} on 127.0.0.1 is taken (another moto or LocalStack?); "
            f"stop it or choose another port with RELIQUARY_MOTO_PORT=<port> make run"
        )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per moto request is noise here
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _configure_environment(endpoint: str, prefix: str) -> None:
    import boto3  # noqa: PLC0415

    from infra.template import create_tables  # noqa: PLC0415

    # moto accepts any credentials; these never leave this machine.
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint,
        }
    )
    dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
    tables = create_tables(dynamodb, prefix=prefix)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    bucket = f"{prefix}-items"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    audit_bucket = f"{prefix}-audit"
    s3.create_bucket(Bucket=audit_bucket)
    s3.put_bucket_versioning(Bucket=audit_bucket, VersioningConfiguration={"Status": "Enabled"})
    kms = boto3.client("kms", region_name=REGION, endpoint_url=endpoint)
    key_arn = kms.create_key(Description="RELIQUARY local root key")["KeyMetadata"]["Arn"]
    os.environ.update(
        {
            "RELIQUARY_STAGE": "local",
            "RELIQUARY_VAULTS_TABLE": tables["VaultsTable"],
            "RELIQUARY_ITEMS_TABLE": tables["ItemsTable"],
            "RELIQUARY_IDEMPOTENCY_TABLE": tables["IdempotencyTable"],
            "RELIQUARY_ITEMS_BUCKET": bucket,
            "RELIQUARY_AUDIT_TABLE": tables["AuditTable"],
            "RELIQUARY_REPLAY_TABLE": tables["ReplayTable"],
            "RELIQUARY_AUDIT_BUCKET": audit_bucket,
            "RELIQUARY_ROOT_OF_TRUST": "kms",
            "RELIQUARY_KMS_KEY_ID": key_arn,
            "POWERTOOLS_SERVICE_NAME": "reliquary-encrypt",
            "POWERTOOLS_METRICS_NAMESPACE": "Reliquary",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    print(
        f"  moto at {endpoint}: tables {', '.join(sorted(tables.values()))};"
        f" buckets {bucket}, {audit_bucket}; KMS key"
    )


@dataclass
class LambdaContext:
    function_name: str = "reliquary-encrypt-local"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:reliquary-encrypt-local"
    aws_request_id: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Demo:
    def __init__(self, tenant: str, vault: str) -> None:
        from functions.encrypt import app  # noqa: PLC0415  (imported after the environment is set)

        self._handler: Callable[[Any, Any], dict[str, Any]] = app.handler
        self.tenant = tenant
        self.vault = vault
        self._counter = 0

    def invoke(self, action: str, **fields: Any) -> dict[str, Any]:
        self._counter += 1
        event = {"action": action, "request_id": f"demo-{self._counter:04d}", "tenant_id": self.tenant}
        event.setdefault("vault_id", self.vault)
        event.update(fields)
        started = time.perf_counter()
        response = self._handler(event, LambdaContext(aws_request_id=str(uuid.uuid4())))
        elapsed = (time.perf_counter() - started) * 1000
        if response["status"] != "ok":
            return {"_error": response["error"], "_ms": elapsed}
        result: dict[str, Any] = response["result"]
        result["_ms"] = elapsed
        return result


def _step(title: str, detail: str, elapsed_ms: float) -> None:
    print(f"  {title:<34} {elapsed_ms:8.1f} ms   {detail}")


def run_demo() -> None:  # noqa: PLR0915  (one linear story, told step by step)
    from reliquary.adapters.factory import build_vault_service  # noqa: PLC0415
    from reliquary.config import Settings  # noqa: PLC0415
    from reliquary.crypto import grants, recovery  # noqa: PLC0415
    from reliquary.crypto.kem import HybridPrivateKey  # noqa: PLC0415
    from reliquary.crypto.scope import VaultRef  # noqa: PLC0415

    demo = Demo(tenant="acme", vault="agent-memory")
    requester = HybridPrivateKey.generate()  # the requesting agent's own key pair
    custodians = {name: HybridPrivateKey.generate() for name in ("alice", "bob", "carol")}

    print("\nA vault's life, through the encrypt function:")
    created = demo.invoke(
        "create_vault",
        custodians=[
            {"custodian_id": n, "public_key": _b64(k.public_key().to_bytes())} for n, k in custodians.items()
        ],
        recovery_threshold=2,
    )
    _step("create vault (2-of-3 custodians)", f"key version {created['key_version']}", created["_ms"])

    note = b"Customer 42 prefers email; never call before 9am. Escalations go to Dana."
    sealed = demo.invoke(
        "seal",
        item_id="customer-42-notes",
        plaintext=_b64(note),
        content_type="text/plain; charset=utf-8",
        memory_scope={"kind": "agent", "ref": "support-agent-7"},
        tags={"sensitivity": "confidential"},
    )
    _step(
        "seal a note", f"v{sealed['version']}, {sealed['size']} B, {sealed['body_location']}", sealed["_ms"]
    )
    large = os.urandom(512 * 1024)
    sealed_large = demo.invoke(
        "seal",
        item_id="run-1138-transcript",
        plaintext=_b64(large),
        memory_scope={"kind": "run", "ref": "run-1138"},
    )
    _step(
        "seal a 512 KiB transcript",
        f"v{sealed_large['version']}, body in {sealed_large['body_location']}",
        sealed_large["_ms"],
    )

    service = build_vault_service(Settings())

    def grant_and_open(item_id: str, expected: bytes, label: str) -> None:
        granted = demo.invoke(
            "grant", item_id=item_id, requester_public_key=_b64(requester.public_key().to_bytes())
        )
        if "_error" in granted:
            raise DemoError(f"grant of {item_id} refused: {granted['_error']}")
        _, envelope = service.load_envelope(demo.tenant, demo.vault, item_id)
        started = time.perf_counter()
        opened = grants.open_grant(
            base64.b64decode(granted["grant"]),
            envelope,
            requester_private_key=requester,
            service_keys=service.service_keys.keyring,
            now=int(time.time()),
            expected=(demo.tenant, demo.vault, item_id),
        )
        if opened != expected:
            raise DemoError(f"the opened {item_id} does not match what was sealed")
        _step(
            label,
            f"grant {len(granted['grant'])} b64 chars; opened by the requester, matches",
            granted["_ms"],
        )
        _step("  requester-side open", f"{len(opened)} B plaintext", (time.perf_counter() - started) * 1000)

    grant_and_open("customer-42-notes", note, "grant the note to an agent")
    grant_and_open("run-1138-transcript", large, "grant the transcript")

    rotated = demo.invoke("rotate")
    _step("rotate the vault key", f"now key version {rotated['key_version']}", rotated["_ms"])
    rewrapped = demo.invoke("rewrap")
    _step(
        "rewrap data keys",
        f"{rewrapped['rewrapped']} rewrapped, bodies untouched, {rewrapped['already_current']} current",
        rewrapped["_ms"],
    )
    retired = demo.invoke("retire", key_version=1)
    _step("retire key version 1", f"status {retired['status']}", retired["_ms"])
    grant_and_open("customer-42-notes", note, "grant after rotation")

    started = time.perf_counter()
    vault_ref = VaultRef(demo.tenant, demo.vault)
    by_custodian = {s["custodian_id"]: s for s in created["custodian_shares"]}
    shares = [
        recovery.open_share(
            recovery.SealedShare(
                custodian_id=name,
                public_key_fingerprint=base64.b64decode(by_custodian[name]["public_key_fingerprint"]),
                sealed=base64.b64decode(by_custodian[name]["sealed_share"]),
            ),
            vault=vault_ref,
            custodian_private_key=custodians[name],
        )
        for name in ("alice", "carol")
    ]
    recovered = service.recover_key(demo.tenant, demo.vault, 2, shares)
    if recovered.public_key().to_bytes() != base64.b64decode(rotated["public_key"]):
        raise DemoError("the custodians' recovered key does not match key version 2")
    _step(
        "recover key v2 from 2 of 3 shares",
        "matches the vault's public key",
        (time.perf_counter() - started) * 1000,
    )

    shredded = demo.invoke("shred", item_id="customer-42-notes")
    _step("crypto-shred the note", f"versions {shredded['versions']}, receipt signed", shredded["_ms"])
    refused = demo.invoke(
        "grant", item_id="customer-42-notes", requester_public_key=_b64(requester.public_key().to_bytes())
    )
    code = refused.get("_error", {}).get("code")
    if code != "item_shredded":
        raise DemoError(f"a shredded item must never be granted again (got {refused})")
    _step("grant the shredded note", f"refused: {code}", refused["_ms"])
    wrong_tenant = Demo(tenant="globex", vault="agent-memory").invoke(
        "grant", item_id="run-1138-transcript", requester_public_key=_b64(requester.public_key().to_bytes())
    )
    code = wrong_tenant.get("_error", {}).get("code")
    if code != "not_found":
        raise DemoError(f"another tenant must never reach this vault (got {wrong_tenant})")
    _step("another tenant asks for it", f"refused: {code}", wrong_tenant["_ms"])
    run_audit_demo(shredded)
    run_context_proof_demo()
    print("\nEvery step did what it should. Plaintext never left the handler except inside the grants.")


def _verify_proof(event: dict[str, Any]) -> dict[str, Any]:
    from functions.verify_proof import app  # noqa: PLC0415  (imported after the environment is set)

    return _invoke(app.handler, event, "verify-proof")


def _zk_inputs(*arguments: str) -> dict[str, Any]:
    """Inputs for a fresh requester (device secret, region, access history) from zk/scripts/inputs.mjs."""
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    node = shutil.which("node")
    if node is None:
        raise DemoError("Node.js 20+ is needed to prove (make setup installs zk/node_modules)")
    done = subprocess.run(  # noqa: S603  (our own script, fixed arguments)
        [node, "scripts/inputs.mjs", *arguments], cwd="zk", capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise DemoError(f"zk/scripts/inputs.mjs failed: {done.stderr.strip()}")
    value: dict[str, Any] = json.loads(done.stdout)
    return value


def run_context_proof_demo() -> None:
    """A requester proves its context (device, region, time, access pattern) without revealing it."""
    from reliquary.zk.prover import prove  # noqa: PLC0415

    print("\nA zero-knowledge context proof, through the verify-proof function:")
    seed = f"demo-{uuid.uuid4().hex[:8]}"  # a fresh requester: its device secret is generated now
    requester = _zk_inputs("--seed", seed, "--now", "now", "--public")
    policy = {"circuit": "context_proof", **requester["policy"]}
    stored = _verify_proof(
        {"action": "set_policy", "tenant_id": "acme", "vault_id": "agent-memory", "policy": policy}
    )
    _step("set the vault's context policy", "1 device, 5 regions, 1 access pattern", stored["_ms"])
    issued = _verify_proof({"action": "issue_nonce", "tenant_id": "acme", "vault_id": "agent-memory"})
    _step("issue a single-use nonce", f"{issued['nonce'][:16]}..., valid 300 s", issued["_ms"])
    request_id = f"demo-access-{uuid.uuid4().hex[:8]}"
    inputs = _zk_inputs(
        "--seed",
        seed,
        "--now",
        "now",
        "--request-id",
        request_id,
        "--nonce",
        issued["nonce"],
        "--circuit",
        "context_proof",
    )
    started = time.perf_counter()
    proof, public_signals = prove("context_proof", inputs)
    _step(
        "prove on the requester's side",
        f"{len(public_signals)} public signals, 5,570 constraints",
        (time.perf_counter() - started) * 1000,
    )
    event = {
        "action": "verify",
        "request_id": request_id,
        "tenant_id": "acme",
        "vault_id": "agent-memory",
        "nonce": issued["nonce"],
        "context_proof": {"circuit": "context_proof", "proof": proof, "public_signals": public_signals},
    }
    verified = _verify_proof(event)
    if not verified["verified"]:
        raise DemoError(f"a valid context proof must verify (got {verified['reason']})")
    _step(
        "verify it (VerifyContext)", f"verified; nullifier {verified['nullifier'][:12]}...", verified["_ms"]
    )
    replayed = _verify_proof({**event, "request_id": f"{request_id}-again"})
    if replayed["verified"]:
        raise DemoError("a proof must never pass for another request")
    _step("replay it for another request", f"refused: {replayed['reason']}", replayed["_ms"])


def _audit(event: dict[str, Any]) -> dict[str, Any]:
    from functions.audit_append import app  # noqa: PLC0415  (imported after the environment is set)

    return _invoke(app.handler, event, "audit-append")


def _invoke(
    handler: Callable[[Any, Any], dict[str, Any]], event: dict[str, Any], name: str
) -> dict[str, Any]:
    started = time.perf_counter()
    response = handler(event, LambdaContext(aws_request_id=str(uuid.uuid4())))
    if response["status"] != "ok":
        raise DemoError(f"{name} refused {event['action']}: {response['error']}")
    result: dict[str, Any] = response["result"]
    result["_ms"] = (time.perf_counter() - started) * 1000
    return result


def run_audit_demo(shredded: dict[str, Any]) -> None:
    """Log the shred and an access decision, check the receipts as an outsider would, and catch a
    tampered tile with fsck."""
    import boto3  # noqa: PLC0415

    from reliquary.audit.note import NoteVerifier, Policy  # noqa: PLC0415
    from reliquary.audit.receipts import Receipt, verify_receipt  # noqa: PLC0415
    from reliquary.audit.records import encode_record, parse_record  # noqa: PLC0415
    from reliquary.config import Settings  # noqa: PLC0415

    print("\nThe transparency log, through the audit-append function:")
    deletion = {
        "kind": "deletion",
        "request_id": "demo-shred-customer-42-notes",
        "tenant_id": "acme",
        "vault_id": "agent-memory",
        "item_id": "customer-42-notes",
        "versions": shredded["versions"],
        "shredded_at": shredded["shredded_at"],
        "signer_key_id": shredded["signer_key_id"],
        "signature_algorithm": shredded["signature_algorithm"],
        "reason": "requested by the owner",
    }
    appended = _audit({"action": "append", "tenant_id": "acme", "records": [deletion]})
    _step("log the deletion", f"leaf {appended['receipts'][0]['leaf_index']}", appended["_ms"])
    decided = _audit(
        {
            "action": "record_decision",
            "request_id": "demo-access-0001",
            "tenant_id": "acme",
            "vault_id": "agent-memory",
            "item_id": "run-1138-transcript",
            "principal": {"subject": "support-agent-7"},
            "trust": {"score": 0.82, "factors": []},
            "votes": [{"agent": "strict", "vote": "approve", "confidence": 0.9, "rationale": "ticket open"}],
            "decision": {"decision": "approve", "reasons": ["quorum 1 of 1"], "policy_version": "9b" * 32},
            "decided_at": int(time.time()),
        }
    )
    _step("record an access decision", f"leaf {decided['receipt']['leaf_index']}", decided["_ms"])

    published = _audit({"action": "get_checkpoint", "tenant_id": "acme"})
    verifiers = [NoteVerifier.from_vkey(key) for key in published["verifier_keys"]]
    started = time.perf_counter()
    checkpoint = verify_receipt(
        Receipt.from_dict(appended["receipts"][0]),
        encode_record(parse_record(deletion)),
        verifiers,
        origin=published["origin"],
        required=Policy.all_of(*verifiers),  # Ed25519, ML-DSA-65 and Falcon-512 all signed
    )
    _step(
        "verify the receipt as an outsider",
        f"tree of {checkpoint.size}, signed by {len(verifiers)} keys",
        (time.perf_counter() - started) * 1000,
    )
    report = _audit({"action": "verify", "tenant_id": "acme"})
    _step("fsck the whole log", f"ok={report['ok']}, {report['entries_checked']} entries", report["_ms"])

    settings = Settings()
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=settings.endpoint_url)
    key = "logs/acme/tile/entries/000.p/2"
    original = s3.get_object(Bucket=settings.audit_bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=settings.audit_bucket, Key=key, Body=original.replace(b"owner", b"admin"))
    tampered = _audit({"action": "verify", "tenant_id": "acme"})
    if tampered["ok"]:
        raise DemoError("fsck must catch a rewritten log entry")
    _step("rewrite one logged byte in S3", f"fsck: {tampered['problem']['path']}", tampered["_ms"])
    s3.put_object(Bucket=settings.audit_bucket, Key=key, Body=original)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=int(os.environ.get("RELIQUARY_MOTO_PORT", "4566")))
    parser.add_argument("--json", action="store_true", help="print the final state as JSON as well")
    args = parser.parse_args(argv)
    print("RELIQUARY local demonstration (moto; no Docker, no cloud, keys generated now)")
    try:
        with moto_server(args.port) as endpoint:
            _configure_environment(endpoint, prefix=f"reliquary-demo-{uuid.uuid4().hex[:6]}")
            run_demo()
            if args.json:
                print(json.dumps({"endpoint": endpoint, "ok": True}))
    except DemoError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
