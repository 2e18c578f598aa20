"""botocore's HTTP layer, loaded without pyOpenSSL.

``botocore.httpsession`` takes its ``SSLContext`` from ``urllib3.contrib.pyopenssl``
(``orig_util_SSLContext``, the class that module saves in case pyOpenSSL is later injected into urllib3)
and falls back to ``urllib3.util.ssl_.SSLContext``: the same class, as long as nothing has injected
pyOpenSSL, and nothing here does. pyOpenSSL is installed (webauthn's dependency), and importing that module
imports it with cryptography's X.509 bindings: about a third of botocore's import time, in every function,
for nothing. So the module is hidden while botocore.httpsession loads (botocore takes its fallback) and
importable again after. Once pyOpenSSL is injected, that module is in ``sys.modules`` already, and botocore
loads as it would anyway.
"""

from __future__ import annotations

import importlib
import sys

_PYOPENSSL = "urllib3.contrib.pyopenssl"


def load_http() -> None:
    """Import ``botocore.httpsession`` (before any other botocore module needs it). Idempotent."""
    if "botocore.httpsession" in sys.modules or _PYOPENSSL in sys.modules:
        importlib.import_module("botocore.httpsession")
        return
    sys.modules[_PYOPENSSL] = None  # type: ignore[assignment]  # None in sys.modules: an ImportError
    try:
        importlib.import_module("botocore.httpsession")
    finally:
        del sys.modules[_PYOPENSSL]
