"""A vault's trust policy: which scoring template it selects (with its overrides) and which rule set
decides (the default rules unless it ships its own). Checked in full when set, so a stored policy always
loads; rule sets parsed once per process (by their text).

The rule language and the templates (with PyYAML) load when a policy is first built or checked, not with
this module: the functions that only name ``TrustPolicy`` in their requests (the API, score-trust's
handler) do not pay for them at import."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reliquary.fields import VersionOne

if TYPE_CHECKING:
    from reliquary.trust.rules import RuleSet
    from reliquary.trust.templates import TrustTemplate

MAX_RULES_TEXT = 1024 * 1024


class TrustPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: VersionOne = 1
    template: Literal["standard", "strict", "research"] = "standard"
    overrides: dict[str, Any] = Field(default_factory=dict)
    # A rule set (YAML or JSON text, see reliquary.trust.rules); None: the default rules.
    rules: str | None = Field(default=None, max_length=MAX_RULES_TEXT)

    @model_validator(mode="after")
    def _loads(self) -> TrustPolicy:
        # Validation errors name the key or the rule (InvalidRequestError): nothing invalid is ever stored.
        self.scoring_template()
        self.rule_set()
        return self

    def scoring_template(self) -> TrustTemplate:
        from reliquary.trust.templates import load_template  # noqa: PLC0415  (see the module's doc)

        return load_template(self.template, self.overrides or None)

    def rule_set(self) -> RuleSet:
        from reliquary.trust.rules import default_rule_set  # noqa: PLC0415  (see the module's doc)

        return default_rule_set() if self.rules is None else _parsed(self.rules)


@functools.cache
def default_policy() -> TrustPolicy:
    """The policy of a vault that has none: the standard template and the default rules."""
    return TrustPolicy()


@functools.lru_cache(maxsize=64)
def _parsed(text: str) -> RuleSet:
    from reliquary.trust.rules import parse_rule_set  # noqa: PLC0415  (see the module's doc)

    return parse_rule_set(text, source="vault trust policy")


class TrustPolicyStore(Protocol):
    def get(self, tenant_id: str, vault_id: str) -> TrustPolicy | None: ...

    def put(self, tenant_id: str, vault_id: str, policy: TrustPolicy) -> None: ...
