"""The SDK benchmark's code path with a tiny run (``--quick``): every route over loopback and through the
mock transport, sync and async, beside raw httpx, with positive, finite figures; the offline tables.
Nothing here asserts on a timing."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.bench import run, sdk_bench

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("api")]


def _positive_finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_the_sdk_section_measures_every_route_both_ways(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run.main(["--quick", "--json", str(path), "--only", "sdk"]) == 0
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
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
    assert "dominated by" in printed.getvalue()
