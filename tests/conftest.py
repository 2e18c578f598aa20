"""Shared fixtures. Tests run offline; AWS is moto, in-process, with fresh names per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.aws import AwsStack, moto_stack


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[AwsStack]:
    """moto with the template's tables, a versioned bucket and a KMS key as the root of trust."""
    with moto_stack(monkeypatch, tmp_path) as stack:
        yield stack
