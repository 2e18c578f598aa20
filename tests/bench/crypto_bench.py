"""Crypto and domain benchmarks: envelopes against their primitives, signers, HPKE and grants, the service.

Every figure stands beside a baseline timed in the same interleaved group (``timing.measure``):
- an envelope operation or a grant beside the raw primitives it is built from, called directly on
  ``cryptography`` and liboqs (HPKE of the 32-byte data key, each signature or verification over a message
  of the signed length, AES-256-GCM of the body with a fresh ``AESGCM`` object, as the envelope uses, and
  the small primitives the format requires as well: the fresh data key and nonce drawn from os.urandom,
  the HMAC-SHA256 key commitment). Two baselines: ``prims``, the sum of each primitive's median timed
  alone (hot in the caches: a bound no sequence of calls reaches), and ``seq``, the same raw calls made
  one after the other in one timed call, as the operation makes them (the fair lower bound: what the
  operation would cost with no code of its own around the primitives);
- the vault service beside the bare ``envelope.seal`` / unwrap + ``grants.issue`` it wraps.
"""

from __future__ import annotations

import hmac
import itertools
import os
import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import reliquary_native
from reliquary.audit.records import DecisionRecord
from reliquary.config import Settings
from reliquary.crypto import envelope as env
from reliquary.crypto import grants, kem
from reliquary.crypto.envelope import Envelope, VaultKey
from reliquary.crypto.kem import HybridPrivateKey, HybridPublicKey, requester_key_sha256
from reliquary.crypto.root import LocalRootOfTrust
from reliquary.crypto.scope import ItemScope, VaultRef
from reliquary.crypto.signing import KeyRing, SignatureAlgorithm, SigningKey
from reliquary.flow.chains import load_chain
from reliquary.vaults.decisions import require_attested
from reliquary.vaults.memory import (
    InMemoryBlobStore,
    InMemoryDecisionLedger,
    InMemoryItemRepository,
    InMemorySigningKeyStore,
    InMemoryVaultRepository,
)
from reliquary.vaults.models import ItemRecord, MemoryKind, MemoryScope
from reliquary.vaults.service import VaultService
from reliquary.vaults.service_keys import ServiceKeys
from tests.bench.report import Column, Table
from tests.bench.timing import Budget, Case, Stats, measure

KIB = 1024
SIZES = (KIB, 64 * KIB, KIB * KIB)
DEFAULT_SIGNER = SignatureAlgorithm.ML_DSA_65
OTHER_SIGNERS = (SignatureAlgorithm.ED25519, SignatureAlgorithm.FALCON_512)
TENANT, VAULT = "bench-tenant", "bench-vault"
NOW = 1_750_000_000
APPROVAL_MAX_AGE = Settings.model_fields["approval_max_age_seconds"].default  # the service's, as deployed
# The HPKE suite the envelope uses, called directly: the baseline for every wrap and unwrap.
RAW_HPKE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
GOAL_OVERHEAD = 1.2  # issue 16: envelope seal/open and the grant round over their primitives
GOAL_OPEN_VS_AES = 0.80
FAULT_CALLS = 20  # calls over which minor page faults per call are counted


def size_label(size: int) -> str:
    return f"{size // (KIB * KIB)} MiB" if size >= KIB * KIB else f"{size // KIB} KiB"


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline > 0 else float("nan")


# --- fixtures ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RawSigner:
    """One algorithm's sign and verify called straight on its library (no reliquary wrapper)."""

    sign: Callable[[bytes], bytes]
    verify: Callable[[bytes, bytes], object]


def raw_signer(key: SigningKey) -> RawSigner:
    if key.algorithm is SignatureAlgorithm.ED25519:
        private = ed25519.Ed25519PrivateKey.from_private_bytes(key.secret_bytes())
        public = private.public_key()
        return RawSigner(sign=private.sign, verify=lambda message, sig: public.verify(sig, message))
    oqs = reliquary_native.load_oqs()
    signer = oqs.Signature(key.algorithm.value, key.secret_bytes())
    verifier = oqs.Signature(key.algorithm.value)
    public_key = key.public_key
    return RawSigner(
        sign=lambda message: bytes(signer.sign(message)),
        verify=lambda message, sig: verifier.verify(message, sig, public_key),
    )


@dataclass(frozen=True, slots=True)
class RawKem:
    private: hpke.MLKEM768X25519PrivateKey
    public: hpke.MLKEM768X25519PublicKey


def raw_kem(private_key: HybridPrivateKey) -> RawKem:
    secret = private_key.private_bytes()
    mlkem_key = mlkem.MLKEM768PrivateKey.from_seed_bytes(secret[: kem.MLKEM_SEED_LEN])
    x_key = x25519.X25519PrivateKey.from_private_bytes(secret[kem.MLKEM_SEED_LEN :])
    return RawKem(
        private=hpke.MLKEM768X25519PrivateKey(mlkem_key, x_key),
        public=hpke.MLKEM768X25519PublicKey(mlkem_key.public_key(), x_key.public_key()),
    )


