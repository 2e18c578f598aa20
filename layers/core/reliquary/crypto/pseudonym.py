"""One keyed pseudonym for a principal, wherever RELIQUARY stores one: the audit log's decisions, the
trust history and the agents' memories all name a principal by the same value, never by its subject.

The scheme (fixed: changing it unlinks every stored principal from its past)::

    tenant key = HMAC-SHA256(secret, "RELIQUARY principal key v1" 0x00 || tenant_id)
    pseudonym  = hex(HMAC-SHA256(tenant key, UTF-8 subject))

Subjects (user ids, e-mail addresses) are few and guessable, so an unkeyed hash of one is reversed by
hashing a dictionary of candidates; keyed by a secret, nobody without it can test a guess. Keyed per
tenant, one subject gives unrelated pseudonyms in two tenants, and a tenant's key can be disclosed to that
tenant's auditor alone. Destroying the secret turns every stored principal into an unlinkable pseudonym
(the transparency log's answer to erasure, as it cannot delete).

The deployment's secret is a dedicated 32-byte key, generated on first use and stored only wrapped by the
root of trust under the context ``{"purpose": "principal-pseudonym"}`` (``load_or_create``): a stored row
that does not unwrap under that context (moved from another purpose, altered) is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
from typing import Final, Protocol

from reliquary.crypto.root import RootOfTrust
from reliquary.crypto.scope import validate_id
from reliquary.errors import ConflictError, InvalidRequestError, RootOfTrustError

PSEUDONYM_KEY_CONTEXT: Final = {"purpose": "principal-pseudonym"}
SECRET_BYTES: Final = 32  # the deployment's pseudonym secret, as generated
MIN_SECRET_BYTES: Final = 16  # the least any secret keying the scheme may have
MAX_SUBJECT_CHARS: Final = 1024
_TENANT_KEY_DOMAIN: Final = b"RELIQUARY principal key v1\x00"
# Control characters (C0, DEL, C1) and lone surrogates: a subject is one line of text.
_NOT_LINE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def pseudonym(tenant_id: str, subject: str, secret: bytes) -> str:
    """The hex pseudonym of ``subject`` in ``tenant_id`` under ``secret`` (see the module docstring);
    ``InvalidRequestError`` for an invalid tenant id, a subject that is not 1-1024 characters of one
    line, or a secret shorter than ``MIN_SECRET_BYTES``."""
    validate_id("tenant_id", tenant_id)
    if not isinstance(subject, str) or not 1 <= len(subject) <= MAX_SUBJECT_CHARS:
        raise InvalidRequestError(f"subject must be 1-{MAX_SUBJECT_CHARS} characters", field="subject")
    if _NOT_LINE.search(subject) is not None:
        raise InvalidRequestError("subject must not hold control characters", field="subject")
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise InvalidRequestError(f"the pseudonym secret must be at least {MIN_SECRET_BYTES} bytes")
    tenant_key = hmac.digest(secret, _TENANT_KEY_DOMAIN + tenant_id.encode("ascii"), hashlib.sha256)
    return hmac.digest(tenant_key, subject.encode("utf-8"), hashlib.sha256).hex()


class PseudonymKeyStore(Protocol):
    """Where the deployment's pseudonym secret is kept, wrapped by the root of trust."""

    def wrapped_key(self) -> bytes | None:
        """The wrapped secret, or None before the first cold start stored one."""
        ...

    def add_wrapped_key(self, wrapped: bytes) -> None:
        """Store the wrapped secret; ConflictError if one is stored already (two cold starts racing
        share the one that won)."""
        ...


def load_or_create_secret(store: PseudonymKeyStore, root: RootOfTrust) -> bytes:
    """The deployment's pseudonym secret: unwrapped from ``store``, or generated, wrapped and stored
    there first (a conditional write, so concurrent cold starts agree on one). ``RootOfTrustError`` if
    the stored secret does not unwrap under the pseudonym context or is not ``SECRET_BYTES`` long."""
    wrapped = store.wrapped_key()
    if wrapped is None:
        with contextlib.suppress(ConflictError):
            store.add_wrapped_key(root.wrap(os.urandom(SECRET_BYTES), context=PSEUDONYM_KEY_CONTEXT))
        wrapped = store.wrapped_key()
        if wrapped is None:
            raise RootOfTrustError("the pseudonym key could not be stored")
    secret = root.unwrap(wrapped, context=PSEUDONYM_KEY_CONTEXT)
    if len(secret) != SECRET_BYTES:
        raise RootOfTrustError("the stored pseudonym key is not a pseudonym key")
    return secret


class Pseudonyms:
    """Names principals under the deployment's secret (kept only in this object, never shown)."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
            raise RootOfTrustError(f"a pseudonym secret is at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    @classmethod
    def load_or_create(cls, store: PseudonymKeyStore, root: RootOfTrust) -> Pseudonyms:
        return cls(load_or_create_secret(store, root))

    def of(self, tenant_id: str, subject: str) -> str:
        """The pseudonym of ``subject`` in ``tenant_id`` (64 hex digits)."""
        return pseudonym(tenant_id, subject, self._secret)

    def __repr__(self) -> str:
        return "Pseudonyms(<secret>)"


class InMemoryPseudonymKeyStore:
    """A ``PseudonymKeyStore`` in memory, for tests and local runs."""

    def __init__(self) -> None:
        self.wrapped: bytes | None = None

    def wrapped_key(self) -> bytes | None:
        return self.wrapped

    def add_wrapped_key(self, wrapped: bytes) -> None:
        if self.wrapped is not None:
            raise ConflictError("a pseudonym key is stored already")
        self.wrapped = wrapped
