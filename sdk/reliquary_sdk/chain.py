"""Attestation chains checked offline, with the stage keys the service publishes (``GET /v1/audit/keys``,
``stage_keys``): who decided an access, and that every stage judged the same request.

Each stage of the access flow signs a *statement* (RFC 8785 canonical JSON): the request it is about
(tenant, vault, item, request id, the requester key's digest, the admitted request's digest), the digest
of its result, a small ``claim`` and the digests of the statements it built on (``parents``). Statements
are signed with the signing function's ML-DSA-65 stage key over ``DOMAIN || JCS(statement)``; a
statement's digest is SHA-256 of the same bytes.

A chain, in flow order: one ``verify_context`` (signed by verify-proof, no parents), one ``score_trust``
(score-trust, on the context), one ``vote`` per agent (agent-vote, on context and trust), the ``tally``
(agent-vote, on the trust statement and the votes sorted by digest) and, when the tally claims
``approvers_required`` = k > 0, up to 8 ``approval`` statements (agent-vote, on the tally, not dated
before it, one per person). A chain may stop early, as a denied flow's does. ``verify_chain`` checks all
of it exactly as the service's ``reliquary.flow.attestation.verify_chain`` does; ``VerifiedChain.approves``
says whether every stage let the request through. Every failure is a ``ChainError`` whose ``check`` names
the failed check (the same names as the service's).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from reliquary_sdk import jcs
from reliquary_sdk._verify import PublicKey, VerificationError

__all__ = [
    "DOMAIN",
    "Attestation",
    "ChainError",
    "StageKeys",
    "Statement",
    "Subject",
    "UnknownStageKeyError",
    "VerifiedChain",
    "digest",
    "parse_chain",
    "require_approval_chain",
    "verify_attestation",
    "verify_chain",
]

DOMAIN: Final = b"RELIQUARY stage attestation v1\x00"
VERSION: Final = 1
FUTURE_SKEW_SECONDS: Final = 300
MAX_VOTES: Final = 16
MAX_APPROVALS: Final = 8
MAX_CHAIN: Final = MAX_VOTES + 3 + MAX_APPROVALS

VERIFY_CONTEXT: Final = "verify_context"
SCORE_TRUST: Final = "score_trust"
VOTE: Final = "vote"
TALLY: Final = "tally"
APPROVAL: Final = "approval"
STAGES: Final = (VERIFY_CONTEXT, SCORE_TRUST, VOTE, TALLY, APPROVAL)
SIGNERS: Final = ("verify-proof", "score-trust", "agent-vote")
SIGNER_OF: Final[Mapping[str, str]] = {
    VERIFY_CONTEXT: "verify-proof",
    SCORE_TRUST: "score-trust",
    VOTE: "agent-vote",
    TALLY: "agent-vote",
    APPROVAL: "agent-vote",
}
PROCEEDING_EFFECTS: Final = frozenset({"allow", "require_quorum", "step_up"})
APPROVAL_VOTES: Final = frozenset({"approve", "deny"})
ALGORITHMS: Final = frozenset({"Ed25519", "ML-DSA-65", "Falcon-512"})
_HEX64_CHARS: Final = frozenset("0123456789abcdef")


class ChainError(VerificationError):
    """An attestation or chain does not hold; ``check`` names the failed check (``format``, ``stage``,
    ``signer``, ``key``, ``signature``, ``subject``, ``result``, ``time``, ``parents``, ``structure``,
    ``votes``, ``approvals`` or ``approval``). It never carries key material or statement contents."""

    code = "attestation_invalid"

    def __init__(self, message: str, *, check: str) -> None:
        super().__init__(message)
        self.check = check


class UnknownStageKeyError(ChainError):
    """A statement signed by a key not among the published stage keys (fetch them again: a key may be
    newer than the copy at hand). ``key`` is (signer, hex key id)."""

    def __init__(self, message: str, *, key: tuple[str, str]) -> None:
        super().__init__(message, check="key")
        self.key = key


def digest(value: object) -> str:
    """Hex SHA-256 of a JSON value's canonical form: how a statement names a result."""
    return hashlib.sha256(jcs.canonicalize(value)).hexdigest()


