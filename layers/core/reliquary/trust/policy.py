"""A vault's trust policy: which scoring template it selects (with its overrides) and which rule set
decides (the default rules unless it ships its own). Checked in full when set, so a stored policy always
loads; rule sets parsed once per process (by their text)."""

from __future__ import annotations

import functools
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reliquary.fields import VersionOne
from reliquary.trust.rules import RuleSet, default_rule_set, parse_rule_set
from reliquary.trust.templates import TrustTemplate, load_template

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
        return load_template(self.template, self.overrides or None)

    def rule_set(self) -> RuleSet:
        return default_rule_set() if self.rules is None else _parsed(self.rules)


DEFAULT_POLICY = TrustPolicy()


@functools.lru_cache(maxsize=64)
def _parsed(text: str) -> RuleSet:
    return parse_rule_set(text, source="vault trust policy")


class TrustPolicyStore(Protocol):
    def get(self, tenant_id: str, vault_id: str) -> TrustPolicy | None: ...

    def put(self, tenant_id: str, vault_id: str, policy: TrustPolicy) -> None: ...
