"""The RELIQUARY client SDK (``pip install ./sdk``)."""

__version__ = "0.1.0"