@dataclass(frozen=True, slots=True)
class Fixture:
    scope: ItemScope
    vault_key: VaultKey
    raw_kem: RawKem
    signers: dict[SignatureAlgorithm, SigningKey]
    raw_signers: dict[SignatureAlgorithm, RawSigner]
    keyring: KeyRing
    plaintexts: dict[int, bytes]

    @property
    def vault_public(self) -> HybridPublicKey:
        return self.vault_key.private_key.public_key()

    def item_aad(self) -> bytes:
        return self.scope.item_aad(suite=kem.SUITE_ID, sealed_key_version=self.vault_key.version)

    def wrap_info(self) -> bytes:
        return self.scope.wrap_info(suite=kem.SUITE_ID, wrap_key_version=self.vault_key.version)

    def seal(self, size: int, algorithm: SignatureAlgorithm) -> Envelope:
        return env.seal(
            self.plaintexts[size],
            scope=self.scope,
            vault_public_key=self.vault_public,
            key_version=self.vault_key.version,
            signer=self.signers[algorithm],
        )


def build_fixture(sizes: Sequence[int] = SIZES) -> Fixture:
    signers = {algorithm: SigningKey.generate(algorithm) for algorithm in SignatureAlgorithm}
    private_key = HybridPrivateKey.generate()
    return Fixture(
        scope=ItemScope(TENANT, VAULT, "bench-item", 1, "application/octet-stream"),
        vault_key=VaultKey(1, private_key),
        raw_kem=raw_kem(private_key),
        signers=signers,
        raw_signers={algorithm: raw_signer(key) for algorithm, key in signers.items()},
        keyring=KeyRing([key.verifying_key for key in signers.values()]),
        plaintexts={size: os.urandom(size) for size in {KIB, *sizes}},  # 1 KiB: signature and grant tables
    )


def minor_faults_per_call(fn: Callable[[], object], calls: int = FAULT_CALLS) -> float:
    """Minor page faults per call (fresh pages the kernel maps in: zeroed memory the heap grew into)."""
    fn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


# --- 1 and 2: envelope seal/open beside their primitives -------------------------------------------
def raw_commitment(data_key: bytes) -> bytes:
    """The envelope's key commitment (HMAC-SHA256 of the data key), called straight on the library."""
    return hmac.digest(data_key, b"RELIQUARY key commitment v1", "sha256")


@dataclass(frozen=True, slots=True)
class EnvelopeFigures:
    op: Stats
    kem: Stats
    sig: Stats
    aes: Stats
    keys: Stats  # seal: a fresh data key and nonce (os.urandom) and the key commitment; open: the commitment
    seq: Stats  # every raw primitive above, called in sequence in one timed call
    faults: float  # minor page faults per call of the op

    @property
    def primitives_ns(self) -> float:
        return self.kem.median_ns + self.sig.median_ns + self.aes.median_ns + self.keys.median_ns


def bench_seal(fx: Fixture, size: int, algorithm: SignatureAlgorithm, budget: Budget) -> EnvelopeFigures:
    plaintext, aad, info = fx.plaintexts[size], fx.item_aad(), fx.wrap_info()
    message = fx.seal(size, algorithm).signed_message(fx.scope)
    data_key, nonce = os.urandom(32), os.urandom(12)
    raw = fx.raw_signers[algorithm]

    def op() -> Envelope:
        return fx.seal(size, algorithm)

    def keys() -> bytes:
        return raw_commitment(os.urandom(32)) + os.urandom(12)

    def seq() -> tuple[bytes, bytes]:
        key, iv = os.urandom(32), os.urandom(12)
        body = AESGCM(key).encrypt(iv, plaintext, aad)
        RAW_HPKE.encrypt(key, fx.raw_kem.public, info=info)
        raw_commitment(key)
        return body, raw.sign(message)

    stats = measure(
        {
            "op": op,
            "kem": lambda: RAW_HPKE.encrypt(data_key, fx.raw_kem.public, info=info),
            "sig": lambda: raw.sign(message),
            "aes": lambda: AESGCM(data_key).encrypt(nonce, plaintext, aad),
            "keys": keys,
            "seq": seq,
        },
        budget,
    )
    return EnvelopeFigures(
        stats["op"],
        stats["kem"],
        stats["sig"],
        stats["aes"],
        stats["keys"],
        stats["seq"],
        minor_faults_per_call(op),
    )


