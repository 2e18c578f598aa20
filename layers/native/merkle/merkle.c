/* libreliquary_merkle: RFC 9162 Merkle tree hashing with OpenSSL's SHA-256. See merkle.h.
 *
 * Only OpenSSL API that is identical in 1.1.1 and 3.0 is used (the one-shot SHA256() and the EVP digest
 * calls), so the system 3.0 headers compile code that runs against the layer's 1.1.1k libcrypto.
 */
#include "merkle.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/sha.h>

#if OPENSSL_VERSION_NUMBER < 0x10101000L
#error "OpenSSL 1.1.1 or later headers are required"
#endif

#define H RQ_HASH_SIZE
/* Entries up to this size are copied behind their prefix byte on the stack and hashed with one-shot
 * SHA256(); larger ones are streamed through an EVP context (prefix, then entry) without a copy. */
#define SMALL_ENTRY 1023
/* The compact range of any tree: one perfect subtree per set bit of the leaf count. */
#define MAX_LEVELS (8 * sizeof(size_t))

static const uint8_t LEAF_PREFIX = 0x00;
static const uint8_t NODE_PREFIX = 0x01;
static const uint8_t NOTHING = 0;

struct leaf_hasher {
    EVP_MD_CTX *ctx; /* created on the first large entry, freed by leaf_hasher_free */
};

static int leaf_hash(struct leaf_hasher *h, const uint8_t *entry, size_t len, uint8_t *out) {
    if (len <= SMALL_ENTRY) {
        uint8_t buf[1 + SMALL_ENTRY];
        buf[0] = LEAF_PREFIX;
        if (len > 0) {
            memcpy(buf + 1, entry, len);
        }
        return SHA256(buf, len + 1, out) != NULL ? RQ_OK : RQ_ERR_CRYPTO;
    }
    if (h->ctx == NULL && (h->ctx = EVP_MD_CTX_new()) == NULL) {
        return RQ_ERR_CRYPTO;
    }
    if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(h->ctx, &LEAF_PREFIX, 1) != 1 ||
        EVP_DigestUpdate(h->ctx, entry, len) != 1 || EVP_DigestFinal_ex(h->ctx, out, NULL) != 1) {
        return RQ_ERR_CRYPTO;
    }
    return RQ_OK;
}

static void leaf_hasher_free(struct leaf_hasher *h) {
    EVP_MD_CTX_free(h->ctx); /* NULL is fine */
    h->ctx = NULL;
}

/* out may alias left or right: both are copied before out is written. */
static int node_hash(const uint8_t *left, const uint8_t *right, uint8_t *out) {
    uint8_t buf[1 + 2 * H];
    buf[0] = NODE_PREFIX;
    memcpy(buf + 1, left, H);
    memcpy(buf + 1 + H, right, H);
    return SHA256(buf, sizeof buf, out) != NULL ? RQ_OK : RQ_ERR_CRYPTO;
}

static int empty_root(uint8_t *out) { return SHA256(&NOTHING, 0, out) != NULL ? RQ_OK : RQ_ERR_CRYPTO; }

/* MTH of n >= 1 leaf hashes. Leaf i is merged into the compact range as many times as i has trailing one
 * bits; what remains (perfect subtrees, largest first) folds from the right, which is RFC 9162's split at
 * the largest power of two below the size. n - 1 node hashes in all. */
static int mth(const uint8_t *leaves, size_t n, uint8_t *out) {
    uint8_t stack[MAX_LEVELS][H];
    size_t top = 0;
    int rc = RQ_OK;
    for (size_t i = 0; i < n && rc == RQ_OK; i++) {
        const uint8_t *leaf = leaves + i * H;
        if ((i & 1) == 0) {
            memcpy(stack[top++], leaf, H);
            continue;
        }
        rc = node_hash(stack[top - 1], leaf, stack[top - 1]);
        for (size_t bits = i >> 1; (bits & 1) != 0 && rc == RQ_OK; bits >>= 1, top--) {
            rc = node_hash(stack[top - 2], stack[top - 1], stack[top - 2]);
        }
    }
    for (; top > 1 && rc == RQ_OK; top--) {
        rc = node_hash(stack[top - 2], stack[top - 1], stack[top - 2]);
    }
    if (rc == RQ_OK) {
        memcpy(out, stack[0], H);
    }
    return rc;
}

