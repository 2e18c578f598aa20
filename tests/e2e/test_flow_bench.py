"""The end-to-end benchmark's code path with a tiny run (``--quick``): every table has its rows and every
figure is a positive, finite number. Nothing here asserts on a timing."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.bench import run

# A bench smoke test: run by `make bench` before its tables (`pytest -m bench`), not by `make test`.
pytestmark = [pytest.mark.bench, pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("own_stack")]


def test_the_flow_section_reports_latency_steps_and_cold_starts(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run.main(["--quick", "--json", str(path), "--only", "flow"]) == 0
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    tables = document["tables"]

    latency = {row["measure"]: row for row in tables["flow_latency"]["rows"]}
    end_to_end = latency["end to end (StartExecution..done)"]
    assert all(math.isfinite(end_to_end[k]) and end_to_end[k] > 0 for k in ("p50_ms", "p95_ms", "ratio"))
    assert "outcomes: SUCCEEDED/approve 3" in tables["flow_latency"]["notes"][0]
    steps = {row["step"] for row in tables["flow_steps"]["rows"]}
    assert {"VerifyContext", "ScoreTrust", "Quorum (all votes)", "RecordDecision", "Grant"} <= steps
    functions = {row["function"] for row in tables["flow_coldstart"]["rows"]}
    assert functions == {
        "VerifyProofFunction",
        "ScoreTrustFunction",
        "AgentVoteFunction",
        "AuditAppendFunction",
        "EncryptFunction",
    }
    assert document["summary"]["flow_p50_ms"] > 0
    assert "Access decision latency" in printed.getvalue()
