"""Lint the Step Functions definitions with statelint (cfn-lint and `sam validate --lint` skip them).

    python tools/lint_state_machine.py [FILE ...]    # default: every infra/statemachine/*.asl.json

Fails when no definition is found (an empty glob must not pass for a clean lint), when a file is missing, is
not JSON or not a JSON object (statelint reads a missing path as inline JSON text and passes any non-object),
or when statelint reports a problem.

The definitions name their functions through DefinitionSubstitutions placeholders (`"Resource":
"${VerifyProofFunctionArn}"`), which CloudFormation fills at deploy time. statelint's URI check wants a Task
`Resource` to be a string starting with a scheme; `--ignore=URI` would also let a non-string Resource
through, so instead each whole-string placeholder in a `Resource` is replaced by an ARN-shaped stand-in and
the URI check stays on.

`--ignore=FLOAT` is kept: statelint wants `BackoffRate` written with a decimal point (2.0), but JSON and Step
Functions do not distinguish 2 from 2.0. Its lower bound (at least 1) is still checked.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from statelint.cli import main as statelint

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = "infra/statemachine/*.asl.json"
IGNORED = "FLOAT"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def stand_in(node: Any) -> Any:
    """The document with every `"Resource": "${Name}"` replaced by `arn:aws:substitution:::Name`."""
    if isinstance(node, list):
        return [stand_in(item) for item in node]
    if not isinstance(node, dict):
        return node
    replaced: dict[str, Any] = {}
    for key, value in node.items():
        match = PLACEHOLDER.fullmatch(value) if key == "Resource" and isinstance(value, str) else None
        replaced[key] = f"arn:aws:substitution:::{match[1]}" if match else stand_in(value)
    return replaced


def lint_file(path: Path) -> int:
    shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    print(f"statelint {shown}", flush=True)
    if not path.is_file():
        print(f"{shown}: no such file", file=sys.stderr)
        return 1
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        print(f"{shown}: not JSON: {error}", file=sys.stderr)
        return 1
    if not isinstance(document, dict):
        print(f"{shown}: not a JSON object", file=sys.stderr)
        return 1
    # statelint takes a path or the JSON text itself; the text here is the document with stand-ins.
    return int(statelint([f"--ignore={IGNORED}", json.dumps(stand_in(document))]))


def lint(paths: list[Path]) -> int:
    """Lint each definition; return 0 only if every one is clean (all are linted, even after a failure)."""
    if not paths:
        print(f"no state machine definition matches {DEFINITIONS}", file=sys.stderr)
        return 1
    results = [lint_file(path) for path in paths]
    return 1 if any(results) else 0


def main(argv: list[str]) -> int:
    paths = [Path(arg).resolve() for arg in argv] if argv else sorted(REPO_ROOT.glob(DEFINITIONS))
    return lint(paths)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
