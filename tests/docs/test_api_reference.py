"""tools/api_reference.py on documents other than today's: the reference must follow any valid OpenAPI
document (routes are added on other branches), link what it names, and never vary from run to run."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from functions.api.app import app
from tools.api_reference import operation_anchor, render, schema_anchor

ROOT = Path(__file__).resolve().parents[2]

SMALL: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Widgets", "version": "2.1.0", "description": "Widgets as a service."},
    "tags": [{"name": "widgets", "description": "Making widgets."}],
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "A token."},
            "oauth": {
                "type": "oauth2",
                "flows": {"clientCredentials": {"tokenUrl": "/token", "scopes": {"widgets:write": "Make."}}},
            },
        },
        "parameters": {
            "Limit": {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 9},
            }
        },
        "schemas": {
            "Widget": {
                "type": "object",
                "description": "A widget.",
                "required": ["name", "parts"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a|b]+$"},
                    "colour": {"anyOf": [{"enum": ["red", "blue"]}, {"type": "null"}], "default": None},
                    "parts": {
                        "type": "array",
                        "maxItems": 3,
                        "items": {
                            "type": "object",
                            "required": ["kind"],
                            "properties": {
                                "kind": {"$ref": "#/components/schemas/Kind"},
                                "count": {"type": "integer"},
                            },
                        },
                    },
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "Kind": {"type": "string", "enum": ["bolt", "nut"], "description": "What a part is."},
            "Problem": {"type": "object", "properties": {"code": {"type": "string"}}},
        },
    },
    "paths": {
        "/v2/widgets/{widget_id}": {
            "parameters": [
                {"name": "widget_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "put": {
                "tags": ["widgets"],
                "summary": "Replace Widget",
                "security": [{"oauth": ["widgets:write"]}],
                "parameters": [
                    {"$ref": "#/components/parameters/Limit"},
                    {"name": "If-Match", "in": "header", "required": True, "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/Widget"},
                            "examples": {"one": {"value": {"name": "ab", "parts": [{"kind": "nut"}]}}},
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The widget.",
                        "headers": {"ETag": {"schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Widget"}}},
                    },
                    "409": {
                        "description": "Changed meanwhile (`conflict`, `precondition_failed`)",
                        "content": {
                            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                        },
                    },
                },
            },
            "get": {"summary": "Get Widget", "responses": {"200": {"description": "ok"}}, "security": []},
        }
    },
}

ANCHOR = re.compile(r'<a id="([^"]+)"></a>')
LINK = re.compile(r"\]\(#([^)]+)\)")


def _anchors_and_links(text: str) -> tuple[list[str], set[str]]:
    return ANCHOR.findall(text), set(LINK.findall(text))


def test_every_operation_and_schema_of_a_new_document_is_rendered_with_what_it_declares() -> None:
    text = render(SMALL)
    assert text.startswith("# Widgets API reference\n")
    assert "API version 2.1.0" in text
    assert "Widgets as a service." in text
    # Grouped by tag (declared tags first, untagged operations under "other"), with the tag's description.
    assert text.index("## widgets") < text.index("## other") < text.index("## Schemas")
    assert "Making widgets." in text
    put = text[text.index("### `PUT /v2/widgets/{widget_id}`") : text.index("## other")]
    assert "- Auth: `oauth` (scopes `widgets:write`)" in put
    # Path-level and referenced parameters are merged with the operation's, each with type and constraints.
    assert "| `widget_id` | path | string | yes |" in put
    assert "| `limit` | query | integer | no | ≥ 1; ≤ 9 |" in put
    assert "| `If-Match` | header | string | yes |" in put
    # Body fields: required, limits (a pipe in a pattern escaped for the table), nested inline items, links.
    assert "`application/json`: [Widget](#schema-Widget)" in put
    assert "| `name` | string | yes | min length 1; max length 64; pattern `^[a\\|b]+$` |" in put
    assert "| `parts` | array of object | yes | max items 3 |" in put
    assert "| `parts[].kind` | [Kind](#schema-Kind) | yes |" in put
    assert "| `colour` | one of `red`, `blue` \\| null | no | default `null` |" in put
    assert "| `labels` | map of string to string | no |" in put
    assert '"name": "ab"' in put
    assert "PUT /v2/widgets/{widget_id}" in put
    assert "| 200 | The widget. (headers: `ETag`) |" in put
    assert "| 409 |" in put
    assert "`conflict`, `precondition_failed` |" in put
    get = text[text.index("### `GET /v2/widgets/{widget_id}`") :]
    assert "- Auth: none" in get  # an empty requirement list overrides the document's default
    assert "- **`oauth`**: OAuth2 (clientCredentials)." in text
    assert "clientCredentials scope `widgets:write`: Make." in text
    assert "Type: one of `bolt`, `nut`" in text
    assert "What a part is." in text


def test_anchors_are_unique_and_every_link_lands_on_one() -> None:
    for document in (SMALL, app.openapi()):
        anchors, links = _anchors_and_links(render(document))
        assert len(anchors) == len(set(anchors))
        headings = {"authentication", "schemas"}
        assert links <= set(anchors) | headings, links - set(anchors) - headings


def test_anchors_are_the_method_and_path_and_do_not_move_with_the_summary() -> None:
    assert operation_anchor("post", "/v1/vaults/{vault_id}/memories") == "post-v1-vaults-vault_id-memories"
    assert operation_anchor("GET", "/.well-known/jwks.json") == "get--well-known-jwks-json"
    assert schema_anchor("NewMemory") == "schema-NewMemory"
    renamed = copy.deepcopy(SMALL)
    renamed["paths"]["/v2/widgets/{widget_id}"]["put"]["summary"] = "Overwrite"
    assert _anchors_and_links(render(renamed))[0] == _anchors_and_links(render(SMALL))[0]


def test_a_route_added_to_the_apps_document_appears_in_its_group() -> None:
    document = app.openapi()
    grown = copy.deepcopy(document)
    grown["paths"]["/v1/access-requests/{request_id}/item"] = {
        "get": {
            "tags": ["access requests"],
            "summary": "Sealed Item",
            "security": [{"HTTPBearer": []}],
            "parameters": [
                {"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {"404": {"description": "No live grant (`not_found`)"}},
        }
    }
    text = render(grown)
    section = text[text.index("## access requests") : text.index("## approvals")]
    assert "### `GET /v1/access-requests/{request_id}/item`" in section
    assert "| 404 | No live grant (`not_found`) | - | `not_found` |" in section
    assert render(document) != text


def test_the_output_is_deterministic_whatever_the_key_order() -> None:
    document = app.openapi()
    shuffled = json.loads(json.dumps(document, sort_keys=True))
    shuffled["paths"] = dict(reversed(list(shuffled["paths"].items())))
    shuffled["components"]["schemas"] = dict(reversed(list(shuffled["components"]["schemas"].items())))
    assert render(shuffled) == render(document)
    assert not re.search(r"20\d\d-\d\d-\d\d", render(document))  # no timestamps


def test_the_committed_reference_covers_every_operation_and_schema() -> None:
    document = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    anchors = set(_anchors_and_links((ROOT / "docs" / "api-reference.md").read_text(encoding="utf-8"))[0])
    for path, item in document["paths"].items():
        for method in item:
            assert operation_anchor(method, path) in anchors, (method, path)
    for name in document["components"]["schemas"]:
        assert schema_anchor(name) in anchors, name