def bench_open(fx: Fixture, size: int, algorithm: SignatureAlgorithm, budget: Budget) -> EnvelopeFigures:
    sealed = fx.seal(size, algorithm)
    blob = sealed.to_bytes()
    message, signature = sealed.signed_message(fx.scope), sealed.signature
    aad, info = fx.item_aad(), fx.wrap_info()
    data_key, nonce = os.urandom(32), os.urandom(12)
    body = AESGCM(data_key).encrypt(nonce, fx.plaintexts[size], aad)
    wrapped = RAW_HPKE.encrypt(data_key, fx.raw_kem.public, info=info)
    raw = fx.raw_signers[algorithm]
    if (
        env.open_envelope(Envelope.parse(blob), scope=fx.scope, vault_key=fx.vault_key, keyring=fx.keyring)
        != fx.plaintexts[size]
        or raw.verify(message, signature) is False
    ):
        raise AssertionError("the benchmark fixture does not round-trip")

    def op() -> bytes:
        return env.open_envelope(
            Envelope.parse(blob), scope=fx.scope, vault_key=fx.vault_key, keyring=fx.keyring
        )

    def seq() -> bytes:
        raw.verify(message, signature)
        key = RAW_HPKE.decrypt(wrapped, fx.raw_kem.private, info=info)
        raw_commitment(key)
        return AESGCM(key).decrypt(nonce, body, aad)

    stats = measure(
        {
            "op": op,
            "kem": lambda: RAW_HPKE.decrypt(wrapped, fx.raw_kem.private, info=info),
            "sig": lambda: raw.verify(message, signature),
            "aes": lambda: AESGCM(data_key).decrypt(nonce, body, aad),
            "keys": lambda: raw_commitment(data_key),
            "seq": seq,
        },
        budget,
    )
    return EnvelopeFigures(
        stats["op"],
        stats["kem"],
        stats["sig"],
        stats["aes"],
        stats["keys"],
        stats["seq"],
        minor_faults_per_call(op),
    )


def _envelope_columns(*, with_signer: bool) -> list[Column]:
    columns = [Column("signer", "signer")] if with_signer else []
    return [
        *columns,
        Column("size", "size"),
        Column("op", "op"),
        Column("median_us", "median µs", ",.1f"),
        Column("p99_us", "p99 µs", ",.1f"),
        Column("samples", "n", "d"),
        Column("kem_us", "hpke µs", ",.1f"),
        Column("sig_us", "sig µs", ",.1f"),
        Column("aes_us", "aes µs", ",.1f"),
        Column("keys_us", "keys µs", ",.1f"),
        Column("primitives_us", "prims µs", ",.1f"),
        Column("overhead", "op/prims", ".2f"),
        Column("seq_us", "seq µs", ",.1f"),
        Column("overhead_seq", "op/seq", ".2f"),
        Column("mb_s", "MB/s", ",.0f"),
        Column("aes_mb_s", "aes MB/s", ",.0f"),
        Column("faults", "pf/call", ",.0f"),
    ]


def _envelope_row(
    table: Table, size: int, op: str, figures: EnvelopeFigures, signer: SignatureAlgorithm | None
) -> None:
    extra: dict[str, str] = {"signer": signer.value} if signer is not None else {}
    table.add(
        **extra,
        size=size_label(size),
        op=op,
        median_us=figures.op.median_us,
        p99_us=figures.op.p99_us,
        samples=figures.op.samples,
        kem_us=figures.kem.median_us,
        sig_us=figures.sig.median_us,
        aes_us=figures.aes.median_us,
        keys_us=figures.keys.median_us,
        primitives_us=figures.primitives_ns / 1e3,
        overhead=ratio(figures.op.median_ns, figures.primitives_ns),
        seq_us=figures.seq.median_us,
        overhead_seq=ratio(figures.op.median_ns, figures.seq.median_ns),
        mb_s=figures.op.throughput_mb_s(size),
        aes_mb_s=figures.aes.throughput_mb_s(size),
        faults=figures.faults,
    )


@dataclass(frozen=True, slots=True)
class EnvelopeResult:
    table: Table
    max_overhead: float
    max_overhead_seq: float
    open_vs_aes: float  # 1 MiB open throughput / raw AES-256-GCM decrypt throughput (largest size run)


