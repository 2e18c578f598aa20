"""C2SP transparency log checkpoints (c2sp.org/tlog-checkpoint): a log's tree head as a signed note.

The note text is the origin (the log's identity), the tree size in ASCII decimal without leading zeros,
the base64 root hash (RFC 9162 SHA-256, 32 bytes), then optional non-empty extension lines, each line
ending in a newline:

    example.com/behind-the-sofa
    20852163
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

RELIQUARY signs each checkpoint with Ed25519 (for standard witnesses and verifiers), ML-DSA-65 and
Falcon-512; a client that wants post-quantum assurance opens it with
``required=Policy.all_of(ml_dsa, falcon)``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from reliquary.audit.note import NoteSigner, NoteVerifier, Policy, open_note, sign_note
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.errors import CheckpointError, InvalidRequestError

# The deployment's checkpoints carry all three, in this order: Ed25519 for standard signed-note verifiers
# and witnesses, and two post-quantum signatures resting on different lattice problems (module-LWE/SIS
# and NTRU).
CHECKPOINT_ALGORITHMS = (
    SignatureAlgorithm.ED25519,
    SignatureAlgorithm.ML_DSA_65,
    SignatureAlgorithm.FALCON_512,
)
ROOT_HASH_LEN = 32
MAX_TREE_SIZE = (1 << 64) - 1
_SIZE = re.compile("0|[1-9][0-9]{0,19}")
_CONTROL = re.compile("[\x00-\x1f]")


def _line_problem(value: object, what: str) -> str | None:
    """Why ``value`` cannot be one checkpoint line, or None."""
    if not isinstance(value, str) or not value:
        return f"the {what} is a non-empty str"
    if _CONTROL.search(value):
        return f"the {what} holds a newline or control character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"the {what} is not valid UTF-8"
    return None


def _problem(origin: object, size: object, root_hash: object, extensions: tuple[object, ...]) -> str | None:
    """Why these fields are not a checkpoint, or None."""
    problem = _line_problem(origin, "origin")
    if problem:
        return problem
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
        return "the tree size is an integer from 0 to 2**64 - 1"
    if not isinstance(root_hash, bytes) or len(root_hash) != ROOT_HASH_LEN:
        return f"the root hash is {ROOT_HASH_LEN} bytes"
    for extension in extensions:
        problem = _line_problem(extension, "extension line")
        if problem:
            return problem
    return None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's signed tree head. Built from bad fields it raises ``InvalidRequestError``."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.extensions, str) or not isinstance(self.extensions, Iterable):
            raise InvalidRequestError("the extension lines are a sequence of str", field="extensions")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        problem = _problem(self.origin, self.size, self.root_hash, self.extensions)
        if problem:
            raise InvalidRequestError(problem)

    def to_text(self) -> str:
        root = base64.b64encode(self.root_hash).decode("ascii")
        return "".join(f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions))

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """The checkpoint a note text holds; ``CheckpointError`` unless it is exactly well formed."""
        if not isinstance(text, str):
            raise InvalidRequestError("a checkpoint text is a str", field="text")
        if not text.endswith("\n"):
            raise CheckpointError("malformed checkpoint: the text does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("malformed checkpoint: fewer than three lines")
        origin, size_text, root_text, *extensions = lines
        if not _SIZE.fullmatch(size_text):
            raise CheckpointError("malformed checkpoint: the tree size is not canonical decimal")
        try:
            root_hash = base64.b64decode(root_text, validate=True)
        except (binascii.Error, ValueError):
            raise CheckpointError("malformed checkpoint: the root hash is not base64") from None
        if base64.b64encode(root_hash).decode("ascii") != root_text:
            raise CheckpointError("malformed checkpoint: the root hash is not canonical base64")
        fields = (origin, int(size_text), root_hash, tuple(extensions))
        problem = _problem(*fields)
        if problem:
            raise CheckpointError(f"malformed checkpoint: {problem}")
        return cls(*fields)


def sign_checkpoint(checkpoint: Checkpoint, signers: Iterable[NoteSigner]) -> bytes:
    """The checkpoint as a signed note, one signature line per signer."""
    if not isinstance(checkpoint, Checkpoint):
        raise InvalidRequestError("sign_checkpoint signs a Checkpoint", field="checkpoint")
    return sign_note(checkpoint.to_text(), signers)


def open_checkpoint(
    note: bytes,
    verifiers: Iterable[NoteVerifier],
    *,
    origin: str,
    required: Policy | Iterable[NoteVerifier] | None = None,
) -> Checkpoint:
    """Verify the signed checkpoint ``note`` (see ``open_note``) and parse it; it must be ``origin``'s."""
    if _line_problem(origin, "origin"):
        raise InvalidRequestError("the expected origin is one non-empty line", field="origin")
    verified = open_note(note, verifiers, required=required)
    checkpoint = Checkpoint.parse(verified.text)
    if checkpoint.origin != origin:
        raise CheckpointError("the checkpoint is from another log (origin mismatch)")
    return checkpoint
