"""A vault's quorum policy: which agents review its requests, how many must approve, who may veto, how
sure a vote must be to count, what an abstention means, and how many people (the vault's approvers) must
approve with a passkey besides the agents, within how long. Validated when the vault is configured (never
at request time): a policy that names an unknown agent, or asks for more approvals than its panel has,
is refused then."""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from reliquary.fields import JsonInt, JsonNumber, VersionOne

AgentName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
MAX_PANEL = 16
MAX_APPROVERS = 8


class QuorumPolicy(BaseModel):
    """``approvals`` of the ``panel`` must approve; a deny with veto from a ``veto_holders`` agent denies
    whatever the count. A vote below ``min_confidence`` counts as an abstention. ``abstentions``:
    ``deny`` (an abstention is a missing approval: k of the whole panel), ``exclude`` (abstainers leave the
    panel: k shrinks in proportion, never below 1), ``fail`` (any abstention denies).

    ``approvers``: people of the tenant with the approver role on the vault who must approve (with a
    passkey) after the agents approved; the rules' ``step_up`` asks for ``max(1, approvers)``. The flow
    waits ``approval_timeout_seconds`` for them, then denies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: VersionOne = 1
    panel: Annotated[tuple[AgentName, ...], Field(min_length=1, max_length=MAX_PANEL)] = (
        "strict",
        "permissive",
        "neutral",
        "watchdog",
    )
    approvals: JsonInt = Field(default=3, ge=1, le=MAX_PANEL)
    veto_holders: tuple[AgentName, ...] = ("watchdog",)
    min_confidence: JsonNumber = Field(default=0.5, ge=0.0, le=1.0)
    abstentions: Literal["deny", "exclude", "fail"] = "deny"
    approvers: JsonInt = Field(default=0, ge=0, le=MAX_APPROVERS)
    approval_timeout_seconds: JsonInt = Field(default=600, ge=60, le=900)

    @model_validator(mode="after")
    def _consistent(self) -> QuorumPolicy:
        if len(set(self.panel)) != len(self.panel):
            raise ValueError("the panel names an agent twice")
        if self.approvals > len(self.panel):
            raise ValueError(f"{self.approvals} approvals cannot come from a panel of {len(self.panel)}")
        strangers = sorted(set(self.veto_holders) - set(self.panel))
        if strangers:
            raise ValueError(f"veto holders must sit on the panel: {', '.join(strangers)}")
        return self


DEFAULT_QUORUM = QuorumPolicy()


class QuorumPolicyStore(Protocol):
    def get(self, tenant_id: str, vault_id: str) -> QuorumPolicy | None: ...

    def put(self, tenant_id: str, vault_id: str, policy: QuorumPolicy) -> None: ...
