"""``reliquary.coldstart.deferred_collection``: the collector off while a handler loads, on again after, and
what was built frozen only in a Lambda container. Each case runs in a fresh interpreter: a frozen heap or
a collector left off would otherwise stay with the test process. And the cold-start bench's handlers
without bytecode: only the standard library's is kept for them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.bench import coldstart as coldstart_bench

REPO = Path(__file__).resolve().parents[2]
_PROBE = """
import gc, json
from reliquary.coldstart import deferred_collection
{before}
def collections():
    return sum(g["collections"] for g in gc.get_stats())
start, inside, during = collections(), None, None
try:
    with deferred_collection():
        inside = gc.isenabled()
        built = [[i] for i in range(200_000)]  # 200,000 lists: hundreds of passes with the collector on
        during = collections() - start
        {raise_}
except RuntimeError:
    pass
after, frozen = gc.isenabled(), gc.get_freeze_count()
print(json.dumps({{"inside": inside, "during": during, "after": after, "frozen": frozen}}))
"""


def _run(*, lambda_container: bool, before: str = "", raise_: str = "") -> dict[str, object]:
    env = {"PYTHONPATH": str(REPO / "layers" / "core"), "PATH": ""}
    if lambda_container:
        env["LAMBDA_TASK_ROOT"] = "/var/task"
    done = subprocess.run(  # noqa: S603  (this interpreter, a fixed probe)
        [sys.executable, "-c", textwrap.dedent(_PROBE.format(before=before, raise_=raise_))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found: dict[str, object] = json.loads(done.stdout)
    return found


def test_in_a_lambda_container_the_block_runs_without_collections_and_what_it_built_is_frozen() -> None:
    found = _run(lambda_container=True)
    assert found["inside"] is False
    assert found["after"] is True
    assert found["during"] == 0
    assert isinstance(found["frozen"], int)
    assert found["frozen"] >= 200_000


def test_elsewhere_the_block_runs_without_collections_and_nothing_is_frozen() -> None:
    found = _run(lambda_container=False)
    assert (found["inside"], found["during"], found["after"], found["frozen"]) == (False, 0, True, 0)


@pytest.mark.parametrize("lambda_container", [True, False])
def test_a_failing_block_gives_the_collector_back(lambda_container: bool) -> None:
    found = _run(lambda_container=lambda_container, raise_="raise RuntimeError")
    assert (found["inside"], found["after"]) == (False, True)


def test_a_collector_the_process_turned_off_stays_off_and_nothing_is_frozen() -> None:
    found = _run(lambda_container=True, before="gc.disable()")
    assert (found["inside"], found["after"], found["frozen"]) == (False, False, 0)


def test_the_bench_without_bytecode_keeps_only_the_standard_librarys(tmp_path: Path) -> None:
    stdlib = Path("/opt/python3/lib/python3.12")
    kept = tmp_path / "opt/python3/lib/python3.12"
    files = {
        kept / "__pycache__/json.cpython-312.pyc": True,
        kept / "email/__pycache__/message.cpython-312.pyc": True,
        kept / "site-packages/pydantic/__pycache__/main.cpython-312.pyc": False,
        tmp_path / "opt/python3/lib/other/__pycache__/x.cpython-312.pyc": False,
        tmp_path / "work/repo/layers/core/reliquary/__pycache__/config.cpython-312.pyc": False,
        tmp_path / "work/venv/lib/python3.12/site-packages/boto3/__pycache__/session.cpython-312.pyc": False,
    }
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0")
    coldstart_bench.keep_standard_library(tmp_path, stdlib)
    assert {path: path.exists() for path in files} == files
