"""The access flow's tasks, as the state machine invokes them: an ``action`` and the flow state
(``"flow.$": "$.flow"``, one ``reliquary.flow.state.FlowState``), plus what the task itself adds (the
time of a decision; agent-vote's tasks are in ``contracts.agent_vote``, the only contracts that may load
the agents). Every function of the flow parses its tasks with these models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from reliquary.fields import EpochTime
from reliquary.flow.state import FlowState


class FlowTask(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: FlowState

    @property
    def tenant_id(self) -> str:
        return self.flow.tenant_id

    @property
    def request_id(self) -> str:
        return self.flow.request_id


class VerifyContextTask(FlowTask):
    """VerifyContext (verify-proof): the proof checked and the answer signed."""

    action: Literal["verify"]


class ScoreTrustTask(FlowTask):
    """ScoreTrust (score-trust): the attested context in, the signed score out. ``started_at`` is the
    execution's start: the request joins the principal's history as in flight at that time, and
    RecordOutcome (at the same time) replaces it with its outcome."""

    action: Literal["score"]
    started_at: EpochTime


class RecordOutcomeTask(FlowTask):
    """RecordOutcome (score-trust): the decided outcome into the principal's history."""

    action: Literal["record_outcome"]
    decided_at: EpochTime


class RecordDecisionTask(FlowTask):
    """RecordDecision (audit-append): the decision and its chain into the log. ``bare``: RecordDenial,
    the last resort, a denial logged without evidence. ``decided_at`` is the execution's start."""

    action: Literal["record_decision"]
    execution_id: Annotated[str, StringConstraints(pattern=r"^[!-~]{1,256}$")] | None = None
    decided_at: EpochTime
    bare: bool = False