def envelope_table(
    fx: Fixture,
    budget: Budget,
    *,
    key: str,
    title: str,
    signers: Sequence[SignatureAlgorithm],
    sizes: Sequence[int] = SIZES,
) -> EnvelopeResult:
    with_signer = len(signers) > 1
    table = Table(key, title, _envelope_columns(with_signer=with_signer))
    table.notes += [
        "seal = envelope.seal (fresh data key and nonce, HPKE wrap, AES-256-GCM, one signature);",
        "open = Envelope.parse + open_envelope (verify, HPKE unwrap, key commitment, AES-256-GCM decrypt).",
        (
            "prims = hpke (RFC 9180 seal/open of the 32-byte data key) + sig (one sign/verify of the"
            " envelope's signed message) + aes (AESGCM(key).encrypt/decrypt of the body) + keys (seal: the"
            " data key and nonce from os.urandom and the HMAC-SHA256 key commitment; open: the commitment),"
            " each timed alone, interleaved with the op."
        ),
        (
            "seq = the same raw calls made one after the other in one timed call, as the op makes them: the"
            " op with none of its own code (parsing, encoding, checks); op/seq is the envelope's own cost."
        ),
        (
            f"Goals: op/prims <= {GOAL_OVERHEAD}x; 1 MiB open >= {GOAL_OPEN_VS_AES:.0%} of raw AES-256-GCM"
            " decrypt throughput. MB/s = 10^6 plaintext bytes per second at the median; pf/call = minor"
            " page faults per op (see the parts table)."
        ),
    ]
    max_overhead, max_overhead_seq, open_vs_aes, ceiling = 0.0, 0.0, float("nan"), float("nan")
    for algorithm in signers:
        for size in sizes:
            sealed = bench_seal(fx, size, algorithm, budget)
            opened = bench_open(fx, size, algorithm, budget)
            row_signer = algorithm if with_signer else None
            _envelope_row(table, size, "seal", sealed, row_signer)
            _envelope_row(table, size, "open", opened, row_signer)
            max_overhead = max(
                max_overhead,
                ratio(sealed.op.median_ns, sealed.primitives_ns),
                ratio(opened.op.median_ns, opened.primitives_ns),
            )
            max_overhead_seq = max(
                max_overhead_seq,
                ratio(sealed.op.median_ns, sealed.seq.median_ns),
                ratio(opened.op.median_ns, opened.seq.median_ns),
            )
            if size == max(sizes) and algorithm is signers[0]:
                open_vs_aes = ratio(opened.aes.median_ns, opened.op.median_ns)
                ceiling = ratio(opened.aes.median_ns, opened.primitives_ns)
    largest = size_label(max(sizes))
    table.footer.append(
        f"   worst op/prims: {max_overhead:.2f}x (goal <= {GOAL_OVERHEAD}x:"
        f" {'within' if max_overhead <= GOAL_OVERHEAD else 'over'}); worst op/seq: {max_overhead_seq:.2f}x"
    )
    table.footer.append(
        f"   {largest} open throughput / raw AES-256-GCM decrypt throughput ({signers[0].value}):"
        f" {open_vs_aes:.1%} (goal >= {GOAL_OPEN_VS_AES:.0%}:"
        f" {'within' if open_vs_aes >= GOAL_OPEN_VS_AES else 'below'})"
    )
    table.footer.append(
        f"   ceiling of that figure with one HPKE open and one verification per item, zero overhead:"
        f" aes / prims = {ceiling:.1%}"
    )
    return EnvelopeResult(table, max_overhead, max_overhead_seq, open_vs_aes)


# --- where the envelope's own time goes -------------------------------------------------------------
def envelope_parts_table(fx: Fixture, budget: Budget) -> Table:
    """The envelope's Python-side steps at 1 KiB, and the largest open taken apart."""
    algorithm, largest = DEFAULT_SIGNER, max(fx.plaintexts)
    small = fx.seal(KIB, algorithm)
    small_blob = small.to_bytes()
    big = fx.seal(largest, algorithm)
    big_blob = big.to_bytes()
    big_parsed = Envelope.parse(big_blob)
    big_view = memoryview(big_blob)
    data_key = os.urandom(32)

    def opener(parsed: Envelope) -> bytes:
        return env.open_envelope(parsed, scope=fx.scope, vault_key=fx.vault_key, keyring=fx.keyring)

    small_parts: list[tuple[str, Callable[[], object]]] = [
        ("scope.item_aad", fx.item_aad),
        ("scope.wrap_info", fx.wrap_info),
        ("Envelope.signed_message", lambda: small.signed_message(fx.scope)),
        ("key_commitment (HMAC-SHA256)", lambda: env.key_commitment(data_key)),
        ("dataclasses.replace(Envelope)", lambda: replace(small, signature=small.signature)),
        ("Envelope.to_bytes", small.to_bytes),
        ("Envelope.parse", lambda: Envelope.parse(small_blob)),
    ]
    large_parts: list[tuple[str, Callable[[], object]]] = [
        ("Envelope.parse", lambda: Envelope.parse(big_blob)),
        ("open_envelope (parsed beforehand)", lambda: opener(big_parsed)),
        ("Envelope.parse + open_envelope (as 'open')", lambda: opener(Envelope.parse(big_blob))),
        ("bytes copy of the body (memoryview.tobytes)", big_view[100:-100].tobytes),
    ]
    parts = [("1 KiB", name, fn) for name, fn in small_parts]
    parts += [(size_label(largest), name, fn) for name, fn in large_parts]
    stats = measure({str(i): fn for i, (_, _, fn) in enumerate(parts)}, budget)
    table = Table(
        "envelope_parts",
        f"Where the envelope's own time goes ({algorithm.value}; crypto primitives are in the tables above)",
        [
            Column("size", "size"),
            Column("part", "part"),
            Column("median_us", "median µs", ",.1f"),
            Column("p99_us", "p99 µs", ",.1f"),
            Column("faults", "page faults/call", ",.1f"),
        ],
        notes=[
            (
                "page faults/call = minor faults (ru_minflt) over a loop of calls: fresh heap pages the"
                " kernel zero-fills when malloc grows the heap (brk) again after trimming it."
            ),
        ],
    )
    for i, (size, name, fn) in enumerate(parts):
        figures = stats[str(i)]
        table.add(
            size=size,
            part=name,
            median_us=figures.median_us,
            p99_us=figures.p99_us,
            faults=minor_faults_per_call(fn),
        )
    return table


# --- 3: signatures per algorithm ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _SignatureImpl:
    name: str
    library: str
    keygen: Callable[[], object]
    sign: Callable[[], object]
    verify: Callable[[], object]
    public_key_len: int
    signature_len: int


