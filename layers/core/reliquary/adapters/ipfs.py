"""Sealed bodies on IPFS, through the Kubo RPC API (``/api/v0``) of any Kubo-compatible node.

``put`` adds the body with ``cid-version=1``, ``raw-leaves=true``, the fixed 256 KiB chunker and
``pin=true``; the CID the node answers must name the block this module computes for the body
(``reliquary.vaults.cid``), or the body is refused (``BodyIntegrityError``) and nothing is recorded.
``get`` asks ``cat`` for the recorded CID and returns the body only once its CID, recomputed here, is the
recorded one: a node cannot serve another body, however it spells its CIDs (js-ipfs answers base58).
``release`` unpins (``pin/rm``); the blocks stay until the node collects garbage, and any copy another
node pinned stays there. The multipart body of ``add`` names a Content-Type on its part: js-ipfs needs it.
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import urlencode

from reliquary.adapters.node_http import Answer, NodeEndpoint
from reliquary.errors import BodyIntegrityError, InvalidRequestError, StorageUnavailableError
from reliquary.vaults.cid import CHUNK_SIZE, Cid, file_cid
from reliquary.vaults.permanent import PermanentBackend, PermanentRef

_ADD_OPTIONS = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": f"size-{CHUNK_SIZE}",
    "hash": "sha2-256",
    "pin": "true",
    "progress": "false",
    "wrap-with-directory": "false",
}
_SMALL_ANSWER = 64 * 1024
_PIN_LIST_ANSWER = 16 * 1024 * 1024


class IpfsStore:
    """A ``PermanentStore`` over one node's Kubo RPC API (e.g. ``http://127.0.0.1:5001``)."""

    def __init__(self, api_url: str, *, timeout: float = 10.0) -> None:
        self._node = NodeEndpoint(api_url, node="ipfs", timeout=timeout)

    def put(self, body: bytes, *, tags: tuple[tuple[str, str], ...] = ()) -> PermanentRef:  # noqa: ARG002
        """Add and pin ``body`` (IPFS keeps no tags: the port's ``tags`` are for Arweave)."""
        expected = file_cid(body)
        boundary = secrets.token_hex(16)
        form = b"".join(
            (
                f"--{boundary}\r\n".encode("ascii"),
                b'Content-Disposition: form-data; name="file"; filename="body"\r\n',
                b"Content-Type: application/octet-stream\r\n\r\n",
                body,
                f"\r\n--{boundary}--\r\n".encode("ascii"),
            )
        )
        answer = self._post(
            "add", _ADD_OPTIONS, body=form, content_type=f"multipart/form-data; boundary={boundary}"
        )
        added = self._added_cid(answer)
        if not added.names_same_block(expected):
            raise BodyIntegrityError("the IPFS node named another CID for the body", backend="ipfs")
        return PermanentRef.of(PermanentBackend.IPFS, str(expected), body)

    def get(self, ref: PermanentRef) -> bytes:
        cid = self._recorded(ref)
        answer = self._post("cat", {"arg": str(cid)}, limit=ref.size)
        if answer.status != 200:
            raise self._node.refused(answer)
        if answer.truncated:
            raise BodyIntegrityError("the IPFS node served a body longer than recorded", backend="ipfs")
        if not file_cid(answer.body).names_same_block(cid):
            raise BodyIntegrityError(
                "the IPFS node served a body that is not the recorded CID's", backend="ipfs"
            )
        return ref.check(answer.body)

    def pin(self, ref: PermanentRef) -> None:
        """Pin the recorded CID again (on this node, or on another node that can fetch it)."""
        answer = self._post("pin/add", {"arg": str(self._recorded(ref))})
        if answer.status != 200:
            raise self._node.refused(answer)

    def release(self, ref: PermanentRef) -> None:
        cid = self._recorded(ref)
        try:
            answer = self._post("pin/rm", {"arg": str(cid)})
        except StorageUnavailableError as exc:
            # Kubo and js-ipfs answer 500 for "not pinned" too: only the pin list tells it from a failure.
            if "status" not in exc.details or self._pinned(cid):
                raise
            return
        if answer.status != 200:
            raise self._node.refused(answer)

    def _pinned(self, cid: Cid) -> bool:
        answer = self._post("pin/ls", {"type": "recursive"}, limit=_PIN_LIST_ANSWER)
        keys = _json(answer.body).get("Keys") if answer.status == 200 and not answer.truncated else None
        if not isinstance(keys, dict):
            raise self._node.refused(answer)
        try:
            return any(Cid.parse(key).names_same_block(cid) for key in keys)
        except InvalidRequestError:
            raise self._node.refused(answer) from None

    def _post(
        self,
        command: str,
        options: dict[str, str],
        *,
        body: bytes = b"",
        content_type: str | None = None,
        limit: int = _SMALL_ANSWER,
    ) -> Answer:
        # The RPC API takes POST for every command, with its arguments in the query string.
        headers = {"Content-Type": content_type} if content_type else {}
        return self._node.request(
            "POST", f"/api/v0/{command}?{urlencode(options)}", body=body, headers=headers, limit=limit
        )

    def _added_cid(self, answer: Answer) -> Cid:
        # One JSON object a line; with wrap-with-directory off the last one names the body.
        if answer.status != 200 or answer.truncated:
            raise self._node.refused(answer)
        try:
            return Cid.parse(_json(answer.body.strip().rpartition(b"\n")[2]).get("Hash"))
        except InvalidRequestError:
            raise self._node.refused(answer) from None

    @staticmethod
    def _recorded(ref: PermanentRef) -> Cid:
        if ref.backend is not PermanentBackend.IPFS:
            raise InvalidRequestError("the reference is not an IPFS one")
        return Cid.parse(ref.locator)


def _json(text: bytes) -> dict[str, Any]:
    """The JSON object in ``text``, or an empty one when there is none."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
