"""The local runtime from a checkout: ``reliquary dev``, ``reliquary reset --local``, ``reliquary zk build``.

``dev`` runs the checkout's ``python -m infra.local --profile-file PATH`` (``--no-demo``: without the
demonstration's requests), which writes (0600) the API's URL, the demo tenant's tenant-admin client and
an operator client once the API serves; ``dev`` turns them into the profiles ``local`` and
``local-operator`` (marked as written by ``dev``), records the runtime's pid in
``$XDG_STATE_HOME/reliquary/dev.json`` and serves until Ctrl-C.

``reset --local`` only ever touches that: it refuses unless the profile is one ``dev`` wrote and its URL
is this machine's, then stops the runtime, forgets the dev profiles and the local logs' remembered
checkpoints (a fresh runtime has a new log, which would otherwise look like a fork).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from reliquary_sdk.cli.audit import LOCAL_STORE
from reliquary_sdk.cli.output import EXIT_UNAVAILABLE, CliError, Output, usage
from reliquary_sdk.cli.profiles import ConfigFile, Profile, is_loopback, state_dir
from reliquary_sdk.cli.state import state
from reliquary_sdk.cli.zkbuild import CIRCUITS, BuildProgress, total_steps

PROFILE_FILE_FORMAT: Final = "reliquary-local-profile/v1"
DEV_PROFILE: Final = "local"
OPERATOR_PROFILE: Final = "local-operator"
STATE_FILE: Final = "dev.json"
STARTUP_SECONDS: Final = 600.0  # the stack, the demo and the API: a minute or two on a slow machine
zk = typer.Typer(help="The zero-knowledge circuits of a checkout.")
Checkout = Annotated[
    Path | None,
    typer.Option(
        "--checkout", help="The RELIQUARY checkout (default: $RELIQUARY_HOME, else the cwd upwards)."
    ),
]


def find_checkout(given: Path | None) -> Path:
    """The checkout: --checkout, else $RELIQUARY_HOME, else the first directory from the cwd up that has
    infra/local; a usage error saying how to point at one otherwise."""
    candidates = [given] if given is not None else []
    if given is None and os.environ.get("RELIQUARY_HOME"):
        candidates.append(Path(os.environ["RELIQUARY_HOME"]))
    if not candidates:
        here = Path.cwd().resolve()
        candidates = [here, *here.parents]
    for candidate in candidates:
        if (candidate / "infra" / "local" / "__main__.py").is_file():
            return candidate.resolve()
    raise usage(
        "no RELIQUARY checkout found (a directory with infra/local)",
        hint="run it inside a checkout, or pass --checkout DIR, or set RELIQUARY_HOME",
    )


def _python(checkout: Path) -> str:
    venv = checkout / ".venv" / "bin" / "python"
    return str(venv) if venv.is_file() else sys.executable


def dev_state_path() -> Path:
    return state_dir() / STATE_FILE


def read_dev_state() -> dict[str, Any] | None:
    try:
        data = json.loads(dev_state_path().read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_profile_file(path: Path) -> dict[str, Any]:
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    ok = (
        isinstance(data, dict)
        and data.get("format") == PROFILE_FILE_FORMAT
        and isinstance(data.get("url"), str)
        and all(
            isinstance(data.get(k), dict)
            and isinstance(data[k].get("client_id"), str)
            and isinstance(data[k].get("client_secret"), str)
            for k in ("tenant_admin", "operator")
        )
    )
    if not ok:
        raise CliError(
            "the local runtime wrote a malformed profile file",
            code="local_runtime",
            exit_code=EXIT_UNAVAILABLE,
        )
    return dict(data)


def install_profiles(config: ConfigFile, data: dict[str, Any]) -> list[str]:
    """The runtime's clients as the dev profiles (the secrets go to the 0600 config, never the terminal)."""
    for name, key in ((DEV_PROFILE, "tenant_admin"), (OPERATOR_PROFILE, "operator")):
        config.put(
            Profile(
                name=name,
                url=data["url"].rstrip("/"),
                client_id=data[key]["client_id"],
                client_secret=data[key]["client_secret"],
                dev=True,
            ),
            make_default=name == DEV_PROFILE and config.default() in (None, DEV_PROFILE),
        )
    return [DEV_PROFILE, OPERATOR_PROFILE]


