"""Zero-knowledge context proofs: Groth16 over BN254, proved with snarkjs, verified here.

``groth16`` parses and verifies snarkjs proofs (on MCL, MIT); ``prover`` runs snarkjs (GPL-3.0) in a
separate Node process for tests, tools and the SDK. Neither loads a native library at import.
"""

from reliquary.zk.groth16 import (
    Proof,
    VerificationKey,
    parse_public_signals,
    verify,
    verify_batch,
)

__all__ = ["Proof", "VerificationKey", "parse_public_signals", "verify", "verify_batch"]