def _reliquary_impl(key: SigningKey, message: bytes, library: str) -> _SignatureImpl:
    signature = key.sign(message)
    verifying = key.verifying_key
    algorithm = key.algorithm
    return _SignatureImpl(
        name=algorithm.value,
        library=library,
        keygen=lambda: SigningKey.generate(algorithm),
        sign=lambda: key.sign(message),
        verify=lambda: verifying.verify(message, signature),
        public_key_len=len(key.public_key),
        signature_len=len(signature),
    )


def _openssl_mldsa_impl(message: bytes) -> _SignatureImpl:
    private = mldsa.MLDSA65PrivateKey.generate()
    public = private.public_key()
    signature = private.sign(message)
    return _SignatureImpl(
        name="ML-DSA-65",
        library="cryptography/OpenSSL",
        keygen=mldsa.MLDSA65PrivateKey.generate,
        sign=lambda: private.sign(message),
        verify=lambda: public.verify(signature, message),
        public_key_len=len(public.public_bytes_raw()),
        signature_len=len(signature),
    )


def signature_table(fx: Fixture, budget: Budget) -> Table:
    message = fx.seal(KIB, DEFAULT_SIGNER).signed_message(fx.scope)
    impls = [
        _reliquary_impl(fx.signers[SignatureAlgorithm.ED25519], message, "cryptography/OpenSSL"),
        _reliquary_impl(fx.signers[SignatureAlgorithm.ML_DSA_65], message, "liboqs 0.16"),
        _openssl_mldsa_impl(message),
        _reliquary_impl(fx.signers[SignatureAlgorithm.FALCON_512], message, "liboqs 0.16"),
    ]
    table = Table(
        "signatures",
        "Signatures: keygen, sign, verify per algorithm",
        [
            Column("algorithm", "algorithm"),
            Column("library", "library"),
            Column("op", "op"),
            Column("median_us", "median µs", ",.1f"),
            Column("p99_us", "p99 µs", ",.1f"),
            Column("ops_s", "ops/s", ",.0f"),
            Column("vs_liboqs_mldsa", "x ML-DSA-65 liboqs", ".2f"),
            Column("public_key_bytes", "pk bytes", "d"),
            Column("signature_bytes", "sig bytes", "d"),
        ],
        notes=[
            (
                f"message: the envelope's signed message ({len(message)} bytes). liboqs and Ed25519 through"
                " reliquary's SigningKey/VerifyingKey (keygen = SigningKey.generate, with its key objects);"
                " ML-DSA-65 via cryptography called directly, as the comparison."
            ),
            (
                "x ML-DSA-65 liboqs = median / the same op of ML-DSA-65 on liboqs (each op timed interleaved"
                " across the algorithms)."
            ),
        ],
    )
    reference = impls[1]
    for op in ("keygen", "sign", "verify"):
        stats = measure({f"{i.name}/{i.library}": getattr(i, op) for i in impls}, budget)
        base = stats[f"{reference.name}/{reference.library}"].median_ns
        for impl in impls:
            figures = stats[f"{impl.name}/{impl.library}"]
            table.add(
                algorithm=impl.name,
                library=impl.library,
                op=op,
                median_us=figures.median_us,
                p99_us=figures.p99_us,
                ops_s=figures.ops_per_s,
                vs_liboqs_mldsa=ratio(figures.median_ns, base),
                public_key_bytes=impl.public_key_len,
                signature_bytes=impl.signature_len,
            )
    return table


