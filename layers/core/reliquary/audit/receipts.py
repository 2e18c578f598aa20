"""What the audit log hands out, and how anyone checks it without trusting the service.

A **receipt** says: the entry with this leaf index is in the log whose signed checkpoint is attached, and
here is the inclusion proof. ``verify_receipt`` needs only the entry's bytes, the log's origin and the
checkpoint verifier keys (published by the service as signed-note verifier keys, ``NoteVerifier.to_vkey``).

A **promise** says less, sooner: the log has sequenced this entry (its RFC 9162 leaf hash) at this leaf
index, at this time, and will integrate it there. It is signed by the checkpoint keys over a
domain-separated body (``note.sign_separated``: never a note, so never a checkpoint, nor the other way
round). ``verify_promise`` checks it; ``verify_promise_kept`` checks a later receipt against it, and a
receipt that does not prove the promised entry at the promised leaf is a ``BrokenPromiseError``.

An **export** is a range of entries with their inclusion proofs against one signed checkpoint, as JSON
lines: a header line, then one line per entry. ``verify_export`` re-checks every line.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from reliquary.audit import accel, merkle
from reliquary.audit.checkpoint import Checkpoint, open_checkpoint
from reliquary.audit.note import NoteSigner, NoteVerifier, Policy, open_separated, sign_separated
from reliquary.errors import InvalidRequestError, ProofError

RECEIPT_FORMAT: Final = "reliquary-audit-receipt/v1"
PROMISE_FORMAT: Final = "reliquary-audit-promise/v1"
EXPORT_FORMAT: Final = "reliquary-audit-export/v1"
MAX_PROOF_HASHES = 64  # a tree of at most 2**64 leaves
MAX_LEAF_INDEX = (1 << 64) - 1
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_VERIFY_CHUNK = 1024


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidRequestError(f"{what} is a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{what} is not valid base64") from None


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequestError(f"{what} is a non-negative integer")
    return value


def _proof(value: object) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) > MAX_PROOF_HASHES:
        raise InvalidRequestError(f"the inclusion proof is a list of at most {MAX_PROOF_HASHES} hashes")
    return tuple(_unb64(h, "a proof hash") for h in value)


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof that one request's record is in the log: its leaf, a signed checkpoint, the path between."""

    origin: str
    request_id: str
    leaf_index: int
    checkpoint: bytes  # the signed note (UTF-8 text)
    tree_size: int
    inclusion_proof: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RECEIPT_FORMAT,
            "origin": self.origin,
            "request_id": self.request_id,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "checkpoint": self.checkpoint.decode("utf-8"),
            "inclusion_proof": [_b64(h) for h in self.inclusion_proof],
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Receipt:
        """A receipt from its JSON form; ``InvalidRequestError`` when malformed (nothing is verified yet)."""
        if not isinstance(value, Mapping) or value.get("format") != RECEIPT_FORMAT:
            raise InvalidRequestError(f"not a {RECEIPT_FORMAT} receipt")
        origin, request_id, note = value.get("origin"), value.get("request_id"), value.get("checkpoint")
        if not isinstance(origin, str) or not isinstance(request_id, str) or not isinstance(note, str):
            raise InvalidRequestError("a receipt names its origin, request id and checkpoint as strings")
        return cls(
            origin=origin,
            request_id=request_id,
            leaf_index=_count(value.get("leaf_index"), "leaf_index"),
            checkpoint=note.encode("utf-8"),
            tree_size=_count(value.get("tree_size"), "tree_size"),
            inclusion_proof=_proof(value.get("inclusion_proof")),
        )


def verify_receipt(
    receipt: Receipt,
    entry: bytes,
    verifiers: Sequence[NoteVerifier],
    *,
    origin: str,
    required: Policy | Iterable[NoteVerifier] | None = None,
) -> Checkpoint:
    """Check that ``entry`` is leaf ``receipt.leaf_index`` of the checkpointed tree; return the checkpoint.

    Raises ``CheckpointError`` (signature, origin, format) or a ``ProofError`` (index, length, root)."""
    if receipt.origin != origin:
        raise InvalidRequestError("the receipt is for another log", origin=receipt.origin)
    checkpoint = open_checkpoint(receipt.checkpoint, verifiers, origin=origin, required=required)
    if checkpoint.size != receipt.tree_size:
        raise ProofError("the receipt's tree size is not its checkpoint's")
    merkle.verify_inclusion(
        receipt.leaf_index,
        checkpoint.size,
        merkle.SHA256.hash_leaf(entry),
        list(receipt.inclusion_proof),
        checkpoint.root_hash,
    )
    return checkpoint


# --- promises -------------------------------------------------------------------------------------
class BrokenPromiseError(ProofError):
    """The log's receipt for a promised leaf does not prove the promised entry there: the log put another
    entry at that index, or handed out a receipt whose checkpoint does not cover it. The signed promise is
    the evidence."""

    code = "promise_broken"


