"""Local IPFS and Arweave nodes on 127.0.0.1, offline, from the npm packages in nodes/ (`make nodes-setup`).

- Arweave: arlocal, with its database in a fresh temporary directory (its ``:memory:`` database is
  broken) and bound to loopback by ``nodes/loopback.cjs`` (arlocal itself listens on every interface).
- IPFS: js-ipfs's daemon (``jsipfs daemon --offline``), which serves the Kubo RPC API. Its repository is
  a fresh temporary ``IPFS_PATH``, initialised by the daemon itself from ``--init-config`` (a separate
  ``jsipfs init`` costs a second start of Node, about 5 s): the API on a free loopback port, no
  gateway, no gRPC, no swarm, no bootstrap peers, no discovery.

Each node is a child process in a process group of its own, started with its output in a log file, waited
for until its API answers (an error naming the log file when it exits or does not answer in time), and
stopped by its process group id: SIGTERM, then SIGKILL. Used by the tests (one pair per test session,
``tests/support/nodes.py``) and by ``python -m infra.local.nodes`` (prints the URLs, stops on Ctrl-C).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.runtime import LocalRuntimeError

NODES_DIR = Path(__file__).resolve().parents[2] / "nodes"
NODE_MODULES = NODES_DIR / "node_modules"
ARLOCAL = NODE_MODULES / "arlocal" / "bin" / "index.js"
JSIPFS = NODE_MODULES / "ipfs" / "src" / "cli.js"
LOOPBACK = NODES_DIR / "loopback.cjs"
START_TIMEOUT = 60.0  # seconds; a start takes 2-5 s on an idle machine
_POLL = 0.05


@dataclass
class LocalNode:
    """One running node: its API's URL, its process, its log and its temporary directory."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    workdir: Path
    spawned_at: float = field(default_factory=time.monotonic)
    started_in: float = 0.0  # seconds from spawning to the first answer of its API

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the node's process group: SIGTERM, then SIGKILL. Its directory (and log) stays."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)


@dataclass
class LocalNodes:
    arweave: LocalNode
    ipfs: LocalNode

    def stop(self) -> None:
        """Stop both and remove their directories."""
        for node in (self.ipfs, self.arweave):
            node.stop()
            shutil.rmtree(node.workdir, ignore_errors=True)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the node binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _require_packages() -> str:
    node = shutil.which("node")
    if node is None:
        raise LocalRuntimeError("Node.js 20+ is required for the local IPFS and Arweave nodes")
    missing = [path.name for path in (ARLOCAL, JSIPFS) if not path.is_file()]
    if missing:
        raise LocalRuntimeError("the local nodes' npm packages are not installed: run `make nodes-setup`")
    return node


def _spawn(name: str, argv: list[str], *, workdir: Path, env: dict[str, str], url: str) -> LocalNode:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 (a fixed command line: node and a script of nodes/)
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return LocalNode(name, url, process, log, workdir)


def spawn_arweave(root: Path, *, port: int | None = None) -> LocalNode:
    """Start arlocal (not waiting for it): its database under ``root``, on ``port`` or a free one."""
    node = _require_packages()
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="arlocal-", dir=root))
    # arlocal joins --dbpath to its working directory, so the path is given relative to it.
    argv = [node, "--require", str(LOOPBACK), str(ARLOCAL), str(port), "--dbpath", "db", "--hidelogs"]
    return _spawn("arlocal", argv, workdir=workdir, env=dict(os.environ), url=f"http://127.0.0.1:{port}")


def spawn_ipfs(root: Path, *, port: int | None = None) -> LocalNode:
    """Start js-ipfs's daemon offline (not waiting for it): a fresh repository under ``root``, its API on
    ``port`` or a free one."""
    node = _require_packages()
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="jsipfs-", dir=root))
    config = {
        "Addresses": {
            "API": f"/ip4/127.0.0.1/tcp/{port}",
            "Gateway": [],
            "RPC": "",  # an empty string turns the gRPC server off (an empty list crashes it)
            "Swarm": [],
            "Delegates": [],
        },
        "Bootstrap": [],
        "Discovery": {"MDNS": {"Enabled": False}, "webRTCStar": {"Enabled": False}},
    }
    (workdir / "config.json").write_text(json.dumps(config), encoding="utf-8")
    env = {**os.environ, "IPFS_PATH": str(workdir / "repo")}
    argv = [node, str(JSIPFS), "daemon", "--offline", "--init-config", "config.json"]
    return _spawn("jsipfs", argv, workdir=workdir, env=env, url=f"http://127.0.0.1:{port}")