# --- 4: HPKE wrap/unwrap and a grant round ------------------------------------------------------------
def kem_grant_table(fx: Fixture, budget: Budget) -> Table:
    algorithm = DEFAULT_SIGNER
    signer, raw = fx.signers[algorithm], fx.raw_signers[algorithm]
    requester = HybridPrivateKey.generate()
    requester_public = requester.public_key()
    raw_requester = raw_kem(requester)
    info = fx.wrap_info()
    data_key = os.urandom(32)
    wrapped = fx.vault_public.seal(data_key, info=info)
    sealed = fx.seal(KIB, algorithm)
    item = sealed.to_bytes()
    item_key = env.unwrap_data_key(sealed, scope=fx.scope, vault_key=fx.vault_key, keyring=fx.keyring)
    message, signature = sealed.signed_message(fx.scope), sealed.signature
    aad, nonce = fx.item_aad(), os.urandom(12)
    body = AESGCM(data_key).encrypt(nonce, fx.plaintexts[KIB], aad)
    raw_wrapped = RAW_HPKE.encrypt(data_key, raw_requester.public, info=info)

    def issue() -> bytes:
        return grants.issue(
            request_id="bench-request",
            scope=fx.scope,
            data_key=item_key,
            requester_public_key=requester_public,
            issued_at=NOW,
            ttl_seconds=300,
            signer=signer,
        ).to_bytes()

    grant = issue()

    def open_grant(grant_bytes: bytes = grant) -> bytes:
        return grants.open_grant(
            grant_bytes, item, requester_private_key=requester, service_keys=fx.keyring, now=NOW
        )

    if open_grant() != fx.plaintexts[KIB]:
        raise AssertionError("the grant fixture does not round-trip")
    # The grant's own signed message and signature, for the raw sign and verify (same length as issued).
    parsed = grants.Grant.parse(grant)
    grant_message, grant_signature = parsed.signed_message(), parsed.signature
    grant_info = parsed.sealed_key_info()
    raw_grant_key = RAW_HPKE.encrypt(data_key, raw_requester.public, info=grant_info)

    def raw_issue() -> tuple[bytes, bytes]:
        return RAW_HPKE.encrypt(data_key, raw_requester.public, info=grant_info), raw.sign(grant_message)

    def raw_open() -> bytes:
        raw.verify(grant_message, grant_signature)
        key = RAW_HPKE.decrypt(raw_grant_key, raw_requester.private, info=grant_info)
        raw.verify(message, signature)
        raw_commitment(key)
        return AESGCM(key).decrypt(nonce, body, aad)

    stats = measure(
        {
            "wrap": lambda: fx.vault_public.seal(data_key, info=info),
            "unwrap": lambda: fx.vault_key.private_key.open(wrapped, info=info),
            "issue": issue,
            "open_grant": open_grant,
            "round": lambda: open_grant(issue()),
            "raw_seal": lambda: RAW_HPKE.encrypt(data_key, raw_requester.public, info=info),
            "raw_open": lambda: RAW_HPKE.decrypt(raw_wrapped, raw_requester.private, info=info),
            "sign": lambda: raw.sign(message),
            "verify": lambda: raw.verify(message, signature),
            "commitment": lambda: raw_commitment(data_key),
            "aes_1k": lambda: AESGCM(data_key).decrypt(nonce, body, aad),
            "seq_issue": raw_issue,
            "seq_open_grant": raw_open,
            "seq_round": lambda: (raw_issue(), raw_open()),
        },
        budget,
    )
    med = {name: s.median_ns for name, s in stats.items()}
    primitives = {
        "wrap": med["raw_seal"],
        "unwrap": med["raw_open"],
        "issue": med["raw_seal"] + med["sign"],
        "open_grant": med["raw_open"] + 2 * med["verify"] + med["commitment"] + med["aes_1k"],
    }
    primitives["round"] = primitives["issue"] + primitives["open_grant"]
    sequences = {
        "wrap": med["raw_seal"],
        "unwrap": med["raw_open"],
        "issue": med["seq_issue"],
        "open_grant": med["seq_open_grant"],
        "round": med["seq_round"],
    }
    labels = {
        "wrap": ("HPKE wrap 32 B (HybridPublicKey.seal)", "raw HPKE seal"),
        "unwrap": ("HPKE unwrap 32 B (HybridPrivateKey.open)", "raw HPKE open"),
        "issue": ("grant issue (grants.issue + to_bytes)", "HPKE seal + sign"),
        "open_grant": ("open_grant, 1 KiB item (requester)", "HPKE open + 2 verify + HMAC + AES 1 KiB"),
        "round": ("grant round: issue + open_grant", "sum of the above"),
    }
    table = Table(
        "kem_grants",
        f"HPKE (ML-KEM-768+X25519) wrap/unwrap and grants, signer {algorithm.value}",
        [
            Column("op", "op"),
            Column("median_us", "median µs", ",.1f"),
            Column("p99_us", "p99 µs", ",.1f"),
            Column("ops_s", "ops/s", ",.0f"),
            Column("baseline", "baseline (raw primitives)"),
            Column("primitives_us", "prims µs", ",.1f"),
            Column("overhead", "op/prims", ".2f"),
            Column("seq_us", "seq µs", ",.1f"),
            Column("overhead_seq", "op/seq", ".2f"),
        ],
        notes=[
            (
                "open_grant verifies the grant's and the envelope's signatures, so it pays two verifies, and"
                " checks the envelope's key commitment (HMAC-SHA256) for the granted data key."
            ),
            (
                "prims = the sum of each raw primitive's median, timed alone; seq = the same raw calls made"
                " in sequence in one timed call (the grant's own signed message and HPKE info, the envelope's"
                " signed message): the op with none of its own code. The requester's key fingerprint is"
                " computed once per key object (a requester opens many grants with one key)."
            ),
            f"Goal (issue 16): grant round op/prims <= {GOAL_OVERHEAD}x.",
        ],
    )
    for name, (label, baseline) in labels.items():
        table.add(
            op=label,
            median_us=stats[name].median_us,
            p99_us=stats[name].p99_us,
            ops_s=stats[name].ops_per_s,
            baseline=baseline,
            primitives_us=primitives[name] / 1e3,
            overhead=ratio(med[name], primitives[name]),
            seq_us=sequences[name] / 1e3,
            overhead_seq=ratio(med[name], sequences[name]),
        )
    return table


