"""Field types of the functions' contracts: the domain's own (``reliquary.fields``), re-exported so every
contract names them from one place."""

from reliquary.fields import Base64Bytes, EpochTime, Identifier, epoch_seconds

__all__ = ["Base64Bytes", "EpochTime", "Identifier", "epoch_seconds"]
