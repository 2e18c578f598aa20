"""The clients' static types: what mypy sees a resource method take and answer.

Each route is written once for both clients; these check that a type checker still gives the sync client
the route's model (an iterator of the items for a list) and the async one an awaitable of it (an async
iterator), with the arguments' names and types. One mypy run checks every snippet below: an
``assert_type`` that does not hold is an error, and each line marked ``# error: CODE`` must be one.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path

from mypy import api as mypy_api
from reliquary_sdk import AsyncReliquary, Reliquary
from reliquary_sdk.client import Vaults

SDK = Path(__file__).resolve().parents[2] / "sdk"

SNIPPET = textwrap.dedent(
    """
    from collections.abc import AsyncIterator, Awaitable, Iterator
    from typing import assert_type

    from reliquary_sdk import AsyncReliquary, Reliquary
    from reliquary_sdk.models import (
        DecisionView, History, MemoryView, PolicyView, SealResult, VaultDetailView, VaultView,
    )

    api = Reliquary("https://api.example")
    aapi = AsyncReliquary("https://api.example")

    assert_type(api.vaults.get("v"), VaultDetailView)
    assert_type(aapi.vaults.get("v"), Awaitable[VaultDetailView])
    assert_type(api.vaults.put_policy("v", "trust", {"threshold": 0.5}), PolicyView)
    assert_type(api.vaults.list(limit=5), Iterator[VaultView])
    assert_type(api.memories.add("v", "t", user_id="u"), SealResult)
    assert_type(aapi.memories.add("v", "t", user_id="u"), Awaitable[SealResult])
    assert_type(api.memories.list("v", user_id="u"), Iterator[MemoryView])
    assert_type(aapi.memories.list("v", user_id="u"), AsyncIterator[MemoryView])
    assert_type(api.memories.history("v", "m"), History)
    assert_type(aapi.memories.history("v", "m"), Awaitable[History])
    assert_type(api.memories.decisions("v", "m"), Iterator[DecisionView])
    assert_type(api.audit.checkpoint(), str)
    assert_type(aapi.audit.checkpoint(), Awaitable[str])

    for memory in api.memories.list("v"):
        assert_type(memory, MemoryView)
        assert_type(memory.memory_id, str)


    async def reads() -> None:
        assert_type(await aapi.vaults.get("v"), VaultDetailView)
        async for memory in aapi.memories.list("v"):
            assert_type(memory, MemoryView)


    api.vaults.get(7)  # error: arg-type
    aapi.vaults.get(7)  # error: arg-type
    api.memories.add("v", "t", usr_id="u")  # error: call-arg
    api.memories.list("v", limit="ten")  # error: arg-type
    api.vaults.get_policy("v", "nonsense")  # error: arg-type
    api.vaults.get("v").no_such_member  # error: attr-defined
    """
)


def _expected(source: str) -> set[tuple[int, str]]:
    marked = (re.search(r"# error: ([\w-]+)$", line) for line in source.splitlines())
    return {(number, found.group(1)) for number, found in enumerate(marked, 1) if found}


def test_mypy_sees_each_routes_model_for_both_clients(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET, "utf-8")
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\nstrict = True\nmypy_path = {SDK}\n", "utf-8")
    out, err, _status = mypy_api.run(
        ["--config-file", str(config), "--cache-dir", str(tmp_path / "cache"), str(snippet)]
    )
    found = {
        (int(line), code)
        for line, code in re.findall(r"^[^:\n]*snippet\.py:(\d+): error: .*\[([\w-]+)\]$", out, re.MULTILINE)
    }
    assert not err
    assert found == _expected(SNIPPET), out
    # The expected errors are all there is: every assert_type held and nothing else was reported.
    assert f"Found {len(found)} errors in 1 file" in out, out


def test_a_resource_method_keeps_its_name_and_documentation() -> None:
    api, aapi = Reliquary("https://api.example"), AsyncReliquary("https://api.example")
    try:
        assert api.memories.add.__name__ == "add"
        assert aapi.memories.add.__name__ == "add"
        assert api.memories.add.__doc__ is not None
        assert "Seal a memory" in api.memories.add.__doc__
        assert Vaults.list.__doc__ is not None
        assert "Every vault the token may read" in Vaults.list.__doc__
    finally:
        api.close()
        asyncio.run(aapi.aclose())
