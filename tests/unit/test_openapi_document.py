"""The committed OpenAPI document is the app's, and the committed reference is the document's: a route,
model or response changed without regenerating docs/openapi.json and docs/api-reference.md (`make
openapi`, i.e. python tools/openapi.py) fails here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from functions.api.app import app
from tools import openapi

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_committed_document_is_the_apps() -> None:
    committed = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    assert committed == app.openapi(), "docs/openapi.json is out of date: run make openapi"


def test_the_committed_files_are_what_make_openapi_writes() -> None:
    """`tools/openapi.py --check`'s own comparison: the document byte for byte and the reference."""
    assert openapi.stale(openapi.render(app.openapi())) == []
    assert openapi.main(["--check"]) == 0


def test_check_names_each_stale_file_and_the_command(tmp_path: Path) -> None:
    outputs = openapi.render(app.openapi())
    copies = {tmp_path / path.name: text for path, text in outputs.items()}
    for path, text in copies.items():
        path.write_text(text, encoding="utf-8")
    assert openapi.stale(copies) == []
    reference = tmp_path / "api-reference.md"
    reference.write_text(copies[reference].replace("### `GET /v1/health`", "### `GET /v1/healthz`"))
    (tmp_path / "openapi.json").unlink()
    assert sorted(openapi.stale(copies)) == sorted(
        [
            f"{reference} is out of date: run make openapi",
            f"{tmp_path / 'openapi.json'} is missing: run make openapi",
        ]
    )


def test_every_path_is_versioned_and_every_operation_documents_its_problems() -> None:
    document = app.openapi()
    assert document["openapi"].startswith("3.")
    for path, operations in document["paths"].items():
        assert path.startswith(("/v1/", "/.well-known/")), path
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"400", "429", "500", "503"} <= set(responses), (method, path)
            assert "application/problem+json" in responses["400"]["content"], (method, path)


def test_authenticated_operations_declare_the_bearer_scheme() -> None:
    document = app.openapi()
    open_routes = {
        ("get", "/v1/health"),
        ("get", "/.well-known/jwks.json"),
        ("get", "/.well-known/did.json"),
        ("post", "/v1/oauth2/token"),
        # A passkey sign-in: the assertion is the credential, no token yet.
        ("post", "/v1/webauthn/authentication/options"),
        ("post", "/v1/webauthn/authentication/verify"),
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            secured = bool(operation.get("security"))
            assert secured == ((method, path) not in open_routes), (method, path)
            if secured:
                assert {"401", "403"} <= set(operation["responses"]), (method, path)


def _references(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def test_every_reference_resolves() -> None:
    """A dangling ``$ref`` (a model no route of FastAPI's own declares) leaves clients and generated
    tests without the schema: the policies' PUT body had three."""
    document = app.openapi()
    references = set(_references(document))
    assert references
    for reference in references:
        node: object = document
        assert reference.startswith("#/"), reference
        for part in reference[2:].split("/"):
            assert isinstance(node, dict), reference
            assert part in node, reference
            node = node[part]
