"""The Arweave wallets a deployment pays from, to fund before the first seal into an Arweave vault or the
first anchor: each paying function's address (made now if it is new, as the function's first use would)
and its balance on the deployment's Arweave node.

    python -m infra.wallets --stack reliquary-dev [--region eu-west-1]

It reads the encrypt and audit-append functions' configuration (their RELIQUARY_* environment) with the
caller's own AWS credentials, which need to read the stack and the functions, DynamoDB on the vaults and
audit tables, and the root key under the wallets' purposes (an account administrator has them all), or
kms:GetPublicKey on the wallet key with ArweaveWallet=kms. Locally: AWS_ENDPOINT_URL=http://127.0.0.1:4566
and the local stack's name (`make run NODES=1` funds them on arlocal itself). Nothing secret is printed:
an address is the SHA-256 of the wallet's public key.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import boto3

from infra.bootstrap import function_settings
from reliquary.config import Settings
from reliquary.errors import ReliquaryError

WINSTON_PER_AR = 10**12


@dataclass(frozen=True)
class Wallet:
    use: str  # "bodies" (encrypt) or "anchors" (audit-append)
    address: str
    balance: int | None  # winston; None when the node did not say


def balance(arweave_url: str, address: str, *, timeout: float = 10.0) -> int | None:
    """The node's ``GET /wallet/<address>/balance`` (winston), or None when it does not answer one."""
    url = f"{arweave_url.rstrip('/')}/wallet/{address}/balance"  # Settings allows http(s) URLs only
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310
            text = answer.read(64).decode("ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def wallets(encrypt: Settings, audit_append: Settings) -> list[Wallet]:
    """The wallets of the functions configured with an Arweave node (none when neither is)."""
    from reliquary.adapters.audit_factory import anchors_wallet_address  # noqa: PLC0415
    from reliquary.adapters.factory import bodies_wallet_address  # noqa: PLC0415

    found: list[Wallet] = []
    paying: list[tuple[str, Settings, Callable[[Settings], str]]] = [
        ("bodies", encrypt, bodies_wallet_address),
        ("anchors", audit_append, anchors_wallet_address),
    ]
    for use, settings, address_of in paying:
        if settings.arweave_url is None:
            continue
        address = address_of(settings)
        found.append(Wallet(use, address, balance(settings.arweave_url, address)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.wallets", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--stack", required=True, help="the CloudFormation stack's name")
    parser.add_argument(
        "--region", default=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION"))
    )
    args = parser.parse_args(argv)
    session = boto3.session.Session(region_name=args.region)
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    try:
        encrypt, _ = function_settings(args.stack, session, endpoint, "EncryptFunctionArn")
        audit_append, _ = function_settings(args.stack, session, endpoint, "AuditAppendFunctionArn")
        found = wallets(encrypt, audit_append)
    except ReliquaryError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    if not found:
        print("no Arweave node is configured (the ArweaveUrl parameter): nothing pays for transactions")
        return 0
    for wallet in found:
        held = "unknown" if wallet.balance is None else f"{wallet.balance / WINSTON_PER_AR:.12f} AR"
        print(f"{wallet.use:<8} {wallet.address}  balance {held}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
