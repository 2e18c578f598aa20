"""The one error hierarchy of RELIQUARY.

Every error a caller can see has a stable ``code`` (part of the API contract: clients and the state
machine match on it, so codes never change meaning), an HTTP status for the API, and whether retrying
the same request can succeed. Messages never contain plaintext, keys or other secrets.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ReliquaryError(Exception):
    """Base of every error RELIQUARY raises on purpose."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        # Details are for the caller (field names, limits, ids) and must never hold secrets.
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "type": type(self).__name__, "message": self.message}
        if self.details:
            body["details"] = self.details
        body["retryable"] = self.retryable
        return body


# --- the caller's request -------------------------------------------------------------------------
class InvalidRequestError(ReliquaryError):
    """The request is malformed: missing or wrong fields, wrong lengths, bad encodings."""

    code = "invalid_request"
    http_status = 400


class AuthenticationError(ReliquaryError):
    """No valid credentials: no token, or one that is malformed, expired, wrongly signed, for another
    audience or issuer, or of a revoked client. Deliberately one message for every such case."""

    code = "unauthenticated"
    http_status = 401

    def __init__(self, message: str = "a valid access token is required", **details: Any) -> None:
        super().__init__(message, **details)


class MethodNotAllowedError(InvalidRequestError):
    """The route exists but not with this HTTP method."""

    code = "method_not_allowed"
    http_status = 405


class UnsupportedGrantTypeError(InvalidRequestError):
    """The token endpoint was asked for a grant other than client credentials."""

    code = "unsupported_grant_type"


class InvalidClientError(AuthenticationError):
    """The token endpoint could not authenticate the client (unknown id, wrong secret, revoked): one
    answer for all, as RFC 6749 section 5.2 names it."""

    code = "invalid_client"

    def __init__(self, message: str = "client authentication failed", **details: Any) -> None:
        super().__init__(message, **details)


class InvalidScopeError(InvalidRequestError):
    """The token request asks for a scope the client's roles do not grant, or one that does not exist
    (RFC 6749 section 5.2 ``invalid_scope``)."""

    code = "invalid_scope"


class ForbiddenError(ReliquaryError):
    """The caller is authenticated but its token's scopes do not allow this on this tenant or vault."""

    code = "forbidden"
    http_status = 403


class RateLimitedError(ReliquaryError):
    """Too many requests from this client; ``retry_after`` (seconds) says when to try again."""

    code = "rate_limited"
    http_status = 429
    retryable = True


class NotFoundError(ReliquaryError):
    """The tenant, vault, item or key version does not exist (or is not visible to this tenant)."""

    code = "not_found"
    http_status = 404


class ConflictError(ReliquaryError):
    """The write conflicts with the current state (already exists, concurrent update, reused id)."""

    code = "conflict"
    http_status = 409


class IdempotencyConflictError(ConflictError):
    """A request id was reused with a different payload."""

    code = "idempotency_conflict"


class ItemShreddedError(ReliquaryError):
    """The item was crypto-shredded: its data key is gone and it can never be opened again."""

    code = "item_shredded"
    http_status = 410


class ItemExpiredError(ItemShreddedError):
    """The item passed its expiry; expiry crypto-shreds it."""

    code = "item_expired"


class KeyVersionError(ReliquaryError):
    """A vault key version is unknown, retired, or not the one the operation needs."""

    code = "key_version"
    http_status = 409


class PayloadTooLargeError(InvalidRequestError):
    """The item is larger than the configured maximum."""

    code = "payload_too_large"
    http_status = 413


# --- cryptographic verification -------------------------------------------------------------------
class InvalidEnvelopeError(ReliquaryError):
    """An envelope, grant or share could not be parsed, authenticated or opened.

    Deliberately opaque: the same error and message for a malformed field, a bad signature, a wrong
    scope, a wrong key or a failed tag, so a caller learns nothing about which check failed.
    """

    code = "invalid_envelope"
    http_status = 400

    def __init__(self, message: str = "the envelope could not be authenticated or opened") -> None:
        super().__init__(message)


class InvalidSignatureError(ReliquaryError):
    """A signature did not verify under the named key and algorithm."""

    code = "invalid_signature"
    http_status = 400


class UnsupportedAlgorithmError(InvalidRequestError):
    """An algorithm id or suite id this build does not support."""

    code = "unsupported_algorithm"


# --- configuration and the platform ---------------------------------------------------------------
class ConfigurationError(ReliquaryError):
    """The deployment is misconfigured (missing settings, unusable native library)."""

    code = "configuration"


class NativeLibraryError(ConfigurationError):
    """liboqs (or another native library of the layer) is missing or cannot be loaded."""

    code = "native_library"


class TransientError(ReliquaryError):
    """A dependency failed in a way that a retry may fix (throttling, timeouts, 5xx)."""

    code = "transient"
    http_status = 503
    retryable = True


class StorageUnavailableError(TransientError):
    """DynamoDB, S3, KMS or an IPFS or Arweave node did not answer, timed out, throttled the request or
    failed (5xx)."""

    code = "storage_unavailable"


class BodyIntegrityError(ReliquaryError):
    """A stored body is not the one recorded: its IPFS CID or its SHA-256 digest, computed here, differs
    from the recorded one (or the node named another CID for what it was given). Never retried: the
    node answered, wrongly. The body is never returned."""

    code = "body_integrity"
    http_status = 500


class RootOfTrustError(ReliquaryError):
    """The root of trust refused to wrap or unwrap (wrong context, disabled key, no permission)."""

    code = "root_of_trust"
    http_status = 500


