"""docs/api-reference.md from an OpenAPI 3.x document: operations grouped by tag, then every schema.

A pure function of the document (no clock, no environment, sorted where the document is unordered),
so `tools/openapi.py --check` can compare the committed file byte for byte. Anchors are explicit
``<a id>`` tags built from the method and path (operations) and the name (schemas): they do not move
when a summary is reworded, and they do not depend on a Markdown renderer's heading slugs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

Node = Mapping[str, Any]

METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")
# Keywords shown as a field's constraints, in this order, with the words they read as.
CONSTRAINTS = (
    ("minLength", "min length"),
    ("maxLength", "max length"),
    ("pattern", "pattern"),
    ("minimum", "≥"),
    ("exclusiveMinimum", ">"),
    ("maximum", "≤"),
    ("exclusiveMaximum", "<"),
    ("multipleOf", "multiple of"),
    ("minItems", "min items"),
    ("maxItems", "max items"),
    ("uniqueItems", "unique items"),
    ("minProperties", "min properties"),
    ("maxProperties", "max properties"),
    ("default", "default"),
)
FLAGS = {"readOnly": "read-only", "writeOnly": "write-only", "deprecated": "deprecated"}
NONE = "-"  # an empty table cell
PROBLEM_CODE = re.compile(r"`([a-z][a-z0-9_]*)`")
UNTAGGED = "other"
# Inline objects nested deeper than this are shown as `object` (a schema that recurses inline).
MAX_DEPTH = 4


def render(document: Node) -> str:
    """The Markdown reference of ``document``."""
    return "\n".join(_Reference(document).lines()).rstrip("\n") + "\n"


def operation_anchor(method: str, path: str) -> str:
    """``post /v1/vaults/{vault_id}/memories`` -> ``post-v1-vaults-vault_id-memories``."""
    words = re.findall(r"[A-Za-z0-9_.]+", path)
    return "-".join([method.lower(), *(w.replace(".", "-") for w in words)])


def schema_anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def tag_anchor(tag: str) -> str:
    return "tag-" + re.sub(r"[^a-z0-9]+", "-", tag.lower()).strip("-")


def _cell(text: str) -> str:
    """Text fit for one table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


