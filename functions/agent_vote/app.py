"""The agent-vote function: convening the panel for a request (the access state machine's Convene state:
the vault's panel and the agents the trust rules' quorum adds; refused when the rules refused the request),
one agent's vote on one request (the Quorum Map runs one per agent convened), the Tally of the votes under
the vault's quorum policy and the rules' quorum, and setting that policy.

Votes are idempotent on (request id, agent): a retried iteration gets the same vote and leaves the agent's
memory as it was. Malformed input is ``{"status": "error", ...}``; only transient failures raise. This is
the only function that imports LangGraph (the agents are LangGraph graphs).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter

from reliquary.adapters.agents_factory import build_agent_vote_service
from reliquary.agents.model import ContextResult, TrustResult
from reliquary.agents.service import AgentVoteService
from reliquary.config import get_settings
from reliquary.contracts.agent_vote import (
    AgentVoteRequest,
    ConveneRequest,
    SetPolicyRequest,
    TallyRequest,
    TrustIn,
    VoteRequest,
)
from reliquary.errors import InvalidRequestError
from reliquary.handlers import handle_action
from reliquary.observability import build_logger, build_metrics, build_tracer

SERVICE = "reliquary-agent-vote"
logger = build_logger(SERVICE)
metrics = build_metrics(SERVICE)
tracer = build_tracer(SERVICE)
_REQUEST: TypeAdapter[Any] = TypeAdapter(AgentVoteRequest)


@functools.cache
def runtime() -> AgentVoteService:
    """Stores, vault quorum policies and the unwrapped memory key, built once per cold start."""
    return build_agent_vote_service(get_settings())


def reset_runtime() -> None:
    runtime.cache_clear()


# What each public parameter of a verified context proof shows (checked against the vault's policy by
# verify-proof): the claim names agents and trust rules reason about.
_CLAIM_OF_SIGNAL = {
    "device_commitment": "device_known",
    "region_root": "region_allowed",
    "window_start": "in_window",
    "pattern_commitment": "pattern_matched",
}


def proven_claims(signals: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(claim for signal, claim in _CLAIM_OF_SIGNAL.items() if signal in signals)


def _rules(trust: TrustIn | None) -> dict[str, Any] | None:
    return None if trust is None else trust.rules


def _factor_value(value: object) -> float:
    """A factor's value as ScoreTrust gives it: a finite number (the flow passes factors through
    untyped, so anything else is refused here rather than failing inside an agent)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):
            number = float(value)
            if math.isfinite(number):
                return number
    raise InvalidRequestError("a trust factor's value must be a finite number", field="trust.factors")


def _vote(service: AgentVoteService, request: VoteRequest) -> dict[str, Any]:
    context = request.context
    trust = request.trust
    claims = context.claims if context is not None else {}
    return service.vote(
        request.agent,
        request_id=request.request_id,
        tenant_id=request.tenant_id,
        vault_id=request.vault_id,
        item_id=request.item_id,
        subject=request.principal.subject,
        device=request.device or str(claims.get("device_commitment", "unknown"))[:256],
        region=request.region,
        context=None if context is None else ContextResult(context.verified, proven_claims(context.claims)),
        trust=None
        if trust is None
        else TrustResult(
            score=trust.score,
            band=trust.band,
            factors={str(f.get("name")): _factor_value(f.get("value", 0.0)) for f in trust.factors},
            rule_effect=trust.rules.get("effect"),
            facts=trust.facts,
        ),
        purpose=request.purpose,
        sensitivity=request.sensitivity,
        rules=_rules(trust),
    )


def _run(service: AgentVoteService, request: Any) -> dict[str, Any]:
    if isinstance(request, SetPolicyRequest):
        service.set_policy(request.tenant_id, request.vault_id, request.policy)
        return {"policy": request.policy.model_dump(mode="json")}
    if isinstance(request, ConveneRequest):
        return service.convene(request.tenant_id, request.vault_id, rules=_rules(request.trust))
    if isinstance(request, TallyRequest):
        votes = [v.model_dump() for v in request.votes]
        rules = _rules(request.trust)
        return service.tally(
            request.tenant_id, request.vault_id, votes, rules=rules, convened=request.policy
        ).to_dict()
    return _vote(service, request)


def handle(event: Any, service: AgentVoteService) -> dict[str, Any]:
    return handle_action(
        event, _REQUEST, lambda request: _run(service, request), logger=logger, metrics=metrics
    )


@tracer.capture_lambda_handler
# log_event=False: events carry principals and rationales; logs carry only codes.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:  # noqa: ARG001  (the Lambda signature)
    return handle(event, runtime())
