"""The package's public names, and that it stands alone: importing it loads none of the service."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import reliquary_sdk

SDK = Path(__file__).resolve().parents[2] / "sdk"


def test_public_names_are_exported_and_resolve() -> None:
    for name in reliquary_sdk.__all__:
        assert getattr(reliquary_sdk, name) is not None, name
    assert reliquary_sdk.Reliquary.__module__ == "reliquary_sdk.client"
    assert issubclass(reliquary_sdk.NotFoundError, reliquary_sdk.ReliquaryError)
    assert reliquary_sdk.models.VaultView.__name__ == "VaultView"


def test_importing_the_sdk_loads_neither_the_core_nor_the_native_layer() -> None:
    code = (
        "import json, sys; import reliquary_sdk, reliquary_sdk.models, reliquary_sdk.client;"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('reliquary', 'reliquary_native', 'oqs'))))"
    )
    out = subprocess.run(  # noqa: S603  (this interpreter, a fixed program)
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=SDK,
        env={"PYTHONPATH": str(SDK), "PATH": ""},
    )
    assert json.loads(out.stdout) == []
