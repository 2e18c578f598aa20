"""The transparency log: Merkle tree, proofs, checkpoints, records."""
