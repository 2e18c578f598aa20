"""Checkpoints anchored in public, checked without trusting the service for them.

The service publishes each tenant log's signed checkpoint note, byte for byte, on IPFS (one raw block:
its CID is ``b`` + base32 of ``0x01 0x55 0x12 0x20 || SHA-256(note)``) or on Arweave (a transaction's
data), and lists the anchors at ``GET /v1/audit/anchors`` (``Reliquary.audit_anchors``). The service is
the party under suspicion, so the note is read from a gateway the caller names (``AnchorSource``: an IPFS
path gateway, a Kubo RPC API, an Arweave gateway) and checked before use: the CID recomputed from the
bytes must be the locator (any spelling of it: base32 or base58btc), its SHA-256 the listing's
``note_sha256``, its size below ``MAX_ANCHOR_BYTES``; then it must open with the pinned verifier keys, as
a receipt's checkpoint does, and be the checkpoint the listing describes.

``verify_against_anchor`` proves that a checkpoint (or a receipt's) and an anchored one are one history:
equal roots at equal sizes, else an RFC 9162 consistency proof between the two sizes, fetched from the
service and verified here (a proof the service makes up cannot pass). Two validly signed checkpoints
that are not shown to be one history are a ``SplitViewError`` carrying both notes: evidence anyone holding
the log's public keys can check. Apart from it: ``AnchorUnavailableError`` (the gateway did not answer
with the body: transient, try again or another gateway) and ``AnchorIntegrityError`` (the body served is
not the anchored note, or the listing does not describe it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import httpx

from reliquary_sdk._verify import VerificationError
from reliquary_sdk.audit import (
    Checkpoint,
    CheckpointError,
    FalconPolicy,
    NoteVerifier,
    ProofError,
    Receipt,
    open_checkpoint,
    verify_consistency,
    verify_receipt,
)
from reliquary_sdk.errors import TransportError
from reliquary_sdk.models import AnchorView

__all__ = [
    "ANCHOR_FORMAT",
    "MAX_ANCHOR_BYTES",
    "AnchorCheck",
    "AnchorIntegrityError",
    "AnchorSource",
    "AnchorUnavailableError",
    "SplitViewError",
    "open_anchor",
    "parse_raw_cid",
    "raw_cid",
    "raw_cid_of_digest",
    "verify_against_anchor",
]

ANCHOR_FORMAT: Final = "reliquary-checkpoint-anchor/v1"  # the Arweave transaction's Reliquary-Format tag
# A checkpoint note with its three signatures is a few KiB; anything far larger is not one.
MAX_ANCHOR_BYTES: Final = 64 << 10
_RAW_CID_PREFIX: Final = bytes([0x01, 0x55, 0x12, 0x20])  # CIDv1, raw, SHA2-256, 32 bytes
_B58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_MAX_CID_TEXT: Final = 128
_TX_ID = re.compile("[A-Za-z0-9_-]{43}")
_SHA256_HEX = re.compile("[0-9a-f]{64}")
Relation = Literal["same", "anchor_older", "anchor_newer"]
SplitReason = Literal["same_size", "inconsistent"]
ProofSource = Callable[[int, int], Sequence[bytes]]


class AnchorIntegrityError(VerificationError):
    """The body a gateway served is not the anchored note (another CID or digest, or too large), or the
    anchor listing does not describe the note it names. Never used."""

    code = "anchor_integrity"


class AnchorUnavailableError(TransportError):
    """The gateway did not answer with the anchored body (refused, timed out, another status): try again
    later or through another gateway. Says nothing about the log."""

    code = "anchor_unavailable"


class SplitViewError(VerificationError):
    """Two checkpoints of one log, both validly signed by its keys, that are not shown to be one history:
    at one size with two roots (``reason="same_size"``), or at two sizes without a consistency proof that
    holds (``reason="inconsistent"``). ``anchored_note`` (published, the operator cannot replace it) and
    ``presented_note`` (what the service showed) are the evidence to report."""

    code = "split_view"

    def __init__(
        self,
        message: str,
        *,
        reason: SplitReason,
        origin: str,
        anchored: Checkpoint,
        anchored_note: bytes,
        presented: Checkpoint,
        presented_note: bytes,
    ) -> None:
        super().__init__(message)
        self.reason: SplitReason = reason
        self.origin = origin
        self.anchored = anchored
        self.anchored_note = anchored_note
        self.presented = presented
        self.presented_note = presented_note

    def evidence(self) -> dict[str, Any]:
        """Both signed checkpoints as text, with the reason and the log: what to publish or report."""
        return {
            "reason": self.reason,
            "origin": self.origin,
            "anchored": self.anchored_note.decode("utf-8", "replace"),
            "presented": self.presented_note.decode("utf-8", "replace"),
        }


# --- CIDs -------------------------------------------------------------------------------------------
def raw_cid(body: bytes) -> str:
    """The CIDv1 of ``body`` as one raw block, in multibase base32 (Kubo's spelling)."""
    return raw_cid_of_digest(hashlib.sha256(body).digest())


def raw_cid_of_digest(digest: bytes) -> str:
    """The base32 CIDv1 of the raw block whose SHA-256 is ``digest``."""
    return "b" + base64.b32encode(_RAW_CID_PREFIX + digest).decode("ascii").lower().rstrip("=")


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        digit = _B58.find(char)
        if digit < 0:
            raise AnchorIntegrityError("the anchor's CID is malformed")
        number = number * 58 + digit
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def _b32decode(text: str) -> bytes:
    if not text or "=" in text:
        raise AnchorIntegrityError("the anchor's CID is malformed")
    try:
        raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        raise AnchorIntegrityError("the anchor's CID is malformed") from None
    if base64.b32encode(raw).decode("ascii").rstrip("=") != text.upper():  # one spelling per value
        raise AnchorIntegrityError("the anchor's CID is malformed")
    return raw


def parse_raw_cid(text: object) -> bytes:
    """The SHA-256 digest named by the CID ``text`` (base32 ``b``/``B`` or base58btc ``z``); it must be a
    version 1 CID of one raw block (a dag-pb CID names a multi-block body, which a note never is)."""
    if not isinstance(text, str) or not 1 < len(text) <= _MAX_CID_TEXT or not text.isascii():
        raise AnchorIntegrityError("the anchor's CID is malformed")
    base, rest = text[0], text[1:]
    if (base, rest) in (("b", rest.lower()), ("B", rest.upper())):  # multibase base32, one case
        binary = _b32decode(rest)
    elif base == "z":
        binary = _b58decode(rest)
    else:
        raise AnchorIntegrityError("the anchor's CID is malformed")
    if len(binary) != len(_RAW_CID_PREFIX) + 32 or not binary.startswith(_RAW_CID_PREFIX):
        raise AnchorIntegrityError("the anchor's CID is not one raw block's")
    return binary[len(_RAW_CID_PREFIX) :]


def _tx_id(text: object) -> str:
    """An Arweave transaction id: base64url (unpadded) of 32 bytes, one spelling."""
    if not isinstance(text, str) or not _TX_ID.fullmatch(text):
        raise AnchorIntegrityError("the anchor's transaction id is malformed")
    raw = base64.urlsafe_b64decode(text + "=")
    if base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != text:
        raise AnchorIntegrityError("the anchor's transaction id is malformed")
    return text


# --- fetching ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AnchorSource:
    """Where anchored notes are read, never the service: ``ipfs_gateway`` (a path gateway, ``GET
    <url>/ipfs/<cid>``) or ``ipfs_api`` (a Kubo RPC API, ``POST <url>/api/v0/cat?arg=<cid>``), and
    ``arweave_gateway`` (``GET <url>/<tx id>``). ``transport`` replaces httpx's (tests, proxies)."""

    ipfs_gateway: str | None = None
    ipfs_api: str | None = None
    arweave_gateway: str | None = None
    timeout: float = 10.0
    max_bytes: int = MAX_ANCHOR_BYTES
    transport: httpx.BaseTransport | None = None

    def __post_init__(self) -> None:
        if self.ipfs_gateway is not None and self.ipfs_api is not None:
            raise ValueError("an IPFS path gateway or a Kubo RPC API, not both")
        for url in (self.ipfs_gateway, self.ipfs_api, self.arweave_gateway):
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError("a gateway URL is http(s)://host[:port][/path]")

    def serves(self, backend: str) -> bool:
        """Whether this source can read anchors of ``backend``."""
        if backend == "ipfs":
            return self.ipfs_gateway is not None or self.ipfs_api is not None
        return backend == "arweave" and self.arweave_gateway is not None

    def fetch(self, anchor: AnchorView) -> bytes:
        """The anchored note's bytes, checked against the anchor's locator and ``note_sha256``."""
        digest = _listed_digest(anchor.note_sha256)
        if anchor.backend == "ipfs":
            cid_digest = parse_raw_cid(anchor.locator)
            cid = raw_cid_of_digest(cid_digest)
            if self.ipfs_api is not None:
                body = self._read("POST", f"{self.ipfs_api.rstrip('/')}/api/v0/cat", {"arg": cid})
            elif self.ipfs_gateway is not None:
                body = self._read("GET", f"{self.ipfs_gateway.rstrip('/')}/ipfs/{cid}", {})
            else:
                raise ValueError("no IPFS gateway to read the anchor from")
            if not hmac.compare_digest(hashlib.sha256(body).digest(), cid_digest):
                raise AnchorIntegrityError("the body served is not the anchored CID's")
        elif anchor.backend == "arweave":
            if self.arweave_gateway is None:
                raise ValueError("no Arweave gateway to read the anchor from")
            body = self._read("GET", f"{self.arweave_gateway.rstrip('/')}/{_tx_id(anchor.locator)}", {})
        else:
            raise AnchorIntegrityError("the anchor names an unknown backend")
        if not hmac.compare_digest(hashlib.sha256(body).digest(), digest):
            raise AnchorIntegrityError("the body served is not the anchored note's digest")
        return body

    def _read(self, method: str, url: str, params: Mapping[str, str]) -> bytes:
        """The answer's body, at most ``max_bytes`` (a longer one is refused before it is all read)."""
        body = bytearray()
        try:
            with (
                httpx.Client(timeout=self.timeout, transport=self.transport, follow_redirects=True) as http,
                http.stream(method, url, params=params) as answer,
            ):
                if answer.status_code != httpx.codes.OK:
                    raise AnchorUnavailableError(
                        f"the gateway answered {answer.status_code}", status=answer.status_code
                    )
                for chunk in answer.iter_bytes():
                    body.extend(chunk)
                    if len(body) > self.max_bytes:
                        raise AnchorIntegrityError("the body served is larger than a checkpoint note")
        except httpx.TimeoutException:
            raise AnchorUnavailableError("the gateway did not answer in time") from None
        except httpx.HTTPError:
            raise AnchorUnavailableError("the gateway did not answer") from None
        return bytes(body)


def _listed_digest(text: object) -> bytes:
    if not isinstance(text, str) or not _SHA256_HEX.fullmatch(text):
        raise AnchorIntegrityError("the anchor's note digest is malformed")
    return bytes.fromhex(text)


# --- checking ---------------------------------------------------------------------------------------
def open_anchor(
    anchor: AnchorView,
    note: bytes,
    verifiers: Iterable[NoteVerifier],
    *,
    origin: str,
    required: Iterable[NoteVerifier] = (),
    falcon: FalconPolicy = "check",
) -> Checkpoint:
    """Open a fetched anchored ``note`` with the trusted keys (as ``open_checkpoint``: ``CheckpointError``
    if it does not verify) and check that it is the checkpoint ``anchor`` describes."""
    checkpoint = open_checkpoint(note, verifiers, origin=origin, required=required, falcon=falcon)
    listed_root = _root(anchor.root_hash)
    if anchor.tree_size != checkpoint.size or not hmac.compare_digest(listed_root, checkpoint.root_hash):
        raise AnchorIntegrityError("the anchor listing does not describe its note")
    return checkpoint


def _root(text: object) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True) if isinstance(text, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != hashlib.sha256().digest_size:
        raise AnchorIntegrityError("the anchor's root hash is malformed")
    return raw


@dataclass(frozen=True, slots=True)
class AnchorCheck:
    """A checkpoint shown to be of one history with an anchored one. ``relation``: ``same`` (one size,
    one root), ``anchor_older`` (the presented checkpoint extends the anchored one) or ``anchor_newer``."""

    anchored: Checkpoint
    anchored_note: bytes
    presented: Checkpoint
    presented_note: bytes
    relation: Relation
    anchor: AnchorView | None = None


def verify_against_anchor(
    presented: bytes | Receipt | Mapping[str, Any],
    anchored_note: bytes,
    verifiers: Iterable[NoteVerifier],
    *,
    origin: str,
    proof: ProofSource,
    entry: bytes | str | None = None,
    required: Iterable[NoteVerifier] = (),
    falcon: FalconPolicy = "check",
    anchor: AnchorView | None = None,
) -> AnchorCheck:
    """Prove that ``presented`` (a signed checkpoint note, or a receipt: its checkpoint, and with ``entry``
    its inclusion proof too) and the anchored checkpoint note are one history.

    ``proof(old_size, new_size)`` fetches the consistency proof (the service's
    ``/v1/audit/consistency``), called only when the sizes differ; it is verified here. Both notes must
    open with the trusted keys (``CheckpointError`` otherwise: nothing is claimed about a note the log did
    not sign). ``SplitViewError`` with both notes when they are not shown to be one history."""
    trusted = list(verifiers)
    must = list(required)
    anchored = open_checkpoint(anchored_note, trusted, origin=origin, required=must, falcon=falcon)
    presented_note, shown = _presented(presented, entry, trusted, origin=origin, required=must, falcon=falcon)
    split = _Split(origin, anchored, anchored_note, shown, presented_note)
    if shown.size == anchored.size:
        if not hmac.compare_digest(shown.root_hash, anchored.root_hash):
            raise split("two signed checkpoints of one size with different roots", "same_size")
        relation: Relation = "same"
    else:
        old, new = (anchored, shown) if anchored.size < shown.size else (shown, anchored)
        try:
            verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof(old.size, new.size))
        except ProofError:
            raise split(
                "the service cannot prove the two signed checkpoints are one history", "inconsistent"
            ) from None
        relation = "anchor_older" if anchored.size < shown.size else "anchor_newer"
    return AnchorCheck(anchored, anchored_note, shown, presented_note, relation, anchor)


