"""Cold start: what each function's handler loads when Lambda imports it, with the function's environment
from template.yaml and the runtime's (tracing on, as deployed). Assertions on modules, never on time.

- No function imports the API's web stack, LangGraph (a vote builds its graph on first use), or the heavy
  crypto (liboqs, the BN254 pairing): each is loaded by the request that uses it.
- X-Ray patches botocore, through which every AWS call goes, and nothing else: not requests, httpx or
  sqlite3, which no function calls.
- PyYAML loads with the first trust template read (score-trust's first score or policy, the API's policy
  routes), never with a handler; encrypt, audit-append and verify-proof do not even ship it. Nor does the
  trust rules' policy-test runner, which only the CLI and the tests use.
- botocore loads without pyOpenSSL (``reliquary.adapters.botocore_http``), and clients come from botocore,
  so boto3 and s3transfer load only where powertools' idempotency needs boto3 (encrypt, score-trust).
- Every installed module a handler loads is deployed with its function (its package or its layers): the
  imports inside functions, such as powertools' of the X-Ray SDK, are seen here and by no static check.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bench import sizes_bench
from tests.support.lambda_env import FUNCTIONS, lambda_env

REPO = Path(__file__).resolve().parents[2]
PYTHONPATH = f"{REPO}:{REPO / 'layers' / 'core'}:{REPO / 'layers' / 'native'}"
NEVER_AT_IMPORT = {
    "langgraph",
    "langchain_core",
    "oqs",
    "mclbn256",
    "py_ecc",
    "requests",
    "httpx",
    "sqlite3",
    "OpenSSL",
    "urllib3.contrib.pyopenssl",
    "yaml",
    "reliquary.trust.rules._policytest",
}
WEB = {"fastapi", "starlette", "mangum"}
BOTO3 = {"boto3", "s3transfer"}
# What the report lists: the modules no handler may load at import, and those some may (fastapi, boto3...).
WATCHED = (
    *sorted(NEVER_AT_IMPORT),
    *WEB,
    *BOTO3,
    "aws_xray_sdk",
)
USES_BOTO3 = {"encrypt", "score_trust"}  # powertools' idempotency persistence imports boto3
# Installed here (for the tests' tools), taken when importable and not deployed, each with its fallback:
# botocore's own CA bundle without certifi, pynamodb's no-op signals without blinker, anyio assumes
# asyncio without sniffio, FastAPI's ORJSONResponse (unused) without orjson.
OPTIONAL = {"certifi", "blinker", "sniffio", "orjson"}
PACKAGES = {p.logical_id: p for p in sizes_bench.function_packages()}


def _fresh(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(  # noqa: S603  (this interpreter, a fixed probe)
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env={**env, "PYTHONPATH": PYTHONPATH, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@dataclass(frozen=True, slots=True)
class Imported:
    watched: set[str]  # the WATCHED modules loaded
    botocore_traced: bool  # X-Ray has patched botocore's client
    installed: set[str]  # the top-level names of the installed distributions' modules the import loaded
    collections: int  # garbage collections run during the import
    frozen: int  # objects in the collector's permanent generation after it (gc.freeze)
    collector_on: bool  # the collector is on after it


def _imported(name: str, env: dict[str, str]) -> Imported:
    """What importing ``functions/<name>``'s handler loads in a fresh interpreter."""
    out = _fresh(
        f"""
        import gc, json, site, sys
        before = set(sys.modules)
        collections = sum(generation["collections"] for generation in gc.get_stats())
        import functions.{name}.app
        collections = sum(generation["collections"] for generation in gc.get_stats()) - collections
        roots = tuple(site.getsitepackages())
        client = sys.modules.get("botocore.client")
        print(json.dumps({{
            "loaded": sorted(m for m in {WATCHED!r} if m in sys.modules),
            "botocore_traced": bool(getattr(client, "_xray_enabled", False)),
            "installed": sorted({{
                m.partition(".")[0] for m in set(sys.modules) - before
                if (getattr(sys.modules[m], "__file__", None) or "").startswith(roots)
            }}),
            "collections": collections,
            "frozen": gc.get_freeze_count(),
            "collector_on": gc.isenabled(),
        }}))
        """,
        env,
    )
    found = json.loads(out)
    return Imported(
        set(found["loaded"]),
        found["botocore_traced"] is True,
        set(found["installed"]),
        found["collections"],
        found["frozen"],
        found["collector_on"] is True,
    )


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_a_handler_imports_only_what_its_first_request_needs(name: str) -> None:
    imported = _imported(name, dict(lambda_env(name)))
    loaded, botocore_traced = imported.watched, imported.botocore_traced
    assert not loaded & NEVER_AT_IMPORT, f"{name} loads {sorted(loaded & NEVER_AT_IMPORT)} at import"
    # The web stack is the API function's alone.
    assert loaded & WEB == (WEB if name == "api" else set())
    if name not in USES_BOTO3:
        assert not loaded & BOTO3, f"{name} loads {sorted(loaded & BOTO3)} at import"
    # Tracing on, as deployed: the Tracer is built and has patched botocore's client.
    assert "aws_xray_sdk" in loaded
    assert botocore_traced
    # Everything it loaded is deployed with it: its package or its layers (the X-Ray SDK, which powertools
    # imports only where tracing is on, was missing from the CoreLayer: no static check sees that import).
    pins = PACKAGES[FUNCTIONS[name]].pins()
    undeployed = {
        module for module in imported.installed - OPTIONAL if not sizes_bench.providers(module) & set(pins)
    }
    assert not undeployed, f"{name} loads {sorted(undeployed)}, which it does not deploy"
    # The collector stays off while the handler loads, then what it built is frozen (reliquary.coldstart).
    # What runs are a few passes over young objects before the block: reliquary.coldstart loading, and in
    # a fresh checkout the handler module's own compilation (110 to 190 passes without the block).
    assert imported.collections < 20
    assert imported.frozen > 50_000
    assert imported.collector_on


@pytest.mark.parametrize("name", ["encrypt", "api"])
def test_outside_lambda_nothing_is_traced(name: str) -> None:
    imported = _imported(name, {})
    assert "aws_xray_sdk" not in imported.watched
    assert not imported.botocore_traced
    # Nor frozen: a process that imports a handler may outlive it (reliquary.coldstart).
    assert imported.collections < 20
    assert (imported.frozen, imported.collector_on) == (0, True)


def test_botocore_takes_the_standard_ssl_context_and_pyopenssl_stays_importable() -> None:
    out = _fresh(
        """
        import ssl, sys
        import reliquary.adapters
        import botocore.httpsession, urllib3.util.ssl_
        same = botocore.httpsession.SSLContext is urllib3.util.ssl_.SSLContext is ssl.SSLContext
        before = "OpenSSL" in sys.modules
        import urllib3.contrib.pyopenssl as pyopenssl  # hidden only while botocore loaded
        print(same, before, pyopenssl.orig_util_SSLContext is botocore.httpsession.SSLContext)
        """,
        {},
    )
    assert out == "True False True"


def test_with_pyopenssl_loaded_first_botocore_loads_as_it_would_anyway() -> None:
    out = _fresh(
        """
        import urllib3.contrib.pyopenssl as pyopenssl
        import reliquary.adapters
        import botocore.httpsession
        print(botocore.httpsession.SSLContext is pyopenssl.orig_util_SSLContext)
        """,
        {},
    )
    assert out == "True"
