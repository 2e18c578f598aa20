"""C2SP signed notes (c2sp.org/signed-note): text signed by one or more named keys.

A signed note is the text (UTF-8, ending in a newline, no ASCII control character but the newline),
a blank line, then one or more signature lines ``— <key name> <base64(key ID || signature)>``. The
signature covers the text exactly (its final newline included, the blank line not). A key is named by the
pair (key name, key ID), the key ID being ``SHA-256(key name || 0x0A || signature type || public key)[:4]``.

Signature types, as the key ID and the verifier key (vkey) encode them:

| algorithm  | signature type                                      | why                              |
|------------|-----------------------------------------------------|----------------------------------|
| Ed25519    | ``0x01``                                            | assigned by the spec             |
| ML-DSA-65  | ``0xff || "reliquary/signed-note/v1/ML-DSA-65\\n"``  | ``0xff`` + a longer identifier   |
| Falcon-512 | ``0xff || "reliquary/signed-note/v1/Falcon-512\\n"`` | ``0xff`` + a longer identifier   |

The spec reserves ``0xff`` "for signature types without an identifier byte assigned by this
specification" and recommends "that this byte be followed by a longer identifier that is unlikely to
collide". It assigns no byte to plain ML-DSA-65 or Falcon-512 note signatures (``0x06`` is for ML-DSA-44
*timestamped cosignatures* of c2sp.org/tlog-cosignature, another signed message), so both use ``0xff``
followed by an ASCII identifier of RELIQUARY's, which ends in a newline so that it delimits itself in a vkey.
Like Ed25519 they sign the note text itself (pure ML-DSA with an empty context, Falcon-512 as liboqs signs):
keys used here must sign nothing but notes, and *domain-separated messages* (``sign_separated``): those
sign ``<domain> || 0x00 || message``, and no note text holds a NUL (``sign_note`` refuses one, ``open_note``
refuses a note with one), so no such signature is ever a note's signature, nor the other way round.
Verifiers that do not know these keys (a Go ``sumdb/note`` or a witness holding only the Ed25519 vkey) see
a (name, key ID) they do not hold and ignore the line, as the spec requires, so an Ed25519 + ML-DSA-65 +
Falcon-512 note opens anywhere the Ed25519 key is trusted.

Opening is strict: anything malformed, a signature line from a known key that does not verify, two
signatures from one known key, too many lines, or no trusted signature raise ``CheckpointError``; lines
from unknown keys are ignored. ``required`` (a ``Policy``) names the keys whose signatures must all be
there, e.g. both post-quantum keys of a log. Bad arguments raise ``InvalidRequestError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from reliquary.crypto.signing import SignatureAlgorithm, SigningKey, VerifyingKey
from reliquary.errors import (
    CheckpointError,
    InvalidRequestError,
    InvalidSignatureError,
    UnsupportedAlgorithmError,
)

KEY_ID_LEN = 4
MAX_TEXT_BYTES = 1 << 20
"""The largest note text opened or signed (1 MiB)."""
MAX_SIGNATURES = 100
"""The most signature lines a note may carry (the spec asks verifiers to accept at least 16)."""
MAX_SIGNATURE_LINE_BYTES = 16 << 10
"""The longest signature line (an ML-DSA-65 line is about 4.5 KiB; the spec warns of ~5 kB signatures)."""
MAX_NOTE_BYTES = MAX_TEXT_BYTES + 1 + MAX_SIGNATURES * (MAX_SIGNATURE_LINE_BYTES + 1)

SIGNATURE_TYPES: Mapping[SignatureAlgorithm, bytes] = MappingProxyType(
    {
        SignatureAlgorithm.ED25519: b"\x01",
        SignatureAlgorithm.ML_DSA_65: b"\xffreliquary/signed-note/v1/ML-DSA-65\n",
        SignatureAlgorithm.FALCON_512: b"\xffreliquary/signed-note/v1/Falcon-512\n",
    }
)
"""The signature type of each algorithm: the bytes between ``key name || 0x0A`` and the public key."""

_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_SIGNATURE_PREFIX_BYTES = _SIGNATURE_PREFIX.encode()
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_KEY_HASH_HEX = re.compile("[0-9a-f]{8}")


def _malformed(what: str) -> CheckpointError:
    return CheckpointError(f"malformed note: {what}")


def _b64decode(text: str) -> bytes | None:
    """Standard base64 (RFC 4648 §4), canonical only: padded, no other characters, zero padding bits."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def is_valid_key_name(name: str) -> bool:
    """Non-empty, no Unicode space nor ``+`` (the spec's rule), no control character (notes have none)."""
    if not isinstance(name, str) or not name:
        return False
    if any(c.isspace() or c == "+" or c < " " for c in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _check_text(text: str) -> bytes:
    """The UTF-8 bytes of a note text fit to sign, or InvalidRequestError."""
    if not isinstance(text, str):
        raise InvalidRequestError("a note text is a str", field="text")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequestError("a note text must be valid UTF-8", field="text") from None
    if not encoded.endswith(b"\n"):
        raise InvalidRequestError("a note text ends with a newline", field="text")
    if _CONTROL.search(text):
        raise InvalidRequestError("a note text holds no control character but newlines", field="text")
    if len(encoded) > MAX_TEXT_BYTES:
        raise InvalidRequestError("the note text is too large", field="text", limit=MAX_TEXT_BYTES)
    return encoded


@dataclass(frozen=True, slots=True, eq=False)
class NoteVerifier:
    """A trusted note key: a key name and a public key. Equal when name, algorithm and public key are."""

    name: str
    key: VerifyingKey
    key_id: bytes = field(init=False)
    """The 4-byte key ID (key hash) that signature lines carry."""

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise InvalidRequestError(
                "a key name is non-empty, without spaces, control characters or '+'", field="name"
            )
        if not isinstance(self.key, VerifyingKey):
            raise InvalidRequestError("a note verifier needs a VerifyingKey", field="key")
        object.__setattr__(self, "key_id", key_id_for(self.name, self.key.algorithm, self.key.public_key))

    @property
    def algorithm(self) -> SignatureAlgorithm:
        return self.key.algorithm

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<hex key ID>+<base64(signature type || public key)>`` (Go's verifier key)."""
        if not isinstance(vkey, str):
            raise InvalidRequestError("a verifier key is a str", field="vkey")
        name, sep1, rest = vkey.partition("+")
        key_hash, sep2, key64 = rest.partition("+")
        encoded = _b64decode(key64)
        if not (sep1 and sep2 and _KEY_HASH_HEX.fullmatch(key_hash) and encoded):
            raise InvalidRequestError("malformed verifier key", field="vkey")
        for algorithm, signature_type in SIGNATURE_TYPES.items():
            if encoded.startswith(signature_type):
                verifier = cls(name, VerifyingKey(algorithm, encoded[len(signature_type) :]))
                break
        else:
            raise UnsupportedAlgorithmError("unknown signature type in verifier key", field="vkey")
        if verifier.key_id.hex() != key_hash:
            raise InvalidRequestError("the verifier key's key ID does not match its key", field="vkey")
        return verifier

    def to_vkey(self) -> str:
        material = SIGNATURE_TYPES[self.algorithm] + self.key.public_key
        return f"{self.name}+{self.key_id.hex()}+{_b64encode(material)}"

    def _identity(self) -> tuple[str, SignatureAlgorithm, bytes]:
        return (self.name, self.algorithm, self.key.public_key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NoteVerifier):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        return f"NoteVerifier({self.name!r}, {self.algorithm}, key_id={self.key_id.hex()})"


def key_id_for(name: str, algorithm: SignatureAlgorithm, public_key: bytes) -> bytes:
    """``SHA-256(key name || 0x0A || signature type || public key)[:4]``."""
    material = name.encode("utf-8") + b"\n" + SIGNATURE_TYPES[algorithm] + public_key
    return hashlib.sha256(material).digest()[:KEY_ID_LEN]


class NoteSigner:
    """A note key with its private half. Its secret stays inside the ``SigningKey``."""

    __slots__ = ("_key", "verifier")

    def __init__(self, name: str, key: SigningKey) -> None:
        if not isinstance(key, SigningKey):
            raise InvalidRequestError("a note signer needs a SigningKey", field="key")
        self.verifier = NoteVerifier(name, key.verifying_key)
        self._key = key

    @property
    def name(self) -> str:
        return self.verifier.name

    @property
    def key_id(self) -> bytes:
        return self.verifier.key_id

    def signature_line(self, text: bytes) -> str:
        """``— <name> <base64(key ID || signature)>\\n``, checked against the public key before use."""
        signature = self._key.sign(text)
        try:
            self.verifier.key.verify(text, signature)
        except InvalidSignatureError:  # a faulty signer must never publish a bad line
            raise CheckpointError("the signer produced a signature that does not verify") from None
        return f"{_SIGNATURE_PREFIX}{self.name} {_b64encode(self.key_id + signature)}\n"

    def __repr__(self) -> str:
        return f"NoteSigner({self.name!r}, {self.verifier.algorithm}, key_id={self.key_id.hex()})"


class Policy:
    """Which trusted keys must have signed: every clause (``threshold`` of ``keys``) must hold.

    ``Policy.all_of(ml_dsa, falcon)`` needs both post-quantum signatures; ``Policy.at_least(2, witnesses)``
    a quorum; ``a & b`` both. Every key a policy names counts as trusted when a note is opened.
    """

    __slots__ = ("_clauses",)

    def __init__(self, clauses: Iterable[tuple[int, frozenset[NoteVerifier]]] = ()) -> None:
        checked: list[tuple[int, frozenset[NoteVerifier]]] = []
        for threshold, keys in clauses:
            if not all(isinstance(k, NoteVerifier) for k in keys):
                raise InvalidRequestError("a policy names NoteVerifier keys", field="required")
            if (
                isinstance(threshold, bool)
                or not isinstance(threshold, int)
                or not 1 <= threshold <= len(keys)
            ):
                raise InvalidRequestError(
                    "a policy threshold is between 1 and its key count", field="required"
                )
            checked.append((threshold, frozenset(keys)))
        self._clauses = tuple(checked)

    @classmethod
    def all_of(cls, *keys: NoteVerifier) -> Policy:
        return cls([(len(set(keys)), frozenset(keys))]) if keys else cls()

    @classmethod
    def at_least(cls, threshold: int, keys: Iterable[NoteVerifier]) -> Policy:
        return cls([(threshold, frozenset(keys))])

    def __and__(self, other: Policy) -> Policy:
        if not isinstance(other, Policy):
            return NotImplemented
        return Policy(self._clauses + other._clauses)

    @property
    def keys(self) -> frozenset[NoteVerifier]:
        return frozenset(k for _, keys in self._clauses for k in keys)

    def check(self, signed_by: Iterable[NoteVerifier]) -> None:
        signed = set(signed_by)
        for threshold, keys in self._clauses:
            if len(keys & signed) < threshold:
                missing = sorted(f"{k.name}+{k.key_id.hex()}" for k in keys - signed)
                raise CheckpointError("the note lacks required signatures", missing=missing)

    def __repr__(self) -> str:
        return f"Policy({list(self._clauses)!r})"


@dataclass(frozen=True, slots=True)
class VerifiedNote:
    """The text of a note whose signatures verified, and the trusted keys that signed it, in line order."""

    text: str
    signed_by: tuple[NoteVerifier, ...]


def sign_note(text: str, signers: Iterable[NoteSigner]) -> bytes:
    """The signed note: ``text``, a blank line, one signature line per signer (in the order given)."""
    encoded = _check_text(text)
    signer_list = list(signers)
    if not signer_list or not all(isinstance(s, NoteSigner) for s in signer_list):
        raise InvalidRequestError("a note needs one or more NoteSigner", field="signers")
    if len(signer_list) > MAX_SIGNATURES:
        raise InvalidRequestError("too many signers", field="signers", limit=MAX_SIGNATURES)
    if len({(s.name, s.key_id) for s in signer_list}) != len(signer_list):
        # Two keys with one name and key ID would make every verifier try the wrong key on one line.
        raise InvalidRequestError("two signers share a key name and key ID", field="signers")
    lines = [signer.signature_line(encoded) for signer in signer_list]
    return encoded + b"\n" + "".join(lines).encode("utf-8")


def _trusted(verifiers: Iterable[NoteVerifier], policy: Policy) -> dict[tuple[str, bytes], NoteVerifier]:
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in [*verifiers, *policy.keys]:
        if not isinstance(verifier, NoteVerifier):
            raise InvalidRequestError("verifiers are NoteVerifier", field="verifiers")
        slot = (verifier.name, verifier.key_id)
        if known.setdefault(slot, verifier) != verifier:
            raise InvalidRequestError(
                f"two trusted keys share the key name and key ID {verifier.name}+{verifier.key_id.hex()}",
                field="verifiers",
            )
    return known


def _parse_signature_line(line: bytes) -> tuple[str, bytes, bytes]:
    """(key name, key ID, signature) of one signature line (without its newline)."""
    if len(line) > MAX_SIGNATURE_LINE_BYTES or not line.startswith(_SIGNATURE_PREFIX_BYTES):
        raise _malformed("a signature line is '\u2014 <key name> <base64>'")
    name, space, encoded = line[len(_SIGNATURE_PREFIX_BYTES) :].decode("utf-8").partition(" ")
    raw = _b64decode(encoded)
    if not space or not is_valid_key_name(name) or raw is None or len(raw) <= KEY_ID_LEN:
        raise _malformed("a signature line is '\u2014 <key name> <base64>'")
    return name, raw[:KEY_ID_LEN], raw[KEY_ID_LEN:]


def _split(note: bytes) -> tuple[bytes, list[tuple[str, bytes, bytes]]]:
    """The text and the parsed signature lines of a note; CheckpointError unless exactly well formed."""
    if len(note) > MAX_NOTE_BYTES:
        raise _malformed("too large")
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("not UTF-8") from None
    if _CONTROL.search(decoded):
        raise _malformed("a control character other than newline")
    split = note.rfind(b"\n\n")  # the last blank line ends the text
    if split < 0:
        raise _malformed("no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if len(text) > MAX_TEXT_BYTES:
        raise _malformed("the text is too large")
    if not block.endswith(b"\n"):
        raise _malformed("the signature lines do not end with a newline")
    lines = block[:-1].split(b"\n")
    if len(lines) > MAX_SIGNATURES:
        raise _malformed("too many signatures")
    return text, [_parse_signature_line(line) for line in lines]


def _policy(required: Policy | Iterable[NoteVerifier] | None) -> Policy:
    if required is None:
        return Policy()
    if isinstance(required, Policy):
        return required
    if isinstance(required, NoteVerifier):
        raise InvalidRequestError("required is a Policy or a collection of NoteVerifier", field="required")
    return Policy.all_of(*required)


def open_note(
    note: bytes,
    verifiers: Iterable[NoteVerifier],
    *,
    required: Policy | Iterable[NoteVerifier] | None = None,
) -> VerifiedNote:
    """Verify ``note`` against the trusted ``verifiers`` and return its text.

    ``required``: a ``Policy``, or keys that must all have signed (shorthand for ``Policy.all_of``). Without
    it, one trusted signature suffices; with it, at least one and everything it asks for.
    """
    if not isinstance(note, bytes):
        raise InvalidRequestError("a signed note is bytes", field="note")
    policy = _policy(required)
    known = _trusted(verifiers, policy)
    text, signatures = _split(note)
    return VerifiedNote(text.decode("utf-8"), _verify_lines(text, signatures, known, policy))


def _domain_message(domain: str, message: bytes) -> bytes:
    """``domain || 0x00 || message``: what ``sign_separated`` signs. The NUL keeps it apart from every
    note text (none holds one), and the domain (printable ASCII, no NUL) from every other domain."""
    if not isinstance(domain, str) or not domain or not all(" " < c <= "~" for c in domain):
        raise InvalidRequestError("a signature domain is printable ASCII without spaces", field="domain")
    if not isinstance(message, bytes):
        raise InvalidRequestError("a domain-separated message is bytes", field="message")
    return domain.encode("ascii") + b"\x00" + message


def sign_separated(domain: str, message: bytes, signers: Iterable[NoteSigner]) -> tuple[str, ...]:
    """Signature lines (``— <key name> <base64(key ID || signature)>``, without their newline) over
    ``domain || 0x00 || message``: the note keys sign something that is not a note, and can never be
    taken for one (see the module docstring)."""
    signed = _domain_message(domain, message)
    signer_list = list(signers)
    if not signer_list or not all(isinstance(s, NoteSigner) for s in signer_list):
        raise InvalidRequestError("a signature needs one or more NoteSigner", field="signers")
    if len(signer_list) > MAX_SIGNATURES or len({(s.name, s.key_id) for s in signer_list}) != len(
        signer_list
    ):
        raise InvalidRequestError("too many signers, or two sharing a key name and key ID", field="signers")
    return tuple(signer.signature_line(signed)[:-1] for signer in signer_list)


def open_separated(
    domain: str,
    message: bytes,
    lines: Iterable[str],
    verifiers: Iterable[NoteVerifier],
    *,
    required: Policy | Iterable[NoteVerifier] | None = None,
) -> tuple[NoteVerifier, ...]:
    """Verify signature lines made by ``sign_separated`` over ``message`` in ``domain``, as ``open_note``
    verifies a note's (unknown keys ignored, ``required`` enforced); return the keys that signed.
    ``CheckpointError`` for anything malformed or unsigned."""
    signed = _domain_message(domain, message)
    policy = _policy(required)
    known = _trusted(verifiers, policy)
    line_list = list(lines) if not isinstance(lines, str) else None
    if line_list is None or not line_list or len(line_list) > MAX_SIGNATURES:
        raise _malformed(f"one to {MAX_SIGNATURES} signature lines")
    parsed = []
    for line in line_list:
        if not isinstance(line, str) or "\n" in line:
            raise _malformed("a signature line is one line of text")
        try:
            encoded = line.encode("utf-8")
        except UnicodeEncodeError:
            raise _malformed("a signature line is not UTF-8") from None
        parsed.append(_parse_signature_line(encoded))
    return _verify_lines(signed, parsed, known, policy)


def _verify_lines(
    signed: bytes,
    signatures: list[tuple[str, bytes, bytes]],
    known: Mapping[tuple[str, bytes], NoteVerifier],
    policy: Policy,
) -> tuple[NoteVerifier, ...]:
    """The trusted keys whose signature over ``signed`` verified, in line order; CheckpointError for a bad
    or repeated one, none at all, or a policy not met."""
    signed_by: list[NoteVerifier] = []
    for name, key_id, signature in signatures:
        verifier = known.get((name, key_id))
        if verifier is None:
            continue  # an unknown key: ignored, as the spec requires
        if verifier in signed_by:
            raise CheckpointError(f"two signatures from the key {name}+{key_id.hex()}")
        try:
            verifier.key.verify(signed, signature)
        except InvalidSignatureError:
            raise CheckpointError(f"the signature of the known key {name}+{key_id.hex()} is bad") from None
        signed_by.append(verifier)
    if not signed_by:
        raise CheckpointError("the note has no signature from a trusted key")
    policy.check(signed_by)
    return tuple(signed_by)
