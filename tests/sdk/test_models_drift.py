"""The SDK's models against docs/openapi.json: same schemas, fields, required sets and types.

Each model is turned into its JSON schema by pydantic and compared, property by property, with the
document's schema of the same name, after both are reduced to their shape: types, nullability, items,
map values, enums and references (by schema name). Titles, descriptions, defaults, examples and the
service's constraints (patterns, lengths, bounds) are left out: the SDK states shapes only.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter
from reliquary_sdk import models

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
# FastAPI's own 422 shape: the service answers Problem instead, and the SDK never reads these.
NOT_MODELLED = frozenset({"HTTPValidationError", "ValidationError"})
_SHAPE_KEYS = ("type", "items", "additionalProperties", "enum", "anyOf", "$ref", "const")


@cache
def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOC.read_text(encoding="utf-8"))
    return document


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = _document()["components"]["schemas"]
    return schemas


def _models() -> dict[str, type[Any]]:
    """The SDK's model (or enum) of each schema, by the schema's name."""
    found: dict[str, type[Any]] = {}
    for name in models.__all__:
        value = getattr(models, name)
        if isinstance(value, type) and issubclass(value, BaseModel | StrEnum) and name in _schemas():
            found[name] = value
    return found


def shape(schema: Any) -> Any:
    """The part of a JSON schema that says what a value may be."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key in _SHAPE_KEYS:
        if key not in schema:
            continue
        value = schema[key]
        if key == "$ref":
            out[key] = value.rsplit("/", 1)[-1]
        elif key == "anyOf":
            out[key] = sorted((shape(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
        elif key in ("items", "additionalProperties"):
            out[key] = shape(value)
        elif key == "enum":
            out[key] = sorted(value)
        else:
            out[key] = value
    return out


def _model_schema(model: type[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = TypeAdapter(model).json_schema(by_alias=True, mode="validation")
    defs = schema.get("$defs", {})
    if "$ref" in schema:  # a model whose schema pydantic puts among its own definitions
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _drift(name: str, model: type[Any]) -> list[str]:
    ours, theirs = _model_schema(model), _schemas()[name]
    problems: list[str] = []
    if "enum" in theirs or "enum" in ours:
        if shape(ours) != shape(theirs):
            problems.append(f"{name}: {shape(ours)} != {shape(theirs)}")
        return problems
    our_props, their_props = ours.get("properties", {}), theirs.get("properties", {})
    if set(our_props) != set(their_props):
        missing = sorted(set(their_props) - set(our_props))
        extra = sorted(set(our_props) - set(their_props))
        problems.append(f"{name}: fields missing {missing}, fields not in the document {extra}")
    if set(ours.get("required", [])) != set(theirs.get("required", [])):
        problems.append(
            f"{name}: required {sorted(ours.get('required', []))} != {sorted(theirs.get('required', []))}"
        )
    problems.extend(
        f"{name}.{prop}: {shape(our_props[prop])} != {shape(their_props[prop])}"
        for prop in sorted(set(our_props) & set(their_props))
        if shape(our_props[prop]) != shape(their_props[prop])
    )
    return problems


def test_every_schema_of_the_document_has_a_model() -> None:
    missing = sorted(set(_schemas()) - set(_models()) - NOT_MODELLED)
    assert missing == []


def test_every_model_is_a_schema_of_the_document() -> None:
    for name in models.__all__:
        value = getattr(models, name)
        if isinstance(value, type) and issubclass(value, BaseModel | StrEnum):
            assert name in _schemas() or name in {"Model", "RequestBody"}, name


@pytest.mark.parametrize("name", sorted(_models()))
def test_model_matches_its_schema(name: str) -> None:
    assert _drift(name, _models()[name]) == []


def test_request_bodies_refuse_and_answers_keep_unknown_members() -> None:
    # A request body's schema closes it (additionalProperties: false), and so does its model.
    for name, model in _models().items():
        closed = _schemas()[name].get("additionalProperties") is False
        if issubclass(model, models.RequestBody):
            assert closed, f"{name} is a request body the document leaves open"
    view = models.Health.model_validate({"status": "ok", "version": "1", "region": "eu"})
    assert view.model_extra == {"region": "eu"}


# --- the drift check itself must catch drift ------------------------------------------------------
def test_a_changed_field_a_missing_field_and_a_required_change_are_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schemas = json.loads(json.dumps(_schemas()))
    schemas["Nonce"]["properties"]["expires_at"]["type"] = "string"
    schemas["Health"]["properties"]["uptime"] = {"type": "integer"}
    schemas["VaultList"]["required"] = ["vaults"]
    schemas["MemoryView"]["properties"]["tags"]["additionalProperties"] = {"type": "integer"}
    schemas["Role"]["enum"].append("superuser")
    monkeypatch.setattr(f"{__name__}._schemas", lambda: schemas)
    assert any("Nonce.expires_at" in p for p in _drift("Nonce", models.Nonce))
    assert any("fields missing ['uptime']" in p for p in _drift("Health", models.Health))
    assert any("required" in p for p in _drift("VaultList", models.VaultList))
    assert any("MemoryView.tags" in p for p in _drift("MemoryView", models.MemoryView))
    assert _drift("Role", models.Role) != []


def test_nullability_and_references_are_compared() -> None:
    class Wrong(BaseModel):
        vaults: list[models.VaultDetailView]
        next_cursor: str

    problems = _drift("VaultList", Wrong)
    assert any("VaultList.vaults" in p for p in problems)
    assert any("VaultList.next_cursor" in p for p in problems)
