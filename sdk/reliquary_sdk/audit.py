"""The audit log checked offline: C2SP signed-note checkpoints, RFC 9162 proofs, receipts and promises.

A checkpoint (c2sp.org/tlog-checkpoint) is a signed note (c2sp.org/signed-note): text, a blank line, then
``— <key name> <base64(key ID || signature)>`` lines. RELIQUARY signs with Ed25519 (signature type 0x01),
ML-DSA-65 and Falcon-512 (type 0xff followed by ``reliquary/signed-note/v1/<algorithm>\\n``); the service
publishes the verifier keys (``GET /v1/audit/keys``). Lines from unknown keys are ignored, as the spec
requires; a known key's line that does not verify, or a second line from it, fails.

A promise (``reliquary-audit-promise/v1``) is the log's signed word that an entry is sequenced at a leaf
and will be integrated there: the checkpoint keys sign ``reliquary-audit-promise/v1 || 0x00 || body``,
which no note text can be (a note holds no NUL), so a promise never opens as a checkpoint nor the other
way round. ``verify_promise`` checks one; ``verify_promise_kept`` checks the later receipt against it and
raises ``BrokenPromiseError`` when the log's receipt does not prove the promised entry at that leaf.

Falcon-512 needs the ``falcon`` extra. ``falcon="check"`` (the default) raises ``FalconUnavailableError``
when a trusted Falcon line must be checked without it; ``falcon="skip"`` leaves Falcon lines unchecked and
says so in ``VerifiedNote.unchecked``: they then count for nothing, never as signatures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from reliquary_sdk._verify import (
    ED25519,
    FALCON_512,
    ML_DSA_65,
    FalconUnavailableError,
    PublicKey,
    VerificationError,
)

__all__ = [
    "BrokenPromiseError",
    "Checkpoint",
    "CheckpointError",
    "FalconUnavailableError",
    "NoteVerifier",
    "Promise",
    "ProofError",
    "Receipt",
    "VerifiedNote",
    "open_checkpoint",
    "open_note",
    "verify_consistency",
    "verify_inclusion",
    "verify_promise",
    "verify_promise_kept",
    "verify_receipt",
]

FalconPolicy = Literal["check", "skip"]
NOTE_KEY_ID_LEN = 4
HASH_LEN = 32
MAX_TEXT_BYTES = 1 << 20
MAX_SIGNATURES = 100
MAX_SIGNATURE_LINE_BYTES = 16 << 10
MAX_NOTE_BYTES = MAX_TEXT_BYTES + 1 + MAX_SIGNATURES * (MAX_SIGNATURE_LINE_BYTES + 1)
MAX_PROOF_HASHES = 64
RECEIPT_FORMAT: Final = "reliquary-audit-receipt/v1"
PROMISE_FORMAT: Final = "reliquary-audit-promise/v1"
SIGNATURE_TYPES: Final = {
    ED25519: b"\x01",
    ML_DSA_65: b"\xffreliquary/signed-note/v1/ML-DSA-65\n",
    FALCON_512: b"\xffreliquary/signed-note/v1/Falcon-512\n",
}
_PREFIX = "\u2014 ".encode()  # em dash, space
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_LINE_CONTROL = re.compile("[\x00-\x1f]")
_KEY_HASH_HEX = re.compile("[0-9a-f]{8}")
_SIZE = re.compile("0|[1-9][0-9]{0,19}")


class CheckpointError(VerificationError):
    """The note or checkpoint is malformed, badly signed, lacks a required signature or names another log."""

    code = "checkpoint_invalid"


class ProofError(VerificationError):
    """An inclusion or consistency proof (or a receipt's) does not hold."""

    code = "proof_invalid"


class BrokenPromiseError(ProofError):
    """The log's receipt for a promised leaf does not prove the promised entry there (another entry at
    that index, or a checkpoint that does not cover it). Keep the signed promise: it is the evidence."""

    code = "promise_broken"


def _b64decode(text: str) -> bytes | None:
    """Canonical standard base64 only (padded, no stray characters, zero padding bits)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def _valid_key_name(name: str) -> bool:
    return bool(name) and not any(c.isspace() or c == "+" or c < " " for c in name)


@dataclass(frozen=True, slots=True, eq=False)
class NoteVerifier:
    """A trusted note key: its name and public key; ``key_id`` is SHA-256(name \\n type key)[:4]."""

    name: str
    key: PublicKey
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        if not _valid_key_name(self.name):
            raise ValueError("a key name is non-empty, without spaces, control characters or '+'")
        material = (
            self.name.encode("utf-8") + b"\n" + SIGNATURE_TYPES[self.key.algorithm] + self.key.public_key
        )
        object.__setattr__(self, "key_id", hashlib.sha256(material).digest()[:NOTE_KEY_ID_LEN])

    @property
    def algorithm(self) -> str:
        return self.key.algorithm

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key ``<name>+<hex key ID>+<base64(signature type || public key)>``."""
        name, sep1, rest = vkey.partition("+")
        key_hash, sep2, key64 = rest.partition("+")
        encoded = _b64decode(key64)
        if not (sep1 and sep2 and _KEY_HASH_HEX.fullmatch(key_hash) and encoded):
            raise ValueError("malformed verifier key")
        for algorithm, signature_type in SIGNATURE_TYPES.items():
            if encoded.startswith(signature_type):
                verifier = cls(name, PublicKey(algorithm, encoded[len(signature_type) :]))
                break
        else:
            raise ValueError("unknown signature type in verifier key")
        if verifier.key_id.hex() != key_hash:
            raise ValueError("the verifier key's key ID does not match its key")
        return verifier

    def to_vkey(self) -> str:
        material = base64.b64encode(SIGNATURE_TYPES[self.algorithm] + self.key.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{material}"

    def _identity(self) -> tuple[str, str, bytes]:
        return (self.name, self.algorithm, self.key.public_key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoteVerifier) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        return f"NoteVerifier({self.name!r}, {self.algorithm}, key_id={self.key_id.hex()})"


@dataclass(frozen=True, slots=True)
class VerifiedNote:
    """A note's text, the trusted keys whose signatures verified (line order), and those left unchecked."""

    text: str
    signed_by: tuple[NoteVerifier, ...]
    unchecked: tuple[NoteVerifier, ...] = ()


def _split(note: bytes) -> tuple[bytes, list[tuple[str, bytes, bytes]]]:
    if len(note) > MAX_NOTE_BYTES:
        raise CheckpointError("malformed note")
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError("malformed note") from None
    split = note.rfind(b"\n\n")
    if _CONTROL.search(decoded) or split < 0:
        raise CheckpointError("malformed note")
    text, block = note[: split + 1], note[split + 2 :]
    if len(text) > MAX_TEXT_BYTES or not block.endswith(b"\n"):
        raise CheckpointError("malformed note")
    lines = block[:-1].split(b"\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError("malformed note")
    return text, [_signature_line(line) for line in lines]


def _signature_line(line: bytes) -> tuple[str, bytes, bytes]:
    """(key name, key ID, signature) of ``— <key name> <base64(key ID || signature)>``."""
    if len(line) > MAX_SIGNATURE_LINE_BYTES or not line.startswith(_PREFIX):
        raise CheckpointError("malformed note")
    name, space, encoded = line[len(_PREFIX) :].decode("utf-8").partition(" ")
    raw = _b64decode(encoded)
    if not space or not _valid_key_name(name) or raw is None or len(raw) <= NOTE_KEY_ID_LEN:
        raise CheckpointError("malformed note")
    return name, raw[:NOTE_KEY_ID_LEN], raw[NOTE_KEY_ID_LEN:]


def open_note(
    note: bytes,
    verifiers: Iterable[NoteVerifier],
    *,
    required: Iterable[NoteVerifier] = (),
    falcon: FalconPolicy = "check",
) -> VerifiedNote:
    """Verify ``note`` against the trusted ``verifiers``; every key in ``required`` must have signed.

    One trusted signature suffices without ``required``. With ``falcon="skip"`` a Falcon-512 key is never
    checked: its lines are reported in ``unchecked`` and a required Falcon key is waived, visibly."""
    if not isinstance(note, bytes):
        raise CheckpointError("a signed note is bytes")
    if falcon not in ("check", "skip"):
        raise ValueError("falcon is 'check' or 'skip'")
    text, signatures = _split(note)
    signed_by, unchecked = _verify_lines(text, signatures, verifiers, set(required), falcon)
    return VerifiedNote(text.decode("utf-8"), signed_by, unchecked)


def _verify_lines(
    signed: bytes,
    signatures: list[tuple[str, bytes, bytes]],
    verifiers: Iterable[NoteVerifier],
    must: set[NoteVerifier],
    falcon: FalconPolicy,
) -> tuple[tuple[NoteVerifier, ...], tuple[NoteVerifier, ...]]:
    """The trusted keys whose signature over ``signed`` verified and those left unchecked (line order)."""
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for trusted in [*verifiers, *must]:
        if known.setdefault((trusted.name, trusted.key_id), trusted) != trusted:
            raise ValueError("two trusted keys share a key name and key ID")
    signed_by: list[NoteVerifier] = []
    unchecked: list[NoteVerifier] = []
    for name, key_id, signature in signatures:
        verifier = known.get((name, key_id))
        if verifier is None:
            continue  # an unknown key: ignored, as the spec requires
        if verifier in signed_by or verifier in unchecked:
            raise CheckpointError("two signatures from one key")
        if verifier.algorithm == FALCON_512 and falcon == "skip":
            unchecked.append(verifier)
            continue
        try:
            verifier.key.verify(signed, signature)
        except VerificationError:
            raise CheckpointError("a trusted key's signature does not verify") from None
        signed_by.append(verifier)
    if not signed_by:
        raise CheckpointError("the note has no signature from a trusted key")
    waived = {v for v in must if v.algorithm == FALCON_512} if falcon == "skip" else set()
    if not (must - waived) <= set(signed_by):
        raise CheckpointError("the note lacks a required signature")
    return tuple(signed_by), tuple(unchecked)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: origin, size, RFC 9162 root hash and optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise CheckpointError("malformed checkpoint")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("malformed checkpoint")
        origin, size_text, root_text, *extensions = lines
        root_hash = _b64decode(root_text)
        if (
            not _SIZE.fullmatch(size_text)
            or int(size_text) >= 1 << 64
            or root_hash is None
            or len(root_hash) != HASH_LEN
            or any(not line or _LINE_CONTROL.search(line) for line in (origin, *extensions))
        ):
            raise CheckpointError("malformed checkpoint")
        return cls(origin, int(size_text), root_hash, tuple(extensions))


def open_checkpoint(
    note: bytes,
    verifiers: Iterable[NoteVerifier],
    *,
    origin: str,
    required: Iterable[NoteVerifier] = (),
    falcon: FalconPolicy = "check",
) -> Checkpoint:
    """Verify the signed checkpoint ``note`` (see ``open_note``); it must be ``origin``'s."""
    checkpoint = Checkpoint.parse(open_note(note, verifiers, required=required, falcon=falcon).text)
    if checkpoint.origin != origin:
        raise CheckpointError("the checkpoint is from another log")
    return checkpoint


# --- RFC 9162 proofs ---------------------------------------------------------------------------------
def hash_leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _hashes(values: Iterable[bytes]) -> list[bytes]:
    out = list(values)
    if len(out) > MAX_PROOF_HASHES or any(not isinstance(h, bytes) or len(h) != HASH_LEN for h in out):
        raise ProofError("a proof is a list of 32-byte hashes")
    return out


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
        raise ProofError("tree sizes and indexes are integers from 0 to 2**64 - 1")
    return value


def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: the leaf ``leaf_hash`` is at ``index`` in the tree of ``size`` with ``root``."""
    index, size, path = _count(index), _count(size), _hashes(proof)
    if index >= size or len(leaf_hash) != HASH_LEN or len(root) != HASH_LEN:
        raise ProofError("the inclusion proof does not hold")
    fn, sn, result = index, size - 1, leaf_hash
    for node in path:
        if sn == 0:
            raise ProofError("the inclusion proof does not hold")
        if fn & 1 or fn == sn:
            result = _node(node, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = _node(result, node)
        fn >>= 1
        sn >>= 1
    if sn != 0 or not hmac.compare_digest(result, root):
        raise ProofError("the inclusion proof does not hold")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: the tree of ``new_size`` extends the tree of ``old_size``."""
    old_size, new_size, path = _count(old_size), _count(new_size), _hashes(proof)
    if old_size > new_size or len(old_root) != HASH_LEN or len(new_root) != HASH_LEN:
        raise ProofError("the consistency proof does not hold")
    if old_size in (new_size, 0):
        # Nothing to prove: equal trees need equal roots, and every tree extends the empty one.
        if path or (old_size == new_size and not hmac.compare_digest(old_root, new_root)):
            raise ProofError("the consistency proof does not hold")
        return
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node of the new tree
        path.insert(0, old_root)
    if not path:
        raise ProofError("the consistency proof does not hold")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = path[0]
    for node in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof does not hold")
        if fn & 1 or fn == sn:
            first = _node(node, first)
            second = _node(node, second)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            second = _node(second, node)
        fn >>= 1
        sn >>= 1
    if sn != 0 or not (hmac.compare_digest(first, old_root) and hmac.compare_digest(second, new_root)):
        raise ProofError("the consistency proof does not hold")


# --- receipts --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Receipt:
    """The service's word that a request's record is leaf ``leaf_index`` of a signed checkpoint's tree."""

    origin: str
    request_id: str
    leaf_index: int
    checkpoint: bytes
    tree_size: int
    inclusion_proof: tuple[bytes, ...]

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Receipt:
        """From the API's JSON form; ``ProofError`` when malformed (nothing is verified yet)."""
        if not isinstance(value, Mapping) or value.get("format") != RECEIPT_FORMAT:
            raise ProofError("not a receipt")
        origin, request_id, note = value.get("origin"), value.get("request_id"), value.get("checkpoint")
        proof = value.get("inclusion_proof")
        if not (
            isinstance(origin, str)
            and isinstance(request_id, str)
            and isinstance(note, str)
            and isinstance(proof, list)
            and len(proof) <= MAX_PROOF_HASHES
            and all(isinstance(h, str) for h in proof)
        ):
            raise ProofError("not a receipt")
        hashes = [_b64decode(h) for h in proof]
        return cls(
            origin=origin,
            request_id=request_id,
            leaf_index=_count(value.get("leaf_index")),
            checkpoint=note.encode("utf-8"),
            tree_size=_count(value.get("tree_size")),
            inclusion_proof=tuple(_hashes(h if h is not None else b"" for h in hashes)),
        )


def verify_receipt(
    receipt: Receipt | Mapping[str, Any],
    entry: bytes | str,
    verifiers: Iterable[NoteVerifier],
    *,
    origin: str,
    required: Iterable[NoteVerifier] = (),
    falcon: FalconPolicy = "check",
) -> Checkpoint:
    """Check that ``entry`` (the logged record's bytes, or its JSON text) is the receipt's leaf in the
    tree of its signed checkpoint; return that checkpoint."""
    if not isinstance(receipt, Receipt):
        receipt = Receipt.from_dict(receipt)
    if receipt.origin != origin:
        raise CheckpointError("the receipt is for another log")
    checkpoint = open_checkpoint(
        receipt.checkpoint, verifiers, origin=origin, required=required, falcon=falcon
    )
    if checkpoint.size != receipt.tree_size:
        raise ProofError("the receipt's tree size is not its checkpoint's")
    data = entry.encode("utf-8") if isinstance(entry, str) else entry
    verify_inclusion(
        receipt.leaf_index, checkpoint.size, hash_leaf(data), receipt.inclusion_proof, checkpoint.root_hash
    )
    return checkpoint


# --- promises --------------------------------------------------------------------------------------
def _promise_line(value: object) -> str:
    if not isinstance(value, str) or not value or _LINE_CONTROL.search(value) or "\x7f" in value:
        raise ProofError("not a promise")
    return value


@dataclass(frozen=True, slots=True)
class Promise:
    """The log's signed word: ``request_id``'s entry, of RFC 9162 leaf hash ``leaf_hash``, is sequenced at
    ``leaf_index`` since ``sequenced_at_ms`` (Unix ms), and will be integrated there."""

    origin: str
    request_id: str
    leaf_index: int
    leaf_hash: bytes
    sequenced_at_ms: int
    signatures: tuple[str, ...]

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Promise:
        """From the service's JSON form; ``ProofError`` when malformed (nothing is verified yet)."""
        if not isinstance(value, Mapping) or value.get("format") != PROMISE_FORMAT:
            raise ProofError("not a promise")
        signatures, leaf_hash = value.get("signatures"), value.get("leaf_hash")
        if not (
            isinstance(signatures, list)
            and 0 < len(signatures) <= MAX_SIGNATURES
            and all(isinstance(line, str) for line in signatures)
            and isinstance(leaf_hash, str)
        ):
            raise ProofError("not a promise")
        digest = _b64decode(leaf_hash)
        if digest is None or len(digest) != HASH_LEN:
            raise ProofError("not a promise")
        sequenced = value.get("sequenced_at_ms")
        if isinstance(sequenced, bool) or not isinstance(sequenced, int) or sequenced < 0:
            raise ProofError("not a promise")
        return cls(
            origin=_promise_line(value.get("origin")),
            request_id=_promise_line(value.get("request_id")),
            leaf_index=_count(value.get("leaf_index")),
            leaf_hash=digest,
            sequenced_at_ms=sequenced,
            signatures=tuple(signatures),
        )

    def signed_bytes(self) -> bytes:
        """What the log's keys signed: the domain, a NUL, then one field per line in a fixed order."""
        leaf_hash = base64.b64encode(self.leaf_hash).decode("ascii")
        fields = (self.origin, self.request_id, str(self.leaf_index), leaf_hash, str(self.sequenced_at_ms))
        body = "".join(f"{field}\n" for field in fields).encode("utf-8")
        return PROMISE_FORMAT.encode("ascii") + b"\x00" + body


def verify_promise(
    promise: Promise | Mapping[str, Any],
    verifiers: Iterable[NoteVerifier],
    *,
    origin: str,
    entry: bytes | str | None = None,
    required: Iterable[NoteVerifier] = (),
    falcon: FalconPolicy = "check",
) -> Promise:
    """Check the promise's signatures (the checkpoint keys, ``required`` as for a checkpoint) and that it
    is ``origin``'s; with ``entry`` (the record's bytes or JSON text), that it promises that entry."""
    if not isinstance(promise, Promise):
        promise = Promise.from_dict(promise)
    if falcon not in ("check", "skip"):
        raise ValueError("falcon is 'check' or 'skip'")
    if promise.origin != origin:
        raise CheckpointError("the promise is for another log")
    lines = []
    for line in promise.signatures:
        try:
            encoded = line.encode("utf-8")
        except UnicodeEncodeError:
            raise CheckpointError("malformed promise") from None
        if b"\n" in encoded:
            raise CheckpointError("malformed promise")
        lines.append(_signature_line(encoded))
    _verify_lines(promise.signed_bytes(), lines, verifiers, set(required), falcon)
    if entry is not None:
        data = entry.encode("utf-8") if isinstance(entry, str) else entry
        if not hmac.compare_digest(hash_leaf(data), promise.leaf_hash):
            raise ProofError("the promise is for another entry")
    return promise


def verify_promise_kept(
    promise: Promise | Mapping[str, Any],
    receipt: Receipt | Mapping[str, Any],
    verifiers: Iterable[NoteVerifier],
    *,
    origin: str,
    required: Iterable[NoteVerifier] = (),
    falcon: FalconPolicy = "check",
) -> Checkpoint:
    """Check that the log's ``receipt`` for a promised leaf keeps ``promise``: both signed by the log, and
    the receipt's inclusion proof puts the promised leaf hash at the promised index of its checkpoint's
    tree. ``BrokenPromiseError`` when it does not; ``ProofError`` for a receipt of another request or
    leaf; ``CheckpointError`` for a bad signature on either."""
    trusted = list(verifiers)
    promise = verify_promise(promise, trusted, origin=origin, required=required, falcon=falcon)
    if not isinstance(receipt, Receipt):
        receipt = Receipt.from_dict(receipt)
    if receipt.origin != origin:
        raise CheckpointError("the receipt is for another log")
    if receipt.request_id != promise.request_id or receipt.leaf_index != promise.leaf_index:
        raise ProofError("the receipt is not for the promised request and leaf")
    checkpoint = open_checkpoint(receipt.checkpoint, trusted, origin=origin, required=required, falcon=falcon)
    if checkpoint.size != receipt.tree_size:
        raise ProofError("the receipt's tree size is not its checkpoint's")
    if promise.leaf_index >= checkpoint.size:
        raise BrokenPromiseError("the receipt's checkpoint does not cover the promised leaf")
    try:
        verify_inclusion(
            promise.leaf_index,
            checkpoint.size,
            promise.leaf_hash,
            receipt.inclusion_proof,
            checkpoint.root_hash,
        )
    except ProofError:
        raise BrokenPromiseError(
            "the log's checkpoint does not hold the promised entry at its leaf"
        ) from None
    return checkpoint
