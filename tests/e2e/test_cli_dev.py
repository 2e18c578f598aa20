"""`reliquary dev` and `reliquary reset --local` run as a user runs them: the real command in a subprocess
(`python -m reliquary_sdk.cli dev`), which starts the checkout's local runtime in its own subprocess, on
free ports, with a scratch XDG_CONFIG_HOME and XDG_STATE_HOME. Once its profiles exist and `health`
answers through them, real commands go through the profiles; then `reset --local` must stop it all and
forget exactly what `dev` wrote. Run with and without the demonstration (`--no-demo`)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.local.runtime import free_port
from infra.local.seed import NOTES, SUPPORT_VAULT

# A group of its own: unlike the local-runtime group, nothing runs in this process (moto, the functions and
# the API are in dev's subprocess), so it may share a worker with anything.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("cli-dev")]

ROOT = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE = 600.0  # seconds: the stack (and the demonstration) on a slow, shared machine
COMMAND_TIMEOUT = 120.0
ITEM = "customer-42-notes"


@dataclass(frozen=True)
class Machine:
    """A user's machine: scratch config and state directories, and the environment every command gets."""

    home: Path
    env: dict[str, str]

    @property
    def config(self) -> Path:
        return self.home / "config" / "reliquary" / "config.json"

    @property
    def state(self) -> Path:
        return self.home / "state" / "reliquary"

    def profiles(self) -> dict[str, Any]:
        if not self.config.exists():
            return {}
        profiles: dict[str, Any] = json.loads(self.config.read_text(encoding="utf-8"))["profiles"]
        return profiles

    def reliquary(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603  (this checkout's own command)
            [sys.executable, "-m", "reliquary_sdk.cli", "--json", *args],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def ok(self, *args: str) -> dict[str, Any]:
        ran = self.reliquary(*args)
        assert ran.returncode == 0, f"reliquary {' '.join(args)} exited {ran.returncode}: {ran.stderr}"
        value: dict[str, Any] = json.loads(ran.stdout)
        return value


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    # No RELIQUARY_* variable of the runner's: the profiles `dev` writes are the only credentials.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIQUARY_")}
    paths = [ROOT, ROOT / "layers" / "core", ROOT / "layers" / "native", ROOT / "sdk"]
    env.update(
        RELIQUARY_ZK_DIR=str(ROOT / "zk"),  # where the SDK's prover finds the circuits, as in docs/cli.md
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        TMPDIR=str(home / "tmp"),  # the demonstration's curl body lands in the scratch home
        PYTHONPATH=os.pathsep.join(str(p) for p in paths),  # this checkout's code, in every subprocess
        COLUMNS="200",
    )
    return Machine(home, env)


@contextlib.contextmanager
def dev_process(machine: Machine, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``reliquary dev`` in a process group of its own (it, the runtime and the prover), killed whole on
    the way out whatever happened, so nothing outlives the test."""
    with (
        (machine.home / "dev.out").open("wb") as out,
        (machine.home / "dev.err").open("wb") as err,
    ):
        process = subprocess.Popen(  # noqa: S603  (this checkout's own command)
            [sys.executable, "-m", "reliquary_sdk.cli", "--json", "dev", *args],
            cwd=ROOT,  # a user runs it inside the checkout, which is how it finds it
            env=machine.env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _log(machine: Machine) -> str:
    tail = (machine.home / "dev.err").read_text(encoding="utf-8", errors="replace")[-6000:]
    return f"--- dev's stdout\n{(machine.home / 'dev.out').read_text()}\n--- dev's stderr (tail)\n{tail}"


def wait_until_serving(machine: Machine, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Poll until dev has printed its result, the `local` profile exists and `health` answers through it;
    dev's result document."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline:
        assert process.poll() is None, f"reliquary dev exited {process.returncode} early\n{_log(machine)}"
        printed = (machine.home / "dev.out").read_text(encoding="utf-8").strip()
        if printed and "local" in machine.profiles() and machine.reliquary("health").returncode == 0:
            ready: dict[str, Any] = json.loads(printed)
            return ready
        time.sleep(0.5)
    raise AssertionError(f"reliquary dev did not serve within {STARTUP_DEADLINE:.0f} s\n{_log(machine)}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_until_gone(pgid: int, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def check_what_dev_wrote(machine: Machine, ready: dict[str, Any], url: str) -> None:
    """What dev printed, recorded and wrote: the profiles hold the secrets, the terminal does not."""
    profiles = ["local", "local-operator"]
    assert ready == {"url": url, "profiles": profiles, "pid": ready["pid"], "checkout": str(ROOT)}
    recorded = json.loads((machine.state / "dev.json").read_text(encoding="utf-8"))
    assert recorded == {"pid": ready["pid"], "url": url, "checkout": str(ROOT), "profiles": profiles}
    assert stat.S_IMODE(machine.config.stat().st_mode) == 0o600
    assert json.loads(machine.config.read_text(encoding="utf-8"))["default"] == "local"
    assert sorted(machine.profiles()) == profiles
    for profile in machine.profiles().values():
        assert profile["url"] == url
        assert profile["dev"] is True
        assert profile["client_secret"] not in _log(machine)
    assert not (machine.state / "dev-profile.json").exists()  # the runtime's hand-over file is gone


def use_the_profiles(machine: Machine, url: str, *, demo: bool) -> None:
    """Real commands through the profiles, as docs/cli.md shows them."""
    assert machine.ok("health")["url"] == url
    memories = {m["memory_id"] for m in machine.ok("memories", "list", SUPPORT_VAULT)["memories"]}
    assert set(NOTES) <= memories
    # The demonstration seals one more through the API; without it, only the seeded ones are there.
    assert len(memories) == len(NOTES) + (1 if demo else 0)
    store = machine.state / "checkpoints-local.json"
    if not demo:  # nothing is logged yet: a clear refusal, and nothing remembered
        empty = machine.reliquary("audit", "verify", "--skip-falcon")
        assert empty.returncode == 2, empty.stderr
        error = json.loads(empty.stderr)["error"]
        assert (error["code"], error["message"]) == ("not_found", "the log has no checkpoint yet")
        assert not store.exists()
    # A developer's own first request: a device enrolled in the vault, an access request proved on it,
    # granted and opened here (its receipt checked against the log, whose checkpoint is remembered).
    machine.ok("device", "new", "laptop.device")
    machine.ok("vault", "apply", SUPPORT_VAULT, "--device", "laptop.device")
    opened = machine.ok(
        "access", "request", SUPPORT_VAULT, ITEM, "--device", "laptop.device", "--purpose", "support",
        "--skip-falcon",
    )  # fmt: skip
    assert opened["status"] == "approved"
    assert base64.b64decode(opened["content_b64"]) == NOTES[ITEM]
    assert store.exists()
    verified = machine.ok("audit", "verify", "--skip-falcon")
    assert verified["consistent"] is True
    assert verified["first_seen"] is False
    assert verified["previous"]["size"] <= verified["checkpoint"]["size"]
    assert verified["store"] == str(store)
    # Without the demonstration that request is the log's only entry; with it, its requests came first.
    assert (verified["checkpoint"]["size"] > 1) is demo
    operator = ("-p", "local-operator")
    created = machine.ok(
        *operator, "tenant", "create", "initech", "--name", "Initech", "--save-profile", "initech"
    )
    assert created["tenant"]["tenant_id"] == "initech"
    assert "dev" not in machine.profiles()["initech"]  # the user's own, not one dev wrote


def check_reset_undid_it(machine: Machine, dev: subprocess.Popen[bytes], url: str) -> None:
    """``reset --local`` stopped dev and everything it started, and forgot exactly what dev wrote."""
    assert dev.wait(timeout=120) == 0, _log(machine)  # its runtime stopped, so dev ended cleanly
    assert _wait_until_gone(dev.pid), "the runtime or its prover outlived reset --local"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/v1/health", timeout=5)
    assert set(machine.profiles()) == {"initech"}
    assert not (machine.state / "checkpoints-local.json").exists()
    assert not (machine.state / "dev.json").exists()


@pytest.mark.parametrize("demo", [False, True], ids=["no-demo", "demo"])
def test_dev_serves_through_its_profiles_and_reset_local_undoes_it(machine: Machine, demo: bool) -> None:
    moto_port, api_port = free_port(), free_port()
    url = f"http://127.0.0.1:{api_port}"
    args = ["--port", str(moto_port), "--api-port", str(api_port)] + ([] if demo else ["--no-demo"])
    with dev_process(machine, *args) as dev:
        check_what_dev_wrote(machine, wait_until_serving(machine, dev), url)
        use_the_profiles(machine, url, demo=demo)

        assert machine.ok("reset", "--local") == {
            "stopped": True,
            "profiles_removed": ["local", "local-operator"],
            "checkpoints_forgotten": True,
        }
        check_reset_undid_it(machine, dev, url)

        again = machine.reliquary("reset", "--local")
        assert again.returncode == 1
        assert again.stdout == ""
        assert json.loads(again.stderr)["error"] == {
            "code": "usage",
            "exit_code": 1,
            "message": "refusing: this profile was not written by `reliquary dev`",
            "hint": "select it with --profile local",
        }
        assert set(machine.profiles()) == {"initech"}