def _presented(
    presented: bytes | Receipt | Mapping[str, Any],
    entry: bytes | str | None,
    verifiers: list[NoteVerifier],
    *,
    origin: str,
    required: list[NoteVerifier],
    falcon: FalconPolicy,
) -> tuple[bytes, Checkpoint]:
    """The presented note and its opened checkpoint (a receipt's: checked with its entry if given)."""
    if isinstance(presented, bytes):
        note = presented
        return note, open_checkpoint(note, verifiers, origin=origin, required=required, falcon=falcon)
    receipt = presented if isinstance(presented, Receipt) else Receipt.from_dict(presented)
    if entry is not None:
        checkpoint = verify_receipt(
            receipt, entry, verifiers, origin=origin, required=required, falcon=falcon
        )
        return receipt.checkpoint, checkpoint
    if receipt.origin != origin:
        raise CheckpointError("the receipt is for another log")
    checkpoint = open_checkpoint(
        receipt.checkpoint, verifiers, origin=origin, required=required, falcon=falcon
    )
    if checkpoint.size != receipt.tree_size:
        raise ProofError("the receipt's tree size is not its checkpoint's")
    return receipt.checkpoint, checkpoint


@dataclass(frozen=True, slots=True)
class _Split:
    origin: str
    anchored: Checkpoint
    anchored_note: bytes
    presented: Checkpoint
    presented_note: bytes

    def __call__(self, message: str, reason: SplitReason) -> SplitViewError:
        return SplitViewError(
            message,
            reason=reason,
            origin=self.origin,
            anchored=self.anchored,
            anchored_note=self.anchored_note,
            presented=self.presented,
            presented_note=self.presented_note,
        )
