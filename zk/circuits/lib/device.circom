pragma circom 2.1.0;

include "circomlib/circuits/poseidon.circom";

// The requester holds a registered device: it knows (device_secret, device_salt) with
//     device_commitment = Poseidon(device_secret, device_salt)
// and it derives the one-time nullifier for this request's nonce:
//     nullifier = Poseidon(device_secret, nonce)
// The nullifier differs for every nonce and reveals nothing linking two requests of one device.
template DeviceCommitment() {
    signal input device_secret;       // private
    signal input device_salt;         // private
    signal input device_commitment;   // public
    signal input nonce;               // public
    signal output nullifier;

    component commitment = Poseidon(2);
    commitment.inputs[0] <== device_secret;
    commitment.inputs[1] <== device_salt;
    commitment.out === device_commitment;

    component derived = Poseidon(2);
    derived.inputs[0] <== device_secret;
    derived.inputs[1] <== nonce;
    nullifier <== derived.out;
}
