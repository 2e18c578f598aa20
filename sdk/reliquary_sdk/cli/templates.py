"""Vault templates: a vault and its context, trust and quorum policies in one JSON file.

```json
{"format": "reliquary-vault-template/v1", "name": "standard", "description": "...",
 "vault": {"recovery_threshold": 2, "custodians": [{"custodian_id": "...", "public_key": "..."}]},
 "policies": {"context": {...}, "trust": {...}, "quorum": {...}}}
```

``vault`` and each policy are optional. The file's shape is checked here, strictly (unknown members,
duplicate members, wrong types: refused before anything is sent); what a policy means is checked by the
function that enforces it when the policy is set, as for any ``PUT /v1/vaults/{v}/policies/{kind}``.
The built-in templates ship in the package (``reliquary_sdk/cli/templates``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

from reliquary_sdk.cli.output import usage

TEMPLATE_FORMAT: Final = "reliquary-vault-template/v1"
POLICY_KINDS: Final = ("context", "trust", "quorum")  # the order they are set in
MAX_TEMPLATE_BYTES: Final = 1 << 20
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class VaultTemplate:
    name: str
    description: str
    policies: dict[str, dict[str, Any]]
    vault: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "policies": [k for k in POLICY_KINDS if k in self.policies],
            "source": self.source,
        }


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate member")
    return dict(pairs)


def parse(text: str | bytes, *, source: str) -> VaultTemplate:
    """A template from its JSON text; a usage error naming the first problem (never the file's content)."""
    if len(text) > MAX_TEMPLATE_BYTES:
        raise usage("the template is larger than 1 MiB")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError:
        raise usage("the template is not JSON (or repeats a member)") from None
    if not isinstance(data, dict):
        raise usage("a template is a JSON object")
    unknown = sorted(set(data) - {"format", "name", "description", "vault", "policies"})
    if unknown:
        raise usage("the template has unknown members", hint=", ".join(unknown[:5]))
    if data.get("format") != TEMPLATE_FORMAT:
        raise usage(f"the template's format must be {TEMPLATE_FORMAT}")
    name, description = data.get("name"), data.get("description", "")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise usage("the template's name is 1-64 of lowercase letters, digits and '-'")
    if not isinstance(description, str) or len(description) > 500:
        raise usage("the template's description is a string of at most 500 characters")
    policies = data.get("policies", {})
    if not isinstance(policies, dict) or set(policies) - set(POLICY_KINDS):
        raise usage("the template's policies are an object of context, trust and quorum")
    if not policies or not all(isinstance(p, dict) and p for p in policies.values()):
        raise usage("each policy of the template is a non-empty object")
    vault = data.get("vault", {})
    if not isinstance(vault, dict) or set(vault) - {"custodians", "recovery_threshold"}:
        raise usage("the template's vault holds only custodians and recovery_threshold")
    custodians = vault.get("custodians", [])
    if not isinstance(custodians, list) or not all(
        isinstance(c, dict)
        and set(c) == {"custodian_id", "public_key"}
        and all(isinstance(v, str) for v in c.values())
        for c in custodians
    ):
        raise usage("custodians are objects of custodian_id and public_key")
    threshold = vault.get("recovery_threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1
    ):
        raise usage("recovery_threshold is a positive integer")
    return VaultTemplate(name, description, dict(policies), dict(vault), source)


def builtin_names() -> list[str]:
    folder = resources.files("reliquary_sdk.cli") / "templates"
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def builtins() -> list[VaultTemplate]:
    return [load(name) for name in builtin_names()]


def load(name_or_path: str) -> VaultTemplate:
    """A built-in template by name, else a template file by path."""
    if name_or_path in builtin_names():
        resource = resources.files("reliquary_sdk.cli") / "templates" / f"{name_or_path}.json"
        return parse(resource.read_bytes(), source="built-in")
    path = Path(name_or_path)
    if not path.is_file():
        raise usage(
            "no built-in template of that name and no such file",
            hint="built-ins: " + ", ".join(builtin_names()),
        )
    return parse(path.read_bytes(), source=str(path))
