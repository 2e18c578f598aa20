"""``reliquary``: the command line over the SDK (install with ``pip install 'reliquary-sdk[cli]'``).

Run as ``reliquary`` or ``python -m reliquary_sdk.cli``; see docs/cli.md for every command.
"""

from reliquary_sdk.cli.app import app, main

__all__ = ["app", "main"]
