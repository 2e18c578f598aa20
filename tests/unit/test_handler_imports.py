"""Cold start: only the agent-vote function imports LangGraph; every handler imports cleanly on its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HANDLERS = ("encrypt", "audit_append", "verify_proof", "score_trust", "agent_vote")
_PROBE = (
    "import sys, functions.{name}.app;"
    " print(sorted(m for m in ('langgraph', 'py_ecc', 'mclbn256') if m in sys.modules))"
)


@pytest.mark.parametrize("name", HANDLERS)
def test_heavy_libraries_load_only_where_needed(name: str) -> None:
    done = subprocess.run(  # noqa: S603  (this interpreter, a fixed probe)
        [sys.executable, "-c", _PROBE.format(name=name)],
        cwd=REPO,
        env={"PYTHONPATH": f"{REPO}:{REPO / 'layers' / 'core'}:{REPO / 'layers' / 'native'}", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = done.stdout.strip().splitlines()[-1]
    expected = "['langgraph']" if name == "agent_vote" else "[]"
    assert loaded == expected, f"{name} loads {loaded} at import"
