"""The SDK's version, sent in its User-Agent (kept with pyproject.toml's)."""

__version__ = "0.1.0"
