"""Loading rule sets from files and the package, and the shipped JSON Schema."""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

from reliquary.trust.rules._engine import RuleSet
from reliquary.trust.rules._language import MAX_FILE_BYTES
from reliquary.trust.rules._validate import RuleError, parse_rule_set, raise_errors

_PACKAGE = "reliquary.trust.rules"


def load_rule_set(path: str | Path) -> RuleSet:
    """Read, validate and compile the rule set in ``path`` (YAML, or JSON); errors name the file."""
    path = Path(path)
    with path.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise_errors([RuleError("syntax", f"the file is larger than {MAX_FILE_BYTES} bytes")], str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise_errors([RuleError("syntax", "the file is not UTF-8")], str(path))
        raise  # pragma: no cover
    return parse_rule_set(text, source=str(path))


@functools.cache
def _schema_text() -> str:
    return resources.files(_PACKAGE).joinpath("schema.json").read_text(encoding="utf-8")


def schema() -> dict[str, Any]:
    """The JSON Schema of a rule set's structure (a fresh copy of the shipped ``schema.json``)."""
    value: dict[str, Any] = json.loads(_schema_text())
    return copy.deepcopy(value)


@functools.cache
def default_rule_set() -> RuleSet:
    """The shipped default policy (``default_rules.yaml``), loaded once."""
    text = resources.files(_PACKAGE).joinpath("default_rules.yaml").read_text(encoding="utf-8")
    return parse_rule_set(text, source="reliquary.trust.rules/default_rules.yaml")
