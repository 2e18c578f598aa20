"""Only a vote loads LangGraph, when it first builds an agent's graph: the quorum policy, the tally, the
rules' requirement, the sealed memories and the vote model (which contracts, factories and other functions
import), and the registry, the built-in agents, the service and the stage load without it; and
``reliquary.agents`` still offers every name it documents, each loaded on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import reliquary.agents

REPO = Path(__file__).resolve().parents[2]
LIGHT = (
    "policy",
    "tally",
    "requirement",
    "memory",
    "model",
    "graph",
    "builtin",
    "registry",
    "service",
    "stage",
)


def _fresh(code: str) -> str:
    done = subprocess.run(  # noqa: S603  (this interpreter, a fixed probe)
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env={"PYTHONPATH": f"{REPO}:{REPO / 'layers' / 'core'}:{REPO / 'layers' / 'native'}", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_light_modules_load_without_langgraph_and_the_vote_path_still_votes() -> None:
    out = _fresh(
        f"""
        import sys
        for name in {LIGHT!r}:
            __import__(f"reliquary.agents.{{name}}")
        import reliquary.contracts.agent_vote, reliquary.adapters.agent_memory
        print("before", sorted(m for m in sys.modules if m.split(".")[0] == "langgraph")[:1])

        from reliquary.agents import AGENTS, ContextResult, TrustResult, VoteRequest, run_vote
        request = VoteRequest(
            request_id="r-1", tenant_id="acme", vault_id="v", item_id="i", principal="p" * 64,
            device="d", region="eu-west-1", now=1_795_608_000,
            context=ContextResult(True, frozenset({{"device_known", "region_allowed"}})),
            trust=TrustResult(score=0.9, band="high"),
        )
        print("imported", "langgraph" in sys.modules, sorted(AGENTS))
        vote = run_vote("neutral", request).vote
        print("voted", "langgraph" in sys.modules, vote)
        """
    )
    assert "before []" in out
    assert "imported False ['neutral', 'permissive', 'strict', 'watchdog']" in out
    voted = out.splitlines()[-1].rsplit(" ", 1)
    assert voted[0] == "voted True"
    assert voted[1] in {"approve", "deny", "abstain"}


@pytest.mark.parametrize("name", reliquary.agents.__all__)
def test_every_documented_name_is_its_module_s_object(name: str) -> None:
    module = importlib.import_module(f"reliquary.agents.{reliquary.agents._MODULE_OF[name]}")
    assert getattr(reliquary.agents, name) is getattr(module, name)
    assert name in dir(reliquary.agents)


def test_the_lazy_table_is_the_documented_names_and_nothing_else() -> None:
    assert sorted(reliquary.agents._MODULE_OF) == sorted(reliquary.agents.__all__)
    with pytest.raises(AttributeError):
        _ = reliquary.agents.no_such_name
