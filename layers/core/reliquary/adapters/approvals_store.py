"""ApprovalsTable (TTL ``expires_at``): requests waiting for people (``reliquary.flow.approvals``).

Rows, both written by agent-vote only:

- ``pk = TENANT#<tenant>``, ``sk = REQ#<request id>``: the view approvers see (``view``, JSON), its
  ``status`` (pending, approved, denied) and ``approvals`` (a map person id -> that person's answer as
  the page shows it). The API's role may read these rows and nothing else of the table.
- ``pk = TOKEN#<tenant>``, ``sk = REQ#<request id>``: the state machine's ``task_token``, the flow state
  through the tally, the tally's digest, ``outcomes`` (person id -> the signed ApprovalOutcome) and
  ``sent``. Only agent-vote's role may read these rows (template.yaml, ``dynamodb:LeadingKeys``).

An answer is one transaction over both rows, conditional on the request still waiting and on the person
not having answered: one answer per person, none after the outcome or the deadline.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from reliquary.adapters.dynamodb import TableConfig
from reliquary.errors import ConflictError, LogInconsistentError, StorageUnavailableError
from reliquary.flow.approvals import PendingApproval, PersonVote, WaitingTask
from reliquary.flow.state import ApprovalOutcome

_CONFLICTS = frozenset({"ConditionalCheckFailedException", "TransactionCanceledException"})


def view_key(tenant_id: str, request_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"TENANT#{tenant_id}"}, "sk": {"S": f"REQ#{request_id}"}}


def task_key(tenant_id: str, request_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"TOKEN#{tenant_id}"}, "sk": {"S": f"REQ#{request_id}"}}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class _Storage:
    """A DynamoDB call: a failed condition is a conflict, anything else of the platform is transient."""

    @staticmethod
    def call(call: Any, conflict: str, **kwargs: Any) -> Any:
        try:
            return call(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _CONFLICTS:
                raise ConflictError(conflict) from exc
            raise StorageUnavailableError("the approvals table cannot be reached now") from exc
        except BotoCoreError as exc:
            raise StorageUnavailableError("the approvals table cannot be reached now") from exc


class DynamoDBApprovalStore:
    def __init__(self, config: TableConfig, client: Any) -> None:
        self._table = config.table_name
        self._client = client

    # --- the view (what the API may read) ---------------------------------------------------------
    @staticmethod
    def _view(item: dict[str, Any]) -> PendingApproval:
        try:
            view = json.loads(item["view"]["S"])
            votes = [
                PersonVote.model_validate_json(v["S"])
                for v in item.get("approvals", {}).get("M", {}).values()
            ]
            votes.sort(key=lambda v: (v.decided_at, v.person_id))
            return PendingApproval.model_validate({**view, "status": item["status"]["S"], "approvals": votes})
        except (KeyError, TypeError, ValueError) as exc:
            raise LogInconsistentError("a stored pending approval is corrupt") from exc

    def list_pending(self, tenant_id: str) -> list[PendingApproval]:
        found: list[PendingApproval] = []
        start: dict[str, Any] | None = None
        while True:
            page = _Storage.call(
                self._client.query,
                "unexpected",
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :req)",
                ExpressionAttributeValues={":pk": {"S": f"TENANT#{tenant_id}"}, ":req": {"S": "REQ#"}},
                ConsistentRead=True,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            found += [self._view(item) for item in page.get("Items", [])]
            start = page.get("LastEvaluatedKey")
            if not start:
                return found

    def get_pending(self, tenant_id: str, request_id: str) -> PendingApproval | None:
        item = _Storage.call(
            self._client.get_item,
            "unexpected",
            TableName=self._table,
            Key=view_key(tenant_id, request_id),
            ConsistentRead=True,
        ).get("Item")
        return None if item is None else self._view(item)

    # --- the task (agent-vote only) ---------------------------------------------------------------
    def get_task(self, tenant_id: str, request_id: str) -> WaitingTask | None:
        item = _Storage.call(
            self._client.get_item,
            "unexpected",
            TableName=self._table,
            Key=task_key(tenant_id, request_id),
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        try:
            outcomes = [
                ApprovalOutcome.model_validate_json(v["S"])
                for v in item.get("outcomes", {}).get("M", {}).values()
            ]
            outcomes.sort(key=lambda o: (o.decided_at, o.person_id))
            return WaitingTask(
                task_token=item["task_token"]["S"],
                flow=json.loads(item["flow"]["S"]),
                tally_sha256=item["tally_sha256"]["S"],
                outcomes=outcomes,
                sent=item.get("sent", {}).get("BOOL", False),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LogInconsistentError("a stored waiting task is corrupt") from exc

    def put_waiting(self, view: PendingApproval, task: WaitingTask) -> None:
        expires = {"N": str(view.expires_at)}
        body = view.model_dump(mode="json", exclude={"status", "approvals"})
        try:
            _Storage.call(
                self._client.transact_write_items,
                "the request waits already",
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                **view_key(view.tenant_id, view.request_id),
                                "view": {"S": _dumps(body)},
                                "status": {"S": "pending"},
                                "approvals": {"M": {}},
                                "expires_at": expires,
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                **task_key(view.tenant_id, view.request_id),
                                "task_token": {"S": task.task_token},
                                "flow": {"S": _dumps(task.flow)},
                                "tally_sha256": {"S": task.tally_sha256},
                                "outcomes": {"M": {}},
                                "sent": {"BOOL": False},
                                "expires_at": expires,
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ],
            )
        except ConflictError:
            # A retried task (a new token for the same wait): the answers stay, the token is replaced.
            _Storage.call(
                self._client.update_item,
                "the request waits for approval under another tally",
                TableName=self._table,
                Key=task_key(view.tenant_id, view.request_id),
                UpdateExpression="SET task_token = :token",
                ConditionExpression="tally_sha256 = :tally",
                ExpressionAttributeValues={
                    ":token": {"S": task.task_token},
                    ":tally": {"S": task.tally_sha256},
                },
            )

    def add_answer(
        self, tenant_id: str, request_id: str, vote: PersonVote, outcome: ApprovalOutcome, *, now: int
    ) -> tuple[PendingApproval, WaitingTask]:
        names = {"#p": vote.person_id}
        _Storage.call(
            self._client.transact_write_items,
            "the request no longer waits for this person's answer",
            TransactItems=[
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": view_key(tenant_id, request_id),
                        "UpdateExpression": "SET approvals.#p = :vote",
                        "ConditionExpression": (
                            "#status = :pending AND expires_at > :now AND attribute_not_exists(approvals.#p)"
                        ),
                        "ExpressionAttributeNames": {**names, "#status": "status"},
                        "ExpressionAttributeValues": {
                            ":vote": {"S": vote.model_dump_json()},
                            ":pending": {"S": "pending"},
                            ":now": {"N": str(now)},
                        },
                    }
                },
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": task_key(tenant_id, request_id),
                        "UpdateExpression": "SET outcomes.#p = :outcome",
                        "ConditionExpression": "attribute_not_exists(outcomes.#p)",
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": {":outcome": {"S": outcome.model_dump_json()}},
                    }
                },
            ],
        )
        view, task = self.get_pending(tenant_id, request_id), self.get_task(tenant_id, request_id)
        if view is None or task is None:
            raise LogInconsistentError("a pending approval vanished while it was answered")
        return view, task

    def close(self, tenant_id: str, request_id: str, status: Literal["approved", "denied"]) -> bool:
        try:
            _Storage.call(
                self._client.update_item,
                "decided already",
                TableName=self._table,
                Key=view_key(tenant_id, request_id),
                UpdateExpression="SET #status = :status",
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":status": {"S": status}, ":pending": {"S": "pending"}},
            )
        except ConflictError:
            return False
        return True

    def mark_sent(self, tenant_id: str, request_id: str) -> None:
        _Storage.call(
            self._client.update_item,
            "unexpected",
            TableName=self._table,
            Key=task_key(tenant_id, request_id),
            UpdateExpression="SET sent = :sent",
            ExpressionAttributeValues={":sent": {"BOOL": True}},
        )


class StepFunctionsTaskCallbacks:
    """SendTaskSuccess on the access state machine's waiting task (agent-vote's role only may)."""

    _GONE = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})

    def __init__(self, client: Any) -> None:
        self._client = client

    def succeed(self, task_token: str, output: dict[str, Any]) -> None:
        try:
            self._client.send_task_success(taskToken=task_token, output=_dumps(output))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in self._GONE:
                raise ConflictError("the access execution no longer waits for this request") from exc
            raise StorageUnavailableError("the access state machine cannot be reached now") from exc
        except BotoCoreError as exc:
            raise StorageUnavailableError("the access state machine cannot be reached now") from exc

    def fail(self, task_token: str, error: str) -> None:
        try:
            self._client.send_task_failure(taskToken=task_token, error=error[:256])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in self._GONE:
                return  # nothing waits any more: the flow has decided already
            raise StorageUnavailableError("the access state machine cannot be reached now") from exc
        except BotoCoreError as exc:
            raise StorageUnavailableError("the access state machine cannot be reached now") from exc
