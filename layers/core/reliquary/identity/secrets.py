"""Client secrets: generated once, stored only as a salted scrypt hash, checked in constant time.

A stored hash is a PHC-style string, ``$scrypt$ln=14,r=8,p=1$<salt>$<hash>`` (unpadded base64), so the
parameters travel with each hash: raising ``DEFAULT_PARAMS`` later leaves old hashes verifiable, and
``needs_rehash`` says which to upgrade at the client's next successful authentication.

An unknown client costs the same work as a known one (``verify_secret`` against ``DUMMY_HASH``), so the
time of an answer does not tell whether a client id exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets as _random
from dataclasses import dataclass

SECRET_PREFIX = "rqs_"  # noqa: S105  (a prefix, not a secret)
# What a caller may present: a real secret is 47 characters; anything far longer is refused unhashed.
MAX_SECRET_CHARS = 256
_SALT_BYTES = 16
_HASH_BYTES = 32
_MAX_MEMORY = 1 << 28
_B64 = r"[A-Za-z0-9+/]+"
_PHC = re.compile(rf"\$scrypt\$ln=(\d{{1,2}}),r=(\d{{1,2}}),p=(\d{{1,2}})\$({_B64})\$({_B64})")


@dataclass(frozen=True, slots=True)
class ScryptParams:
    log2_n: int = 14
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        # Bounds on what a stored hash may ask for: a corrupt row must not cost a gigabyte of memory.
        if not (10 <= self.log2_n <= 20 and 1 <= self.r <= 32 and 1 <= self.p <= 16):
            raise ValueError("scrypt parameters out of bounds")
        if self.memory > _MAX_MEMORY:
            raise ValueError("scrypt parameters out of bounds")

    @property
    def memory(self) -> int:
        # What OpenSSL allocates: 128*r*(N+2) bytes for V and 128*r*p for B.
        return 128 * self.r * ((1 << self.log2_n) + 2 + self.p)

    @property
    def cost(self) -> tuple[int, int, int]:
        return (self.log2_n, self.r, self.p)

    def derive(self, secret: bytes, salt: bytes) -> bytes:
        n = 1 << self.log2_n
        return hashlib.scrypt(
            secret,
            salt=salt,
            n=n,
            r=self.r,
            p=self.p,
            dklen=_HASH_BYTES,
            maxmem=self.memory + (1 << 20),
        )


DEFAULT_PARAMS = ScryptParams()


def new_secret() -> str:
    """``rqs_`` and 43 URL-safe characters (256 random bits). Shown to its owner once, never stored."""
    return SECRET_PREFIX + _random.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _format(params: ScryptParams, salt: bytes, digest: bytes) -> str:
    return f"$scrypt$ln={params.log2_n},r={params.r},p={params.p}${_b64(salt)}${_b64(digest)}"


def hash_secret(secret: str, params: ScryptParams = DEFAULT_PARAMS) -> str:
    """The string to store for ``secret``: a fresh 16-byte salt, a 32-byte scrypt hash, the parameters."""
    salt = os.urandom(_SALT_BYTES)
    return _format(params, salt, params.derive(secret.encode("utf-8"), salt))


@dataclass(frozen=True, slots=True)
class _Parsed:
    params: ScryptParams
    salt: bytes
    digest: bytes


def _parse(stored: str) -> _Parsed:
    match = _PHC.fullmatch(stored)
    if match is None:
        raise ValueError("not a stored scrypt hash")
    log2_n, r, p, salt_text, digest_text = match.groups()
    try:
        salt, digest = _unb64(salt_text), _unb64(digest_text)
    except (binascii.Error, ValueError):
        raise ValueError("not a stored scrypt hash") from None
    if not (_SALT_BYTES <= len(salt) <= 64 and len(digest) == _HASH_BYTES):
        raise ValueError("not a stored scrypt hash")
    return _Parsed(ScryptParams(int(log2_n), int(r), int(p)), salt, digest)


def verify_secret(secret: object, stored: str) -> bool:
    """Whether ``secret`` hashes to ``stored``, compared in constant time. A secret that is not a string
    of at most MAX_SECRET_CHARS is refused without hashing; ValueError if ``stored`` is malformed."""
    parsed = _parse(stored)
    if not isinstance(secret, str) or len(secret) > MAX_SECRET_CHARS:
        return False
    try:
        candidate = secret.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: no stored secret has them
        return False
    return hmac.compare_digest(parsed.params.derive(candidate, parsed.salt), parsed.digest)


def needs_rehash(stored: str, params: ScryptParams = DEFAULT_PARAMS) -> bool:
    """Whether ``stored`` was made with cheaper parameters than ``params``."""
    return _parse(stored).params.cost < params.cost


# Stands in for the hash of a client that does not exist: the same parameters, a random salt and a random
# digest that no secret is known to produce. Verifying against it costs what a real check costs.
DUMMY_HASH = _format(DEFAULT_PARAMS, os.urandom(_SALT_BYTES), os.urandom(_HASH_BYTES))