def _wait_for_profile(process: subprocess.Popen[bytes], path: Path, output: Output) -> dict[str, Any]:
    deadline = time.monotonic() + STARTUP_SECONDS
    with output.spinner("starting the local runtime (the stack, the demo tenant, the API)"):
        while not path.exists():
            if process.poll() is not None:
                raise CliError(
                    "the local runtime stopped before serving (its output is above)",
                    code="local_runtime",
                    exit_code=EXIT_UNAVAILABLE,
                    hint="`make setup` in the checkout installs what it needs",
                )
            if time.monotonic() > deadline:
                process.terminate()
                raise CliError(
                    "the local runtime did not start in time",
                    code="local_runtime",
                    exit_code=EXIT_UNAVAILABLE,
                )
            time.sleep(0.5)
    time.sleep(0.2)  # the file is written whole then renamed; a rename is atomic, this is belt and braces
    return read_profile_file(path)


def dev(
    ctx: typer.Context,
    checkout: Checkout = None,
    api_port: Annotated[int | None, typer.Option("--api-port", min=1, max=65535)] = None,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="moto's port.")] = None,
    no_demo: Annotated[
        bool,
        typer.Option(
            "--no-demo", help="Skip the demonstration's requests: serve the seeded demo tenant sooner."
        ),
    ] = False,
) -> None:
    """Start the local runtime from a checkout and serve until Ctrl-C (profiles `local`, `local-operator`)."""
    run = state(ctx)
    root = find_checkout(checkout)
    running = read_dev_state()
    if running is not None and _alive(running.get("pid")):
        raise usage("a local runtime is running already", hint="`reliquary reset --local` stops it")
    state_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    profile_file = state_dir() / "dev-profile.json"
    profile_file.unlink(missing_ok=True)
    argv = [_python(root), "-m", "infra.local", "--profile-file", str(profile_file)]
    argv += ["--api-port", str(api_port)] if api_port else []
    argv += ["--port", str(port)] if port else []
    argv += ["--no-demo"] if no_demo else []
    # The runtime's own story goes to stderr in JSON mode, so stdout stays one JSON document.
    process = subprocess.Popen(argv, cwd=root, stdout=sys.stderr if run.json else None)  # noqa: S603
    try:
        data = _wait_for_profile(process, profile_file, run.output)
        profile_file.unlink(missing_ok=True)
        names = install_profiles(run.config, data)
        from reliquary_sdk.cli.profiles import write_private  # noqa: PLC0415

        write_private(
            dev_state_path(),
            json.dumps({"pid": process.pid, "url": data["url"], "checkout": str(root), "profiles": names}),
        )
        run.output.result(
            {"url": data["url"], "profiles": names, "pid": process.pid, "checkout": str(root)},
            lambda c: c.print(
                f"\nreliquary dev: the API serves at {data['url']}; profiles {', '.join(names)} written "
                f"({run.config.path}). Try `reliquary health`, `reliquary memories list agent-memory`. "
                "Ctrl-C stops."
            ),
        )
        process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        current = read_dev_state()
        if current is not None and current.get("pid") == process.pid:
            dev_state_path().unlink(missing_ok=True)
        profile_file.unlink(missing_ok=True)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_local_runtime(pid: int) -> bool:
    """Whether ``pid`` is still the runtime (a pid can be reused): its command line runs infra.local."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _alive(pid)  # no /proc: trust the state file
    return b"infra.local" in cmdline


def reset(
    ctx: typer.Context,
    local: Annotated[
        bool, typer.Option("--local", help="Required: reset the local runtime (the only kind).")
    ] = False,
) -> None:
    """Stop the local runtime, forget its profiles and its logs' checkpoints (only ever the local one)."""
    run = state(ctx)
    if not local:
        raise usage("reset only resets the local runtime: pass --local")
    name = run.profile or os.environ.get("RELIQUARY_PROFILE") or run.config.default() or DEV_PROFILE
    profile = run.config.get(name)
    dev_state = read_dev_state()
    if profile is None or not profile.dev:
        raise usage(
            "refusing: this profile was not written by `reliquary dev`", hint="select it with --profile local"
        )
    if not is_loopback(profile.url):
        raise usage("refusing: the profile's URL is not this machine's")
    if (run.url or os.environ.get("RELIQUARY_URL")) and (run.url or os.environ["RELIQUARY_URL"]).rstrip(
        "/"
    ) != profile.url:
        raise usage("refusing: --url/RELIQUARY_URL names another API than the dev profile")
    stopped = False
    if dev_state is not None and dev_state.get("url") == profile.url:
        pid = dev_state.get("pid")
        if isinstance(pid, int) and _alive(pid) and _is_local_runtime(pid):
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.1)
            stopped = True
        dev_state_path().unlink(missing_ok=True)
    removed = [n for n, p in run.config.profiles().items() if p.dev and run.config.remove(n)]
    store = state_dir() / LOCAL_STORE
    forgot = store.exists()
    store.unlink(missing_ok=True)
    Path(str(store) + ".lock").unlink(missing_ok=True)
    run.output.result(
        {"stopped": stopped, "profiles_removed": removed, "checkpoints_forgotten": forgot},
        lambda c: c.print(
            f"{'stopped the local runtime; ' if stopped else 'no local runtime was running; '}"
            f"removed profiles {', '.join(removed) or '(none)'}; "
            f"{'forgot' if forgot else 'no'} remembered local checkpoints"
        ),
    )