class _Reference:
    def __init__(self, document: Node) -> None:
        self.document = document
        components = document.get("components") or {}
        self.schemas: Node = components.get("schemas") or {}
        self.schemes: Node = components.get("securitySchemes") or {}

    # -- the page ---------------------------------------------------------------------------------

    def lines(self) -> Iterator[str]:
        info = self.document.get("info") or {}
        title = info.get("title", "API")
        yield f"# {title} API reference"
        yield ""
        yield (
            "Generated from [`openapi.json`](openapi.json) by `tools/openapi.py` (`make openapi`); "
            "do not edit by hand: a test fails while the two differ."
        )
        yield ""
        yield f"OpenAPI {self.document.get('openapi', '?')}, API version {info.get('version', '?')}."
        yield ""
        if info.get("description"):
            yield info["description"].strip()
            yield ""
        for server in self.document.get("servers") or []:
            yield f"- Server: `{server.get('url', '')}` {server.get('description', '')}".rstrip()
        groups = self._groups()
        yield "## Contents"
        yield ""
        yield "- [Authentication](#authentication)"
        for tag, operations in groups.items():
            yield f"- [{tag}](#{tag_anchor(tag)})"
            for method, path, operation in operations:
                summary = operation.get("summary") or ""
                yield f"  - [`{method.upper()} {path}`](#{operation_anchor(method, path)}) {summary}".rstrip()
        if self.schemas:
            yield "- [Schemas](#schemas)"
        yield ""
        yield from self._authentication()
        for tag, operations in groups.items():
            yield f'<a id="{tag_anchor(tag)}"></a>'
            yield ""
            yield f"## {tag}"
            yield ""
            description = self._tag_description(tag)
            if description:
                yield description
                yield ""
            for method, path, operation in operations:
                yield from self._operation(method, path, operation)
        if self.schemas:
            yield "## Schemas"
            yield ""
            for name in sorted(self.schemas):
                yield from self._schema(name, self.schemas[name])

    def _groups(self) -> dict[str, list[tuple[str, str, Node]]]:
        """Operations by their first tag: the document's tag order first, then the rest by name."""
        found: dict[str, list[tuple[str, str, Node]]] = {}
        for path in sorted(self.document.get("paths") or {}):
            item = self.document["paths"][path]
            for method in METHODS:
                if method in item:
                    operation = item[method]
                    tag = (operation.get("tags") or [UNTAGGED])[0]
                    found.setdefault(tag, []).append((method, path, operation))
        declared = [t["name"] for t in self.document.get("tags") or [] if t.get("name") in found]
        order = declared + sorted(t for t in found if t not in declared)
        return {tag: found[tag] for tag in order}

    def _tag_description(self, tag: str) -> str:
        for declared in self.document.get("tags") or []:
            if declared.get("name") == tag:
                return str(declared.get("description") or "").strip()
        return ""

    def _authentication(self) -> Iterator[str]:
        yield "## Authentication"
        yield ""
        if not self.schemes:
            yield "The document declares no security schemes."
            yield ""
            return
        for name in sorted(self.schemes):
            scheme = self.schemes[name]
            kind = scheme.get("type", "?")
            detail = {
                "http": f"HTTP `{scheme.get('scheme', '')}`"
                + (f" ({scheme['bearerFormat']})" if scheme.get("bearerFormat") else ""),
                "apiKey": f"API key in the {scheme.get('in', '?')} `{scheme.get('name', '')}`",
                "oauth2": "OAuth2 (" + ", ".join(sorted(scheme.get("flows") or {})) + ")",
                "openIdConnect": f"OpenID Connect (`{scheme.get('openIdConnectUrl', '')}`)",
            }.get(kind, kind)
            line = f"- **`{name}`**: {detail}."
            if scheme.get("description"):
                line += " " + " ".join(str(scheme["description"]).split())
            yield line
            for flow_name, flow in sorted((scheme.get("flows") or {}).items()):
                for scope, meaning in sorted((flow.get("scopes") or {}).items()):
                    yield f"  - {flow_name} scope `{scope}`: {meaning}"
        yield ""
        if self.document.get("security"):
            yield "Operations require by default: " + self._security(self.document["security"]) + "."
            yield ""

    # -- operations -------------------------------------------------------------------------------

    def _security(self, requirements: list[Node]) -> str:
        if not requirements or requirements == [{}]:
            return "none"
        alternatives = []
        for requirement in requirements:
            if not requirement:
                alternatives.append("none")
                continue
            parts = []
            for name, scopes in sorted(requirement.items()):
                parts.append(
                    f"`{name}`" + (f" (scopes {', '.join(_code(s) for s in scopes)})" if scopes else "")
                )
            alternatives.append(" and ".join(parts))
        return " or ".join(alternatives)

    def _operation(self, method: str, path: str, operation: Node) -> Iterator[str]:
        yield f'<a id="{operation_anchor(method, path)}"></a>'
        yield ""
        yield f"### `{method.upper()} {path}`"
        yield ""
        if operation.get("summary"):
            yield f"**{operation['summary'].strip()}**" + (
                " (deprecated)" if operation.get("deprecated") else ""
            )
            yield ""
        if operation.get("description"):
            yield operation["description"].strip()
            yield ""
        security = operation.get("security", self.document.get("security"))
        yield "- Auth: " + (self._security(security) if security is not None else "none")
        if operation.get("operationId"):
            yield f"- Operation id: `{operation['operationId']}`"
        for key in sorted(k for k in operation if k.startswith("x-")):
            yield f"- `{key}`: {_code(operation[key])}"
        yield ""
        parameters = self._parameters(path, operation)
        if parameters:
            yield "| parameter | in | type | required | constraints | description |"
            yield "| --- | --- | --- | --- | --- | --- |"
            for parameter in parameters:
                schema = parameter.get("schema") or {}
                description = parameter.get("description") or schema.get("description") or ""
                yield (
                    f"| `{parameter.get('name', '?')}` | {parameter.get('in', '?')} | {self._type(schema)} | "
                    f"{'yes' if parameter.get('required') else 'no'} | {_cell(self._constraints(schema))} | "
                    f"{_cell(description)} |"
                )
            yield ""
        body = operation.get("requestBody")
        if body:
            yield from self._request_body(method, path, body)
        yield from self._responses(operation.get("responses") or {})

    def _parameters(self, path: str, operation: Node) -> list[Node]:
        """The path item's parameters overridden by the operation's (same name and location)."""
        merged: dict[tuple[str, str], Node] = {}
        path_item = self.document["paths"][path]
        for parameter in [*(path_item.get("parameters") or []), *(operation.get("parameters") or [])]:
            resolved = self._resolve(parameter)
            merged[(resolved.get("in", ""), resolved.get("name", ""))] = resolved
        return list(merged.values())

    def _request_body(self, method: str, path: str, body: Node) -> Iterator[str]:
        body = self._resolve(body)
        required = "required" if body.get("required") else "optional"
        yield f"**Request body** ({required})" + (
            f": {body['description'].strip()}" if body.get("description") else ""
        )
        yield ""
        for media, content in sorted((body.get("content") or {}).items()):
            schema = content.get("schema") or {}
            yield f"`{media}`: {self._type(schema)}"
            yield ""
            yield from self._fields_table(schema)
            example = self._example(content)
            if example is not None:
                yield "Example request:"
                yield ""
                yield from self._example_request(method, path, media, example)
                yield ""

    def _example(self, content: Node) -> Any:  # any JSON value, or None
        """The media type's example, else its first named example, else the schema's own."""
        if "example" in content:
            return content["example"]
        for name in sorted(content.get("examples") or {}):
            example = self._resolve(content["examples"][name])
            if "value" in example:
                return example["value"]
        schema = self._resolve(content.get("schema") or {})
        if "example" in schema:
            return schema["example"]
        if schema.get("examples"):
            return schema["examples"][0]
        return None

    def _example_request(self, method: str, path: str, media: str, example: object) -> Iterator[str]:
        yield "```text"
        yield f"{method.upper()} {path}"
        yield f"Content-Type: {media}"
        yield ""
        if isinstance(example, str):
            yield example
        else:
            yield json.dumps(example, indent=2, sort_keys=True, ensure_ascii=False)
        yield "```"

    def _responses(self, responses: Node) -> Iterator[str]:
        if not responses:
            return
        yield "**Responses**"
        yield ""
        yield "| status | description | body | problem codes |"
        yield "| --- | --- | --- | --- |"
        for status in sorted(responses, key=lambda s: (not s[:1].isdigit(), s)):
            response = self._resolve(responses[status])
            description = str(response.get("description") or "")
            codes = sorted(set(PROBLEM_CODE.findall(description))) if status[:1] in "45" else []
            bodies: dict[str, list[str]] = {}
            for media, content in sorted((response.get("content") or {}).items()):
                bodies.setdefault(self._type(content.get("schema") or {}), []).append(f"`{media}`")
            body = "; ".join(f"{', '.join(medias)}: {kind}" for kind, medias in bodies.items()) or NONE
            headers = ", ".join(f"`{h}`" for h in sorted(response.get("headers") or {}))
            if headers:
                description += f" (headers: {headers})"
            yield (
                f"| {status} | {_cell(description)} | {_cell(body)} | "
                f"{', '.join(f'`{c}`' for c in codes) or NONE} |"
            )
        yield ""

    # -- schemas ----------------------------------------------------------------------------------

    def _schema(self, name: str, schema: Node) -> Iterator[str]:
        yield f'<a id="{schema_anchor(name)}"></a>'
        yield ""
        yield f"### {name}"
        yield ""
        if schema.get("description"):
            yield schema["description"].strip()
            yield ""
        rows = list(self._field_rows(schema, "", 0))
        if rows:
            yield from self._fields_table(schema)
        else:
            yield f"Type: {self._type(schema)}" + (
                f"; {_cell(self._constraints(schema))}" if self._constraints(schema) else ""
            )
            yield ""

    def _fields_table(self, schema: Node) -> Iterator[str]:
        rows = list(self._field_rows(self._resolve(schema), "", 0))
        if not rows:
            return
        yield "| field | type | required | constraints | description |"
        yield "| --- | --- | --- | --- | --- |"
        for field, kind, required, constraints, description in rows:
            yield f"| `{field}` | {kind} | {required} | {_cell(constraints)} | {_cell(description)} |"
        yield ""

    def _field_rows(self, schema: Node, prefix: str, depth: int) -> Iterator[tuple[str, str, str, str, str]]:
        """One row per property; an inline object's (or an array of inline objects') properties follow
        as ``parent.child`` / ``parent[].child``. Referenced schemas are linked, not expanded."""
        properties: Node = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        for name in sorted(properties):
            field = self._resolve_ref_free(properties[name])
            yield (
                prefix + name,
                self._type(field),
                "yes" if name in required else "no",
                self._constraints(field),
                str(field.get("description") or ""),
            )
            if depth >= MAX_DEPTH:
                continue
            inline = self._inline_object(field)
            if inline is not None:
                suffix = "[]." if self._is_array(field) else "."
                yield from self._field_rows(inline, prefix + name + suffix, depth + 1)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict) and additional and properties:
            yield (prefix + "*", self._type(additional), "no", self._constraints(additional), "any other key")

    @staticmethod
    def _is_array(schema: Node) -> bool:
        return schema.get("type") == "array"

    def _inline_object(self, schema: Node) -> Node | None:
        """The inline object schema whose properties a field's rows should list, if any."""
        for candidate in [
            schema,
            schema.get("items") or {},
            *(schema.get("anyOf") or []),
            *(schema.get("oneOf") or []),
        ]:
            if isinstance(candidate, dict) and "$ref" not in candidate and candidate.get("properties"):
                return candidate
            if isinstance(candidate, dict) and candidate.get("type") == "array":
                items = candidate.get("items") or {}
                if "$ref" not in items and items.get("properties"):
                    return items
        return None

    # -- types and constraints ------------------------------------------------------------------

    def _type(self, schema: Node) -> str:
        """A schema as a short type expression; references are links to the schema's section."""
        if not isinstance(schema, dict) or not schema:
            return "any"
        for keyword, spell in self._spellings:
            if keyword in schema:
                return spell(self, schema)
        return "any"

    def _reference_type(self, schema: Node) -> str:
        reference = str(schema["$ref"])
        if reference.startswith("#/components/schemas/"):
            name = reference.rsplit("/", 1)[-1]
            return f"[{name}](#{schema_anchor(name)})"
        return _code(reference)

    def _listed_type(self, schema: Node) -> str:
        kind = schema["type"]
        if isinstance(kind, list):
            return " \\| ".join(self._type({**schema, "type": k}) for k in kind)
        if kind == "array":
            return f"array of {self._type(schema.get('items') or {})}"
        if kind == "object":
            return self._object_type(schema)
        return f"{kind}" + (f" ({schema['format']})" if schema.get("format") else "")

    def _object_type(self, schema: Node) -> str:
        additional = schema.get("additionalProperties")
        if not schema.get("properties") and isinstance(additional, dict) and additional:
            return f"map of string to {self._type(additional)}"
        return "object"

    # Which keyword decides how a schema is spelled, first match wins.
    _spellings: tuple[tuple[str, Callable[[_Reference, Node], str]], ...] = (
        ("$ref", _reference_type),
        ("const", lambda _, s: _code(s["const"])),
        ("enum", lambda _, s: "one of " + ", ".join(_code(v) for v in s["enum"])),
        ("anyOf", lambda self, s: " \\| ".join(self._type(x) for x in s["anyOf"])),
        ("oneOf", lambda self, s: " \\| ".join(self._type(x) for x in s["oneOf"])),
        ("allOf", lambda self, s: " & ".join(self._type(x) for x in s["allOf"])),
        ("type", _listed_type),
        ("properties", _object_type),
    )

    def _constraints(self, schema: Node) -> str:
        """The validation keywords of a schema and of its alternatives (an optional field's non-null one),
        then its array items', its flags and its first example."""
        parts: list[str] = []
        for candidate in [schema, *(schema.get("anyOf") or []), *(schema.get("oneOf") or [])]:
            if not isinstance(candidate, dict):
                continue
            for part in self._keywords(candidate):
                if part not in parts:
                    parts.append(part)
        parts += [words for flag, words in FLAGS.items() if schema.get(flag)]
        if schema.get("examples"):
            parts.append("e.g. " + _code(schema["examples"][0]))
        elif "example" in schema:
            parts.append("e.g. " + _code(schema["example"]))
        return "; ".join(parts)

    def _keywords(self, schema: Node) -> Iterator[str]:
        for key, words in CONSTRAINTS:
            if key not in schema:
                continue
            value = schema[key]
            if key == "pattern":
                yield f"{words} {_code(value)}"
            elif key == "default":
                yield f"{words} {_code(json.dumps(value, sort_keys=True, ensure_ascii=False))}"
            elif key == "uniqueItems":
                if value:
                    yield words
            else:
                yield f"{words} {value}"
        items = schema.get("items")
        if isinstance(items, dict) and "$ref" not in items:
            inner = self._constraints(items)
            if inner:
                yield f"each: {inner}"

    # -- references -----------------------------------------------------------------------------

    def _resolve(self, node: Node) -> Node:
        """Follow local ``$ref``s (parameters, bodies, responses, examples, schemas) to their target."""
        seen: set[str] = set()
        while isinstance(node, dict) and "$ref" in node and str(node["$ref"]).startswith("#/"):
            reference = str(node["$ref"])
            if reference in seen:
                break
            seen.add(reference)
            target: Any = self.document
            for escaped in reference[2:].split("/"):
                part = escaped.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    return node
                target = target[part]
            node = target
        return node

    @staticmethod
    def _resolve_ref_free(node: Node) -> Node:
        # A field keeps its $ref (shown as a link); only a non-dict value is normalised away.
        return node if isinstance(node, dict) else {}
