pragma circom 2.1.0;

include "lib/binding.circom";
include "lib/timestamp.circom";

// Public signals (snarkjs order): timestamp_commitment, window_start, window_end, nonce, request_hash
template TimestampVerifier() {
    signal input timestamp;              // private
    signal input timestamp_salt;         // private
    signal input timestamp_commitment;   // public
    signal input window_start;           // public
    signal input window_end;             // public
    signal input nonce;                  // public
    signal input request_hash;           // public

    component binding = RequestBinding();
    binding.nonce <== nonce;
    binding.request_hash <== request_hash;

    component window = TimeWindow();
    window.timestamp <== timestamp;
    window.timestamp_salt <== timestamp_salt;
    window.timestamp_commitment <== timestamp_commitment;
    window.window_start <== window_start;
    window.window_end <== window_end;
}

component main {public [timestamp_commitment, window_start, window_end, nonce, request_hash]} = TimestampVerifier();
