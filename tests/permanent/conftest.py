"""The permanent-storage tests run against real local nodes (tests/support/nodes.py: arlocal and js-ipfs,
one pair per session, all of this directory's node tests on one xdist worker) and print each operation's
latency at the end."""

from __future__ import annotations

import pytest

from tests.support.nodes import LATENCIES, arweave, arweave_wallet, ipfs, nodes

__all__ = ["arweave", "arweave_wallet", "ipfs", "nodes"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LATENCIES.rows:
        terminalreporter.write_sep("-", "permanent storage: latency on the local nodes")
        for line in LATENCIES.lines():
            terminalreporter.write_line(line)
