"""Every example in the docs is executed by a test.

The documents: README.md, docs/*.md and sdk/README.md. Every fenced block names its language; blocks
fenced ``python``, ``bash``, ``sh``, ``shell`` or ``console`` are examples, and each one runs here unless
its info string says why it cannot (```` ```bash no-run: deploys to AWS ````, a reason required). Output
listings and diagrams are ``text`` (or ``json``, ``yaml``...: not examples).

How they run, per document, in document order:
- ``python`` blocks share one namespace, like a doctest session;
- ``bash``/``sh``/``shell`` blocks each run in ``bash -euo pipefail``; ``console`` blocks run their
  ``$ `` lines (the rest is output). Both start in a scratch directory, with the repository's
  ``.venv/bin`` first on PATH and its packages on PYTHONPATH, and with a curl that fails on an HTTP
  error (``--fail-with-body`` in a scratch ``.curlrc``), so a refused request fails the example.

A document that needs the local API declares it once, anywhere: ``<!-- example-setup: api -->``. Its
examples then run against one served API (tests/support/api.py's ``api_world``, over loopback) with, in
the environment: ``RELIQUARY_URL`` (the API's base URL), ``RELIQUARY_CLIENT_ID`` and
``RELIQUARY_CLIENT_SECRET`` (a client of the demo tenant ``acme`` that is writer and requester on the
vault ``agent-memory``), and the shorthands docs/api.md's curl examples use: ``API`` (the base URL)
and ``H`` (``Authorization: Bearer <a token of that client>``).

A document about the ``reliquary`` command declares ``<!-- example-setup: local -->`` instead: the same
one served API, reached as a user of ``reliquary dev`` reaches it. Its examples run with a scratch
``XDG_CONFIG_HOME`` and ``XDG_STATE_HOME`` (one pair per document) holding the profiles ``local`` (the
demo tenant ``acme``'s tenant-admin, the default) and ``local-operator`` (an operator client), written
exactly as ``reliquary dev`` writes them from the local runtime's profile file; ``RELIQUARY_PROFILE=local``;
``RELIQUARY_ZK_DIR`` the checkout's ``zk`` (so the SDK's prover finds the circuits); and ``reliquary`` on
PATH (this checkout's command). No other ``RELIQUARY_*`` variable is set: the profile is the credential."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from reliquary_sdk.cli.local import install_profiles, read_profile_file
from reliquary_sdk.cli.profiles import ConfigFile

from reliquary.identity.scopes import Role, RoleBinding
from tests.support.api import ApiClient, ApiWorld

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "sdk" / "README.md"],
    key=lambda p: p.relative_to(ROOT).as_posix(),
)
# The languages whose blocks are examples, and the runner of each.
RUNNERS = {"python": "python", "bash": "bash", "sh": "bash", "shell": "bash", "console": "console"}
NO_RUN = "no-run:"
SETUPS = ("api", "local")
SETUP = re.compile(r"<!--\s*example-setup:\s*(\S+)\s*-->")
FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
VAULT = "agent-memory"
TIMEOUT = 120
BASH = shutil.which("bash") or "/bin/bash"
LOCAL_BIN = "_DOCS_LOCAL_BIN"  # not exported: where the local setup's `reliquary` is, put first on PATH


@dataclass(frozen=True)
class Block:
    document: str  # relative to the repository
    line: int  # the opening fence's, 1-based
    language: str
    rest: str  # the info string after the language
    code: str

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"

    @property
    def is_example(self) -> bool:
        return self.language in RUNNERS

    @property
    def reason(self) -> str | None:
        """Why the example does not run (a ``no-run:`` marker's reason), or None when it runs."""
        if not self.rest.startswith(NO_RUN):
            return None
        return self.rest[len(NO_RUN) :].strip()


def blocks(path: Path, root: Path = ROOT) -> list[Block]:
    """The fenced blocks of a Markdown document (fences at the start of a line, as ours are)."""
    found = []
    opened: tuple[int, str, str] | None = None
    lines: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(line)
        if opened is None:
            if match:
                opened, lines = (number, match.group(1), match.group(2).strip()), []
            continue
        start, fence, info = opened
        if match and match.group(1).startswith(fence) and not match.group(2).strip():
            language, _, rest = info.partition(" ")
            name = path.relative_to(root).as_posix()
            found.append(Block(name, start, language, rest.strip(), "\n".join(lines) + "\n"))
            opened = None
        else:
            lines.append(line)
    assert opened is None, f"{path.relative_to(root)}:{opened[0]}: a fence that never closes"
    return found


def setups(path: Path) -> set[str]:
    return set(SETUP.findall(path.read_text(encoding="utf-8")))


ALL = {path.relative_to(ROOT).as_posix(): blocks(path) for path in DOCUMENTS}
RUNNABLE = sorted(
    name for name, found in ALL.items() if any(b.is_example and b.reason is None for b in found)
)


def test_every_block_names_its_language() -> None:
    untagged = [b.where for found in ALL.values() for b in found if not b.language]
    assert not untagged, f"fence these as ```text (output, diagrams) or as an example language: {untagged}"


def test_every_example_runs_or_says_why_not() -> None:
    """An example's info string is its language alone (it runs) or ``no-run: <reason>``: anything else
    (a misspelt marker, an empty reason) would silently keep an example from running."""
    bad = [
        f"{b.where} ```{b.language} {b.rest}"
        for found in ALL.values()
        for b in found
        if b.is_example and b.rest and not b.reason
    ]
    assert not bad, f"examples neither run nor say why (```lang no-run: <reason>): {bad}"
    unknown = {name: setups(ROOT / name) - set(SETUPS) for name in ALL if setups(ROOT / name) - set(SETUPS)}
    assert not unknown, f"unknown example-setup (known: {SETUPS}): {unknown}"
    both = [name for name in ALL if len(setups(ROOT / name)) > 1]
    assert not both, f"a document declares one example-setup: {both}"


def test_the_parser_reads_languages_markers_and_nested_fences(tmp_path: Path) -> None:
    (tmp_path / "doc.md").write_text(
        "# A\n\n```python\nx = 1\n```\n\n````text\n```bash\nnot a block\n```\n````\n\n"
        "```bash no-run: deploys to AWS\nsam deploy\n```\n```\nuntagged\n```\n",
        encoding="utf-8",
    )
    found = blocks(tmp_path / "doc.md", tmp_path)
    assert [(b.line, b.language, b.reason, b.code) for b in found] == [
        (3, "python", None, "x = 1\n"),
        (7, "text", None, "```bash\nnot a block\n```\n"),
        (13, "bash", "deploys to AWS", "sam deploy\n"),
        (16, "", None, "untagged\n"),
    ]
    assert [b.is_example for b in found] == [True, False, True, False]
    (tmp_path / "open.md").write_text("```sh\nmake run\n", encoding="utf-8")
    with pytest.raises(AssertionError, match=re.escape("open.md:1: a fence that never closes")):
        blocks(tmp_path / "open.md", tmp_path)


def _api_environment(world: ApiWorld) -> dict[str, str]:
    client = world.new_client("acme", RoleBinding(Role.WRITER, VAULT), RoleBinding(Role.REQUESTER, VAULT))
    answer = httpx.post(
        f"{world.url}/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.secret),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return {
        "RELIQUARY_URL": world.url,
        "RELIQUARY_CLIENT_ID": client.client_id,
        "RELIQUARY_CLIENT_SECRET": client.secret,
        "API": world.url,
        "H": f"Authorization: Bearer {answer.json()['access_token']}",
    }


def _local_environment(world: ApiWorld, home: Path) -> dict[str, str]:
    """A user's machine after ``reliquary dev``: its profiles in a scratch config, ``reliquary`` on PATH."""
    admin, operator = world.client("tenant-admin"), world.operator
    assert operator is not None
    config, state, bin_dir = home / "config", home / "state", home / "bin"
    for made in (config, state, bin_dir):
        made.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The document infra.local's --profile-file writes, read and installed by dev's own functions.
    profile_file = state / "dev-profile.json"
    profile_file.write_text(
        json.dumps(
            {
                "format": "reliquary-local-profile/v1",
                "url": world.url,
                "tenant_admin": {"client_id": admin.client_id, "client_secret": admin.secret},
                "operator": {"client_id": operator.client_id, "client_secret": operator.secret},
            }
        ),
        encoding="utf-8",
    )
    install_profiles(ConfigFile(config / "reliquary" / "config.json"), read_profile_file(profile_file))
    profile_file.unlink()
    # This checkout's command, whatever else is installed (PYTHONPATH puts this checkout's sdk first).
    command = bin_dir / "reliquary"
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reliquary_sdk.cli "$@"\n', encoding="utf-8")
    command.chmod(0o755)
    return {
        "XDG_CONFIG_HOME": str(config),
        "XDG_STATE_HOME": str(state),
        "RELIQUARY_PROFILE": "local",
        "RELIQUARY_ZK_DIR": str(ROOT / "zk"),
        LOCAL_BIN: str(bin_dir),
    }


def _shell_environment(extra: dict[str, str], scratch: Path) -> dict[str, str]:
    (scratch / ".curlrc").write_text("fail-with-body\nshow-error\nmax-time = 60\n", encoding="utf-8")
    paths = [ROOT, ROOT / "layers" / "core", ROOT / "layers" / "native", ROOT / "sdk"]
    bins = [extra[LOCAL_BIN]] if LOCAL_BIN in extra else []
    bins += [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    # Only the setup's RELIQUARY_* variables: one left in the runner's environment would beat a profile.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("RELIQUARY_")}
    return {
        **inherited,
        **{k: v for k, v in extra.items() if k != LOCAL_BIN},
        "CURL_HOME": str(scratch),
        "PATH": os.pathsep.join(bins),
        "PYTHONPATH": os.pathsep.join(str(p) for p in paths),
    }


def _run_shell(block: Block, environment: dict[str, str], scratch: Path) -> None:
    code = block.code
    if block.language == "console":
        code = "\n".join(line[2:] for line in code.splitlines() if line.startswith("$ ")) + "\n"
    ran = subprocess.run(  # noqa: S603  (the repository's own documented commands)
        [BASH, "-euo", "pipefail", "-c", code],
        cwd=scratch,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert ran.returncode == 0, (
        f"{block.where} ({block.language}) exited {ran.returncode}\n"
        f"--- stdout\n{ran.stdout[-4000:]}\n--- stderr\n{ran.stderr[-4000:]}"
    )


def _run_python(block: Block, namespace: dict[str, Any]) -> None:
    try:
        exec(compile(block.code, block.where, "exec"), namespace)  # noqa: S102  (the docs' own examples)
    except Exception as error:
        raise AssertionError(f"{block.where} (python) raised {type(error).__name__}: {error}") from error


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.xdist_group("docs")
@pytest.mark.parametrize("document", RUNNABLE)
def test_the_documents_examples_run(
    document: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    extra: dict[str, str] = {}
    if "api" in setups(ROOT / document):
        extra = _api_environment(request.getfixturevalue("world"))
    elif "local" in setups(ROOT / document):
        extra = _local_environment(request.getfixturevalue("world"), tmp_path / ".home")
    for name in [k for k in os.environ if k.startswith("RELIQUARY_")]:
        monkeypatch.delenv(name)
    for name, value in extra.items():
        if name != LOCAL_BIN:
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    shell = _shell_environment(extra, tmp_path)
    monkeypatch.setenv("PATH", shell["PATH"])  # python blocks that run `reliquary` find the same one
    namespace: dict[str, Any] = {"__name__": f"docs_example_{Path(document).stem}"}
    for block in ALL[document]:
        if not block.is_example or block.reason is not None:
            continue
        if RUNNERS[block.language] == "python":
            _run_python(block, namespace)
        else:
            _run_shell(block, shell, tmp_path)


def test_python_blocks_share_a_namespace_and_a_failing_example_names_its_line(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {}
    _run_python(Block("doc.md", 3, "python", "", "x = 40\n"), namespace)
    _run_python(Block("doc.md", 9, "python", "", "x += 2\n"), namespace)
    assert namespace["x"] == 42
    with pytest.raises(AssertionError, match=re.escape("doc.md:12 (python) raised NameError")):
        _run_python(Block("doc.md", 12, "python", "", "undefined_name\n"), namespace)


def test_a_shell_example_fails_on_any_failing_command_and_console_runs_only_its_prompts(
    tmp_path: Path,
) -> None:
    environment = _shell_environment({"RELIQUARY_URL": "http://127.0.0.1:9"}, tmp_path)
    _run_shell(
        Block("doc.md", 1, "sh", "", 'test "$RELIQUARY_URL" = http://127.0.0.1:9\n'), environment, tmp_path
    )
    _run_shell(
        Block("doc.md", 2, "console", "", "$ echo ok\nok\nthis output is not run\n"), environment, tmp_path
    )
    with pytest.raises(AssertionError, match=re.escape("doc.md:5 (bash) exited 1")):
        _run_shell(Block("doc.md", 5, "bash", "", "false\necho never\n"), environment, tmp_path)
    # curl fails on an HTTP error status (the scratch .curlrc), as a refused request must fail its example.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        missing = Block("doc.md", 7, "bash", "", f"curl -s http://127.0.0.1:{server.server_port}/missing\n")
        with pytest.raises(AssertionError, match=re.escape("doc.md:7 (bash) exited 22")):
            _run_shell(missing, environment, tmp_path)
    finally:
        server.shutdown()
        server.server_close()


def test_the_local_setup_is_what_reliquary_dev_leaves(tmp_path: Path) -> None:
    """The profiles ``local`` (default, the demo tenant's admin) and ``local-operator``, marked as written
    by ``dev``, in a 0600 config; ``reliquary`` on PATH is this checkout's; no stray RELIQUARY_* variable."""
    admin = ApiClient("acme", "cl-admin", "admin-secret")
    operator = ApiClient("reliquary-operator", "cl-operator", "operator-secret")
    world = cast(
        "ApiWorld", SimpleNamespace(url="http://127.0.0.1:9", operator=operator, client=lambda _: admin)
    )
    extra = _local_environment(world, tmp_path / ".home")
    config = Path(extra["XDG_CONFIG_HOME"]) / "reliquary" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    saved = json.loads(config.read_text(encoding="utf-8"))
    assert saved["default"] == "local"
    assert {name: (p["url"], p["client_id"], p["dev"]) for name, p in saved["profiles"].items()} == {
        "local": ("http://127.0.0.1:9", "cl-admin", True),
        "local-operator": ("http://127.0.0.1:9", "cl-operator", True),
    }
    assert not list(Path(extra["XDG_STATE_HOME"]).iterdir())  # the runtime's profile file is consumed
    environment = _shell_environment({**extra, "RELIQUARY_PROFILE": "local"}, tmp_path)
    assert {k for k in environment if k.startswith("RELIQUARY_")} == {"RELIQUARY_PROFILE", "RELIQUARY_ZK_DIR"}
    listed = tmp_path / "listed.json"
    _run_shell(
        Block(
            "cli.md",
            1,
            "sh",
            "",
            f'test "$(command -v reliquary)" = "{extra[LOCAL_BIN]}/reliquary"\n'
            f"reliquary --json profile list > {listed}\n",
        ),
        environment,
        tmp_path,
    )
    assert "admin-secret" not in listed.read_text(encoding="utf-8")
    assert {p["name"] for p in json.loads(listed.read_text(encoding="utf-8"))["profiles"]} == {
        "local",
        "local-operator",
    }
