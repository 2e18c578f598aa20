"""Stage attestations: every stage of the access flow signs what it decided, and no stage takes its
caller's word for what an earlier stage decided.

An attestation is a signed *statement* (canonical JSON, RFC 8785) made by one function's stage key:

- which request it is about: ``tenant_id``, ``vault_id``, ``item_id``, ``request_id``, the requester key's
  digest, and ``binding_sha256`` (a digest of the whole admitted request: principal, purpose, region,
  nonce, so every stage provably judged the same request);
- what the stage decided: ``result_sha256`` (the digest of the stage's whole result as it travels in the
  flow state) and a small ``claim`` (the values the chain check reads: verified, the rules' effect, a vote,
  the decision);
- what it built on: ``parents``, the digests of the statements it verified before acting.

The stages and who signs them (``SIGNER_OF``): ``verify_context`` (verify-proof), ``score_trust``
(score-trust), ``vote``, ``tally`` and ``approval`` (agent-vote). The chain of an approval is one
``verify_context`` that verified, one ``score_trust`` built on it whose rules let the request go on, one
``vote`` per agent built on both, the ``tally`` built on the trust statement and every vote, and, when
the tally claims ``approvers_required`` = k > 0 (always at least 1 for the rules' ``step_up``), k
``approval`` statements built on the tally: one per person, each naming the person, the passkey
credential and the digest of the WebAuthn assertion agent-vote verified. ``verify_chain``
checks all of it - signatures by the right function's key, one request, the parent links, the claims -
and is what RecordDecision runs before logging an approval, what encrypt runs on the logged chain
before it grants, and what an auditor runs offline with the published stage keys.

Statements are signed over ``DOMAIN || JCS(statement)``; their digest is SHA-256 of the same bytes.
Every failure is one typed error, ``AttestationError``, naming the check (never a secret).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from reliquary import jcs
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey, VerifyingKey
from reliquary.errors import (
    AttestationError,
    InvalidRequestError,
    InvalidSignatureError,
    UnknownStageKeyError,
)

DOMAIN: Final = b"RELIQUARY stage attestation v1\x00"
VERSION: Final = 1
# Statements are dated by their signer; a chain dated this far past the verifier's clock is refused.
FUTURE_SKEW_SECONDS: Final = 300
MAX_VOTES: Final = 16  # the vault's panel and the rules' quorum panel: at most 8 agents each
MAX_APPROVALS: Final = 8  # a quorum policy asks for at most 8 people (agents.policy.MAX_APPROVERS)
MAX_CHAIN: Final = MAX_VOTES + 3 + MAX_APPROVALS  # context, trust, votes, tally, approvals
_HEX64: Final = re.compile(r"[0-9a-f]{64}")


class Stage(StrEnum):
    VERIFY_CONTEXT = "verify_context"
    SCORE_TRUST = "score_trust"
    VOTE = "vote"
    TALLY = "tally"
    APPROVAL = "approval"


class Signer(StrEnum):
    """The functions that hold a stage key (one each); their names are in the keys' wrapping context."""

    VERIFY_PROOF = "verify-proof"
    SCORE_TRUST = "score-trust"
    AGENT_VOTE = "agent-vote"

    @property
    def key_purpose(self) -> str:
        """The ``purpose`` of the key's KMS encryption context: only this function's role may use it."""
        return f"stage-signing/{self.value}"


SIGNER_OF: Final[Mapping[Stage, Signer]] = {
    Stage.VERIFY_CONTEXT: Signer.VERIFY_PROOF,
    Stage.SCORE_TRUST: Signer.SCORE_TRUST,
    Stage.VOTE: Signer.AGENT_VOTE,
    Stage.TALLY: Signer.AGENT_VOTE,
    Stage.APPROVAL: Signer.AGENT_VOTE,
}
# The rules' effects that let a request go on to the agents (everything else ends the flow as a deny);
# step_up goes on too, and approves only with people's approvals besides the agents'.
PROCEEDING_EFFECTS: Final = frozenset({"allow", "require_quorum", "step_up"})
APPROVAL_VOTES: Final = frozenset({"approve", "deny"})


def digest(value: object) -> str:
    """Hex SHA-256 of a JSON value's canonical form: how a statement names a result."""
    return hashlib.sha256(jcs.canonicalize(value)).hexdigest()


