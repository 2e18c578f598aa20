/* libreliquary_merkle: RFC 9162 (RFC 6962) Merkle tree hashing for the transparency log.
 *
 *   leaf hash = SHA-256(0x00 || entry)
 *   node hash = SHA-256(0x01 || left || right)
 *   MTH({})   = SHA-256("")
 *
 * A plain C library called through ctypes (reliquary_native.merkle), so it serves every CPython version.
 * SHA-256 comes from the OpenSSL 1.1.1k libcrypto that the native layer ships beside it (found through
 * RUNPATH $ORIGIN). All hashes are 32 bytes; arrays of hashes are contiguous. No function keeps state
 * between calls or touches globals: every function is thread-safe, and ctypes releases the GIL around it.
 *
 * Return values: RQ_OK (0) on success; a negative RQ_ERR_* for bad arguments or a libcrypto failure, in
 * which case nothing has been written. The verifiers return 1 for a valid proof and 0 for an invalid one.
 */
#ifndef RELIQUARY_MERKLE_H
#define RELIQUARY_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RQ_API __attribute__((visibility("default")))

/* Bumped whenever a signature or a meaning changes; the Python wrapper refuses any other value. */
#define RQ_ABI_VERSION 2

#define RQ_HASH_SIZE 32

#define RQ_OK 0
#define RQ_ERR_NULL (-1)      /* a required pointer is NULL */
#define RQ_ERR_OFFSETS (-2)   /* offsets (or proof_offsets) decrease */
#define RQ_ERR_WIDTH (-3)     /* width is not a power of two, or n is not a multiple of it */
#define RQ_ERR_TOO_LARGE (-4) /* a byte count would overflow size_t */
#define RQ_ERR_CRYPTO (-5)    /* libcrypto failed (allocation or digest) */
#define RQ_ERR_BUNDLE (-6)    /* an entry bundle is truncated, or holds another number of entries */

RQ_API int rq_abi_version(void);

/* Leaf hashes of the n entries data[offsets[i] : offsets[i + 1]] (offsets has n + 1 items, non-decreasing)
 * into out (n * 32 bytes). */
RQ_API int rq_hash_leaves(const uint8_t *data, const uint64_t *offsets, size_t n, uint8_t *out);

/* Leaf hashes of the n entries of a c2sp tlog-tiles entry bundle (each entry a big-endian uint16 length,
 * then that many bytes; the n entries fill exactly len bytes) into out (n * 32 bytes). The log's entries
 * are stored as bundles: hashing them here needs no unpacking in Python. */
RQ_API int rq_hash_bundle(const uint8_t *bundle, size_t len, size_t n, uint8_t *out);

/* MTH over n leaf hashes (n * 32 bytes) into out32. Iterative: n - 1 node hashes (one for n == 0), and
 * a fixed 2 KiB of stack whatever n is. */
RQ_API int rq_root(const uint8_t *leaf_hashes, size_t n, uint8_t *out32);

/* The roots of the n / width consecutive perfect subtrees of width leaves each (width a power of two, n a
 * multiple of width) into out ((n / width) * 32 bytes). A level-k c2sp tlog-tiles row is width = 256^k. */
RQ_API int rq_subtree_roots(const uint8_t *leaf_hashes, size_t n, size_t width, uint8_t *out);

/* RFC 9162 section 2.1.3.2: 1 if proof (proof_len hashes) proves that leaf_hash is leaf index of the tree
 * of size leaves whose root is root, 0 if not (including index >= size), negative for bad arguments. */
RQ_API int rq_verify_inclusion(uint64_t index, uint64_t size, const uint8_t *leaf_hash, const uint8_t *proof,
                               size_t proof_len, const uint8_t *root);

/* count independent rq_verify_inclusion calls: item i has indexes[i], sizes[i], leaf_hashes + 32 i,
 * roots + 32 i and the proof of hashes proof_offsets[i] .. proof_offsets[i + 1] of proofs (offsets counted
 * in hashes, count + 1 of them, non-decreasing). results[i] gets 1 or 0. */
RQ_API int rq_verify_inclusions(size_t count, const uint64_t *indexes, const uint64_t *sizes,
                                const uint8_t *leaf_hashes, const uint8_t *proofs, const size_t *proof_offsets,
                                const uint8_t *roots, uint8_t *results);

/* Benchmark floor: as many SHA-256 computations of the same sizes as rq_hash_leaves + rq_root do (n of
 * 1 + len(entry) bytes, then n - 1 of 65 bytes; one of 0 bytes for n == 0), in a bare loop, with the
 * same leaf and node primitives, and no tree logic. Writes the last digest into out32. */
RQ_API int rq_sha256_floor(const uint8_t *data, const uint64_t *offsets, size_t n, uint8_t *out32);

#ifdef __cplusplus
}
#endif

#endif /* RELIQUARY_MERKLE_H */
