"""Load liboqs from the native layer and import liboqs-python (``oqs``) against it, never over the network.

liboqs-python is pure Python: on import it looks for ``$OQS_INSTALL_PATH/lib/liboqs.so`` and, when it finds
none, counts down 5 s and tries to ``git clone`` and build liboqs. This module makes that impossible: it
finds the layer's ``lib/`` directory, preloads the bundled libcrypto and liboqs by absolute path, imports
``oqs`` with its installer disabled and its import-time stdout chatter silenced, and checks that the library
``oqs`` ended up with is ours and is liboqs 0.16.

Where ``lib/`` is: ``$RELIQUARY_NATIVE_LIB_DIR`` when set (and then only there); otherwise the first of
``layers/native/lib`` in a checkout (beside this package's directory; built by ``make native``) and
``/opt/lib`` in the Lambda layer (this package is ``/opt/python/reliquary_native``, one level deeper)
that holds ``liboqs.so``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import logging
import os
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

__all__ = [
    "ENV_LIB_DIR",
    "NativeLibraryUnavailable",
    "liboqs_version",
    "load_oqs",
    "native_lib_dir",
]

ENV_LIB_DIR: Final = "RELIQUARY_NATIVE_LIB_DIR"
LIBOQS_FILE: Final = "liboqs.so"
LIBCRYPTO_GLOB: Final = "libcrypto-*.so*"
EXPECTED_VERSION_PREFIX: Final = "0.16."

# liboqs-python reads these two at import time (oqs/oqs.py).
_ENV_OQS_INSTALL_PATH: Final = "OQS_INSTALL_PATH"
_ENV_PYOQS_VERSION: Final = "PYOQS_VERSION"
# Not a version: liboqs-python's installer validates it against a version regex and raises ValueError
# before its countdown and its `git clone`, so an import that cannot find our library fails at once.
_INSTALLER_DISABLED: Final = "disabled-by-reliquary-native"
# liboqs-python looks for $OQS_INSTALL_PATH/lib/liboqs.so and $OQS_INSTALL_PATH/lib64/liboqs.so.
_LIB_DIR_NAMES: Final = ("lib", "lib64")
_OQS_LOGGER: Final = "oqs.oqs"
_BUILD_HINT: Final = (
    "build it with `make native` in a checkout; on AWS Lambda attach the NativeLayer "
    f"(lib/{LIBOQS_FILE} lands in /opt/lib)"
)

_PACKAGE_DIR: Final = Path(__file__).resolve().parent
# The checkout (layers/native/{reliquary_native,lib}), then the Lambda layer (/opt/python/reliquary_native
# beside /opt/lib).
_DEFAULT_LIB_DIRS: Final = (_PACKAGE_DIR.parent / "lib", _PACKAGE_DIR.parent.parent / "lib")

_lock = threading.Lock()
_loaded: dict[str, types.ModuleType] = {}
# The CDLL handles stay referenced for the life of the process, as the libraries do.
_handles: list[ctypes.CDLL] = []


class NativeLibraryUnavailable(ImportError):  # noqa: N818 (public name, an ImportError like its cause)
    """liboqs (or its bundled libcrypto) is missing, cannot be loaded, or is not the expected build."""


def native_lib_dir() -> Path:
    """Return the directory holding ``liboqs.so``, or raise :class:`NativeLibraryUnavailable`.

    ``$RELIQUARY_NATIVE_LIB_DIR`` is explicit: when it is set, no other place is tried.
    """
    explicit = os.environ.get(ENV_LIB_DIR)
    if explicit:
        candidates: tuple[Path, ...] = (Path(explicit).expanduser(),)
        searched = f"{candidates[0]} (from ${ENV_LIB_DIR})"
    else:
        candidates = _DEFAULT_LIB_DIRS
        searched = f"{', '.join(map(str, candidates))} (the defaults; ${ENV_LIB_DIR} names another directory)"
    for candidate in candidates:
        if (candidate / LIBOQS_FILE).is_file():
            return candidate.resolve()
    raise NativeLibraryUnavailable(f"{LIBOQS_FILE} not found; searched {searched}; {_BUILD_HINT}")


def load_oqs() -> types.ModuleType:
    """Return the ``oqs`` module bound to this layer's liboqs. Cached and thread-safe.

    Fails fast with :class:`NativeLibraryUnavailable`: no countdown, no download, no subprocess.
    """
    module = _loaded.get("oqs")
    if module is not None:
        return module
    with _lock:
        module = _loaded.get("oqs")
        if module is None:
            module = _load(native_lib_dir())
            _loaded["oqs"] = module
        return module


def liboqs_version() -> str:
    """The version of the loaded liboqs, e.g. ``"0.16.0"``."""
    return str(load_oqs().oqs_version())


def _load(lib_dir: Path) -> types.ModuleType:
    if lib_dir.name not in _LIB_DIR_NAMES:
        raise NativeLibraryUnavailable(
            f"{lib_dir} must be named one of {', '.join(_LIB_DIR_NAMES)}: liboqs-python only looks in "
            f"$OQS_INSTALL_PATH/lib and $OQS_INSTALL_PATH/lib64"
        )
    liboqs_path = lib_dir / LIBOQS_FILE
    # The wheel's RPATH to its libcrypto no longer resolves once copied: load libcrypto first, so the
    # dynamic linker finds liboqs's dependency (by soname) already in the process. Locally, not globally:
    # this OpenSSL 1.1.1 must never interpose on symbols of any other library in the process.
    for path in [*sorted(lib_dir.glob(LIBCRYPTO_GLOB)), liboqs_path]:
        try:
            _handles.append(ctypes.CDLL(str(path), mode=ctypes.RTLD_LOCAL))
        except OSError as exc:
            raise NativeLibraryUnavailable(f"cannot load {path}: {exc}; {_BUILD_HINT}") from exc

    try:
        with _import_guard(install_path=lib_dir.parent):
            module = importlib.import_module("oqs")
    except (Exception, SystemExit) as exc:
        raise NativeLibraryUnavailable(
            f"importing liboqs-python (oqs) against {liboqs_path} failed (its network installer is "
            f"disabled): {type(exc).__name__}: {exc}"
        ) from exc

    try:
        loaded_from = Path(module.native()._name).resolve()  # CDLL keeps the path it was opened with
        version = module.oqs_version()
    except Exception as exc:
        raise NativeLibraryUnavailable(f"oqs did not expose its native library: {exc}") from exc
    if loaded_from != liboqs_path.resolve():
        raise NativeLibraryUnavailable(
            f"oqs is bound to {loaded_from}, not to {liboqs_path} (was oqs imported before load_oqs()?)"
        )
    if not isinstance(version, str) or not version.startswith(EXPECTED_VERSION_PREFIX):
        raise NativeLibraryUnavailable(
            f"{liboqs_path} is liboqs {version!r}, expected {EXPECTED_VERSION_PREFIX}x; {_BUILD_HINT}"
        )
    return module


@contextmanager
def _import_guard(*, install_path: Path) -> Iterator[None]:
    """For the duration of ``import oqs``: point it at our library and nowhere else, keep it quiet."""
    os.environ[_ENV_OQS_INSTALL_PATH] = str(install_path)
    saved_version = os.environ.get(_ENV_PYOQS_VERSION)
    os.environ[_ENV_PYOQS_VERSION] = _INSTALLER_DISABLED

    # oqs adds a StreamHandler(stdout) to its logger and logs "faulthandler is disabled" at import time.
    logger = logging.getLogger(_OQS_LOGGER)
    saved_disabled = logger.disabled
    saved_handlers = list(logger.handlers)
    logger.disabled = True

    # oqs tries ctypes.util.find_library("oqs") before its install path, which runs ldconfig/gcc in
    # subprocesses (~30 ms) and would prefer a system liboqs over ours.
    saved_find_library = ctypes.util.find_library
    ctypes.util.find_library = _without_liboqs(saved_find_library)  # type: ignore[assignment]
    try:
        yield
    finally:
        ctypes.util.find_library = saved_find_library
        for handler in list(logger.handlers):
            if handler not in saved_handlers:
                logger.removeHandler(handler)
        logger.disabled = saved_disabled
        if saved_version is None:
            os.environ.pop(_ENV_PYOQS_VERSION, None)
        else:
            os.environ[_ENV_PYOQS_VERSION] = saved_version


def _without_liboqs(find_library: Callable[[str], str | None]) -> Callable[[str], str | None]:
    def find_library_except_liboqs(name: str) -> str | None:
        if name in ("oqs", "liboqs"):
            return None
        return find_library(name)

    return find_library_except_liboqs
