pragma circom 2.1.0;

include "circomlib/circuits/poseidon.circom";
include "circomlib/circuits/bitify.circom";
include "circomlib/circuits/comparators.circom";

// The requester's committed timestamp lies in the public window:
//     timestamp_commitment = Poseidon(timestamp, timestamp_salt)
//     window_start <= timestamp <= window_end
// All three are range-checked to 64 bits first (LessEqThan(64) is only sound on 64-bit inputs: without
// the checks a field element "below zero" would compare as a huge number).
template TimeWindow() {
    signal input timestamp;              // private, seconds since the Unix epoch
    signal input timestamp_salt;         // private
    signal input timestamp_commitment;   // public
    signal input window_start;           // public
    signal input window_end;             // public

    component commitment = Poseidon(2);
    commitment.inputs[0] <== timestamp;
    commitment.inputs[1] <== timestamp_salt;
    commitment.out === timestamp_commitment;

    component range_timestamp = Num2Bits(64);
    range_timestamp.in <== timestamp;
    component range_start = Num2Bits(64);
    range_start.in <== window_start;
    component range_end = Num2Bits(64);
    range_end.in <== window_end;

    component after_start = LessEqThan(64);
    after_start.in[0] <== window_start;
    after_start.in[1] <== timestamp;
    after_start.out === 1;

    component before_end = LessEqThan(64);
    before_end.in[0] <== timestamp;
    before_end.in[1] <== window_end;
    before_end.out === 1;
}
