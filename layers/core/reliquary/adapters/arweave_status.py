"""Where an Arweave transaction stands: ``GET /tx/<id>/status`` of a node or gateway.

A mined transaction's status is a JSON object naming its block (``block_height``,
``block_indep_hash``, ``number_of_confirmations``); a posted one not mined yet answers 202 (a gateway)
or the text ``Pending`` (arlocal); one the node does not know answers 404. A node that does not answer,
or fails, is ``StorageUnavailableError`` (the next anchoring run asks again).
"""

from __future__ import annotations

import json
import re

from reliquary.adapters.node_http import NodeEndpoint
from reliquary.audit.anchor import Block, TxStatus
from reliquary.errors import InvalidRequestError

_TX_ID = re.compile(r"[A-Za-z0-9_-]{43}")
_BLOCK_HASH = re.compile(r"[A-Za-z0-9_-]{64}")
_SMALL_ANSWER = 4 * 1024
_MAX_HEIGHT = 2**53 - 1


class ArweaveBlocks:
    """A ``BlockSource`` over one Arweave node or gateway (e.g. ``http://127.0.0.1:1984``)."""

    def __init__(self, node_url: str, *, timeout: float = 10.0) -> None:
        self._node = NodeEndpoint(node_url, node="arweave", timeout=timeout)

    def status(self, locator: str) -> TxStatus:
        if not isinstance(locator, str) or _TX_ID.fullmatch(locator) is None:
            raise InvalidRequestError("the locator is not an Arweave transaction id")
        answer = self._node.request("GET", f"/tx/{locator}/status", limit=_SMALL_ANSWER)
        if answer.status == 404:
            return "unknown"
        if answer.status == 202 or (answer.status == 200 and answer.body.strip() == b"Pending"):
            return "pending"
        if answer.status != 200 or answer.truncated:
            raise self._node.refused(answer)
        try:
            found = json.loads(answer.body)
        except ValueError:
            raise self._node.refused(answer) from None
        height = found.get("block_height") if isinstance(found, dict) else None
        block = found.get("block_indep_hash") if isinstance(found, dict) else None
        if (
            isinstance(height, bool)
            or not isinstance(height, int)
            or not 0 <= height <= _MAX_HEIGHT
            or not isinstance(block, str)
            or _BLOCK_HASH.fullmatch(block) is None
        ):
            raise self._node.refused(answer)
        return Block(height, block)
