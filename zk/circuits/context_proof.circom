pragma circom 2.1.0;

include "lib/binding.circom";
include "lib/device.circom";
include "lib/merkle.circom";
include "lib/timestamp.circom";
include "lib/pattern.circom";

// The four context statements in one proof, bound to one request (one nonce, one request_hash). This is
// the circuit the access flow uses by default.
// Public signals (snarkjs order): nullifier, device_commitment, region_root, timestamp_commitment,
// window_start, window_end, pattern_commitment, threshold, nonce, request_hash
template ContextProof(depth, k) {
    // device
    signal input device_secret;          // private
    signal input device_salt;            // private
    // region
    signal input region_code;            // private
    signal input siblings[depth];        // private
    signal input path_bits[depth];       // private
    // time
    signal input timestamp;              // private
    signal input timestamp_salt;         // private
    // access pattern
    signal input events[k];              // private
    signal input pattern[k];             // private
    signal input pattern_salt;           // private

    signal input device_commitment;      // public
    signal input region_root;            // public
    signal input timestamp_commitment;   // public
    signal input window_start;           // public
    signal input window_end;             // public
    signal input pattern_commitment;     // public
    signal input threshold;              // public
    signal input nonce;                  // public
    signal input request_hash;           // public
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

    component region = RegionMembership(depth);
    region.region_code <== region_code;
    region.siblings <== siblings;
    region.path_bits <== path_bits;
    region.region_root <== region_root;

    component window = TimeWindow();
    window.timestamp <== timestamp;
    window.timestamp_salt <== timestamp_salt;
    window.timestamp_commitment <== timestamp_commitment;
    window.window_start <== window_start;
    window.window_end <== window_end;

    component access = PatternThreshold(k);
    access.events <== events;
    access.pattern <== pattern;
    access.pattern_salt <== pattern_salt;
    access.pattern_commitment <== pattern_commitment;
    access.threshold <== threshold;
}

component main {public [device_commitment, region_root, timestamp_commitment, window_start, window_end, pattern_commitment, threshold, nonce, request_hash]} = ContextProof(16, 8);