@zk.command("build")
def zk_build(
    ctx: typer.Context,
    checkout: Checkout = None,
    reuse_ptau: Annotated[
        bool, typer.Option("--reuse-ptau", help="Keep the committed powers of tau.")
    ] = False,
    examples_only: Annotated[bool, typer.Option("--examples-only", help="Remake only the examples.")] = False,
) -> None:
    """Rebuild the circuits and the development ceremony (`npm --prefix zk run build`, minutes), with
    progress per circuit."""
    run = state(ctx)
    root = find_checkout(checkout)
    argv = ["npm", "--prefix", "zk", "run", "build", "--"]
    argv += ["--reuse-ptau"] if reuse_ptau else []
    argv += ["--examples-only"] if examples_only else []
    totals = total_steps(reuse_ptau=reuse_ptau, examples_only=examples_only)
    progress = BuildProgress()
    log: list[str] = []
    try:
        process = subprocess.Popen(  # noqa: S603
            argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    except FileNotFoundError:
        raise CliError(
            "npm is not installed", code="missing_tool", exit_code=EXIT_UNAVAILABLE, hint="Node.js 20+"
        ) from None
    assert process.stdout is not None  # noqa: S101  (PIPE above)
    with run.output.progress("zk build", total=sum(totals.values())) as advance:
        for line in process.stdout:
            log.append(line)
            finished = progress.feed(line)
            if finished is not None:
                step, part = finished
                advance(1, description=f"{part}: {step} ({progress.done[part]}/{totals.get(part, '?')})")
    code = process.wait()
    if code != 0:
        sys.stderr.writelines(log[-30:])
        raise CliError(
            "the zk build failed (its last lines are above)", code="zk_build", exit_code=EXIT_UNAVAILABLE
        )
    value = {"steps": progress.finished, "per_circuit": {c: progress.done[c] for c in CIRCUITS}, "ok": True}
    run.output.result(value, lambda c: c.print(f"zk build: {progress.finished} steps done"))


def register(app: typer.Typer) -> None:
    app.command("dev")(dev)
    app.command("reset")(reset)
    app.add_typer(zk, name="zk")


__all__ = ["find_checkout", "install_profiles", "read_profile_file", "register", "replace"]