# --- 5: the vault service on the in-memory fakes ----------------------------------------------------
class _ServiceBench:
    """A VaultService on the in-memory fakes with a LocalRootOfTrust and the default signer.

    The in-memory item repository scans every record on each lookup and the blob store keeps every body:
    costs of the fakes, not of the service. So each timed seal_item gets an empty repository and blob
    store (swapped in, and the previous ones dropped, outside the timed region), as after a put to
    DynamoDB and S3 nothing of the item stays in the function's memory.
    """

    def __init__(self, algorithm: SignatureAlgorithm) -> None:
        self.root = LocalRootOfTrust.generate()
        self.keys = ServiceKeys.load_or_create(
            InMemorySigningKeyStore(), self.root, algorithm, clock=lambda: NOW
        )
        self.vaults = InMemoryVaultRepository()
        self.memory_scope = MemoryScope(MemoryKind.USER, "bench-user")
        self.service = self.new_service()
        self.service.create_vault(TENANT, VAULT)
        self._ids = itertools.count()

    def new_service(self, decisions: InMemoryDecisionLedger | None = None) -> VaultService:
        """A service over the shared vault (and keys) with its own empty item repository and blob store,
        granting what ``decisions`` holds approved."""
        return VaultService(
            vaults=self.vaults,
            items=InMemoryItemRepository(self.vaults),
            blobs=InMemoryBlobStore(),
            root=self.root,
            service_keys=self.keys,
            clock=lambda: NOW,
            decisions=decisions,
        )

    def fresh_stores(self) -> None:
        self.service = self.new_service()
        # A warm container holds the unwrapped vault key (vault_key_cache_seconds): warm this service's
        # cache outside the timed region, so seal_item and grant are timed as a warm function runs them.
        self.service._vault_key(TENANT, VAULT, 1)

    def seal_item(self, plaintext: bytes) -> ItemRecord:
        return self.service.seal_item(
            TENANT, VAULT, f"item-{next(self._ids)}", plaintext, memory_scope=self.memory_scope
        )

    def load_vault_key(self) -> VaultKey:
        """What the service does per grant: the root unwraps the vault key, ML-KEM expands its seed."""
        record = self.vaults.get_key(TENANT, VAULT, 1)
        if record.wrapped_private_key is None:
            raise AssertionError("the bench vault key is retired")
        context = VaultRef(TENANT, VAULT).key_context(
            1, public_key=record.public_key, recovery_public_key=None
        )
        secret = self.root.unwrap(record.wrapped_private_key, context=context)
        return VaultKey(1, HybridPrivateKey.from_private_bytes(secret))


def chain_verifiers(ledger: InMemoryDecisionLedger, approval: DecisionRecord) -> list[Callable[[], object]]:
    """One raw verification per statement of the approval's stored attestation chain (its own signed bytes,
    signature and stage key, straight on liboqs or cryptography): the signatures every grant checks."""
    if approval.chain_sha256 is None:
        raise AssertionError("the bench approval has no attestation chain")
    keys = ledger.stage_keys.keys()
    checks: list[Callable[[], object]] = []
    for attestation in load_chain(ledger.chains, approval.tenant_id, approval.chain_sha256):
        key = keys.key_for(attestation)
        if key is None:
            raise AssertionError("the bench chain names an unknown stage key")
        verifier = raw_verifier(key.algorithm, key.public_key)
        message, signature = attestation.statement.signed_bytes(), attestation.signature
        if verifier(message, signature) is False:
            raise AssertionError("the bench chain does not verify")
        checks.append(partial(verifier, message, signature))
    return checks


def raw_verifier(algorithm: SignatureAlgorithm, public_key: bytes) -> Callable[[bytes, bytes], object]:
    """``verify(message, signature)`` straight on the signature's library (no reliquary wrapper)."""
    if algorithm is SignatureAlgorithm.ED25519:
        public = ed25519.Ed25519PublicKey.from_public_bytes(public_key)
        return lambda message, signature: public.verify(signature, message)
    verifier = reliquary_native.load_oqs().Signature(algorithm.value)
    return lambda message, signature: verifier.verify(message, signature, public_key)