@dataclass(frozen=True, slots=True)
class Subject:
    """The request every statement of a chain names."""

    tenant_id: str
    vault_id: str
    item_id: str
    request_id: str
    requester_key_sha256: str
    binding_sha256: str

    def to_json(self) -> dict[str, str]:
        return {
            "tenant_id": self.tenant_id,
            "vault_id": self.vault_id,
            "item_id": self.item_id,
            "request_id": self.request_id,
            "requester_key_sha256": self.requester_key_sha256,
            "binding_sha256": self.binding_sha256,
        }


@dataclass(frozen=True)
class Statement:
    stage: str
    subject: Subject
    result_sha256: str
    claim: Mapping[str, Any]
    parents: tuple[str, ...]
    issued_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "stage": self.stage,
            **self.subject.to_json(),
            "result_sha256": self.result_sha256,
            "claim": dict(self.claim),
            "parents": list(self.parents),
            "issued_at": self.issued_at,
        }

    @functools.cached_property
    def _signed(self) -> bytes:
        return DOMAIN + jcs.canonicalize(self.to_json())

    def signed_bytes(self) -> bytes:
        """``DOMAIN || JCS(statement)``: what the stage key signed."""
        return self._signed

    @functools.cached_property
    def digest(self) -> str:
        return hashlib.sha256(self._signed).hexdigest()


