"""Profiles: where the API is and which client calls it, kept in ``$XDG_CONFIG_HOME/reliquary/config.json``.

The file holds client secrets, so it is written with mode 0600 (its directory 0700), atomically (a
temporary file in the same directory, then a rename). A profile may also pin the audit log's verifier
keys and origin (``audit verify`` pins them on first use), and says whether ``reliquary dev`` wrote it:
only such a profile may be reset (``reset --local``).

Resolution: ``--url`` beats ``RELIQUARY_URL`` beats the profile's URL; ``RELIQUARY_CLIENT_ID`` and
``RELIQUARY_CLIENT_SECRET`` (both) beat the profile's client; the profile is ``--profile``, else
``RELIQUARY_PROFILE``, else the file's default.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from reliquary_sdk.cli.output import usage

CONFIG_FORMAT: Final = "reliquary-cli/v1"
ENV_URL: Final = "RELIQUARY_URL"
ENV_CLIENT_ID: Final = "RELIQUARY_CLIENT_ID"
ENV_CLIENT_SECRET: Final = "RELIQUARY_CLIENT_SECRET"  # noqa: S105  (a variable's name)
ENV_PROFILE: Final = "RELIQUARY_PROFILE"
MAX_CONFIG_BYTES: Final = 1 << 20
_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "reliquary"


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "reliquary"


def valid_name(name: str) -> bool:
    return 0 < len(name) <= 64 and set(name) <= _NAME_CHARS


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (127.0.0.0/8, ::1 or localhost) over http(s)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise usage("the API URL is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise usage("the API URL must be http(s)://host[:port]")
    if parts.scheme == "http" and not is_loopback(url):
        raise usage("plain http is allowed only to this machine (127.0.0.1, ::1, localhost); use https")
    return url.rstrip("/")


@dataclass(frozen=True)
class Profile:
    name: str
    url: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    audit_origin: str | None = None
    audit_keys: tuple[str, ...] = ()
    dev: bool = False  # written by `reliquary dev`: the only kind `reset --local` touches

    def public(self) -> dict[str, Any]:
        """What may be shown: everything but the secret (said to be set or not)."""
        return {
            "name": self.name,
            "url": self.url,
            "client_id": self.client_id,
            "client_secret": "set" if self.client_secret else None,
            "audit_origin": self.audit_origin,
            "audit_keys_pinned": len(self.audit_keys),
            "dev": self.dev,
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("name")
        data["audit_keys"] = list(self.audit_keys)
        return {k: v for k, v in data.items() if v not in (None, [], False)}

    @classmethod
    def from_json(cls, name: str, data: Any) -> Profile:
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            raise usage("the config file holds a malformed profile", hint=str(config_dir() / "config.json"))
        strings = ("client_id", "client_secret", "audit_origin")
        keys = data.get("audit_keys", [])
        if (
            set(data) - {"url", *strings, "audit_keys", "dev"}
            or any(data.get(k) is not None and not isinstance(data[k], str) for k in strings)
            or not isinstance(keys, list)
            or not all(isinstance(k, str) for k in keys)
            or not isinstance(data.get("dev", False), bool)
        ):
            raise usage("the config file holds a malformed profile", hint=str(config_dir() / "config.json"))
        return cls(
            name=name,
            url=data["url"],
            client_id=data.get("client_id"),
            client_secret=data.get("client_secret"),
            audit_origin=data.get("audit_origin"),
            audit_keys=tuple(keys),
            dev=data.get("dev", False),
        )


class ConfigFile:
    """The profiles file: read whole, changed, written whole (0600, atomically)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "config.json"

    def _read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"format": CONFIG_FORMAT, "default": None, "profiles": {}}
        if len(raw) > MAX_CONFIG_BYTES:
            raise usage("the config file is too large", hint=str(self.path))
        try:
            data = json.loads(raw)
        except ValueError:
            raise usage("the config file is not JSON", hint=str(self.path)) from None
        if (
            not isinstance(data, dict)
            or data.get("format") != CONFIG_FORMAT
            or not isinstance(data.get("profiles"), dict)
        ):
            raise usage(
                "the config file is not a reliquary config (refusing to overwrite it)", hint=str(self.path)
            )
        return data

    def profiles(self) -> dict[str, Profile]:
        return {name: Profile.from_json(name, body) for name, body in self._read()["profiles"].items()}

    def default(self) -> str | None:
        value = self._read().get("default")
        return value if isinstance(value, str) else None

    def get(self, name: str) -> Profile | None:
        return self.profiles().get(name)

    def put(self, profile: Profile, *, make_default: bool = False) -> None:
        if not valid_name(profile.name):
            raise usage("a profile name is 1-64 of letters, digits, '.', '_' and '-'")
        data = self._read()
        data["profiles"][profile.name] = profile.to_json()
        if make_default or not data.get("default"):
            data["default"] = profile.name
        self._write(data)

    def update(self, name: str, **changes: Any) -> Profile:
        profile = self.get(name)
        if profile is None:
            raise usage("no such profile", hint="`reliquary profile list`")
        changed = replace(profile, **changes)
        self.put(changed)
        return changed

    def set_default(self, name: str) -> None:
        data = self._read()
        if name not in data["profiles"]:
            raise usage("no such profile", hint="`reliquary profile list`")
        data["default"] = name
        self._write(data)

    def remove(self, name: str) -> bool:
        data = self._read()
        if data["profiles"].pop(name, None) is None:
            return False
        if data.get("default") == name:
            data["default"] = next(iter(sorted(data["profiles"])), None)
        self._write(data)
        return True

    def _write(self, data: dict[str, Any]) -> None:
        write_private(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_private(path: Path, text: str | bytes) -> None:
    """``text`` (or bytes) to ``path``, readable by its owner only (0600; a new directory 0700), replaced
    atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8") if isinstance(text, str) else text)
            out.flush()
            os.fsync(out.fileno())
        Path(temporary).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(temporary).unlink()
        raise


@dataclass(frozen=True)
class Target:
    """Where and as whom a command calls: the resolved URL, client and (when one was used) profile."""

    url: str
    client_id: str | None
    client_secret: str | None = field(repr=False)
    profile: Profile | None


def resolve(config: ConfigFile, *, url: str | None, profile_name: str | None) -> Target:
    name = profile_name or os.environ.get(ENV_PROFILE) or config.default()
    profile = config.get(name) if name else None
    if name and profile is None and (profile_name or os.environ.get(ENV_PROFILE)):
        raise usage("no such profile", hint="`reliquary profile list`")
    chosen = url or os.environ.get(ENV_URL) or (profile.url if profile else None)
    if not chosen:
        raise usage(
            "no API URL", hint="pass --url, set RELIQUARY_URL, or add a profile (`reliquary profile set`)"
        )
    env_id, env_secret = os.environ.get(ENV_CLIENT_ID), os.environ.get(ENV_CLIENT_SECRET)
    if bool(env_id) != bool(env_secret):
        raise usage("set both RELIQUARY_CLIENT_ID and RELIQUARY_CLIENT_SECRET, or neither")
    client_id: str | None = None
    secret: str | None = None
    if env_id:
        client_id, secret = env_id, env_secret
    elif profile is not None:
        client_id, secret = profile.client_id, profile.client_secret
    return Target(check_url(chosen), client_id, secret, profile)
