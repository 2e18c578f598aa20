pragma circom 2.1.0;

include "circomlib/circuits/poseidon.circom";

// Hash of one region code as a leaf of the region tree: Poseidon with one input (width t = 2). Inner
// nodes hash two children with Poseidon of two inputs (t = 3): the two widths use different round
// constants, so a leaf can never be passed off as an inner node or the other way round. An empty leaf
// is the field element 0 (a leaf value nobody can open: it would need a Poseidon preimage of 0).
template RegionLeaf() {
    signal input region_code;
    signal output leaf;

    component hash = Poseidon(1);
    hash.inputs[0] <== region_code;
    leaf <== hash.out;
}

// The root of a binary Poseidon Merkle tree of the given depth, from a leaf and its authentication path.
// path_bits[i] is bit i of the leaf's index (least significant first): 0 when the node at level i is a
// left child (its sibling on the right), 1 when it is a right child. siblings[i] is that node's sibling.
template MerkleRoot(depth) {
    signal input leaf;
    signal input siblings[depth];
    signal input path_bits[depth];
    signal output root;

    component hashes[depth];
    signal nodes[depth + 1];
    signal left[depth];
    signal right[depth];
    nodes[0] <== leaf;

    for (var i = 0; i < depth; i++) {
        path_bits[i] * (path_bits[i] - 1) === 0;  // a bit
        // bit 0: (node, sibling); bit 1: (sibling, node)
        left[i] <== nodes[i] + path_bits[i] * (siblings[i] - nodes[i]);
        right[i] <== siblings[i] + nodes[i] - left[i];
        hashes[i] = Poseidon(2);
        hashes[i].inputs[0] <== left[i];
        hashes[i].inputs[1] <== right[i];
        nodes[i + 1] <== hashes[i].out;
    }
    root <== nodes[depth];
}

// The requester's region is one of the regions in the tree whose root the vault's policy names.
template RegionMembership(depth) {
    signal input region_code;          // private
    signal input siblings[depth];      // private
    signal input path_bits[depth];     // private
    signal input region_root;          // public

    component leaf = RegionLeaf();
    leaf.region_code <== region_code;

    component tree = MerkleRoot(depth);
    tree.leaf <== leaf.leaf;
    for (var i = 0; i < depth; i++) {
        tree.siblings[i] <== siblings[i];
        tree.path_bits[i] <== path_bits[i];
    }
    tree.root === region_root;
}
