"""Real nodes that stop mid-way, and the launcher's own failures: a node that goes away is a transient
error for both stores (the flow retries it), and a node that cannot start is named with its log file."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from infra.local.nodes import local_nodes, spawn_arweave, spawn_ipfs, wait_ready
from infra.local.runtime import LocalRuntimeError
from reliquary.adapters.arweave import ArweaveStore
from reliquary.adapters.ipfs import IpfsStore
from reliquary.errors import StorageUnavailableError
from reliquary.vaults.arweave_tx import ArweaveWallet
from tests.support.nodes import arweave_get

pytestmark = [pytest.mark.xdist_group("permanent-nodes")]


def test_stores_whose_nodes_stop_mid_way_raise_transient_errors(
    tmp_path: Path, arweave_wallet: ArweaveWallet
) -> None:
    with local_nodes(tmp_path) as doomed:
        arweave_get(doomed.arweave.url, f"/mint/{arweave_wallet.address}/{10**12}")
        arweave = ArweaveStore(doomed.arweave.url, arweave_wallet, timeout=5)
        ipfs = IpfsStore(doomed.ipfs.url, timeout=5)
        body = os.urandom(100_000)
        on_arweave, on_ipfs = arweave.put(body), ipfs.put(body)
        assert (arweave.get(on_arweave), ipfs.get(on_ipfs)) == (body, body)
        for node in (doomed.arweave, doomed.ipfs):
            node.stop()
            assert not node.running
        for call in (
            lambda: arweave.get(on_arweave),
            lambda: arweave.put(body),
            lambda: ipfs.get(on_ipfs),
            lambda: ipfs.put(body),
            lambda: ipfs.release(on_ipfs),
        ):
            with pytest.raises(StorageUnavailableError) as unavailable:
                call()
            assert unavailable.value.retryable
    assert not any(tmp_path.iterdir())  # both nodes' directories are gone


def test_a_node_that_cannot_start_is_named_with_its_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        node = spawn_arweave(tmp_path, port=taken.getsockname()[1])
        try:
            with pytest.raises(
                LocalRuntimeError, match=r"arlocal exited with status \d+; see .*arlocal\.log"
            ):
                wait_ready(node, timeout=60)
        finally:
            node.stop()
    assert "EADDRINUSE" in node.log.read_text(encoding="utf-8")


def test_a_node_that_does_not_answer_in_time_is_named_with_its_log(tmp_path: Path) -> None:
    node = spawn_ipfs(tmp_path)
    try:
        with pytest.raises(LocalRuntimeError, match=r"jsipfs did not answer within 0 s; see .*jsipfs\.log"):
            wait_ready(node, timeout=0.01)
    finally:
        node.stop()
    assert not node.running
