"""The records of the transparency log: access decisions, deletions, key events, and the log's own
checkpoint anchors (a checkpoint published on permanent storage, and the block that holds it).

Each record is a frozen, strictly validated pydantic model with a ``kind`` (the discriminator) and a
schema version ``v``. ``encode_record`` turns a record into the bytes that become a log entry and
``decode_record`` turns such bytes back into a record.

The encoding is a format, fixed forever
---------------------------------------
A log entry is hashed into the Merkle tree, signed over by checkpoints and handed out in receipts, so
the bytes of a record can never change once written, and anyone (in any language) must be able to
re-derive them. The entry is the RFC 8785 (JCS) canonical JSON of the record's JSON object: exactly the
fields declared below, under their declared names, every field present (``null`` included) but for the
*added members* (below), integers as JSON integers, floats as ECMAScript writes the double (``1.0``
becomes ``1``), member names sorted by UTF-16 code units, no whitespace, UTF-8. Therefore:

- never rename, retype or drop a field of a version, nor change a bound so that a logged record would
  no longer validate; a change is a new ``v`` (the union then dispatches on ``kind`` and ``v``), and
  the decoder keeps accepting every version ever written. Only a widening that leaves every logged
  record valid and its bytes unchanged may stay in its version (``policy_version`` of a decision became
  nullable so; a reader of version 1 must accept ``null`` there);
- a member added to a version after records of it were logged is an *added member*: written only when
  set (never as ``null``), so every entry logged before keeps its bytes, and its absence reads as
  ``null``. Version 1 has three, all of a decision: ``requester_key_sha256``, ``chain_sha256`` (the
  attestation chain behind it) and ``item_version`` (what an approval opens); a reader of version 1 must
  accept each member or its absence;
- ``decode_record`` accepts only bytes that ``encode_record`` would write for the record they decode
  to: the same record has exactly one entry, so a log cannot hold two spellings of one record.

The log never stores a principal
--------------------------------
A decision names its principal only by ``principal_hash``: its keyed pseudonym, HMAC-SHA256 under a key
derived from the deployment's pseudonym secret and the tenant id (``reliquary.crypto.pseudonym``), never
a plain hash and never the subject itself. The log is append-only and is handed to auditors and
witnesses; subjects (user ids, e-mail addresses) are few and guessable, so a plain SHA-256 could be
reversed by hashing a dictionary of candidates. Keyed by a secret, nobody without the key can test a
guess; keyed per tenant, the same subject gives unrelated values in two tenants (no linking across
tenants), a tenant's own key can be disclosed to that tenant's auditor without exposing any other tenant,
and destroying the secret turns every logged principal into an unlinkable pseudonym (the log's answer to
erasure, as it cannot delete).

Idempotency: a record's ``dedup_key`` is ``(tenant_id, request_id)``; the log holds one decision per key
and one record of another kind per key (decisions have their own id space: ``audit.log.decision_key``).
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Final, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from reliquary import jcs
from reliquary.audit.tiles import MAX_ENTRY_SIZE
from reliquary.crypto.pseudonym import pseudonym
from reliquary.crypto.scope import MAX_VERSION, validate_id
from reliquary.crypto.signing import KEY_ID_LEN
from reliquary.errors import InvalidRequestError
from reliquary.validation import invalid_request

SCHEMA_VERSION: Final = 1
MAX_RECORD_BYTES = MAX_ENTRY_SIZE  # an entry bundle prefixes each entry with a uint16 length
MAX_SAFE_INT = 2**53 - 1  # I-JSON's exact integers: every integer field stays within +-this

MAX_REASONS = 16
MAX_REASON_CHARS = 160
MAX_FACTORS = 32
MAX_FACTOR_NAME_CHARS = 64
MAX_VOTES = 16
MAX_RATIONALE_CHARS = 500
MAX_EXECUTION_ID_CHARS = 256
MAX_DELETION_REASON_CHARS = 160
MAX_VERSIONS = 1024
MAX_DETAILS = 16
MAX_DETAIL_VALUE_CHARS = 256
# Control characters (C0 but tab and newline, DEL, C1) and lone surrogates; a single line also refuses
# tab and newline. Refused in every free-text field: a log is read on terminals and in consoles.
_NOT_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


# --- field types ----------------------------------------------------------------------------------
def _identifier(value: str) -> str:
    try:
        return validate_id("identifier", value)
    except InvalidRequestError as exc:  # pydantic reports ValueError as a validation error
        raise ValueError(exc.message) from None


def _line(value: str) -> str:
    if _NOT_LINE.search(value) is not None:
        raise ValueError("control characters and lone surrogates are not allowed")
    return value


def _text(value: str) -> str:
    if _NOT_TEXT.search(value) is not None:
        raise ValueError("control characters (but tab and newline) and lone surrogates are not allowed")
    return value


def _as_tuple(value: object) -> object:
    # The JSON form (and callers) give lists; the record holds tuples, so it is immutable and hashable.
    return tuple(value) if isinstance(value, list) else value


def _check_locator(backend: str, locator: str) -> None:
    if _LOCATORS[backend].fullmatch(locator) is None:
        raise ValueError("the locator is not its backend's (IPFS: a base32 CID, Arweave: a transaction id)")


def _ascending(versions: tuple[int, ...]) -> tuple[int, ...]:
    if any(a >= b for a, b in itertools.pairwise(versions)):
        raise ValueError("versions must be strictly ascending")
    return versions


Identifier = Annotated[str, AfterValidator(_identifier)]
Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
KeyId = Annotated[str, StringConstraints(pattern=rf"^[0-9a-f]{{{2 * KEY_ID_LEN}}}$")]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
EpochSeconds = Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]
Version = Annotated[int, Field(ge=1, le=MAX_VERSION)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REASON_CHARS), AfterValidator(_line)]
SignatureAlgorithmName = Literal["Ed25519", "ML-DSA-65", "Falcon-512"]  # reliquary.crypto.signing's
DetailKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
MAX_ORIGIN_CHARS = 256
RootHash = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{43}=$")]  # base64 of 32 bytes
# A CID version 1 in base32 (multibase "b", lower case) or an Arweave transaction id (base64url of 32 bytes).
Locator = Annotated[str, StringConstraints(pattern=r"^(b[a-z2-7]{58,200}|[A-Za-z0-9_-]{43})$")]
BlockHash = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{64}$")]  # base64url of 48 bytes
_LOCATORS = {"ipfs": re.compile(r"b[a-z2-7]{58,200}"), "arweave": re.compile(r"[A-Za-z0-9_-]{43}")}
DetailValue = (
    Annotated[int, Field(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]
    | Annotated[str, StringConstraints(max_length=MAX_DETAIL_VALUE_CHARS), AfterValidator(_line)]
)


class _Frozen(BaseModel):
    # strict: no coercion (no "1" for 1, no True for 1); floats accept integers, as JSON has one number.
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False)


class TrustFactor(_Frozen):
    """One explained factor of the trust score: its value, its weight and what it contributed."""

    name: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_FACTOR_NAME_CHARS), AfterValidator(_line)
    ]
    value: float
    weight: float
    contribution: float


class Vote(_Frozen):
    """One agent's vote in the quorum."""

    agent: Identifier
    vote: Literal["approve", "deny", "abstain"]
    confidence: Unit
    rationale: Annotated[str, StringConstraints(max_length=MAX_RATIONALE_CHARS), AfterValidator(_text)]