@dataclass(frozen=True, slots=True)
class Attestation:
    """A statement, the function that signed it, the key's algorithm and id, and the signature."""

    statement: Statement
    signer: str
    algorithm: str
    key_id: bytes
    signature: bytes

    @property
    def stage(self) -> str:
        return self.statement.stage

    @property
    def digest(self) -> str:
        return self.statement.digest

    def to_json(self) -> dict[str, Any]:
        return {
            "statement": self.statement.to_json(),
            "signer": self.signer,
            "algorithm": self.algorithm,
            "key_id": self.key_id.hex(),
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_json(cls, value: object) -> Attestation:
        """Strictly parsed: exactly the members the service writes, each of its type (``ChainError``)."""
        try:
            return _parse_attestation(value)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ChainError("an attestation is malformed", check="format") from exc


def _hex64(value: object) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX64_CHARS:
        raise ValueError("expected 64 lower-case hex characters")
    return value


def _text(value: object, limit: int = 256) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ValueError("expected a short string")
    return value


def _one_of(value: object, known: Iterable[str]) -> str:
    if not isinstance(value, str) or value not in set(known):
        raise ValueError("not a known name")
    return value


def _members(value: object, names: Iterable[str]) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != set(names):
        raise ValueError("unexpected members")
    return value


_STATEMENT_MEMBERS: Final = (
    "v",
    "stage",
    "tenant_id",
    "vault_id",
    "item_id",
    "request_id",
    "requester_key_sha256",
    "binding_sha256",
    "result_sha256",
    "claim",
    "parents",
    "issued_at",
)


def _parse_statement(value: object) -> Statement:
    body = _members(value, _STATEMENT_MEMBERS)
    if body["v"] != VERSION or isinstance(body["v"], bool):
        raise ValueError("unknown statement version")
    issued_at, claim, parents = body["issued_at"], body["claim"], body["parents"]
    if not isinstance(issued_at, int) or isinstance(issued_at, bool) or not 0 <= issued_at < 2**53:
        raise ValueError("issued_at is epoch seconds")
    if not isinstance(claim, dict) or not isinstance(parents, list) or len(parents) > MAX_VOTES + 1:
        raise ValueError("claim is an object, parents a short list")
    jcs.canonicalize(claim)  # JSON the signature can cover (JCSError is a ValueError)
    return Statement(
        stage=_one_of(body["stage"], STAGES),
        subject=Subject(
            tenant_id=_text(body["tenant_id"]),
            vault_id=_text(body["vault_id"]),
            item_id=_text(body["item_id"]),
            request_id=_text(body["request_id"]),
            requester_key_sha256=_hex64(body["requester_key_sha256"]),
            binding_sha256=_hex64(body["binding_sha256"]),
        ),
        result_sha256=_hex64(body["result_sha256"]),
        claim=claim,
        parents=tuple(_hex64(p) for p in parents),
        issued_at=issued_at,
    )


def _parse_attestation(value: object) -> Attestation:
    body = _members(value, ("statement", "signer", "algorithm", "key_id", "signature"))
    key_id = bytes.fromhex(_text(body["key_id"], 64))
    signature = base64.b64decode(_text(body["signature"], 8192), validate=True)
    return Attestation(
        statement=_parse_statement(body["statement"]),
        signer=_one_of(body["signer"], SIGNERS),
        algorithm=_one_of(_text(body["algorithm"], 32), ALGORITHMS),
        key_id=key_id,
        signature=signature,
    )


def parse_chain(value: object) -> list[Attestation]:
    """A chain as the API returns it: a non-empty JSON list of at most ``MAX_CHAIN`` attestations."""
    if not isinstance(value, list) or not 0 < len(value) <= MAX_CHAIN:
        raise ChainError("a chain is a non-empty list of attestations", check="format")
    return [Attestation.from_json(a) for a in value]


class StageKeys:
    """The published stage keys a verifier trusts: for each signing function, its public keys."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Mapping[str, Iterable[PublicKey]]) -> None:
        for signer in keys:
            if signer not in SIGNERS:
                raise ValueError("not a stage-signing function")
        self._keys = {signer: {(k.key_id, k.algorithm): k for k in found} for signer, found in keys.items()}

    def key_for(self, attestation: Attestation) -> PublicKey | None:
        return self._keys.get(attestation.signer, {}).get((attestation.key_id, attestation.algorithm))

    def to_json(self) -> list[dict[str, str]]:
        """The keys as the service publishes them."""
        return [
            {
                "signer": signer,
                "algorithm": key.algorithm,
                "key_id": key.key_id.hex(),
                "public_key": base64.b64encode(key.public_key).decode("ascii"),
            }
            for signer, found in sorted(self._keys.items())
            for key in found.values()
        ]

    @classmethod
    def from_json(cls, value: object) -> StageKeys:
        """``stage_keys`` as ``GET /v1/audit/keys`` returns it: a list of ``signer``, ``algorithm``,
        ``key_id`` (hex, checked against the key) and ``public_key`` (base64). ``ChainError`` if
        malformed."""
        try:
            return cls(_parse_published(value))
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ChainError("the published stage keys are malformed", check="format") from exc


def _parse_published(value: object) -> dict[str, list[PublicKey]]:
    if not isinstance(value, list):
        raise TypeError("a list of keys")
    keys: dict[str, list[PublicKey]] = {}
    for entry in value:
        body = _members(entry, ("signer", "algorithm", "key_id", "public_key"))
        key = PublicKey(
            _one_of(_text(body["algorithm"], 32), ALGORITHMS),
            base64.b64decode(_text(body["public_key"], 8192), validate=True),
        )
        if key.key_id.hex() != body["key_id"]:
            raise ValueError("a key id does not match its key")
        keys.setdefault(_one_of(body["signer"], SIGNERS), []).append(key)
    return keys


def verify_attestation(
    attestation: Attestation,
    keys: StageKeys,
    *,
    stage: str,
    subject: Subject | None = None,
    result: Mapping[str, Any] | None = None,
    now: int | None = None,
) -> Attestation:
    """``attestation`` if it is a ``stage`` statement signed by that stage's function with a published
    key, about ``subject`` and over ``result`` (when given), not dated past ``now`` + 5 minutes."""
    statement = attestation.statement
    if statement.stage != stage:
        raise ChainError(f"expected a {stage} statement", check="stage")
    if attestation.signer != SIGNER_OF[stage]:
        raise ChainError(f"a {stage} statement signed by another function", check="signer")
    key = keys.key_for(attestation)
    if key is None:
        raise UnknownStageKeyError(
            f"a {stage} statement signed by an unknown key",
            key=(attestation.signer, attestation.key_id.hex()),
        )
    try:
        signed = statement.signed_bytes()
    except jcs.JCSError:
        raise ChainError(f"a {stage} statement is malformed", check="format") from None
    try:
        key.verify(signed, attestation.signature)
    except VerificationError:
        raise ChainError(f"a {stage} statement's signature does not verify", check="signature") from None
    if subject is not None and statement.subject != subject:
        raise ChainError(f"a {stage} statement is about another request", check="subject")
    if result is not None and statement.result_sha256 != digest(result):
        raise ChainError(f"the {stage} result is not the one its statement signed", check="result")
    if now is not None and statement.issued_at > now + FUTURE_SKEW_SECONDS:
        raise ChainError(f"a {stage} statement is dated in the future", check="time")
    return attestation


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    """A chain that ``verify_chain`` accepted, and what it shows."""

    subject: Subject
    context: Attestation
    trust: Attestation | None
    votes: tuple[Attestation, ...]
    tally: Attestation | None
    approvals: tuple[Attestation, ...] = ()

    @property
    def attestations(self) -> tuple[Attestation, ...]:
        found = [self.context, *([] if self.trust is None else [self.trust]), *self.votes]
        return (*found, *([] if self.tally is None else [self.tally]), *self.approvals)

    @property
    def approvers_required(self) -> int:
        """k, the people the tally claims must approve (0 without a tally)."""
        return 0 if self.tally is None else _approvers_claimed(self.tally)

    @property
    def approved_by(self) -> tuple[str, ...]:
        """The persons whose approval statements say approve, in chain order."""
        return tuple(
            str(a.statement.claim["person_id"])
            for a in self.approvals
            if a.statement.claim["vote"] == "approve"
        )

    @property
    def approves(self) -> bool:
        """The proof verified, the rules let the request go on, the tally approved and, when it asks for
        k people, k approved and none denied (a ``step_up`` needs a tally asking for at least one)."""
        if self.trust is None or self.tally is None:
            return False
        effect = self.trust.statement.claim.get("effect")
        required = self.approvers_required
        votes = [a.statement.claim["vote"] for a in self.approvals]
        return (
            self.context.statement.claim.get("verified") is True
            and effect in PROCEEDING_EFFECTS
            and self.tally.statement.claim.get("decision") == "approve"
            and (effect != "step_up" or required >= 1)
            and "deny" not in votes
            and votes.count("approve") >= required
        )

    @property
    def decided_at(self) -> int | None:
        """The tally's signed time, or the last approval's."""
        if self.tally is None:
            return None
        return max(a.statement.issued_at for a in (self.tally, *self.approvals))

    @property
    def item_version(self) -> int | None:
        version = None if self.trust is None else self.trust.statement.claim.get("item_version")
        return version if isinstance(version, int) and not isinstance(version, bool) else None

    @property
    def policy_version(self) -> str | None:
        version = None if self.trust is None else self.trust.statement.claim.get("policy_version")
        return version if isinstance(version, str) else None

    def to_json(self) -> list[dict[str, Any]]:
        return [a.to_json() for a in self.attestations]

    @property
    def digest(self) -> str:
        """How a decision record names its chain: SHA-256 of the chain's canonical JSON."""
        return digest(self.to_json())


def _approvers_claimed(tally: Attestation) -> int:
    required = tally.statement.claim.get("approvers_required", 0)
    if not isinstance(required, int) or isinstance(required, bool) or not 0 <= required <= MAX_APPROVALS:
        raise ChainError("a tally claims a malformed number of approvers", check="approvals")
    return required


def _check_approval_claim(approval: Attestation) -> str:
    claim = approval.statement.claim
    if set(claim) != {"person_id", "credential_id", "assertion_sha256", "vote"}:
        raise ChainError("an approval statement's claim is malformed", check="approvals")
    person = claim["person_id"]
    try:
        _text(person, 64)
        _text(claim["credential_id"], 1024)
        _hex64(claim["assertion_sha256"])
    except ValueError:
        raise ChainError("an approval statement's claim is malformed", check="approvals") from None
    if claim["vote"] not in APPROVAL_VOTES:
        raise ChainError("an approval statement's vote is approve or deny", check="approvals")
    return str(person)


def _verify_approvals(
    approvals: Sequence[Attestation],
    tally: Attestation,
    keys: StageKeys,
    *,
    subject: Subject,
    now: int | None,
) -> tuple[Attestation, ...]:
    required = _approvers_claimed(tally)
    if approvals and required == 0:
        raise ChainError("approvals the tally did not ask for", check="approvals")
    if len(approvals) > MAX_APPROVALS:
        raise ChainError(f"at most {MAX_APPROVALS} approval statements", check="approvals")
    persons: set[str] = set()
    for approval in approvals:
        verify_attestation(approval, keys, stage=APPROVAL, subject=subject, now=now)
        _require_parents(approval, [tally])
        if approval.statement.issued_at < tally.statement.issued_at:
            raise ChainError("an approval statement is dated before its tally", check="time")
        person = _check_approval_claim(approval)
        if person in persons:
            raise ChainError("one approval statement per person", check="approvals")
        persons.add(person)
    return tuple(approvals)


def _require_parents(attestation: Attestation, parents: Sequence[Attestation | None]) -> None:
    expected = tuple(p.digest for p in parents if p is not None)
    if attestation.statement.parents != expected:
        raise ChainError(
            f"a {attestation.stage} statement does not build on the statements before it", check="parents"
        )


def verify_chain(
    chain: Sequence[Attestation], keys: StageKeys, *, subject: Subject | None = None, now: int | None = None
) -> VerifiedChain:
    """Check a flow's attestations in flow order (context, trust, votes, tally, approvals; possibly
    stopping early): every signature by the right function's published key, all about one request
    (``subject`` when given, else the first statement's), each statement built on exactly the ones before
    it, one vote per agent, one approval per person. ``ChainError`` otherwise."""
    if not chain:
        raise ChainError("the chain is empty", check="structure")
    context = chain[0]
    subject = subject if subject is not None else context.statement.subject
    verify_attestation(context, keys, stage=VERIFY_CONTEXT, subject=subject, now=now)
    if context.statement.parents:
        raise ChainError("a verify_context statement builds on nothing", check="parents")
    rest = list(chain[1:])
    trust = None
    if rest:
        trust = verify_attestation(rest.pop(0), keys, stage=SCORE_TRUST, subject=subject, now=now)
        _require_parents(trust, [context])
    approvals: list[Attestation] = []
    while rest and rest[-1].stage == APPROVAL:
        approvals.insert(0, rest.pop())
    tally = None
    if rest and rest[-1].stage == TALLY:
        tally = rest.pop()
    if approvals and tally is None:
        raise ChainError("approvals without a tally", check="structure")
    votes = tuple(verify_attestation(v, keys, stage=VOTE, subject=subject, now=now) for v in rest)
    if votes and trust is None:
        raise ChainError("votes without a trust statement", check="structure")
    if len(votes) > MAX_VOTES or len({_agent(v) for v in votes}) != len(votes):
        raise ChainError("one vote per agent", check="votes")
    for vote in votes:
        _require_parents(vote, [context, trust])
    if tally is not None:
        if trust is None:
            raise ChainError("a tally without a trust statement", check="structure")
        verify_attestation(tally, keys, stage=TALLY, subject=subject, now=now)
        _require_parents(tally, [trust, *sorted(votes, key=lambda v: v.digest)])
        checked = _verify_approvals(approvals, tally, keys, subject=subject, now=now)
        return VerifiedChain(subject, context, trust, votes, tally, checked)
    return VerifiedChain(subject, context, trust, votes, tally)


def _agent(vote: Attestation) -> str:
    """The agent a vote names, as one comparable key (a claim's value may be any JSON)."""
    return jcs.canonicalize(vote.statement.claim.get("agent")).decode("utf-8")


def require_approval_chain(
    chain: Sequence[Attestation], keys: StageKeys, *, subject: Subject, now: int | None = None
) -> VerifiedChain:
    """``verify_chain``, and the chain approves: ``ChainError`` (check ``approval``) for anything less."""
    verified = verify_chain(chain, keys, subject=subject, now=now)
    if not verified.approves:
        raise ChainError("the attestation chain does not approve this request", check="approval")
    return verified
