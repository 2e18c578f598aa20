pragma circom 2.1.0;

include "lib/binding.circom";
include "lib/pattern.circom";

// Public signals (snarkjs order): pattern_commitment, threshold, nonce, request_hash
template PatternMatch(k) {
    signal input events[k];              // private
    signal input pattern[k];             // private
    signal input pattern_salt;           // private
    signal input pattern_commitment;     // public
    signal input threshold;              // public
    signal input nonce;                  // public
    signal input request_hash;           // public

    component binding = RequestBinding();
    binding.nonce <== nonce;
    binding.request_hash <== request_hash;

    component access = PatternThreshold(k);
    access.events <== events;
    access.pattern <== pattern;
    access.pattern_salt <== pattern_salt;
    access.pattern_commitment <== pattern_commitment;
    access.threshold <== threshold;
}

component main {public [pattern_commitment, threshold, nonce, request_hash]} = PatternMatch(8);
