pragma circom 2.1.0;

// Binds a proof to one access request. `nonce` (issued by the service, 31 random bytes) and
// `request_hash` (SHA-256 of the request id, top 248 bits) are public inputs of every circuit. Each
// takes part in a quadratic constraint of its own, so no optimisation (--O2 included) can leave them
// out of the constraint system: a proof made for one (nonce, request_hash) does not verify for another.
template RequestBinding() {
    signal input nonce;
    signal input request_hash;

    signal nonce_squared;
    signal request_hash_squared;
    nonce_squared <== nonce * nonce;
    request_hash_squared <== request_hash * request_hash;
}