def service_tables(budget: Budget, sizes: Sequence[int] = SIZES) -> tuple[Table, Table]:
    bench = _ServiceBench(DEFAULT_SIGNER)
    vault_key = bench.load_vault_key()
    public_bytes = vault_key.private_key.public_key().to_bytes()
    public_key = HybridPublicKey.from_bytes(public_bytes)
    requester_public = HybridPrivateKey.generate().public_key()
    plaintexts = {size: os.urandom(size) for size in sizes}
    scope = ItemScope(TENANT, VAULT, "item-x", 1, "application/octet-stream")
    # Each item's grant approved as the access flow logs it: the record and its attestation chain (one
    # context, trust, four votes and the tally statement, ML-DSA-65), which every grant checks.
    ledger = InMemoryDecisionLedger()
    granted = bench.new_service(ledger)  # its own small repository: grant looks items up by scanning it
    records = {
        size: granted.seal_item(
            TENANT, VAULT, f"granted-{size}", plaintexts[size], memory_scope=bench.memory_scope
        )
        for size in sizes
    }
    approvals = {
        size: ledger.approve(
            tenant_id=TENANT,
            vault_id=VAULT,
            item_id=record.item_id,
            request_id=f"bench-request-{size}",
            requester_key_sha256=requester_key_sha256(requester_public.to_bytes()),
            item_version=record.version,
            time=NOW,
        )
        for size, record in records.items()
    }
    table = Table(
        "service",
        f"Vault service on the in-memory fakes (LocalRootOfTrust, {DEFAULT_SIGNER.value}), beside bare"
        " crypto",
        [
            Column("size", "size"),
            Column("op", "op"),
            Column("median_us", "median µs", ",.1f"),
            Column("p99_us", "p99 µs", ",.1f"),
            Column("bare", "bare baseline"),
            Column("bare_us", "bare µs", ",.1f"),
            Column("domain_us", "domain µs", ",.1f"),
            Column("overhead", "op/bare", ".2f"),
        ],
        notes=[
            (
                "seal_item: a new item (version 1) per call, each on an empty in-memory item repository and"
                " blob store (swapped in outside the timed region); items over 256 KiB go to the blob store."
            ),
            (
                "grant: grant_approved, as the encrypt function grants: the approval logged for the request"
                " looked up (in memory) and its attestation chain verified (7 ML-DSA-65 statements), then"
                " parse the stored envelope, load the vault key through the root of trust, unwrap the data"
                " key, issue the grant; bare = the chain's 7 signatures verified raw (each statement's own"
                " signed bytes, on liboqs) + parse + unwrap_data_key + grants.issue with the vault key"
                " already loaded: every signature check the grant needs, none of the chain's parsing and"
                " canonical JSON (those are the domain µs)."
            ),
            "domain µs = service median - bare median.",
        ],
    )

    def bare_grant(record: ItemRecord) -> bytes:
        if record.envelope is None:
            raise AssertionError("the bench item was shredded")
        sealed = Envelope.parse(record.envelope)
        data_key = env.unwrap_data_key(
            sealed, scope=record.scope, vault_key=vault_key, keyring=bench.keys.keyring
        )
        return grants.issue(
            request_id="bench-request",
            scope=record.scope,
            data_key=data_key,
            requester_public_key=requester_public,
            issued_at=NOW,
            ttl_seconds=300,
            signer=bench.keys.signer,
        ).to_bytes()

    chain_checks = {size: chain_verifiers(ledger, approvals[size]) for size in sizes}

    def bare_attested_grant(size: int) -> bytes:
        for check in chain_checks[size]:
            check()
        return bare_grant(records[size])

    for size in sizes:
        plaintext, record = plaintexts[size], records[size]
        stats = measure(
            {
                "seal_item": Case(partial(bench.seal_item, plaintext), setup=bench.fresh_stores),
                "seal": partial(
                    env.seal,
                    plaintext,
                    scope=scope,
                    vault_public_key=public_key,
                    key_version=1,
                    signer=bench.keys.signer,
                ),
                "grant": partial(
                    granted.grant_approved,
                    request_id=f"bench-request-{size}",
                    tenant_id=TENANT,
                    vault_id=VAULT,
                    item_id=record.item_id,
                    requester_public_key=requester_public,
                ),
                "bare_grant": partial(bare_attested_grant, size),
            },
            budget,
        )
        for op, bare, label in (
            ("seal_item", "seal", "envelope.seal"),
            ("grant", "bare_grant", "7 chain verifies+parse+unwrap+issue"),
        ):
            table.add(
                size=size_label(size),
                op=op,
                median_us=stats[op].median_us,
                p99_us=stats[op].p99_us,
                bare=label,
                bare_us=stats[bare].median_us,
                domain_us=(stats[op].median_ns - stats[bare].median_ns) / 1e3,
                overhead=ratio(stats[op].median_ns, stats[bare].median_ns),
            )

    sealed = env.seal(
        plaintexts[min(sizes)],
        scope=scope,
        vault_public_key=public_key,
        key_version=1,
        signer=bench.keys.signer,
    )
    parts = measure(
        {
            "vault_key": bench.load_vault_key,
            "public_from_bytes": lambda: HybridPublicKey.from_bytes(public_bytes),
            "to_bytes": sealed.to_bytes,
            "item_scope": lambda: ItemScope(TENANT, VAULT, "item-x", 1, "application/octet-stream"),
            "approval": partial(
                require_attested,
                approvals[min(sizes)],
                ledger.chains,
                ledger.stage_keys,
                now=NOW,
                max_age_seconds=APPROVAL_MAX_AGE,
            ),
        },
        budget,
    )
    breakdown = Table(
        "service_parts",
        "Where the service's per-call domain time goes (size-independent parts)",
        [
            Column("part", "part"),
            Column("used_by", "paid by"),
            Column("median_us", "median µs", ",.1f"),
            Column("p99_us", "p99 µs", ",.1f"),
        ],
    )
    for key, part, used_by in (
        (
            "vault_key",
            "load vault key: root.unwrap + HybridPrivateKey.from_private_bytes",
            "a cache miss (once per vault key version per vault_key_cache_seconds)",
        ),
        ("public_from_bytes", "HybridPublicKey.from_bytes (the requester's key)", "every grant"),
        ("to_bytes", f"Envelope.to_bytes ({size_label(min(sizes))} inline)", "every seal_item"),
        ("item_scope", "ItemScope(...) with its id validation", "seal_item, grant (record.scope)"),
        (
            "approval",
            "require_attested: the approval's stored chain read and verified (7 ML-DSA-65 statements)",
            "every grant",
        ),
    ):
        breakdown.add(part=part, used_by=used_by, median_us=parts[key].median_us, p99_us=parts[key].p99_us)
    return table, breakdown