static int check_offsets(const uint8_t *data, const uint64_t *offsets, size_t n) {
    if (n == 0) {
        return RQ_OK;
    }
    if (offsets == NULL) {
        return RQ_ERR_NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (offsets[i + 1] < offsets[i]) {
            return RQ_ERR_OFFSETS;
        }
    }
    if (offsets[n] > SIZE_MAX) {
        return RQ_ERR_TOO_LARGE;
    }
    if (data == NULL && offsets[n] != offsets[0]) {
        return RQ_ERR_NULL;
    }
    return RQ_OK;
}

static const uint8_t *entry_at(const uint8_t *data, const uint64_t *offsets, size_t i) {
    return data != NULL ? data + (size_t)offsets[i] : &NOTHING;
}

static int equal_hashes(const uint8_t *a, const uint8_t *b) {
    uint8_t diff = 0;
    for (size_t i = 0; i < H; i++) {
        diff |= (uint8_t)(a[i] ^ b[i]);
    }
    return diff == 0;
}

/* RFC 9162 section 2.1.3.2, step by step. */
static int verify_inclusion(uint64_t index, uint64_t size, const uint8_t *leaf_hash, const uint8_t *proof,
                            size_t proof_len, const uint8_t *root) {
    if (index >= size) {
        return 0;
    }
    uint64_t fn = index;
    uint64_t sn = size - 1;
    uint8_t r[H];
    memcpy(r, leaf_hash, H);
    for (size_t i = 0; i < proof_len; i++) {
        const uint8_t *p = proof + i * H;
        if (sn == 0) {
            return 0;
        }
        int rc;
        if ((fn & 1) != 0 || fn == sn) {
            rc = node_hash(p, r, r);
            while ((fn & 1) == 0 && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            rc = node_hash(r, p, r);
        }
        if (rc != RQ_OK) {
            return rc;
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && equal_hashes(r, root);
}

RQ_API int rq_abi_version(void) { return RQ_ABI_VERSION; }

RQ_API int rq_hash_leaves(const uint8_t *data, const uint64_t *offsets, size_t n, uint8_t *out) {
    int rc = check_offsets(data, offsets, n);
    if (rc != RQ_OK || n == 0) {
        return rc;
    }
    if (out == NULL) {
        return RQ_ERR_NULL;
    }
    if (n > SIZE_MAX / H) {
        return RQ_ERR_TOO_LARGE;
    }
    struct leaf_hasher h = {NULL};
    for (size_t i = 0; i < n && rc == RQ_OK; i++) {
        rc = leaf_hash(&h, entry_at(data, offsets, i), (size_t)(offsets[i + 1] - offsets[i]), out + i * H);
    }
    leaf_hasher_free(&h);
    return rc;
}

RQ_API int rq_hash_bundle(const uint8_t *bundle, size_t len, size_t n, uint8_t *out) {
    if (n == 0) {
        return len == 0 ? RQ_OK : RQ_ERR_BUNDLE;
    }
    if (bundle == NULL || out == NULL) {
        return RQ_ERR_NULL;
    }
    if (n > SIZE_MAX / H) {
        return RQ_ERR_TOO_LARGE;
    }
    /* Check the framing first, so that a malformed bundle writes nothing. */
    size_t position = 0;
    for (size_t i = 0; i < n; i++) {
        if (len - position < 2) {
            return RQ_ERR_BUNDLE;
        }
        size_t entry_len = ((size_t)bundle[position] << 8) | bundle[position + 1];
        if (len - position - 2 < entry_len) {
            return RQ_ERR_BUNDLE;
        }
        position += 2 + entry_len;
    }
    if (position != len) {
        return RQ_ERR_BUNDLE;
    }
    struct leaf_hasher h = {NULL};
    int rc = RQ_OK;
    position = 0;
    for (size_t i = 0; i < n && rc == RQ_OK; i++) {
        size_t entry_len = ((size_t)bundle[position] << 8) | bundle[position + 1];
        rc = leaf_hash(&h, bundle + position + 2, entry_len, out + i * H);
        position += 2 + entry_len;
    }
    leaf_hasher_free(&h);
    return rc;
}

RQ_API int rq_root(const uint8_t *leaf_hashes, size_t n, uint8_t *out32) {
    if (out32 == NULL || (n > 0 && leaf_hashes == NULL)) {
        return RQ_ERR_NULL;
    }
    if (n > SIZE_MAX / H) {
        return RQ_ERR_TOO_LARGE;
    }
    return n == 0 ? empty_root(out32) : mth(leaf_hashes, n, out32);
}

RQ_API int rq_subtree_roots(const uint8_t *leaf_hashes, size_t n, size_t width, uint8_t *out) {
    if (width == 0 || (width & (width - 1)) != 0 || n % width != 0) {
        return RQ_ERR_WIDTH;
    }
    if (n == 0) {
        return RQ_OK;
    }
    if (leaf_hashes == NULL || out == NULL) {
        return RQ_ERR_NULL;
    }
    if (n > SIZE_MAX / H) {
        return RQ_ERR_TOO_LARGE;
    }
    int rc = RQ_OK;
    for (size_t j = 0; j < n / width && rc == RQ_OK; j++) {
        rc = mth(leaf_hashes + j * width * H, width, out + j * H);
    }
    return rc;
}

RQ_API int rq_verify_inclusion(uint64_t index, uint64_t size, const uint8_t *leaf_hash, const uint8_t *proof,
                               size_t proof_len, const uint8_t *root) {
    if (leaf_hash == NULL || root == NULL || (proof_len > 0 && proof == NULL)) {
        return RQ_ERR_NULL;
    }
    if (proof_len > SIZE_MAX / H) {
        return RQ_ERR_TOO_LARGE;
    }
    return verify_inclusion(index, size, leaf_hash, proof, proof_len, root);
}

RQ_API int rq_verify_inclusions(size_t count, const uint64_t *indexes, const uint64_t *sizes,
                                const uint8_t *leaf_hashes, const uint8_t *proofs, const size_t *proof_offsets,
                                const uint8_t *roots, uint8_t *results) {
    if (count == 0) {
        return RQ_OK;
    }
    if (indexes == NULL || sizes == NULL || leaf_hashes == NULL || proof_offsets == NULL || roots == NULL ||
        results == NULL) {
        return RQ_ERR_NULL;
    }
    if (count > SIZE_MAX / H) {
        return RQ_ERR_TOO_LARGE;
    }
    for (size_t i = 0; i < count; i++) {
        if (proof_offsets[i + 1] < proof_offsets[i]) {
            return RQ_ERR_OFFSETS;
        }
    }
    if (proof_offsets[count] > SIZE_MAX / H) {
        return RQ_ERR_TOO_LARGE;
    }
    if (proofs == NULL && proof_offsets[count] != proof_offsets[0]) {
        return RQ_ERR_NULL;
    }
    for (size_t i = 0; i < count; i++) {
        const uint8_t *proof = proofs != NULL ? proofs + proof_offsets[i] * H : NULL;
        int rc = verify_inclusion(indexes[i], sizes[i], leaf_hashes + i * H, proof,
                                  proof_offsets[i + 1] - proof_offsets[i], roots + i * H);
        if (rc < 0) {
            return rc;
        }
        results[i] = (uint8_t)rc;
    }
    return RQ_OK;
}

RQ_API int rq_sha256_floor(const uint8_t *data, const uint64_t *offsets, size_t n, uint8_t *out32) {
    int rc = check_offsets(data, offsets, n);
    if (rc != RQ_OK) {
        return rc;
    }
    if (out32 == NULL) {
        return RQ_ERR_NULL;
    }
    uint8_t digest[H];
    if (n == 0) {
        rc = empty_root(digest);
    }
    struct leaf_hasher h = {NULL};
    for (size_t i = 0; i < n && rc == RQ_OK; i++) {
        rc = leaf_hash(&h, entry_at(data, offsets, i), (size_t)(offsets[i + 1] - offsets[i]), digest);
    }
    leaf_hasher_free(&h);
    /* Each node hash takes the previous digest, so none of the work can be dropped. */
    for (size_t i = 1; i < n && rc == RQ_OK; i++) {
        rc = node_hash(digest, digest, digest);
    }
    if (rc == RQ_OK) {
        memcpy(out32, digest, H);
    }
    return rc;
}
