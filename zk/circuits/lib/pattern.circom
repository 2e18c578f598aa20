pragma circom 2.1.0;

include "circomlib/circuits/poseidon.circom";
include "circomlib/circuits/bitify.circom";
include "circomlib/circuits/comparators.circom";

// The requester's last k access events match a committed pattern in at least `threshold` positions:
//     pattern_commitment = Poseidon(pattern[0], ..., pattern[k-1], pattern_salt)
//     #{ i : events[i] == pattern[i] } >= threshold
// Events and pattern values are field elements (the service hashes event codes: see zk/README.md).
// circomlib's Poseidon takes at most 16 inputs, so k + 1 <= 16.
template PatternThreshold(k) {
    assert(k >= 1 && k + 1 <= 16);
    var BITS = 5;  // counts and thresholds up to 31 >= k

    signal input events[k];            // private
    signal input pattern[k];           // private
    signal input pattern_salt;         // private
    signal input pattern_commitment;   // public
    signal input threshold;            // public

    component commitment = Poseidon(k + 1);
    for (var i = 0; i < k; i++) {
        commitment.inputs[i] <== pattern[i];
    }
    commitment.inputs[k] <== pattern_salt;
    commitment.out === pattern_commitment;

    component same[k];
    var matches = 0;
    for (var i = 0; i < k; i++) {
        same[i] = IsEqual();
        same[i].in[0] <== events[i];
        same[i].in[1] <== pattern[i];
        matches += same[i].out;
    }

    // GreaterEqThan(BITS) is only sound on BITS-bit inputs: the count is at most k, the threshold is checked.
    component range_threshold = Num2Bits(BITS);
    range_threshold.in <== threshold;

    component enough = GreaterEqThan(BITS);
    enough.in[0] <== matches;
    enough.in[1] <== threshold;
    enough.out === 1;
}
