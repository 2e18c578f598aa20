"""reliquary_native: liboqs from the native layer, never from the network.

Importing ``oqs`` is process-global (a loaded liboqs, a cached module), so every case runs in a fresh
interpreter and reports back one JSON line on stdout; that line being the only output also proves that
liboqs-python's import-time chatter is silenced.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
NATIVE = REPO / "layers" / "native"
LOCAL_LIB = NATIVE / "lib"
CHILD_TIMEOUT_S = 60
# Variables of the parent that would change what the child loads or how make behaves.
SCRUBBED_ENV = (
    "RELIQUARY_NATIVE_LIB_DIR",
    "OQS_INSTALL_PATH",
    "PYOQS_VERSION",
    "PYOQS_ENABLE_FAULTHANDLER",
    "PYTHONPATH",
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "ARTIFACTS_DIR",
)

# Prepended to a child: any attempt at liboqs-python's network installer (its countdown sleeps, then it
# runs git and cmake) is recorded and refused.
FORBID_INSTALLER = """
import subprocess, time
forbidden_calls = []
def _forbidden(*args, **kwargs):
    forbidden_calls.append(repr(args)[:200])
    raise AssertionError("forbidden during load_oqs: " + repr(args)[:200])
for _name in ("run", "Popen", "call", "check_call", "check_output"):
    setattr(subprocess, _name, _forbidden)
time.sleep = _forbidden
"""

# Loads and reports the outcome; a NativeLibraryUnavailable is a result, anything else crashes the child.
LOAD_AND_REPORT = """
import json, os, sys
import reliquary_native
_t0 = time.perf_counter()
try:
    reliquary_native.load_oqs()
except reliquary_native.NativeLibraryUnavailable as exc:
    error = str(exc)
else:
    error = None
print(json.dumps({
    "error": error,
    "elapsed_s": time.perf_counter() - _t0,
    "forbidden_calls": forbidden_calls,
    "pyoqs_version": os.environ.get("PYOQS_VERSION"),
}))
"""

SIGN_AND_REPORT = """
import json, os, threading, time
from concurrent.futures import ThreadPoolExecutor
_t0 = time.perf_counter()
import reliquary_native
oqs = reliquary_native.load_oqs()
elapsed_s = time.perf_counter() - _t0
with ThreadPoolExecutor(8) as pool:
    same_module = all(m is oqs for m in pool.map(lambda _: reliquary_native.load_oqs(), range(32)))
verified = {}
for alg in ("Falcon-512", "ML-DSA-65"):
    with oqs.Signature(alg) as signer:
        public_key = signer.generate_keypair()
        signature = signer.sign(b"reliquary")
    with oqs.Signature(alg) as verifier:
        verified[alg] = [
            verifier.verify(b"reliquary", signature, public_key),
            verifier.verify(b"tampered", signature, public_key),
        ]
print(json.dumps({
    "version": reliquary_native.liboqs_version(),
    "lib_dir": str(reliquary_native.native_lib_dir()),
    "loaded_from": oqs.native()._name,
    "oqs_file": oqs.__file__,
    "loader_file": reliquary_native.__file__,
    "same_module": same_module,
    "verified": verified,
    "elapsed_s": elapsed_s,
    "oqs_install_path": os.environ.get("OQS_INSTALL_PATH"),
    "pyoqs_version": os.environ.get("PYOQS_VERSION"),
}))
"""


def run_child(
    code: str, *, cwd: Path, pythonpath: Path = NATIVE, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; return its JSON line, asserting that nothing else was printed."""
    child_env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    child_env["PYTHONPATH"] = str(pythonpath)
    child_env.update(env or {})
    proc = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}"
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"expected one JSON line on stdout, got: {proc.stdout!r}"
    result: dict[str, Any] = json.loads(lines[0])
    return result


@pytest.fixture(scope="session")
def built_lib() -> Path:
    if not (LOCAL_LIB / "liboqs.so").is_file():
        pytest.fail(f"{LOCAL_LIB}/liboqs.so is missing: run `make native` (or `make setup`) first")
    return LOCAL_LIB


def test_built_lib_signs_and_verifies_quietly(built_lib: Path, tmp_path: Path) -> None:
    result = run_child(SIGN_AND_REPORT, cwd=tmp_path)

    assert result["version"] == "0.16.0"
    assert result["verified"] == {"Falcon-512": [True, False], "ML-DSA-65": [True, False]}
    assert result["same_module"] is True
    assert Path(result["lib_dir"]) == built_lib.resolve()
    assert Path(result["loaded_from"]) == built_lib.resolve() / "liboqs.so"
    assert Path(result["loader_file"]).is_relative_to(NATIVE)
    assert result["oqs_install_path"] == str(built_lib.resolve().parent)
    assert result["pyoqs_version"] is None  # set only while importing oqs


