"""Sealed bodies on Arweave: format-2 data transactions signed here (``reliquary.vaults.arweave_tx``).

``put`` asks the node for an anchor (``GET /tx_anchor``) and the price of the body (``GET /price/<size>``),
signs a transaction carrying the body and its tags, and posts it whole (``POST /tx``; a node checks the
signature and the ``data_root``). ``get`` reads the body back (``GET /<id>``, raw bytes as a gateway
serves them) and returns it only if its size and SHA-256 are the recorded ones. A transaction is mined
into a block later; until then a node serves it from its pending pool. Nothing posted can be deleted:
``release`` has nothing to do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from reliquary.adapters.kms import kms_failure
from reliquary.adapters.node_http import NodeEndpoint
from reliquary.errors import BodyIntegrityError, ConfigurationError, InvalidRequestError, ReliquaryError
from reliquary.vaults.arweave_tx import (
    KEY_BITS,
    Tag,
    TransactionSigner,
    b64url_decode,
    check_owner,
    sign_data_transaction,
    wallet_address,
)
from reliquary.vaults.permanent import PermanentBackend, PermanentRef

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

_SMALL_ANSWER = 64 * 1024
_TX_ID_LENGTH = 43  # base64url of a SHA-256


class ArweaveStore:
    """A ``PermanentStore`` over one Arweave node or gateway (e.g. ``http://127.0.0.1:1984``), paying
    from ``wallet``."""

    def __init__(self, node_url: str, wallet: TransactionSigner, *, timeout: float = 10.0) -> None:
        self._node = NodeEndpoint(node_url, node="arweave", timeout=timeout)
        self._wallet = wallet

    @property
    def address(self) -> str:
        """The paying wallet's address: fund it (winston) before the first ``put``."""
        return self._wallet.address

    def put(self, body: bytes, *, tags: tuple[tuple[str, str], ...] = ()) -> PermanentRef:
        anchor = b64url_decode(self._text("/tx_anchor", _is_anchor))
        price = int(self._text(f"/price/{len(body)}", _is_winston))
        tx = sign_data_transaction(
            self._wallet, body, tags=[Tag(name, value) for name, value in tags], anchor=anchor, reward=price
        )
        answer = self._node.request(
            "POST",
            "/tx",
            body=json.dumps(tx.to_json()).encode("ascii"),
            headers={"Content-Type": "application/json"},
            limit=_SMALL_ANSWER,
        )
        if answer.status != 200:
            raise self._node.refused(answer)
        return PermanentRef.of(PermanentBackend.ARWEAVE, tx.id, body)

    def get(self, ref: PermanentRef) -> bytes:
        if ref.backend is not PermanentBackend.ARWEAVE or not _is_tx_id(ref.locator):
            raise InvalidRequestError("the reference is not an Arweave one")
        answer = self._node.request("GET", f"/{ref.locator}", limit=ref.size)
        if answer.status not in (200, 204):  # arlocal answers the empty body with 204 No Content
            raise self._node.refused(answer)
        if answer.truncated:
            raise BodyIntegrityError("the Arweave node served a body longer than recorded", backend="arweave")
        return ref.check(answer.body)

    def release(self, ref: PermanentRef) -> None:
        """Nothing to do: a transaction's data stays on Arweave for good (hence crypto-shredding)."""

    def _text(self, path: str, valid: Callable[[str], bool]) -> str:
        """The node's plain-text answer, if ``valid``."""
        answer = self._node.request("GET", path, limit=_SMALL_ANSWER)
        text = answer.body.decode("ascii", errors="replace").strip()
        if answer.status != 200 or answer.truncated or not valid(text):
            raise self._node.refused(answer)
        return text


def _is_tx_id(text: str) -> bool:
    return len(text) == _TX_ID_LENGTH and _decodes_to(text, 32)


def _is_anchor(text: str) -> bool:
    # A recent block's hash (48 bytes) or the owner's last transaction id (32), or none.
    return len(text) <= 64 and _decodes_to(text, 0, 32, 48)


def _is_winston(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 30


def _decodes_to(text: str, *lengths: int) -> bool:
    try:
        return len(b64url_decode(text)) in lengths
    except ReliquaryError:
        return False


class KmsArweaveWallet:
    """An Arweave wallet whose key is a KMS ``RSA_4096`` ``SIGN_VERIFY`` key: transactions are signed with
    ``RSASSA_PSS_SHA_256`` (KMS salts with 32 bytes, as Arweave clients do) and the private key never
    leaves KMS. The owner (the key's modulus) is read once, here."""

    def __init__(self, client: KMSClient, key_id: str) -> None:
        self._client = client
        self._key_id = key_id
        try:
            public = self._client.get_public_key(KeyId=key_id)
        except (ClientError, BotoCoreError) as exc:
            raise kms_failure(exc) from exc
        # The modulus length (check_owner) tells RSA_4096 apart: moto names the spec differently.
        if "RSASSA_PSS_SHA_256" not in public.get("SigningAlgorithms", []):
            raise ConfigurationError("the Arweave wallet's KMS key must be an RSA_4096 signing key")
        key = serialization.load_der_public_key(public["PublicKey"])
        if not isinstance(key, rsa.RSAPublicKey):
            raise ConfigurationError("the Arweave wallet's KMS key must be an RSA_4096 signing key")
        numbers = key.public_numbers()
        if numbers.n.bit_length() != KEY_BITS:
            raise ConfigurationError("the Arweave wallet's KMS key must be an RSA_4096 signing key")
        self.owner = numbers.n.to_bytes(KEY_BITS // 8, "big")
        check_owner(self.owner, numbers.e)
        self.address = wallet_address(self.owner)

    def sign(self, message: bytes) -> bytes:
        try:
            answer = self._client.sign(
                KeyId=self._key_id,
                Message=message,
                MessageType="RAW",
                SigningAlgorithm="RSASSA_PSS_SHA_256",
            )
        except (ClientError, BotoCoreError) as exc:
            raise kms_failure(exc) from exc
        return answer["Signature"]

    def __repr__(self) -> str:
        return f"KmsArweaveWallet(address={self.address!r})"
