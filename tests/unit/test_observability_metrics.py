"""Metrics: nothing printed while disabled, however many values a warm function records."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.metrics import MetricUnit

from reliquary.observability import build_metrics


@pytest.fixture(autouse=True)
def _fresh_metrics() -> None:
    build_metrics("reliquary-test").clear_metrics()  # powertools' metric sets are shared by every instance


def _record(times: int) -> None:
    metrics = build_metrics("reliquary-test")
    for _ in range(times):
        metrics.add_metric(name="Succeeded", unit=MetricUnit.Count, value=1)


def test_disabled_metrics_keep_nothing_and_print_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    _record(250)  # powertools alone prints a full set of 100 values, disabled or not
    assert '"_aws"' not in capsys.readouterr().out
    assert build_metrics("reliquary-test").metric_set == {}


def test_enabled_metrics_are_kept_and_a_full_set_is_published(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    _record(150)
    lines = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(lines) == 1  # the first 100 values, as powertools publishes a full set
    assert len(build_metrics("reliquary-test").metric_set["Succeeded"]["Value"]) == 50
