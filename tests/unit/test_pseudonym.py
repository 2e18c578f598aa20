"""The one keyed pseudonym for principals: known answers (the audit log's ``principal_hash`` vectors, which
must never change), per-tenant keys, refusals, and the secret's life: generated once, stored only wrapped
under its own context, shared by racing cold starts, refused when the stored row is not what it claims."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from reliquary.audit.records import principal_hash
from reliquary.crypto.pseudonym import (
    PSEUDONYM_KEY_CONTEXT,
    SECRET_BYTES,
    InMemoryPseudonymKeyStore,
    Pseudonyms,
    load_or_create_secret,
    pseudonym,
)
from reliquary.crypto.root import LocalRootOfTrust
from reliquary.errors import ConflictError, InvalidRequestError, RootOfTrustError

# (tenant, subject, secret) -> pseudonym; computed before the scheme moved out of the audit records.
VECTORS = [
    (
        "acme",
        "alice@example.com",
        bytes(range(32)),
        "f2778e5d15d0266a16ccd9d067c89f91fdf9ab165a126896788d6a49a891f8d6",
    ),
    (
        "globex",
        "alice@example.com",
        bytes(range(32)),
        "2d88c1cc4e51c10ed339ce0fa25cc4113fa451d8329ecb8b8f79b9f61410b2ca",
    ),
    ("acme", "zoë", bytes(32), "7b597da551740f381dc3d64003d4a5bcae23031286315938f1ab2c9926344027"),
    (
        "acme",
        "support-agent-7",
        b"\x5a" * 16,
        "4eacc7b0e101abeb2f31bbffc266c64ad7595bd282104e3a4ff76777ccd790da",
    ),
]


@pytest.mark.parametrize(("tenant_id", "subject", "secret", "expected"), VECTORS)
def test_known_answers_hold_for_every_name_of_the_scheme(
    tenant_id: str, subject: str, secret: bytes, expected: str
) -> None:
    assert pseudonym(tenant_id, subject, secret) == expected
    assert principal_hash(tenant_id, subject, secret) == expected
    assert Pseudonyms(secret).of(tenant_id, subject) == expected
    tenant_key = hmac.new(secret, b"RELIQUARY principal key v1\x00" + tenant_id.encode(), hashlib.sha256)
    assert hmac.new(tenant_key.digest(), subject.encode(), hashlib.sha256).hexdigest() == expected


def test_a_pseudonym_is_keyed_and_per_tenant() -> None:
    names = Pseudonyms(bytes(range(32)))
    alice = names.of("acme", "alice@example.com")
    assert alice == names.of("acme", "alice@example.com")
    assert alice != names.of("globex", "alice@example.com")
    assert alice != names.of("acme", "bob@example.com")
    assert alice != Pseudonyms(bytes(32)).of("acme", "alice@example.com")
    assert alice != hashlib.sha256(b"alice@example.com").hexdigest()
    assert names.of("acme1", "x") != names.of("acme", "1x")
    assert "000102" not in repr(names)
    assert repr(bytes(range(32))) not in repr(names)


@pytest.mark.parametrize(
    ("tenant_id", "subject"),
    [
        ("bad tenant", "alice"),
        ("acme#x", "alice"),
        ("acme", ""),
        ("acme", "x" * 1025),
        ("acme", "a\nb"),
        ("acme", "\ud800"),
    ],
)
def test_a_subject_or_tenant_that_cannot_be_named_is_refused(tenant_id: str, subject: str) -> None:
    with pytest.raises(InvalidRequestError):
        Pseudonyms(bytes(32)).of(tenant_id, subject)


@pytest.mark.parametrize("secret", [b"", b"short", b"x" * 15, "a string of thirty-two characters", None])
def test_a_short_or_untyped_secret_is_refused(secret: Any) -> None:
    with pytest.raises(RootOfTrustError):
        Pseudonyms(secret)
    with pytest.raises(InvalidRequestError):
        pseudonym("acme", "alice", secret)


def test_the_secret_is_generated_once_and_stored_only_wrapped_under_its_context() -> None:
    store, root = InMemoryPseudonymKeyStore(), LocalRootOfTrust.generate()
    secret = load_or_create_secret(store, root)
    assert len(secret) == SECRET_BYTES
    assert store.wrapped is not None
    assert secret not in store.wrapped
    assert root.unwrap(store.wrapped, context=PSEUDONYM_KEY_CONTEXT) == secret
    assert PSEUDONYM_KEY_CONTEXT == {"purpose": "principal-pseudonym"}  # IAM conditions name it
    assert load_or_create_secret(store, root) == secret  # the next cold start
    with pytest.raises(ConflictError):
        store.add_wrapped_key(b"another")


class _Racing(InMemoryPseudonymKeyStore):
    """A store that another cold start fills between this one's read and its write."""

    def __init__(self, winner: bytes) -> None:
        super().__init__()
        self._winner = winner
        self.reads = 0

    def wrapped_key(self) -> bytes | None:
        self.reads += 1
        if self.reads == 1:
            return None  # read before the other cold start wrote
        self.wrapped = self.wrapped or self._winner
        return self.wrapped

    def add_wrapped_key(self, wrapped: bytes) -> None:
        assert wrapped != self._winner  # this cold start's own secret, which loses
        self.wrapped = self._winner
        raise ConflictError("a pseudonym key is stored")


def test_two_cold_starts_racing_agree_on_the_secret_stored_first() -> None:
    root = LocalRootOfTrust.generate()
    winner = bytes(range(100, 132))
    store = _Racing(root.wrap(winner, context=PSEUDONYM_KEY_CONTEXT))
    assert load_or_create_secret(store, root) == winner
    assert store.reads == 2


@pytest.mark.parametrize(
    "stored",
    [
        lambda root: root.wrap(bytes(32), context={"purpose": "agent-memory", "version": "1"}),
        lambda root: root.wrap(bytes(32), context={"purpose": "principal-pseudonym", "v": "2"}),
        lambda _: LocalRootOfTrust.generate().wrap(bytes(32), context=PSEUDONYM_KEY_CONTEXT),
        lambda root: root.wrap(bytes(16), context=PSEUDONYM_KEY_CONTEXT),
        lambda _: b"RQL1" + bytes(60),
    ],
    ids=["another purpose", "another context", "another root", "not 32 bytes", "garbage"],
)
def test_a_stored_row_that_is_not_the_pseudonym_key_is_refused(stored: Any) -> None:
    root = LocalRootOfTrust.generate()
    store = InMemoryPseudonymKeyStore()
    store.add_wrapped_key(stored(root))
    with pytest.raises(RootOfTrustError):
        load_or_create_secret(store, root)
