"""Write (or --check) docs/openapi.json, the OpenAPI document of the API function's app as served at
/v1/openapi.json, and docs/api-reference.md, the reference generated from it (tools/api_reference.py).
`make openapi` after changing a route; a test fails while either differs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "openapi.json"
REFERENCE = ROOT / "docs" / "api-reference.md"
COMMAND = "make openapi"


def _on_path() -> None:
    for entry in (ROOT / "layers" / "native", ROOT / "layers" / "core", ROOT):
        if str(entry) not in sys.path:
            sys.path.insert(0, str(entry))


def document() -> dict[str, object]:
    _on_path()
    from functions.api.app import app  # noqa: PLC0415  (after the path is set)

    return app.openapi()


def render(openapi: dict[str, object]) -> dict[Path, str]:
    """Each generated file and its text."""
    _on_path()
    from tools.api_reference import render as reference  # noqa: PLC0415  (ROOT is on the path by now)

    return {
        DOCUMENT: json.dumps(openapi, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        REFERENCE: reference(openapi),
    }


def stale(outputs: dict[Path, str]) -> list[str]:
    """One message per generated file that is missing or differs from what is committed."""
    messages = []
    for path, text in outputs.items():
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        if not path.is_file():
            messages.append(f"{name} is missing: run {COMMAND}")
        elif path.read_text(encoding="utf-8") != text:
            messages.append(f"{name} is out of date: run {COMMAND}")
    return messages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is out of date")
    args = parser.parse_args(argv)
    outputs = render(document())
    if args.check:
        messages = stale(outputs)
        for message in messages:
            print(message, file=sys.stderr)
        return 1 if messages else 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
