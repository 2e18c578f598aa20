"""The API benchmark's code path with a tiny run (``--quick``): both operations have both paths with
positive, finite figures, the cold-start table has every target and the import table its modules.
Nothing here asserts on a timing."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.bench import api_bench, coldstart, run

# A bench smoke test: run by `make bench` before its tables (`pytest -m bench`), not by `make test`.
pytestmark = [pytest.mark.bench, pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("own_stack")]


def _positive_finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_the_api_section_reports_both_paths_and_the_cold_start(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run.main(["--quick", "--json", str(path), "--only", "api"]) == 0
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    tables, summary = document["tables"], document["summary"]

    rows = {(r["operation"], r["path"]): r for r in tables["api_latency"]["rows"]}
    for operation in ("seal", "access request"):
        direct, through = rows[(operation, "direct")], rows[(operation, "through the API")]
        assert all(_positive_finite(direct[k]) for k in ("p50_ms", "p95_ms"))
        assert all(_positive_finite(through[k]) for k in ("p50_ms", "p95_ms", "ratio_p50", "ratio_p95"))
    # Every request of the quick run (warm-ups too) was decided the same way on both paths: approved.
    outcomes = tables["api_latency"]["notes"][2]
    requests = api_bench.QUICK_REQUESTS + api_bench.WARMUP
    assert outcomes.endswith(
        f"outcomes (warm-ups included): API approved {requests}; direct SUCCEEDED/approve {requests}"
    ), tables["api_latency"]["notes"][2:]

    targets = {r["target"] for r in tables["api_coldstart"]["rows"]}
    assert targets == {t.label for t in api_bench.COLDSTART_TARGETS}
    assert all(_positive_finite(r["in_process_ms"]) for r in tables["api_coldstart"]["rows"])
    assert len(tables["api_coldstart_imports"]["rows"]) == coldstart.TOP_MODULES
    for key in ("api_seal_p50_ms", "api_seal_vs_direct", "api_access_p50_ms", "api_access_vs_direct"):
        assert _positive_finite(summary[key]), key
    assert _positive_finite(summary["api_import_ms"])
    assert "target < 800 ms" in printed.getvalue()
