pragma circom 2.1.0;

include "lib/binding.circom";
include "lib/device.circom";

// Public signals (snarkjs order): nullifier, device_commitment, nonce, request_hash
template DeviceProof() {
    signal input device_secret;        // private
    signal input device_salt;          // private
    signal input device_commitment;    // public
    signal input nonce;                // public
    signal input request_hash;         // public
    signal output nullifier;

    component binding = RequestBinding();
    binding.nonce <== nonce;
    binding.request_hash <== request_hash;

    component device = DeviceCommitment();
    device.device_secret <== device_secret;
    device.device_salt <== device_salt;
    device.device_commitment <== device_commitment;
    device.nonce <== nonce;
    nullifier <== device.nullifier;
}

component main {public [device_commitment, nonce, request_hash]} = DeviceProof();