def _answers(node: LocalNode) -> bool:
    host, _, port = node.url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=2)
    # arlocal answers GET /info; js-ipfs answers POST /api/v0/id once its repository is open.
    method, path = ("POST", "/api/v0/id") if node.name == "jsipfs" else ("GET", "/info")
    try:
        connection.request(method, path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def wait_ready(node: LocalNode, *, timeout: float = START_TIMEOUT) -> LocalNode:
    """``node`` once its API answers; ``LocalRuntimeError`` naming its log if it exits or stays silent
    (the caller stops it)."""
    while not _answers(node):
        if not node.running:
            raise LocalRuntimeError(
                f"{node.name} exited with status {node.process.returncode}; see {node.log}"
            )
        if time.monotonic() > node.spawned_at + timeout:
            raise LocalRuntimeError(f"{node.name} did not answer within {timeout:.0f} s; see {node.log}")
        time.sleep(_POLL)
    node.started_in = time.monotonic() - node.spawned_at
    return node


def start_nodes(root: Path, *, timeout: float = START_TIMEOUT) -> LocalNodes:
    """Both nodes, started side by side and ready. On failure, whatever started is stopped and its
    directory kept: the error names its log."""
    spawned: list[LocalNode] = []
    try:
        spawned.append(spawn_arweave(root))
        spawned.append(spawn_ipfs(root))
        arweave, ipfs = (wait_ready(node, timeout=timeout) for node in spawned)
    except BaseException:
        for node in spawned:
            node.stop()
        raise
    return LocalNodes(arweave=arweave, ipfs=ipfs)


@contextlib.contextmanager
def local_nodes(root: Path | None = None, *, timeout: float = START_TIMEOUT) -> Iterator[LocalNodes]:
    """Both nodes for the ``with`` block, their directories under ``root`` (a new temporary directory by
    default, removed afterwards unless a node failed to start)."""
    base = root or Path(tempfile.mkdtemp(prefix="reliquary-nodes-"))
    nodes = start_nodes(base, timeout=timeout)
    try:
        yield nodes
    finally:
        nodes.stop()
        if root is None:
            shutil.rmtree(base, ignore_errors=True)


LOCAL_WINSTON = 10**15  # arlocal's test tokens: enough for every body and anchor of a long session


def mint(arweave_url: str, address: str, winston: int = LOCAL_WINSTON) -> None:
    """Give ``address`` arlocal's test tokens (``GET /mint/<address>/<winston>``: arlocal only)."""
    with urllib.request.urlopen(f"{arweave_url}/mint/{address}/{winston}", timeout=10):  # noqa: S310 (loopback)
        pass


def fund_wallets(stack: Any, arweave_url: str) -> dict[str, str]:
    """Fund, on arlocal, the Arweave wallets the stack's functions pay from (each made now, sealed by the
    local root of trust, as a deployment's first seal or anchor would make it); their addresses by use."""
    from reliquary.adapters.audit_factory import anchors_wallet_address  # noqa: PLC0415
    from reliquary.adapters.factory import bodies_wallet_address  # noqa: PLC0415
    from reliquary.config import get_settings  # noqa: PLC0415

    with stack.lambdas.environment_of("EncryptFunction"):
        addresses = {"bodies": bodies_wallet_address(get_settings())}
    with stack.lambdas.environment_of("AuditAppendFunction"):
        addresses["anchors"] = anchors_wallet_address(get_settings())
    for address in addresses.values():
        mint(arweave_url, address)
    return addresses


def main() -> None:
    with local_nodes() as nodes:
        for node in (nodes.arweave, nodes.ipfs):
            print(f"{node.name:8} {node.url}  ready in {node.started_in:.1f} s  (pid {node.process.pid})")
        print("Ctrl-C stops both.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
