"""Trust: risk-based scoring of access requests (``score``), the facts rules read (``facts``), the
principal's access history (``summarize``, ``HistoryStore``) and the templates that parameterize scoring
(``load_template``). The rule language lives in ``reliquary.trust.rules``.

The names below load with the submodule that defines them, on first use (PEP 562): importing one part of
the package (``reliquary.trust.facts`` for the agents, ``reliquary.trust.model`` for the history store)
does not load scoring, the templates' models or PyYAML, which only scoring and a template read need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The submodule ``facts`` is loaded here and its binding on the package dropped, so that the package's
# ``facts`` stays what it always was, scoring's function, whatever loads first. Imports of the submodule
# (``from reliquary.trust.facts import ...``) are unaffected: it is in sys.modules, and an import that
# finds it there binds nothing on the package.
importlib.import_module(f"{__name__}.facts")
del globals()["facts"]

if TYPE_CHECKING:
    from reliquary.trust.history import HistoryStore, InMemoryHistoryStore, summarize
    from reliquary.trust.model import (
        AccessEvent,
        ContextFacts,
        Factor,
        HistoryStats,
        Principal,
        TrustRequest,
        TrustScore,
    )
    from reliquary.trust.scoring import facts, score
    from reliquary.trust.templates import FACTOR_NAMES, TrustTemplate, load_template, template_names

# public name -> the submodule that defines it
_EXPORTS = {
    "FACTOR_NAMES": "templates",
    "AccessEvent": "model",
    "ContextFacts": "model",
    "Factor": "model",
    "HistoryStats": "model",
    "HistoryStore": "history",
    "InMemoryHistoryStore": "history",
    "Principal": "model",
    "TrustRequest": "model",
    "TrustScore": "model",
    "TrustTemplate": "templates",
    "facts": "scoring",
    "load_template": "templates",
    "score": "scoring",
    "summarize": "history",
    "template_names": "templates",
}

__all__ = [
    "FACTOR_NAMES",
    "AccessEvent",
    "ContextFacts",
    "Factor",
    "HistoryStats",
    "HistoryStore",
    "InMemoryHistoryStore",
    "Principal",
    "TrustRequest",
    "TrustScore",
    "TrustTemplate",
    "facts",
    "load_template",
    "score",
    "summarize",
    "template_names",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
