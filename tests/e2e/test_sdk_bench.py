"""The SDK benchmark's code path with a tiny run (``--quick``): every route over loopback and through the
mock transport, sync and async, beside raw httpx, with positive, finite figures; the access round's
open() over loopback (a real approved request, opened warm and by a fresh client, taken apart, beside
raw httpx and the core); the offline tables. Nothing here asserts on a timing."""

from __future__ import annotations

import contextlib
import io
import json
import math
from typing import Any

import pytest

from tests.bench import run, sdk_bench

# One worker for the module: its quick run (a stack of its own) is made once, not once per worker.
# A bench smoke test: run by `make bench` before its tables (`pytest -m bench`), not by `make test`.
pytestmark = [
    pytest.mark.bench,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.usefixtures("own_stack"),
    pytest.mark.xdist_group("sdk-bench"),
]


def _positive_finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One quick run of the section (its JSON document and what it printed), shared by the tests."""
    path = tmp_path_factory.mktemp("sdk-bench") / "bench.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run.main(["--quick", "--json", str(path), "--only", "sdk"]) == 0
    return json.loads(path.read_text(encoding="utf-8")), printed.getvalue()


def test_the_sdk_section_measures_every_route_both_ways(quick_run: tuple[dict[str, Any], str]) -> None:
    document, printed = quick_run
    tables, summary = document["tables"], document["summary"]
    labels = [route.label for route in sdk_bench.ROUTES]

    loopback = {(r["route"], r["client"]): r for r in tables["sdk_loopback"]["rows"]}
    assert set(loopback) == {
        (label, client) for label in labels for client in ("httpx", "SDK", "async httpx", "async SDK")
    }
    for label in labels:
        for client in ("SDK", "async SDK"):
            row = loopback[(label, client)]
            assert all(_positive_finite(row[k]) for k in ("p50_us", "p95_us", "vs_httpx")), row
            assert math.isfinite(row["extra_us"])  # a difference: either sign on a quick run

    mock = {(r["route"], r["client"]): r for r in tables["sdk_mock"]["rows"]}
    for label in labels:
        for client in ("SDK", "async SDK"):
            assert _positive_finite(mock[(label, client)]["vs_httpx"]), (label, client)
    # The error answer has no model to take apart; every other route does.
    assert sum(1 for (_, client) in mock if client.strip() == "pydantic model alone") == len(labels) - 1

    assert {r["size"] for r in tables["sdk_grant"]["rows"]} == {"1 KiB", "1 MiB"}
    assert {r["what"] for r in tables["sdk_verify"]["rows"]} == {"receipt", "chain"}
    for route in sdk_bench.ROUTES:
        for key in (f"sdk_loopback_{route.key}_sync_vs_httpx", f"sdk_mock_{route.key}_vs_httpx"):
            assert _positive_finite(summary[key]), key
    assert "dominated by" in printed


def _open_rows(rows: list[dict[str, Any]], round_label: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["path"], r["step"].strip()): r for r in rows if r["round"] == round_label}


def test_the_open_round_is_timed_whole_and_taken_apart(quick_run: tuple[dict[str, Any], str]) -> None:
    document, printed = quick_run
    table, summary = document["tables"]["sdk_open"], document["summary"]
    rows = table["rows"]
    assert {r["round"] for r in rows} == {sdk_bench.WARM, sdk_bench.FIRST}

    raw_steps = ("the same GETs + core open_grant", "GET the view", "GET the sealed item")
    sdk_steps = (
        sdk_bench.SDK_OPEN,
        "GET the view (access.get)",
        "GET the sealed item (access.item)",
        "offline checks (opening.open_approved)",
        "monitor step (observe_checkpoint)",
    )
    for label in (sdk_bench.WARM, sdk_bench.FIRST):
        found = _open_rows(rows, label)
        keys_step = ("SDK", "GET the keys (trusted_keys, once per client)")
        # The keys are fetched once per client: only a fresh client's first open has the step.
        assert (keys_step in found) is (label == sdk_bench.FIRST)
        assert (("SDK", sdk_bench.SDK_HELD) in found) is (label == sdk_bench.WARM)
        expected = {("httpx + core", s) for s in raw_steps} | {("SDK", s) for s in sdk_steps}
        assert expected <= set(found), label
        assert any(step.startswith("core open_grant") for path, step in found if path == "httpx + core")
        for row in found.values():
            assert _positive_finite(row["p50_ms"]), row
            assert _positive_finite(row["p95_ms"]), row
            assert row["p95_ms"] >= row["p50_ms"], row
        whole = found[("SDK", sdk_bench.SDK_OPEN)]
        assert _positive_finite(whole["vs_base"])
        assert math.isfinite(whole["extra_ms"])  # a difference: either sign on a quick run
        for step in ("GET the view (access.get)", "offline checks (opening.open_approved)"):
            part = found[("SDK", step)]
            assert _positive_finite(part["vs_base"]), part
            assert _positive_finite(part["share"]), part
        assert found[("SDK", "monitor step (observe_checkpoint)")]["vs_base"] is None  # no raw counterpart

    for key in ("warm", "first"):
        for figure in ("ms", "vs_baseline", "checks_ms", "monitor_ms"):
            assert _positive_finite(summary[f"sdk_open_{key}_{figure}"]), (key, figure)
    assert "warm: SDK open" in printed
    assert "first open, fresh client: SDK open" in printed
