"""Trust: risk-based scoring of access requests (``score``), the facts rules read (``facts``), the
principal's access history (``summarize``, ``HistoryStore``) and the templates that parameterize scoring
(``load_template``). The rule language lives in ``reliquary.trust.rules``."""

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
