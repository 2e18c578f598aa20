"""Real local IPFS and Arweave nodes for the permanent-storage tests: one pair per test session
(infra/local/nodes.py; ``make nodes-setup`` installs them), a funded Arweave wallet, the two stores, and
the latency of each operation, printed at the end of the session."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from infra.local.nodes import LocalNodes, local_nodes
from reliquary.adapters.arweave import ArweaveStore
from reliquary.adapters.ipfs import IpfsStore
from reliquary.vaults.arweave_tx import ArweaveWallet

# Enough winston for every test's transactions (arlocal prices a MiB at about 6.9e10).
_FUNDS = 10**15


@dataclass
class Latencies:
    """How long each operation took, by operation and body size."""

    rows: list[tuple[str, int, float]] = field(default_factory=list)

    @contextlib.contextmanager
    def measure(self, operation: str, size: int) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.rows.append((operation, size, time.perf_counter() - started))

    def lines(self) -> list[str]:
        return [
            f"{operation:<30} {size:>9} B {seconds * 1000:9.1f} ms" for operation, size, seconds in self.rows
        ]


LATENCIES = Latencies()


@pytest.fixture(scope="session")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNodes]:
    """arlocal and js-ipfs on 127.0.0.1, started once for the session and stopped by process group."""
    with local_nodes(Path(tmp_path_factory.mktemp("nodes"))) as running:
        for node in (running.arweave, running.ipfs):
            LATENCIES.rows.append((f"start {node.name}", 0, node.started_in))
        yield running


def arweave_get(url: str, path: str) -> bytes:
    """A plain GET of one of arlocal's own endpoints (``/mint``, ``/mine``, ``/tx/<id>/status``)."""
    with urllib.request.urlopen(f"{url}{path}", timeout=10) as answer:  # noqa: S310 (a loopback URL)
        body: bytes = answer.read()
        return body


@pytest.fixture(scope="session")
def arweave_wallet(nodes: LocalNodes) -> ArweaveWallet:
    """A wallet made for the session (never stored), funded on arlocal."""
    with LATENCIES.measure("generate RSA-4096 wallet", 0):
        wallet = ArweaveWallet.generate()
    arweave_get(nodes.arweave.url, f"/mint/{wallet.address}/{_FUNDS}")
    return wallet


@pytest.fixture(scope="session")
def arweave(nodes: LocalNodes, arweave_wallet: ArweaveWallet) -> ArweaveStore:
    return ArweaveStore(nodes.arweave.url, arweave_wallet)


@pytest.fixture(scope="session")
def ipfs(nodes: LocalNodes) -> IpfsStore:
    return IpfsStore(nodes.ipfs.url)


@dataclass(frozen=True)
class Reply:
    """What a fake node answers: a status and a body, a ``Content-Length`` that may promise more than
    the body (the connection then closes mid-answer), or a hang longer than any client's timeout."""

    status: int = 200
    body: bytes = b""
    promised: int | None = None
    hang: bool = False


class FakeNode:
    """A tiny HTTP server on 127.0.0.1 that answers each request with ``respond``, or as
    ``respond(method, path)`` says: a node that substitutes bodies, fails, hangs or cuts its answers
    short. ``requests`` lists what it was asked (method and path)."""

    def __init__(self, respond: Reply | Callable[[str, str], Reply]) -> None:
        answer = _always(respond) if isinstance(respond, Reply) else respond
        self.requests: list[tuple[str, str]] = []
        self._release = threading.Event()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append((self.command, self.path))
                reply = answer(self.command, self.path)
                if reply.hang:
                    fake._release.wait(30)
                    return
                self.send_response(reply.status)
                self.send_header("Content-Length", str(reply.promised or len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                self.close_connection = True

            do_GET = do_POST = _answer  # noqa: N815 (BaseHTTPRequestHandler's names)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's signature)
                """Quiet."""

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeNode:
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


def _always(reply: Reply) -> Callable[[str, str], Reply]:
    return lambda _method, _path: reply
