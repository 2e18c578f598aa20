"""Refusals never quote the caller: a malformed request is answered with where its problems are (as far as
the schema names it) and what kind they are, and an unknown action is not repeated; every refusal is
bounded, whatever the error carries."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from reliquary.contracts.responses import MAX_MESSAGE_CHARS, UNKNOWN_ACTION, event_action, refused
from reliquary.errors import InvalidRequestError, NotFoundError
from reliquary.validation import MAX_LOCATION_PARTS, MAX_PROBLEMS, invalid_request

SECRET = "correct horse battery staple, the caller's own words"


class _Leaf(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: int


class _Store(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["store"]
    tags: dict[str, int] = Field(default_factory=dict)
    items: list[int] = Field(default_factory=list)
    note: str = ""
    tree: dict[str, dict[str, dict[str, dict[str, dict[str, dict[str, dict[str, _Leaf]]]]]]] = Field(
        default_factory=dict
    )

    @field_validator("note")
    @classmethod
    def _plain(cls, note: str) -> str:
        if "\n" in note:
            raise ValueError(f"a note is one line, not {note!r}")  # a validator that quotes its input
        return note


class _Fetch(BaseModel):
    action: Literal["fetch"]
    key: str


REQUEST: TypeAdapter[Any] = TypeAdapter(Annotated[_Store | _Fetch, Field(discriminator="action")])


def refusal(event: Any) -> InvalidRequestError:
    with pytest.raises(ValidationError) as caught:
        REQUEST.validate_python(event)
    return invalid_request(caught.value, schema=REQUEST)


def problems(event: Any) -> list[dict[str, str]]:
    refused = refusal(event)
    assert refused.message == "the request is malformed"
    assert SECRET not in json.dumps(refused.to_dict())
    found: list[dict[str, str]] = refused.details["problems"]
    return found


def test_problems_name_the_schema_s_fields_and_the_kind_of_problem() -> None:
    assert problems({"action": "fetch"}) == [{"field": "fetch.key", "problem": "missing"}]
    assert problems({"action": "store", "items": [1, SECRET]}) == [
        {"field": "store.items.1", "problem": "int_parsing"}
    ]


def test_an_unknown_action_is_not_quoted_and_neither_is_any_other_input() -> None:
    assert problems({"action": SECRET * 1000}) == [{"field": "", "problem": "union_tag_invalid"}]
    # A validator's message that quotes the input: only its kind is answered.
    assert problems({"action": "store", "note": f"{SECRET}\n"}) == [
        {"field": "store.note", "problem": "value_error"}
    ]


def test_keys_the_caller_chose_read_as_a_star() -> None:
    assert problems({"action": "store", SECRET: 1}) == [{"field": "store.*", "problem": "extra_forbidden"}]
    assert problems({"action": "store", "tags": {SECRET: "x"}}) == [
        {"field": "store.tags.*", "problem": "int_parsing"}
    ]


def test_problems_are_bounded_in_number_and_depth() -> None:
    many = problems({"action": "store", "items": [SECRET] * 5000})
    assert len(many) == MAX_PROBLEMS
    deep = {"action": "store", "tree": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"value": SECRET}}}}}}}}}
    (problem,) = problems(deep)
    assert problem["field"] == ".".join(["store", "tree", *"*" * (MAX_LOCATION_PARTS - 2), "..."])
    assert problem["problem"] == "int_parsing"
    answer = json.dumps(
        refusal({"action": "store", "tags": {f"{i}{SECRET}": SECRET for i in range(500)}}).to_dict()
    )
    assert len(answer) < 2048


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ({"action": "store"}, "store"),
        ({"action": "fetch", "key": 1}, "fetch"),
        ({"action": SECRET}, UNKNOWN_ACTION),
        ({"action": "Store"}, UNKNOWN_ACTION),
        ({"action": ["store"]}, UNKNOWN_ACTION),
        ({"action": 7}, UNKNOWN_ACTION),
        ({}, UNKNOWN_ACTION),
        ("store", UNKNOWN_ACTION),
        (None, UNKNOWN_ACTION),
        ([{"action": "store"}], UNKNOWN_ACTION),
    ],
)
def test_the_answer_names_an_action_only_if_the_function_knows_it(event: Any, action: str) -> None:
    assert event_action(event, REQUEST) == action


def test_a_refusal_is_bounded_whatever_the_error_carries() -> None:
    small = refused(NotFoundError("no such item", item_id="customer-42-notes"), "grant")
    assert small == {
        "status": "error",
        "action": "grant",
        "error": {
            "code": "not_found",
            "type": "NotFoundError",
            "message": "no such item",
            "details": {"item_id": "customer-42-notes"},
            "retryable": False,
        },
    }
    # A domain error that names what the caller sent (a policy's rule id, say), at any size.
    body = refused(InvalidRequestError(SECRET * 3000, rule=SECRET * 3000, score=math.nan), "set_policy")[
        "error"
    ]
    assert len(body["message"]) == MAX_MESSAGE_CHARS
    assert body["message"].endswith("…")
    assert body["details"] == {"rule": SECRET * 4 + SECRET[: 256 - 4 * len(SECRET) - 1] + "…", "score": None}
    nested = {"errors": [{"rule": str(i) * 200, "deeper": [[[["x"]]]]} for i in range(1000)]}
    body = refused(InvalidRequestError("2 errors in rule set", **nested), "set_policy")["error"]
    assert body["details"] == {"omitted": "the details are too large to answer"}
    deep = refused(InvalidRequestError("deep", path=[[[[[["x"]]]]]]), "set_policy")["error"]
    assert deep["details"] == {"path": [[["…"]]]}
    assert len(json.dumps(deep, allow_nan=False)) < 256
