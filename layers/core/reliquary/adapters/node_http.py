"""Plain HTTP to a storage node (an IPFS or Arweave node), over the standard library only.

Each call opens one connection with a timeout, sends one request and reads at most ``limit`` bytes of
the answer. A node that cannot be reached, times out, drops the connection, throttles (429) or fails
(5xx) raises ``StorageUnavailableError``, which the flow retries; any other answer is returned for the
adapter to judge. Messages name the node and the status, never a caller's input.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit

from reliquary.errors import ConfigurationError, ReliquaryError, StorageUnavailableError


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    truncated: bool  # the node sent more than the caller's limit


class NodeEndpoint:
    def __init__(self, base_url: str, *, node: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ConfigurationError(f"the {node} node's URL must be http(s)://host[:port][/path]")
        if timeout <= 0:
            raise ConfigurationError(f"the {node} node's timeout must be positive")
        self.node = node
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        limit: int,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """The node's answer (any status below 500 but 429); reads at most ``limit`` + 1 bytes."""
        connection_class = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = connection_class(self._host, self._port, timeout=self._timeout)
        try:
            connection.request(method, self._prefix + path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read(limit + 1)
            if len(data) <= limit:
                # A short read is the end of the answer; this raises IncompleteRead if the node promised
                # more (Content-Length or an unfinished chunked body) and closed the connection.
                data += response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, cut short
            raise StorageUnavailableError(f"the {self.node} node did not answer", node=self.node) from exc
        finally:
            connection.close()
        if status == 429 or status >= 500:
            raise StorageUnavailableError(f"the {self.node} node failed", node=self.node, status=status)
        return Answer(status, data[:limit], len(data) > limit)

    def refused(self, answer: Answer) -> ReliquaryError:
        """The error for an answer the adapter cannot use (a 4xx, or a 2xx it cannot parse)."""
        return ReliquaryError(
            f"the {self.node} node refused the request", node=self.node, status=answer.status
        )
