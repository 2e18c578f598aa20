"""What a ciphertext is bound to: tenant, vault, item, version, content type and key versions.

The associated data of the item cipher and the HPKE ``info`` of every wrap are built here, from one
canonical length-prefixed encoding, so a ciphertext or wrapped key moved to any other scope fails.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from reliquary.crypto.codec import U16, U32, text16
from reliquary.errors import InvalidRequestError

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_CONTENT_TYPE = re.compile(r"[!-~][ -~]{0,126}")
MAX_VERSION = 2**32 - 1


def validate_id(kind: str, value: str) -> str:
    """Tenant, vault, item and request ids: 1-128 of [A-Za-z0-9._:@-], starting with a letter or digit."""
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise InvalidRequestError(
            f"{kind} must be 1-128 characters of letters, digits and ._:@- (starting with a letter or digit)",
            field=kind,
        )
    return value


def validate_version(kind: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_VERSION:
        raise InvalidRequestError(f"{kind} must be an integer from 1 to {MAX_VERSION}", field=kind)
    return value


def validate_content_type(value: str) -> str:
    if not isinstance(value, str) or _CONTENT_TYPE.fullmatch(value) is None:
        raise InvalidRequestError(
            "content_type must be 1-127 printable ASCII characters", field="content_type"
        )
    return value


@dataclass(frozen=True, slots=True)
class VaultRef:
    tenant_id: str
    vault_id: str

    def __post_init__(self) -> None:
        validate_id("tenant_id", self.tenant_id)
        validate_id("vault_id", self.vault_id)

    def key_context(
        self, key_version: int, *, public_key: bytes, recovery_public_key: bytes | None
    ) -> dict[str, str]:
        """The root-of-trust encryption context for this vault's private key of one version.

        It names the public key and the vault's recovery key (by SHA-256), so the root of trust
        authenticates both: a public or recovery key swapped in storage makes the unwrap fail, and
        nothing is ever sealed or escrowed to a key that only the database vouches for."""
        context = {
            "purpose": "vault-key",
            "tenant_id": self.tenant_id,
            "vault_id": self.vault_id,
            "key_version": str(key_version),
            "public_key_sha256": hashlib.sha256(public_key).hexdigest(),
        }
        if recovery_public_key is not None:
            context["recovery_key_sha256"] = hashlib.sha256(recovery_public_key).hexdigest()
        return context


@dataclass(frozen=True, slots=True)
class ItemScope:
    tenant_id: str
    vault_id: str
    item_id: str
    item_version: int
    content_type: str
    # The encoded identity fields, computed once: every seal and open encodes them two or three times.
    _identity: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_id("tenant_id", self.tenant_id)
        validate_id("vault_id", self.vault_id)
        validate_id("item_id", self.item_id)
        validate_version("item_version", self.item_version)
        validate_content_type(self.content_type)
        identity = b"".join(
            (text16(self.tenant_id), text16(self.vault_id), text16(self.item_id), U32.pack(self.item_version))
        )
        object.__setattr__(self, "_identity", identity)

    @property
    def encoded_identity(self) -> bytes:
        """tenant_id, vault_id, item_id (u16-length-prefixed UTF-8) and item_version (u32), as the AAD,
        the wrap info and grants encode them."""
        return self._identity

    @property
    def vault(self) -> VaultRef:
        return VaultRef(self.tenant_id, self.vault_id)

    def item_aad(self, *, suite: int, sealed_key_version: int) -> bytes:
        """Associated data of the item cipher: immutable for the life of the ciphertext."""
        return b"".join(
            (
                b"RELIQUARY item v1\x00",
                U16.pack(suite),
                self._identity,
                U32.pack(sealed_key_version),
                text16(self.content_type),
            )
        )

    def wrap_info(self, *, suite: int, wrap_key_version: int) -> bytes:
        """HPKE info of the data key wrapped to the vault key of ``wrap_key_version``."""
        return b"".join(
            (b"RELIQUARY dek v1\x00", U16.pack(suite), self._identity, U32.pack(wrap_key_version))
        )