class _Record(_Frozen):
    # Members added to the version after records of it were logged: in the entry only when not None.
    _added_members: ClassVar[frozenset[str]] = frozenset()

    v: Literal[1] = SCHEMA_VERSION
    request_id: Identifier
    tenant_id: Identifier
    vault_id: Identifier

    @property
    def dedup_key(self) -> tuple[str, str]:
        """The idempotency key: the log holds one record per (tenant_id, request_id)."""
        return (self.tenant_id, self.request_id)


class DecisionRecord(_Record):
    """An access decision with its evidence: the proof, the trust score and the quorum's votes.

    ``policy_version`` is the trust policy the decision was made under; a denial decided before any
    policy was read has none (``null``), an approval always has one. ``requester_key_sha256`` names the
    key a grant for this request may be sealed to (the encrypt function refuses any other); decisions
    logged before it existed, and denials the flow logs without the state, have none."""

    kind: Literal["decision"] = "decision"
    item_id: Identifier
    principal_hash: Hex64
    decision: Literal["approve", "deny"]
    reasons: Annotated[tuple[Reason, ...], BeforeValidator(_as_tuple), Field(max_length=MAX_REASONS)] = ()
    trust_score: Unit | None = None
    trust_factors: Annotated[
        tuple[TrustFactor, ...], BeforeValidator(_as_tuple), Field(max_length=MAX_FACTORS)
    ] = ()
    votes: Annotated[tuple[Vote, ...], BeforeValidator(_as_tuple), Field(max_length=MAX_VOTES)] = ()
    proof_hash: Hex64 | None = None
    # None only for a denial decided before any trust policy was read (the context proof was refused, or
    # the flow failed before scoring); encoded as null, like every absent value.
    policy_version: Hex64 | None = None
    execution_id: (
        Annotated[str, StringConstraints(pattern=rf"^[!-~]{{1,{MAX_EXECUTION_ID_CHARS}}}$")] | None
    ) = None
    time: EpochSeconds
    # Who a grant may go to: ``requester_key_sha256(key bytes)`` of the requester's hybrid public key. An
    # added member (see the module docstring): left out of the entry when None, never written as null.
    requester_key_sha256: Hex64 | None = None
    # The attestation chain behind the decision (``reliquary.flow.attestation``), named by its digest and
    # stored beside the log; an approval always has one. And the item version the approval is for: a
    # grant opens that version only. Added members, like requester_key_sha256.
    chain_sha256: Hex64 | None = None
    item_version: Version | None = None

    _added_members: ClassVar[frozenset[str]] = frozenset(
        {"requester_key_sha256", "chain_sha256", "item_version"}
    )

    @model_validator(mode="after")
    def _approval_names_its_policy(self) -> DecisionRecord:
        if self.decision == "approve" and self.policy_version is None:
            raise ValueError("an approval names the policy version it was decided under")
        return self


