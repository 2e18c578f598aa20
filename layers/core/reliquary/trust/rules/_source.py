"""Reading a rule file's text into plain data, safely: at most 1 MB; YAML through a safe loader that refuses
duplicate keys, aliases (no billion-laughs), and reads ``yes``/``no``/dates as strings (YAML 1.2 core
booleans only); text starting with ``{`` is strict JSON (no PyYAML needed, e.g. in the Lambda layer)."""

from __future__ import annotations

import json
import re
from typing import Any

from reliquary.trust.rules._language import MAX_FILE_BYTES


class SourceError(Exception):
    """The text is not a readable document (kind "syntax"): too big, not YAML/JSON, duplicate keys,
    aliases, too deep."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def read_document(text: str) -> Any:
    """Plain data (dict / list / str / int / float / bool / None) from YAML or JSON text."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise SourceError(f"the file is larger than {MAX_FILE_BYTES} bytes")
    if text.lstrip().startswith("{"):
        return _read_json(text)
    return _read_yaml(text)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SourceError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _read_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise SourceError("the document is nested too deeply") from None
    except ValueError as exc:
        raise SourceError(f"not valid JSON: {exc}") from None


def _read_yaml(text: str) -> Any:
    try:
        import yaml  # noqa: PLC0415  (only YAML needs it; the layer may ship JSON rule sets)
    except ImportError:  # pragma: no cover - PyYAML is in every environment that has YAML rule files
        raise SourceError("PyYAML is not installed: give the rule set as JSON") from None

    class _Loader(yaml.SafeLoader):
        """SafeLoader without aliases, duplicate keys, timestamps or YAML 1.1 booleans."""

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise SourceError(f"aliases are not allowed (line {event.start_mark.line + 1})")
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            keys: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, str):
                    raise SourceError(f"keys must be strings (line {key_node.start_mark.line + 1})")
                if key in keys:
                    raise SourceError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
                keys.add(key)
            return super().construct_mapping(node, deep=deep)

    _Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for first in "tTfF":
        _Loader.yaml_implicit_resolvers.setdefault(first, []).insert(
            0, ("tag:yaml.org,2002:bool", _CORE_BOOL)
        )
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)
    except RecursionError:
        raise SourceError("the document is nested too deeply") from None
    except yaml.YAMLError as exc:
        raise SourceError(f"not valid YAML: {exc}") from None


_DROPPED_TAGS = frozenset({"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"})
_CORE_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