def test_explicit_lib_dir_is_used(built_lib: Path, tmp_path: Path) -> None:
    lib = tmp_path / "elsewhere" / "lib"
    shutil.copytree(built_lib, lib)

    result = run_child(SIGN_AND_REPORT, cwd=tmp_path, env={"RELIQUARY_NATIVE_LIB_DIR": str(lib)})

    assert Path(result["loaded_from"]) == lib.resolve() / "liboqs.so"
    assert result["verified"]["Falcon-512"] == [True, False]


def test_empty_lib_dir_fails_fast_without_installing(tmp_path: Path) -> None:
    empty = tmp_path / "lib"
    empty.mkdir()

    result = run_child(
        FORBID_INSTALLER + LOAD_AND_REPORT, cwd=tmp_path, env={"RELIQUARY_NATIVE_LIB_DIR": str(empty)}
    )

    assert result["error"] is not None
    assert str(empty) in result["error"]
    assert "make native" in result["error"]
    assert result["elapsed_s"] < 3
    assert result["forbidden_calls"] == []


def test_explicit_lib_dir_never_falls_back(built_lib: Path, tmp_path: Path) -> None:
    # The default lib/ is built, but an explicit, empty directory must still fail.
    result = run_child(
        FORBID_INSTALLER + LOAD_AND_REPORT,
        cwd=tmp_path,
        env={"RELIQUARY_NATIVE_LIB_DIR": str(tmp_path)},
    )

    assert result["error"] is not None
    assert str(tmp_path) in result["error"]


def test_garbage_library_is_an_error_not_a_crash(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "liboqs.so").write_bytes(b"\x7fELF but not really a shared object\n" * 8)

    result = run_child(
        FORBID_INSTALLER + LOAD_AND_REPORT, cwd=tmp_path, env={"RELIQUARY_NATIVE_LIB_DIR": str(lib)}
    )

    assert result["error"] is not None
    assert "cannot load" in result["error"]
    assert str(lib / "liboqs.so") in result["error"]
    assert result["forbidden_calls"] == []


def test_liboqs_python_installer_is_disabled(built_lib: Path, tmp_path: Path) -> None:
    # Make liboqs-python's own loading fail, so that it falls through to its network installer: the
    # installer must refuse at once (no countdown, no git) and the env var must be restored.
    refuse_load = """
import ctypes
def _refuse(name, *args, **kwargs):
    raise OSError("refused by test: " + str(name))
ctypes.cdll.LoadLibrary = _refuse
"""

    result = run_child(
        FORBID_INSTALLER + refuse_load + LOAD_AND_REPORT, cwd=tmp_path, env={"PYOQS_VERSION": "0.16.0"}
    )

    assert result["error"] is not None
    assert "ValueError" in result["error"]
    assert result["elapsed_s"] < 3
    assert result["forbidden_calls"] == []
    assert result["pyoqs_version"] == "0.16.0"


def test_oqs_bound_to_another_library_is_refused(built_lib: Path, tmp_path: Path) -> None:
    other = tmp_path / "other" / "lib"
    shutil.copytree(built_lib, other)
    import_oqs_elsewhere = f"""
import contextlib, ctypes, io, os
os.environ["OQS_INSTALL_PATH"] = {str(other.parent)!r}
for lib in ({str(next(other.glob("libcrypto-*")))!r}, {str(other / "liboqs.so")!r}):
    ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
with contextlib.redirect_stdout(io.StringIO()):
    import oqs
"""

    result = run_child(FORBID_INSTALLER + import_oqs_elsewhere + LOAD_AND_REPORT, cwd=tmp_path)

    assert result["error"] is not None
    assert f"bound to {other.resolve() / 'liboqs.so'}" in result["error"]


def test_build_native_layer_is_self_contained(built_lib: Path, tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    make = shutil.which("make")
    assert make is not None
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    started = time.monotonic()
    proc = subprocess.run(  # noqa: S603 (fixed arguments)
        [
            make,
            "-C",
            str(NATIVE),
            "build-NativeLayer",
            f"ARTIFACTS_DIR={layer}",
            f"PYTHON={sys.executable}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert time.monotonic() - started < 120

    libcrypto = sorted(p.name for p in (layer / "lib").glob("libcrypto-*"))
    assert len(libcrypto) == 1
    assert sorted(p.name for p in (layer / "lib").iterdir()) == sorted(
        [*libcrypto, "liboqs.so", "libreliquary_merkle.so"]
    )
    assert filecmp.cmp(layer / "lib" / "liboqs.so", built_lib / "liboqs.so", shallow=False)  # one recipe
    assert (layer / "python" / "oqs" / "oqs.py").is_file()
    assert (layer / "python" / "reliquary_native" / "__init__.py").is_file()
    assert (layer / "python" / "reliquary_native" / "py.typed").is_file()
    assert not list(layer.rglob("__pycache__"))

    result = run_child(SIGN_AND_REPORT, cwd=tmp_path, pythonpath=layer / "python")

    assert Path(result["oqs_file"]).is_relative_to(layer)
    assert Path(result["loader_file"]).is_relative_to(layer)
    assert Path(result["lib_dir"]) == (layer / "lib").resolve()
    assert result["verified"]["Falcon-512"] == [True, False]
    assert result["version"] == "0.16.0"