class DeletionRecord(_Record):
    """An item crypto-shredded: which versions, when, and the receipt's signer and algorithm."""

    kind: Literal["deletion"] = "deletion"
    item_id: Identifier
    versions: Annotated[
        tuple[Version, ...],
        BeforeValidator(_as_tuple),
        Field(min_length=1, max_length=MAX_VERSIONS),
        AfterValidator(_ascending),
    ]
    shredded_at: EpochSeconds
    signer_key_id: KeyId
    signature_algorithm: SignatureAlgorithmName
    reason: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_DELETION_REASON_CHARS), AfterValidator(_line)
    ]


class KeyEventRecord(_Record):
    """A vault key's life: created, rotated, data keys rewrapped, retired.

    ``details`` is a dict, so unlike the other records this one is not hashable."""

    kind: Literal["key_event"] = "key_event"
    event: Literal["vault_created", "key_rotated", "keys_rewrapped", "key_retired"]
    key_version: Version
    time: EpochSeconds
    details: Annotated[dict[DetailKey, DetailValue], Field(max_length=MAX_DETAILS)] = Field(
        default_factory=dict
    )


class _LogRecord(_Frozen):
    """A record about the log itself (no vault): logged only by the log's own jobs, never by ``append``."""

    _added_members: ClassVar[frozenset[str]] = frozenset()

    v: Literal[1] = SCHEMA_VERSION
    request_id: Identifier
    tenant_id: Identifier

    @property
    def dedup_key(self) -> tuple[str, str]:
        return (self.tenant_id, self.request_id)


def anchor_request_id(tree_size: int) -> str:
    """The request id of the anchor of the checkpoint of ``tree_size``: one anchor per tree size."""
    return f"checkpoint-{tree_size}"


def confirmation_request_id(tree_size: int) -> str:
    """The request id of the block that holds the anchor of ``tree_size``: one per anchor."""
    return f"checkpoint-{tree_size}-block"


class CheckpointAnchorRecord(_LogRecord):
    """The log's signed checkpoint of ``tree_size`` published, byte for byte, on permanent storage.

    ``locator`` names it there: the CID (version 1, base32) on IPFS, the transaction id (base64url) on
    Arweave; ``note_sha256`` is the hex SHA-256 of the note's bytes, ``root_hash`` the checkpoint's root
    (base64), ``anchored_at`` when it was stored (Unix seconds). Logged by the anchoring job alone
    (``reliquary.audit.anchor``) under ``anchor_request_id(tree_size)``."""

    kind: Literal["checkpoint_anchor"] = "checkpoint_anchor"
    origin: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_ORIGIN_CHARS), AfterValidator(_line)
    ]
    tree_size: Annotated[int, Field(ge=1, le=MAX_SAFE_INT)]
    root_hash: RootHash
    backend: Literal["ipfs", "arweave"]
    locator: Locator
    note_sha256: Hex64
    anchored_at: EpochSeconds

    @model_validator(mode="after")
    def _consistent(self) -> CheckpointAnchorRecord:
        if self.request_id != anchor_request_id(self.tree_size):
            raise ValueError("an anchor's request id names its tree size (checkpoint-<tree size>)")
        _check_locator(self.backend, self.locator)
        if base64.b64encode(base64.b64decode(self.root_hash)).decode("ascii") != self.root_hash:
            raise ValueError("the root hash is not canonical base64")
        return self