# --- the transparency log -------------------------------------------------------------------------
class AuditError(ReliquaryError):
    """Base of the audit log's verification failures."""

    code = "audit"
    http_status = 400


class ProofError(AuditError):
    """An inclusion or consistency proof does not verify."""

    code = "invalid_proof"


class RootMismatchError(ProofError):
    """The proof is well formed but leads to another root than the one expected."""

    code = "root_mismatch"


class BadIndexError(ProofError):
    """A leaf index or tree size that no proof can exist for (index >= size, old size > new size, ...)."""

    code = "bad_index"


class ProofLengthError(ProofError):
    """The proof has more or fewer nodes than the tree shape requires."""

    code = "proof_length"


class CheckpointError(AuditError):
    """A checkpoint or signed note is malformed, unsigned by a trusted key, or wrongly signed."""

    code = "invalid_checkpoint"


class LogInconsistentError(AuditError):
    """Stored tiles, entries or checkpoints disagree with each other (found by verification)."""

    code = "log_inconsistent"
    http_status = 500


# --- context proofs -------------------------------------------------------------------------------
class ReplayError(ReliquaryError):
    """A context proof's nonce or nullifier cannot be used: the proof is refused, whatever it proves."""

    code = "replay"
    http_status = 409


class NonceUnknownError(ReplayError):
    """The nonce was never issued by this service (for this tenant and vault)."""

    code = "nonce_unknown"


class NonceExpiredError(ReplayError):
    """The nonce was issued but its lifetime is over."""

    code = "nonce_expired"


class NonceUsedError(ReplayError):
    """The nonce was already consumed by a verified proof (of another request)."""

    code = "nonce_used"


class NullifierSeenError(ReplayError):
    """The proof's nullifier was already seen: the same device secret proved for the same nonce."""

    code = "nullifier_seen"


# --- people and passkeys ---------------------------------------------------------------------------
class PasskeyError(ReliquaryError):
    """A WebAuthn ceremony did not verify: a malformed response, another origin or RP id, a challenge not
    issued, used or expired, no user verification, a sign counter that did not advance, a bad signature
    or attestation, a credential unknown or not the person's. One message for all; ``check`` names the
    failed check (a fixed word, never the caller's input). Nothing is registered or signed in on it."""

    code = "passkey_invalid"
    http_status = 400

    def __init__(self, check: str) -> None:
        super().__init__("the passkey response did not verify", check=check)
        self.check = check


# --- access decisions -----------------------------------------------------------------------------
class RulesRefusedError(ReliquaryError):
    """The trust rules already refused the request (deny, or a step-up proof first): no review panel is
    convened for it, whatever the agents would say."""

    code = "rules_refused"
    http_status = 403


class DecisionRequiredError(ReliquaryError):
    """A grant needs an approval logged for its request in the tenant's transparency log, for this vault,
    item and requester key: none is logged, or the logged decision is not that approval. Nothing is
    granted; the message says which check failed."""

    code = "decision_required"
    http_status = 403


class AttestationError(ReliquaryError):
    """A stage attestation, or the chain of them, does not hold: a malformed or unsigned statement, a
    signature by the wrong function or an unknown key, a statement about another request or result, a
    broken link between stages, or a chain that does not approve what it is asked to. ``check`` names the
    failed check. Nothing is decided, logged as approved or granted on it."""

    code = "attestation_invalid"
    http_status = 403


class UnknownStageKeyError(AttestationError):
    """A statement signed by a key the verifier does not know (yet: a key created since it read them).
    ``key`` (signer, key id) is for the verifier's refresh, never part of the answer."""

    def __init__(self, message: str, *, key: tuple[str, str]) -> None:
        super().__init__(message, check="key")
        self.key = key


# --- decentralized identifiers --------------------------------------------------------------------
class InvalidDidError(InvalidRequestError):
    """A DID that cannot be parsed or is not one this service accepts: a wrong prefix or method, bad
    base58, a non-canonical varint, an unknown multicodec, a key of the wrong length or an invalid
    point. ``check`` names the failed check; the DID itself is never repeated."""

    code = "invalid_did"

    def __init__(self, message: str = "the DID is malformed", *, check: str) -> None:
        super().__init__(message, check=check)
        self.check = check


class DidResolutionError(ReliquaryError):
    """A did:web document could not be resolved: not HTTPS, a redirect, a status other than 200, a body
    too large or not JSON, or a document whose ``id`` is not the DID. ``check`` names the failed check."""

    code = "did_resolution"
    http_status = 400

    def __init__(self, message: str = "the DID document could not be resolved", *, check: str) -> None:
        super().__init__(message, check=check)
        self.check = check


class InvalidJwsError(InvalidRequestError):
    """A compact JWS that is malformed, too large, of an algorithm other than its key's, with a header
    member outside the allow-list, or whose signature does not verify. ``check`` names the failed check."""

    code = "invalid_jws"

    def __init__(self, message: str = "the JWS is invalid", *, check: str) -> None:
        super().__init__(message, check=check)
        self.check = check


def error_class_for(code: str) -> type[ReliquaryError]:
    """The most specific error class with this stable code (``ReliquaryError`` for an unknown one): how a
    caller of a function turns a refusal's ``code`` back into the typed error it was."""
    found: dict[str, type[ReliquaryError]] = {}
    pending: list[type[ReliquaryError]] = [ReliquaryError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found.get(code, ReliquaryError)
