"""Run an action once per request id: powertools idempotency on the idempotency table, with its errors
turned into ours. The one way every function makes an action idempotent (encrypt, score-trust).

A retried call with the same key gets the stored result; the same key with a different payload (the
fields ``payload_jmespath`` selects) is ``IdempotencyConflictError``; a call still in progress is
``TransientError`` (Step Functions retries it); an unreachable store is ``StorageUnavailableError``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)

from reliquary.errors import IdempotencyConflictError, StorageUnavailableError, TransientError

Action = Callable[[dict[str, Any]], dict[str, Any]]
KEY = "[tenant_id, request_id]"  # every action's request id is scoped by its tenant
_RUNNING: contextvars.ContextVar[Action] = contextvars.ContextVar("reliquary_idempotent_action")


class Once:
    """``action(payload)`` at most once per ``key_jmespath`` of the payload, for ``expires_after_seconds``
    (the action is given with each call: the stored result answers every call with the same key)."""

    def __init__(
        self,
        *,
        table_name: str,
        client: Any,
        payload_jmespath: str,
        expires_after_seconds: int,
        key_jmespath: str = KEY,
    ) -> None:
        self.config = IdempotencyConfig(
            event_key_jmespath=key_jmespath,
            payload_validation_jmespath=payload_jmespath,
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_seconds,
            hash_function="sha256",
        )
        persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)

        # powertools prefixes keys with the Lambda function's name and this wrapper's qualified name,
        # the same for every action a Once wraps: a request id reused across actions is a conflict.
        def run_once(payload: dict[str, Any]) -> dict[str, Any]:
            return _RUNNING.get()(payload)

        guarded = idempotent_function(
            data_keyword_argument="payload", persistence_store=persistence, config=self.config
        )
        self._run = cast("Callable[..., dict[str, Any]]", guarded(run_once))

    def register_lambda_context(self, context: Any) -> None:
        """The remaining time bounds how long an interrupted call's "in progress" record blocks a retry."""
        self.config.register_lambda_context(context)

    def __call__(self, payload: dict[str, Any], action: Action) -> dict[str, Any]:
        token = _RUNNING.set(action)
        try:
            return self._run(payload=payload)
        except IdempotencyValidationError as exc:
            raise IdempotencyConflictError("request_id was already used with a different request") from exc
        except IdempotencyAlreadyInProgressError as exc:
            raise TransientError("the same request is in progress; retry") from exc
        except IdempotencyPersistenceLayerError as exc:
            raise StorageUnavailableError("the idempotency store is unavailable") from exc
        finally:
            _RUNNING.reset(token)
