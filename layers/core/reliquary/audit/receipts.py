"""What the audit log hands out, and how anyone checks it without trusting the service.

A **receipt** says: the entry with this leaf index is in the log whose signed checkpoint is attached, and
here is the inclusion proof. ``verify_receipt`` needs only the entry's bytes, the log's origin and the
checkpoint verifier keys (published by the service as signed-note verifier keys, ``NoteVerifier.to_vkey``).

An **export** is a range of entries with their inclusion proofs against one signed checkpoint, as JSON
lines: a header line, then one line per entry. ``verify_export`` re-checks every line.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from reliquary.audit import accel, merkle
from reliquary.audit.checkpoint import Checkpoint, open_checkpoint
from reliquary.audit.note import NoteVerifier, Policy
from reliquary.errors import InvalidRequestError, ProofError

RECEIPT_FORMAT: Final = "reliquary-audit-receipt/v1"
EXPORT_FORMAT: Final = "reliquary-audit-export/v1"
MAX_PROOF_HASHES = 64  # a tree of at most 2**64 leaves
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