class CheckpointAnchorConfirmedRecord(_LogRecord):
    """The Arweave block that holds the anchor of ``tree_size`` (transaction ``locator``): its height and
    independent hash (base64url), as the node reported it once the transaction was mined. Logged under
    ``confirmation_request_id(tree_size)``; it names nothing time-dependent, so two anchoring runs that
    race write the same bytes (the log keeps one)."""

    kind: Literal["checkpoint_anchor_confirmed"] = "checkpoint_anchor_confirmed"
    tree_size: Annotated[int, Field(ge=1, le=MAX_SAFE_INT)]
    backend: Literal["arweave"] = "arweave"
    locator: Locator
    block_height: Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]
    block_hash: BlockHash

    @model_validator(mode="after")
    def _consistent(self) -> CheckpointAnchorConfirmedRecord:
        if self.request_id != confirmation_request_id(self.tree_size):
            raise ValueError("a confirmation's request id names its tree size (checkpoint-<tree size>-block)")
        _check_locator(self.backend, self.locator)
        return self


AnyRecord: TypeAlias = (
    DecisionRecord
    | DeletionRecord
    | KeyEventRecord
    | CheckpointAnchorRecord
    | CheckpointAnchorConfirmedRecord
)
Record: TypeAlias = Annotated[AnyRecord, Field(discriminator="kind")]
_RECORD: TypeAdapter[AnyRecord] = TypeAdapter(Record)


# --- encoding -------------------------------------------------------------------------------------
def encode_record(record: AnyRecord) -> bytes:
    """The log entry of ``record``: the JCS bytes of its JSON object (the format is fixed forever).

    The record is validated again first, so one built with ``model_construct`` cannot reach the log."""
    if not isinstance(record, _Record | _LogRecord):
        raise InvalidRequestError(f"not an audit record: {type(record).__name__}")
    checked = _validate(record.model_dump(mode="python"))
    members = checked.model_dump(mode="python")
    for name in checked._added_members:
        if members[name] is None:
            del members[name]
    entry = jcs.canonicalize(members)
    if len(entry) > MAX_RECORD_BYTES:  # the field bounds keep every record below this
        raise InvalidRequestError(f"an audit record is at most {MAX_RECORD_BYTES} bytes", size=len(entry))
    return entry


def decode_record(data: bytes) -> AnyRecord:
    """The record of a log entry, refusing (``InvalidRequestError``) anything but the exact bytes that
    ``encode_record`` writes: other whitespace, member order, number or string spellings, unknown kinds,
    versions or fields, missing fields, out-of-range values."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidRequestError("an audit record is bytes")
    data = bytes(data)
    if len(data) > MAX_RECORD_BYTES:
        raise InvalidRequestError(f"an audit record is at most {MAX_RECORD_BYTES} bytes", size=len(data))
    value = jcs.parse(data)
    if jcs.canonicalize(value) != data:
        raise InvalidRequestError("the audit record is not canonical JSON (RFC 8785)")
    if not isinstance(value, dict):
        raise InvalidRequestError("an audit record is a JSON object")
    record = _validate(value)
    if encode_record(record) != data:  # e.g. a float where an integer belongs, or a default left out
        raise InvalidRequestError("the audit record is not in its canonical encoding")
    return record


def parse_record(value: Mapping[str, Any]) -> AnyRecord:
    """A record from its JSON object (as a task receives it), ``InvalidRequestError`` if malformed."""
    return _validate(value)


def principal_hash(tenant_id: str, subject: str, salt: bytes) -> str:
    """How a decision names its principal: its keyed pseudonym under the deployment's pseudonym secret
    ``salt`` (``reliquary.crypto.pseudonym.pseudonym``, where the construction is stated), the same value
    the trust history and the agents' memories name it by."""
    return pseudonym(tenant_id, subject, salt)


def _validate(value: object) -> AnyRecord:
    try:
        return _RECORD.validate_python(value)
    except ValidationError as exc:
        raise invalid_request(exc, schema=_RECORD, message="the audit record is malformed") from None


def same_decision(logged: bytes, candidate: bytes) -> bool:
    """Whether two decision entries decide the same request the same way, with the same evidence: equal
    but for the time, the execution that decided them and that execution's signatures. Anything that
    does not decode is not."""
    try:
        first, second = decode_record(logged), decode_record(candidate)
    except InvalidRequestError:
        return False
    if not isinstance(first, DecisionRecord) or not isinstance(second, DecisionRecord):
        return False
    # Another execution re-signs the same decisions: its chain has other signatures (and digest).
    ignored = {"time", "execution_id", "chain_sha256"}
    return first.model_dump(exclude=ignored) == second.model_dump(exclude=ignored)