def _line(value: object, what: str) -> str:
    """A promise field that is one line of text (its body is newline-separated)."""
    if not isinstance(value, str) or not value or _CONTROL.search(value):
        raise InvalidRequestError(f"the {what} is a non-empty line of text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequestError(f"the {what} is not valid UTF-8") from None
    return value


@dataclass(frozen=True, slots=True)
class PromiseBody:
    """What a promise states: ``request_id``'s entry, of RFC 9162 leaf hash ``leaf_hash``, is sequenced
    at ``leaf_index`` of the log ``origin`` since ``sequenced_at_ms`` (Unix time, milliseconds)."""

    origin: str
    request_id: str
    leaf_index: int
    leaf_hash: bytes
    sequenced_at_ms: int

    def __post_init__(self) -> None:
        _line(self.origin, "origin")
        _line(self.request_id, "request id")
        if _count(self.leaf_index, "leaf_index") > MAX_LEAF_INDEX:
            raise InvalidRequestError("a leaf index is below 2**64")
        if not isinstance(self.leaf_hash, bytes) or len(self.leaf_hash) != merkle.HASH_SIZE:
            raise InvalidRequestError(f"a leaf hash is {merkle.HASH_SIZE} bytes")
        _count(self.sequenced_at_ms, "sequenced_at_ms")

    def signed_bytes(self) -> bytes:
        """The body the keys sign (in the promise domain): one field per line, in a fixed order."""
        leaf_hash = _b64(self.leaf_hash)
        fields = (self.origin, self.request_id, str(self.leaf_index), leaf_hash, str(self.sequenced_at_ms))
        return "".join(f"{field}\n" for field in fields).encode("utf-8")


def sign_promise(body: PromiseBody, signers: Sequence[NoteSigner]) -> Promise:
    """``body`` signed by the checkpoint keys, in the promise domain (``PROMISE_FORMAT``)."""
    return Promise(body, sign_separated(PROMISE_FORMAT, body.signed_bytes(), signers))


@dataclass(frozen=True, slots=True)
class Promise:
    """A signed promise of inclusion (``reliquary-audit-promise/v1``): the body and its signature lines."""

    body: PromiseBody
    signatures: tuple[str, ...]

    @property
    def origin(self) -> str:
        return self.body.origin

    @property
    def request_id(self) -> str:
        return self.body.request_id

    @property
    def leaf_index(self) -> int:
        return self.body.leaf_index

    @property
    def leaf_hash(self) -> bytes:
        return self.body.leaf_hash

    @property
    def sequenced_at_ms(self) -> int:
        return self.body.sequenced_at_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROMISE_FORMAT,
            "origin": self.origin,
            "request_id": self.request_id,
            "leaf_index": self.leaf_index,
            "leaf_hash": _b64(self.leaf_hash),
            "sequenced_at_ms": self.sequenced_at_ms,
            "signatures": list(self.signatures),
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Promise:
        """A promise from its JSON form; ``InvalidRequestError`` when malformed (nothing is verified yet)."""
        if not isinstance(value, Mapping) or value.get("format") != PROMISE_FORMAT:
            raise InvalidRequestError(f"not a {PROMISE_FORMAT} promise")
        signatures = value.get("signatures")
        if not isinstance(signatures, list) or not all(isinstance(line, str) for line in signatures):
            raise InvalidRequestError("a promise's signatures are a list of signature lines")
        body = PromiseBody(
            origin=_line(value.get("origin"), "origin"),
            request_id=_line(value.get("request_id"), "request id"),
            leaf_index=_count(value.get("leaf_index"), "leaf_index"),
            leaf_hash=_unb64(value.get("leaf_hash"), "the leaf hash"),
            sequenced_at_ms=_count(value.get("sequenced_at_ms"), "sequenced_at_ms"),
        )
        return cls(body, tuple(signatures))


def verify_promise(
    promise: Promise,
    verifiers: Sequence[NoteVerifier],
    *,
    origin: str,
    entry: bytes | None = None,
    required: Policy | Iterable[NoteVerifier] | None = None,
) -> PromiseBody:
    """Check the promise's signatures (in the promise domain, ``required`` as for a checkpoint) and that it
    is ``origin``'s; with ``entry``, that the promised leaf is that entry. Returns what it promises.

    Raises ``CheckpointError`` (signatures) or ``InvalidRequestError`` (another log, another entry)."""
    if promise.origin != origin:
        raise InvalidRequestError("the promise is for another log")
    open_separated(
        PROMISE_FORMAT, promise.body.signed_bytes(), promise.signatures, verifiers, required=required
    )
    if entry is not None and merkle.SHA256.hash_leaf(entry) != promise.leaf_hash:
        raise InvalidRequestError("the promise is for another entry")
    return promise.body


def verify_promise_kept(
    promise: Promise,
    receipt: Receipt,
    verifiers: Sequence[NoteVerifier],
    *,
    origin: str,
    required: Policy | Iterable[NoteVerifier] | None = None,
) -> Checkpoint:
    """Check that ``receipt`` (the log's, for the promised leaf) keeps ``promise``: both signed by the log,
    and the receipt's inclusion proof puts the promised leaf hash at the promised index of its signed
    checkpoint's tree. Returns that checkpoint.

    ``BrokenPromiseError`` when it does not (another entry at the index, or a tree that does not cover
    it); ``InvalidRequestError`` for a receipt of another request or leaf; ``CheckpointError`` for a bad
    signature on either."""
    verify_promise(promise, verifiers, origin=origin, required=required)
    if receipt.origin != origin:
        raise InvalidRequestError("the receipt is for another log", origin=receipt.origin)
    if receipt.request_id != promise.request_id or receipt.leaf_index != promise.leaf_index:
        raise InvalidRequestError("the receipt is not for the promised request and leaf")
    checkpoint = open_checkpoint(receipt.checkpoint, verifiers, origin=origin, required=required)
    if checkpoint.size != receipt.tree_size:
        raise ProofError("the receipt's tree size is not its checkpoint's")
    if promise.leaf_index >= checkpoint.size:
        raise BrokenPromiseError("the receipt's checkpoint does not cover the promised leaf")
    try:
        merkle.verify_inclusion(
            promise.leaf_index,
            checkpoint.size,
            promise.leaf_hash,
            list(receipt.inclusion_proof),
            checkpoint.root_hash,
        )
    except ProofError:
        raise BrokenPromiseError(
            "the log's checkpoint does not hold the promised entry at its leaf"
        ) from None
    return checkpoint


# --- exports --------------------------------------------------------------------------------------
def export_header(*, origin: str, start: int, end: int, checkpoint: bytes) -> bytes:
    line = {
        "type": "header",
        "format": EXPORT_FORMAT,
        "origin": origin,
        "start": start,
        "end": end,
        "checkpoint": checkpoint.decode("utf-8"),
    }
    return json.dumps(line, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def export_line(index: int, entry: bytes, proof: Sequence[bytes]) -> bytes:
    line = {
        "type": "entry",
        "index": index,
        "entry": _b64(entry),
        "inclusion_proof": [_b64(h) for h in proof],
    }
    return json.dumps(line, separators=(",", ":"), sort_keys=True).encode() + b"\n"


@dataclass(frozen=True, slots=True)
class VerifiedExport:
    checkpoint: Checkpoint
    start: int
    end: int
    entries: list[bytes]


def _json_line(line: bytes, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidRequestError("an export line is not JSON", line=number) from None
    if not isinstance(value, dict):
        raise InvalidRequestError("an export line is a JSON object", line=number)
    return value


def verify_export(
    lines: Iterable[bytes],
    verifiers: Sequence[NoteVerifier],
    *,
    origin: str,
    required: Policy | Iterable[NoteVerifier] | None = None,
) -> VerifiedExport:
    """Check an export line by line: the header's signed checkpoint, then every entry's inclusion proof,
    with no index missing, repeated or out of order. Returns the verified entries."""
    numbered: Iterator[tuple[int, bytes]] = enumerate(lines, start=1)
    first = next(numbered, None)
    if first is None:
        raise InvalidRequestError("the export is empty")
    header = _json_line(first[1], 1)
    if header.get("type") != "header" or header.get("format") != EXPORT_FORMAT:
        raise InvalidRequestError(f"the export does not start with a {EXPORT_FORMAT} header")
    if header.get("origin") != origin or not isinstance(header.get("checkpoint"), str):
        raise InvalidRequestError("the export is for another log or has no checkpoint")
    checkpoint = open_checkpoint(header["checkpoint"].encode(), verifiers, origin=origin, required=required)
    start, end = _count(header.get("start"), "start"), _count(header.get("end"), "end")
    if not start <= end <= checkpoint.size:
        raise InvalidRequestError("the export's range is not within its checkpoint")
    entries: list[bytes] = []
    claims: list[accel.InclusionClaim] = []
    for number, raw in numbered:
        line = _json_line(raw, number)
        expected = start + len(entries)
        if line.get("type") != "entry" or line.get("index") != expected or expected >= end:
            raise InvalidRequestError("an export line is out of sequence", line=number, expected=expected)
        entry = _unb64(line.get("entry"), "an entry")
        proof = _proof(line.get("inclusion_proof"))
        claims.append(
            (expected, checkpoint.size, merkle.SHA256.hash_leaf(entry), proof, checkpoint.root_hash)
        )
        entries.append(entry)
        if len(claims) == _VERIFY_CHUNK:  # many proofs per native call, memory bounded
            accel.verify_inclusions(claims)
            claims.clear()
    accel.verify_inclusions(claims)
    if start + len(entries) != end:
        raise InvalidRequestError("the export is missing entries", expected=end - start, found=len(entries))
    return VerifiedExport(checkpoint, start, end, entries)
