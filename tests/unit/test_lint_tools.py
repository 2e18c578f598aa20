"""The state machine linter `make lint` runs (tools/lint_state_machine.py: statelint, placeholders stood in
for, FLOAT skipped) accepts what the definitions legitimately contain and still rejects broken documents."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tools" / "lint_state_machine.py"

RETRY = {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 2}


def valid() -> dict[str, Any]:
    # A DefinitionSubstitutions placeholder as a Task Resource (replaced by an ARN-shaped stand-in) and an
    # integer BackoffRate (the FLOAT check is skipped: JSON does not distinguish 2 from 2.0).
    return {
        "StartAt": "Verify",
        "States": {
            "Verify": {
                "Type": "Task",
                "Resource": "${VerifyProofFunctionArn}",
                "Retry": [dict(RETRY)],
                "Next": "Wait",
            },
            "Wait": {"Type": "Wait", "Seconds": 1, "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    }


def run(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, str(SCRIPT), *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        timeout=60,
    )


def write(tmp_path: Path, document: dict[str, Any] | str) -> Path:
    path = tmp_path / "machine.asl.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return path


def test_the_repository_definitions_pass() -> None:
    proc = run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "statelint infra/statemachine/" in proc.stdout


def test_a_valid_definition_with_placeholders_passes(tmp_path: Path) -> None:
    proc = run(write(tmp_path, valid()))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _next_to_nowhere(d: dict[str, Any]) -> None:
    d["States"]["Wait"]["Next"] = "Nowhere"


def _unreachable(d: dict[str, Any]) -> None:
    d["States"]["Orphan"] = {"Type": "Pass", "End": True}


def _fractional_wait(d: dict[str, Any]) -> None:
    d["States"]["Wait"]["Seconds"] = 1.5


def _backoff_below_one(d: dict[str, Any]) -> None:
    d["States"]["Verify"]["Retry"][0]["BackoffRate"] = 0.5


def _no_start(d: dict[str, Any]) -> None:
    del d["StartAt"]


def _resource_not_a_string(d: dict[str, Any]) -> None:
    d["States"]["Verify"]["Resource"] = 42


def _resource_not_a_uri(d: dict[str, Any]) -> None:
    d["States"]["Verify"]["Resource"] = "VerifyProofFunction"


def _placeholder_inside_a_resource(d: dict[str, Any]) -> None:
    d["States"]["Verify"]["Resource"] = "${Stage}-verify"


def _next_and_end(d: dict[str, Any]) -> None:
    d["States"]["Verify"]["End"] = True


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_next_to_nowhere, "Nowhere"),
        (_unreachable, "Orphan"),
        (_fractional_wait, "should be an Integer"),
        (_backoff_below_one, "allowed floor is 1"),
        (_no_start, "StartAt"),
        (_resource_not_a_string, "Resource is 42 but should be A URI"),
        (_resource_not_a_uri, "should be A URI"),
        (_placeholder_inside_a_resource, "should be A URI"),
        (_next_and_end, "Verify"),
    ],
)
def test_a_broken_definition_fails(tmp_path: Path, breakage: Any, message: str) -> None:
    document = valid()
    breakage(document)
    proc = run(write(tmp_path, document))
    assert proc.returncode == 1
    assert message in proc.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"StartAt": "A", "States": {', "not JSON"),
        ('[{"StartAt": "A"}]', "not a JSON object"),  # statelint alone passes any non-object
    ],
)
def test_a_file_that_is_not_a_definition_fails(tmp_path: Path, text: str, message: str) -> None:
    proc = run(write(tmp_path, text))
    assert proc.returncode == 1
    assert message in proc.stderr


def test_a_missing_file_fails(tmp_path: Path) -> None:
    proc = run(tmp_path / "absent.asl.json")  # statelint alone would parse the path as JSON text
    assert proc.returncode == 1
    assert "no such file" in proc.stderr


def test_one_bad_file_fails_the_run_even_after_a_good_one(tmp_path: Path) -> None:
    good = write(tmp_path, valid())
    bad_document = valid()
    _next_to_nowhere(bad_document)
    bad = tmp_path / "bad.asl.json"
    bad.write_text(json.dumps(bad_document), encoding="utf-8")
    proc = run(good, bad)
    assert proc.returncode == 1


def test_make_lint_runs_every_template_and_state_machine_linter() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe is not None
    commands = recipe.group(1)
    assert "cfn-lint template.yaml" in commands
    assert "sam validate --lint --template template.yaml" in commands
    assert "tools/lint_state_machine.py" in commands
