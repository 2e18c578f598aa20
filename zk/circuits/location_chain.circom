pragma circom 2.1.0;

include "lib/binding.circom";
include "lib/merkle.circom";

// Public signals (snarkjs order): region_root, nonce, request_hash
template LocationChain(depth) {
    signal input region_code;          // private
    signal input siblings[depth];      // private
    signal input path_bits[depth];     // private
    signal input region_root;          // public
    signal input nonce;                // public
    signal input request_hash;         // public

    component binding = RequestBinding();
    binding.nonce <== nonce;
    binding.request_hash <== request_hash;

    component region = RegionMembership(depth);
    region.region_code <== region_code;
    region.siblings <== siblings;
    region.path_bits <== path_bits;
    region.region_root <== region_root;
}

component main {public [region_root, nonce, request_hash]} = LocationChain(16);