@dataclass(frozen=True, slots=True)
class Subject:
    """What every statement of one request names explicitly (the grant and auditors check these)."""

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
    stage: Stage
    subject: Subject
    result_sha256: str
    claim: Mapping[str, Any]
    parents: tuple[str, ...]
    issued_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "stage": self.stage.value,
            **self.subject.to_json(),
            "result_sha256": self.result_sha256,
            "claim": dict(self.claim),
            "parents": list(self.parents),
            "issued_at": self.issued_at,
        }

    @functools.cached_property
    def _signed(self) -> bytes:  # canonicalized once: a chain check asks for every digest many times
        return DOMAIN + jcs.canonicalize(self.to_json())

    def signed_bytes(self) -> bytes:
        return self._signed

    @functools.cached_property
    def digest(self) -> str:
        return hashlib.sha256(self._signed).hexdigest()


@dataclass(frozen=True, slots=True)
class Attestation:
    """A statement, the function that signed it, and the signature (by that function's stage key)."""

    statement: Statement
    signer: Signer
    algorithm: SignatureAlgorithm
    key_id: bytes
    signature: bytes

    @property
    def stage(self) -> Stage:
        return self.statement.stage

    @property
    def digest(self) -> str:
        return self.statement.digest

    def to_json(self) -> dict[str, Any]:
        return {
            "statement": self.statement.to_json(),
            "signer": self.signer.value,
            "algorithm": self.algorithm.value,
            "key_id": self.key_id.hex(),
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_json(cls, value: object) -> Attestation:
        """Strictly parsed: exactly the members ``to_json`` writes, each of its type (AttestationError)."""
        try:
            return _parse_attestation(value)
        except (KeyError, TypeError, ValueError, binascii.Error, InvalidRequestError) as exc:
            raise AttestationError("an attestation is malformed", check="format") from exc


def _hex64(value: object) -> str:
    if not isinstance(value, str) or _HEX64.fullmatch(value) is None:
        raise ValueError("expected 64 lower-case hex characters")
    return value


def _text(value: object, limit: int = 256) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ValueError("expected a short string")
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
    statement = Statement(
        stage=Stage(body["stage"]),
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
    # Canonicalized here, once: the claim must be JSON the signature can cover (no NaN, no deep nesting),
    # and the bytes are what the signature check and every digest of the chain check read.
    statement.signed_bytes()
    return statement


def _parse_attestation(value: object) -> Attestation:
    body = _members(value, ("statement", "signer", "algorithm", "key_id", "signature"))
    key_id = bytes.fromhex(_text(body["key_id"], 64))
    signature = base64.b64decode(_text(body["signature"], 8192), validate=True)
    return Attestation(
        statement=_parse_statement(body["statement"]),
        signer=Signer(body["signer"]),
        algorithm=SignatureAlgorithm.parse(_text(body["algorithm"], 32)),
        key_id=key_id,
        signature=signature,
    )


class StageSigner:
    """One function's stage key: it signs the statements of the stages that function runs."""

    def __init__(self, signer: Signer, key: SigningKey) -> None:
        self._signer = signer
        self._key = key

    @property
    def signer(self) -> Signer:
        return self._signer

    @property
    def verifying_key(self) -> VerifyingKey:
        return self._key.verifying_key

    def attest(
        self,
        stage: Stage,
        subject: Subject,
        result: Mapping[str, Any],
        *,
        claim: Mapping[str, Any],
        parents: Sequence[Attestation] = (),
        issued_at: int,
    ) -> Attestation:
        if SIGNER_OF[stage] is not self._signer:
            raise AttestationError(f"{self._signer} does not sign {stage} statements", check="signer")
        statement = Statement(
            stage=stage,
            subject=subject,
            result_sha256=digest(result),
            claim=dict(claim),
            parents=tuple(p.digest for p in parents),
            issued_at=issued_at,
        )
        return Attestation(
            statement,
            self._signer,
            self._key.algorithm,
            self._key.key_id,
            self._key.sign(statement.signed_bytes()),
        )


class StageKeys:
    """The published stage keys a verifier trusts: for each signing function, its verifying keys."""

    def __init__(self, keys: Mapping[Signer, Iterable[VerifyingKey]]) -> None:
        self._keys = {signer: {(k.key_id, k.algorithm): k for k in found} for signer, found in keys.items()}

    def with_key(self, signer: Signer, key: VerifyingKey) -> StageKeys:
        """These keys and ``key`` for ``signer``."""
        keys = {s: list(found.values()) for s, found in self._keys.items()}
        return StageKeys({**keys, signer: [*keys.get(signer, []), key]})

    def key_for(self, attestation: Attestation) -> VerifyingKey | None:
        return self._keys.get(attestation.signer, {}).get((attestation.key_id, attestation.algorithm))

    def to_json(self) -> list[dict[str, str]]:
        """The keys as published (to auditors, beside the checkpoint keys)."""
        return [
            {
                "signer": signer.value,
                "algorithm": key.algorithm.value,
                "key_id": key.key_id.hex(),
                "public_key": base64.b64encode(key.public_key).decode("ascii"),
            }
            for signer, found in sorted(self._keys.items())
            for key in found.values()
        ]

    @classmethod
    def from_json(cls, value: object) -> StageKeys:
        """Published keys, as ``to_json`` writes them (AttestationError if malformed)."""
        try:
            return cls(_parse_published(value))
        except (KeyError, TypeError, ValueError, binascii.Error, InvalidRequestError) as exc:
            raise AttestationError("the published stage keys are malformed", check="format") from exc


def _parse_published(value: object) -> dict[Signer, list[VerifyingKey]]:
    if not isinstance(value, list):
        raise TypeError("a list of keys")
    keys: dict[Signer, list[VerifyingKey]] = {}
    for entry in value:
        body = _members(entry, ("signer", "algorithm", "key_id", "public_key"))
        key = VerifyingKey(
            SignatureAlgorithm.parse(_text(body["algorithm"], 32)),
            base64.b64decode(_text(body["public_key"], 8192), validate=True),
        )
        if key.key_id.hex() != body["key_id"]:
            raise ValueError("a key id does not match its key")
        keys.setdefault(Signer(body["signer"]), []).append(key)
    return keys


def verify_attestation(
    attestation: Attestation,
    keys: StageKeys,
    *,
    stage: Stage,
    subject: Subject | None = None,
    result: Mapping[str, Any] | None = None,
    now: int | None = None,
) -> Attestation:
    """``attestation`` if it is a ``stage`` statement signed by that stage's function, about ``subject``,
    over ``result`` (when given) and not dated in the future; ``AttestationError`` otherwise."""
    statement = attestation.statement
    if statement.stage is not stage:
        raise AttestationError(f"expected a {stage} statement", check="stage")
    if attestation.signer is not SIGNER_OF[stage]:
        raise AttestationError(f"a {stage} statement signed by another function", check="signer")
    key = keys.key_for(attestation)
    if key is None:
        raise UnknownStageKeyError(
            f"a {stage} statement signed by an unknown key",
            key=(attestation.signer.value, attestation.key_id.hex()),
        )
    try:
        key.verify(statement.signed_bytes(), attestation.signature)
    except InvalidSignatureError:
        raise AttestationError(
            f"a {stage} statement's signature does not verify", check="signature"
        ) from None
    if subject is not None and statement.subject != subject:
        raise AttestationError(f"a {stage} statement is about another request", check="subject")
    if result is not None and statement.result_sha256 != digest(result):
        raise AttestationError(f"the {stage} result is not the one its statement signed", check="result")
    if now is not None and statement.issued_at > now + FUTURE_SKEW_SECONDS:
        raise AttestationError(f"a {stage} statement is dated in the future", check="time")
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
        """k, the people the tally claims must approve (0 for a tally that names none)."""
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
        """Every stage let the request through: the proof verified, the rules let it go on, the tally
        approved (the tally itself enforces the vault's quorum and the rules' quorum) and, when the tally
        asks for k people, k of them approved and none denied. The rules' ``step_up`` approves only with
        a tally that asks for at least one person."""
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
        """When the decision was complete: the tally's signed time, or the last approval's (a grant's
        freshness is counted from here, so a wait for people does not eat the grant's window)."""
        if self.tally is None:
            return None
        return max(a.statement.issued_at for a in (self.tally, *self.approvals))

    @property
    def item_version(self) -> int | None:
        """The item version the trust stage scored (the one an approval is for)."""
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
        raise AttestationError("a tally claims a malformed number of approvers", check="approvals")
    return required


def _check_approval_claim(approval: Attestation) -> str:
    """The person an approval statement names, once its claim is well formed."""
    claim = approval.statement.claim
    if set(claim) != {"person_id", "credential_id", "assertion_sha256", "vote"}:
        raise AttestationError("an approval statement's claim is malformed", check="approvals")
    person, credential, assertion = claim["person_id"], claim["credential_id"], claim["assertion_sha256"]
    try:
        _text(person, 64)
        _text(credential, 1024)
        _hex64(assertion)
    except ValueError:
        raise AttestationError("an approval statement's claim is malformed", check="approvals") from None
    if claim["vote"] not in APPROVAL_VOTES:
        raise AttestationError("an approval statement's vote is approve or deny", check="approvals")
    return str(person)


def _verify_approvals(
    approvals: Sequence[Attestation],
    tally: Attestation,
    keys: StageKeys,
    *,
    subject: Subject,
    now: int | None,
) -> tuple[Attestation, ...]:
    """People's approval statements: each signed by agent-vote about this request, built on the tally,
    not dated before it; one per person, no more than the tally asked for people."""
    required = _approvers_claimed(tally)
    if approvals and required == 0:
        raise AttestationError("approvals the tally did not ask for", check="approvals")
    if len(approvals) > MAX_APPROVALS:
        raise AttestationError(f"at most {MAX_APPROVALS} approval statements", check="approvals")
    persons: set[str] = set()
    for approval in approvals:
        verify_attestation(approval, keys, stage=Stage.APPROVAL, subject=subject, now=now)
        _require_parents(approval, [tally])
        if approval.statement.issued_at < tally.statement.issued_at:
            raise AttestationError("an approval statement is dated before its tally", check="time")
        person = _check_approval_claim(approval)
        if person in persons:
            raise AttestationError("one approval statement per person", check="approvals")
        persons.add(person)
    return tuple(approvals)


def verify_chain(
    chain: Sequence[Attestation], keys: StageKeys, *, subject: Subject | None = None, now: int | None = None
) -> VerifiedChain:
    """Check a flow's attestations, in flow order (context, trust, votes, tally, approvals; a chain may
    stop early, as a denied flow does): every signature by the right function's key, all about one request
    (``subject`` when given), each statement built on exactly the statements before it (an approval on the
    tally), one approval per person. ``AttestationError`` otherwise."""
    if not chain:
        raise AttestationError("the chain is empty", check="structure")
    context = chain[0]
    subject = subject if subject is not None else context.statement.subject
    verify_attestation(context, keys, stage=Stage.VERIFY_CONTEXT, subject=subject, now=now)
    if context.statement.parents:
        raise AttestationError("a verify_context statement builds on nothing", check="parents")
    rest = list(chain[1:])
    trust = None
    if rest:
        trust = verify_attestation(rest.pop(0), keys, stage=Stage.SCORE_TRUST, subject=subject, now=now)
        _require_parents(trust, [context])
    approvals: list[Attestation] = []
    while rest and rest[-1].stage is Stage.APPROVAL:
        approvals.insert(0, rest.pop())
    tally = None
    if rest and rest[-1].stage is Stage.TALLY:
        tally = rest.pop()
    if approvals and tally is None:
        raise AttestationError("approvals without a tally", check="structure")
    votes = tuple(verify_attestation(v, keys, stage=Stage.VOTE, subject=subject, now=now) for v in rest)
    if votes and trust is None:
        raise AttestationError("votes without a trust statement", check="structure")
    if len(votes) > MAX_VOTES or len({v.statement.claim.get("agent") for v in votes}) != len(votes):
        raise AttestationError("one vote per agent", check="votes")
    for vote in votes:
        _require_parents(vote, [context, trust] if trust is not None else [context])
    if tally is not None:
        if trust is None:
            raise AttestationError("a tally without a trust statement", check="structure")
        verify_attestation(tally, keys, stage=Stage.TALLY, subject=subject, now=now)
        _require_parents(tally, [trust, *sorted(votes, key=lambda v: v.digest)])
        checked = _verify_approvals(approvals, tally, keys, subject=subject, now=now)
        return VerifiedChain(subject, context, trust, votes, tally, checked)
    return VerifiedChain(subject, context, trust, votes, tally)


def _require_parents(attestation: Attestation, parents: Sequence[Attestation | None]) -> None:
    expected = tuple(p.digest for p in parents if p is not None)
    if attestation.statement.parents != expected:
        raise AttestationError(
            f"a {attestation.stage} statement does not build on the statements before it", check="parents"
        )


def require_approval_chain(
    chain: Sequence[Attestation], keys: StageKeys, *, subject: Subject, now: int | None = None
) -> VerifiedChain:
    """``verify_chain``, and the chain approves: ``AttestationError`` for anything less."""
    verified = verify_chain(chain, keys, subject=subject, now=now)
    if not verified.approves:
        raise AttestationError("the attestation chain does not approve this request", check="approval")
    return verified


def parse_chain(value: object) -> list[Attestation]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_CHAIN:
        raise AttestationError("a chain is a non-empty list of attestations", check="format")
    return [Attestation.from_json(a) for a in value]
