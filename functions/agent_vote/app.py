"""The agent-vote function: the access flow's Convene (the agents to poll: the vault's panel and those the
trust rules' quorum adds), one agent's Vote (an iteration of the Quorum Map) and the Tally of the votes
under the vault's quorum policy and the rules' quorum, each acting only on attested results of the
earlier stages and signing what it decided (``reliquary.agents.stage``); AwaitApprovers
(``await_approvals``: a step-up request waits for the vault's approvers) and ``approve`` (one person's
passkey answer, verified here; ``reliquary.agents.approvals``); and setting a vault's policy.

Votes are idempotent on (request id, agent): a retried iteration gets the same vote and leaves the agent's
memory as it was. Malformed input is ``{"status": "error", ...}``; only transient failures raise. This is
the only function that imports LangGraph (the agents are LangGraph graphs), and only when a vote first
builds an agent's graph: importing the handler, and the other actions, do not load it.
"""

from __future__ import annotations

from reliquary.coldstart import deferred_collection

# Loaded once per container, the collector off (reliquary/coldstart.py).
with deferred_collection():
    import functools
    from typing import Any, assert_never

    from pydantic import TypeAdapter

    from reliquary.adapters.agents_factory import build_agent_vote
    from reliquary.agents.approvals import Answer
    from reliquary.agents.stage import AgentVoteStage
    from reliquary.config import get_settings
    from reliquary.contracts.agent_vote import (
        AgentVoteRequest,
        ApproveRequest,
        AwaitApprovalsTask,
        ConveneTask,
        SetPolicyRequest,
        TallyTask,
        VoteTask,
    )
    from reliquary.handlers import handle_action
    from reliquary.observability import build_logger, build_metrics, build_tracer

    SERVICE = "reliquary-agent-vote"
    logger = build_logger(SERVICE)
    metrics = build_metrics(SERVICE)
    tracer = build_tracer(SERVICE)
    _REQUEST: TypeAdapter[Any] = TypeAdapter(AgentVoteRequest)


@functools.cache
def runtime() -> AgentVoteStage:
    """Stores, vault quorum policies, the unwrapped memory key and the stage, built once per cold start."""
    return build_agent_vote(get_settings())


def reset_runtime() -> None:
    runtime.cache_clear()


Request = ConveneTask | VoteTask | TallyTask | AwaitApprovalsTask | ApproveRequest | SetPolicyRequest


def _run(stage: AgentVoteStage, request: Request) -> dict[str, Any]:
    match request:
        case ConveneTask():
            return stage.convene(request.flow)
        case VoteTask():
            return stage.vote(request.flow, request.agent).model_dump(mode="json")
        case TallyTask():
            return stage.tally(request.flow, convened=request.policy)
        case AwaitApprovalsTask():
            return stage.approvals.await_approvals(request.flow, request.task_token)
        case ApproveRequest():
            answer = Answer(
                tenant_id=request.tenant_id,
                request_id=request.request_id,
                person_id=request.person_id,
                decision=request.decision,
                nonce=request.nonce,
                issued_at=request.issued_at,
                credential=request.credential,
            )
            return stage.approvals.approve(answer)
        case SetPolicyRequest():
            stage.service.set_policy(request.tenant_id, request.vault_id, request.policy)
            return {"policy": request.policy.model_dump(mode="json")}
    assert_never(request)  # mypy proves the match exhaustive


def handle(event: Any, stage: AgentVoteStage) -> dict[str, Any]:
    return handle_action(
        event, _REQUEST, lambda request: _run(stage, request), logger=logger, metrics=metrics
    )


@tracer.capture_lambda_handler
# log_event=False: events carry principals and rationales; logs carry only codes.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:  # noqa: ARG001  (the Lambda signature)
    return handle(event, runtime())
