"""CKKS homomorphic encryption on TenSEAL (Microsoft SEAL): the only module importing ``tenseal``.

Theory of operation (Cheon, Kim, Kim, Song, ASIACRYPT 2017; SEAL's RNS variant).  A vector of
up to N/2 reals is encoded as one polynomial of degree < N (``poly_modulus_degree``) whose
coefficients are the values scaled by 2^scale_bits, and encrypted under a public key as a pair
of polynomials modulo Q, the product of the *data* primes (every prime of
``coeff_mod_bit_sizes`` but the last, "special" one, which only serves key generation).
Adding two ciphertexts adds the encrypted vectors; aggregation needs nothing else, so the
parameters here have no multiplicative depth: a short modulus keeps ciphertexts small (two
polynomials of N coefficients mod Q per N/2 values: at least Q/2 bytes per value, whatever N;
SEAL's zstd-compressed serialization measures 57 bytes for Q = 100 bits, 32 for 60) and
deserialization fast.

Each fresh ciphertext decrypts to the value plus a small Gaussian-like error.  Its standard
deviation is bounded by :attr:`CkksParameters.noise_std`, a conservative model (encryption noise
``v*e + e0 + e1*s`` with SEAL's sigma = 3.2 and ternary v, s, without the reduction SEAL gets from
switching away the special prime, plus rounding): measured errors are ~16x smaller.  Sums of m
ciphertexts add m independent errors.  :attr:`CkksParameters.error_bound` is 7.2 standard
deviations (exceeded with probability < 2^-40 per coordinate).  Values must stay below
2^headroom_bits in absolute value or the decoded sum wraps around modulo Q.

Security: every preset and every accepted parameter set has a total modulus (special prime
included) within the HomomorphicEncryption.org standard's bound for 128-bit security with
ternary secrets; :attr:`CkksParameters.security_bits` reports the highest level met.

Hostile input: ciphertext and context bytes from the network are parsed by TenSEAL/SEAL, which
validate the structure and that every coefficient is reduced modulo its prime; on top of that
:meth:`PublicContext.load_ciphertext` checks the parameter set, level, scale, polynomial count,
NTT form and the number of encrypted values.  Every failure is a
:class:`~fedsecure.errors.MalformedMessage`.  A well-formed ciphertext of wrong *content* (e.g.
a bit flipped inside a coefficient) cannot be detected by anyone without the secret key.

Randomness: TenSEAL draws keys and encryption noise from SEAL's own CSPRNG (seeded from the
operating system); it cannot be injected, so CKKS transcripts are not reproducible.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedsecure.config import require
from fedsecure.errors import BackendUnavailable, LocalProtocolError, MalformedMessage

# HomomorphicEncryption.org security standard (2018), Table 1, ternary secret: the largest
# total coefficient modulus (bits) for each ring degree at each security level.
HE_STANDARD_MAX_MODULUS_BITS: dict[int, dict[int, int]] = {
    256: {4096: 58, 8192: 118, 16384: 237, 32768: 476},
    192: {4096: 75, 8192: 152, 16384: 305, 32768: 611},
    128: {4096: 109, 8192: 218, 16384: 438, 32768: 881},
}
NOISE_STD = 3.2
"""Standard deviation of SEAL's error distribution."""
TAIL_SIGMAS = 7.2
"""Standard deviations in :attr:`CkksParameters.error_bound`: P(|Z| > 7.2) < 2^-40."""
FINGERPRINT_DOMAIN = b"fedsecure/ckks/v1/context\x00"
_SERIALIZE_PUBLIC = {"save_public_key": True, "save_secret_key": False,
                     "save_galois_keys": False, "save_relin_keys": False}
_PARSE_ERRORS = (ValueError, RuntimeError, TypeError, MemoryError, OverflowError, IndexError)


def _tenseal():
    try:
        import tenseal
    except ImportError:
        raise BackendUnavailable("tenseal", "he") from None
    return tenseal


def require_backend() -> None:
    """Raise BackendUnavailable unless TenSEAL can be imported."""
    _tenseal()


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class CkksParameters:
    """A CKKS parameter set with no multiplicative depth (sums only)."""

    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    scale_bits: int

    def __post_init__(self):
        n = self.poly_modulus_degree
        require(n in HE_STANDARD_MAX_MODULUS_BITS[128], "poly_modulus_degree", n,
                f"must be one of {sorted(HE_STANDARD_MAX_MODULUS_BITS[128])}")
        sizes = tuple(self.coeff_mod_bit_sizes)
        object.__setattr__(self, "coeff_mod_bit_sizes", sizes)
        require(len(sizes) >= 2 and all(isinstance(b, int) and 20 <= b <= 60 for b in sizes),
                "coeff_mod_bit_sizes", sizes,
                "needs >= 2 primes (data primes, then the special prime) of 20..60 bits")
        limit = HE_STANDARD_MAX_MODULUS_BITS[128][n]
        require(sum(sizes) <= limit, "coeff_mod_bit_sizes", sizes,
                f"total {sum(sizes)} bits exceeds {limit}, the 128-bit security bound for N={n}")
        require(isinstance(self.scale_bits, int) and 20 <= self.scale_bits, "scale_bits",
                self.scale_bits, "must be an integer >= 20")
        require(self.headroom_bits >= 1, "scale_bits", self.scale_bits,
                f"leaves no room for values below the {self.data_modulus_bits}-bit data modulus")

    @property
    def slots(self) -> int:
        """Values per ciphertext (N/2)."""
        return self.poly_modulus_degree // 2

    @property
    def data_modulus_bits(self) -> int:
        """Bits of Q, the modulus fresh ciphertexts live in (all primes but the special one)."""
        return sum(self.coeff_mod_bit_sizes[:-1])

    @property
    def headroom_bits(self) -> int:
        """Values (and sums) of absolute value below 2^headroom_bits decode without wrap-around.

        Each b-bit prime exceeds 2^(b-1), so Q > 2^(data bits - data primes); a decoded value v
        needs |v| * 2^scale_bits < Q/2, and one more bit is kept for the noise.
        """
        data_primes = len(self.coeff_mod_bit_sizes) - 1
        return self.data_modulus_bits - data_primes - self.scale_bits - 2

    @property
    def security_bits(self) -> int:
        """The highest HE-standard security level (128, 192 or 256) these parameters meet."""
        total = sum(self.coeff_mod_bit_sizes)
        return max(level for level, table in HE_STANDARD_MAX_MODULUS_BITS.items()
                   if total <= table[self.poly_modulus_degree])

    @property
    def noise_std(self) -> float:
        """Conservative standard deviation of one decrypted slot of a fresh ciphertext."""
        n = self.poly_modulus_degree
        coefficient_variance = (NOISE_STD**2 * (1 + 4 * n / 3)  # v*e + e0 + e1*s
                                + (1 + 2 * n / 3) / 12  # rounding when the special prime goes
                                + 1 / 12)  # rounding the encoded values
        return math.sqrt(n / 2 * coefficient_variance) / 2.0**self.scale_bits

    @property
    def error_bound(self) -> float:
        """Bound on |decrypted - true| of one slot of a fresh ciphertext (fails w.p. < 2^-40)."""
        return TAIL_SIGMAS * self.noise_std

    def describe(self) -> str:
        return (f"N={self.poly_modulus_degree}, coeff_mod_bit_sizes={list(self.coeff_mod_bit_sizes)},"
                f" scale=2^{self.scale_bits}, {self.security_bits}-bit security")


PRESETS: dict[str, CkksParameters] = {
    # Q = 100 bits: 2^56 headroom, 57 bytes per value, error bound 1.4e-7, 128-bit security.
    "n8192": CkksParameters(8192, (60, 40, 60), 40),
    # Q = 60 bits: 2^17 headroom (n * max_weight * clip), 32 bytes per value, 192-bit security.
    "n8192-compact": CkksParameters(8192, (60, 60), 40),
    # Q = 120 bits: 2^64 headroom, 64 bytes per value, error bound 6.9e-11, 256-bit security.
    "n16384": CkksParameters(16384, (60, 60, 60), 52),
}


def preset(name: str) -> CkksParameters:
    require(name in PRESETS, "preset", name, f"must be one of {sorted(PRESETS)}")
    return PRESETS[name]


# --------------------------------------------------------------------------- contexts


def context_fingerprint(public_context: bytes) -> bytes:
    """SHA-256 of a serialized public context: names the key every ciphertext is made under."""
    return hashlib.sha256(FINGERPRINT_DOMAIN + public_context).digest()


@dataclass(frozen=True)
class CkksKeys:
    """A freshly generated key: the serialized secret and public contexts."""

    secret_context: bytes
    public_context: bytes

    @property
    def fingerprint(self) -> bytes:
        return context_fingerprint(self.public_context)

    def __repr__(self) -> str:  # never print key material
        return f"CkksKeys(fingerprint={self.fingerprint.hex()[:16]})"


def generate_keys(params: CkksParameters) -> CkksKeys:
    """A fresh CKKS key pair (no relinearization or Galois keys: sums need none)."""
    ts = _tenseal()
    context = ts.context(ts.SCHEME_TYPE.CKKS, params.poly_modulus_degree,
                         coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes))
    context.global_scale = 2.0**params.scale_bits
    return CkksKeys(
        secret_context=context.serialize(save_public_key=True, save_secret_key=True,
                                         save_galois_keys=False, save_relin_keys=False),
        public_context=context.serialize(**_SERIALIZE_PUBLIC))


def _chain_bits(seal_context) -> list[int]:
    bits = []
    data = seal_context.key_context_data()
    while data is not None:
        bits.append(data.total_coeff_modulus_bit_count())
        data = data.next_context_data()
    return bits


def _expected_chain_bits(params: CkksParameters) -> list[int]:
    sizes = params.coeff_mod_bit_sizes
    return [sum(sizes)] + [sum(sizes[:k]) for k in range(len(sizes) - 1, 0, -1)]


def load_context(data: bytes, params: CkksParameters, *,
                 sender: int | None = None) -> PublicContext:
    """Deserialize a context and check it matches ``params``.

    Returns a :class:`SecretContext` if ``data`` holds the secret key, else a
    :class:`PublicContext`; either way its ``fingerprint`` is that of the public part.
    """
    ts = _tenseal()
    try:
        context = ts.context_from(data)
        seal_context = context.seal_context().data
        chain = _chain_bits(seal_context)
        parms = seal_context.key_context_data().parms()
        degree = parms.poly_modulus_degree()
        ckks = parms.scheme().name == "CKKS"
        scale = context.global_scale
        has_public_key = context.has_public_key()
        private = context.is_private()
    except _PARSE_ERRORS as exc:
        raise MalformedMessage(f"undecodable CKKS context: {exc}", sender) from None
    if not (ckks and degree == params.poly_modulus_degree
            and chain == _expected_chain_bits(params) and scale == 2.0**params.scale_bits):
        raise MalformedMessage(
            f"CKKS context (N={degree}, modulus chain bits {chain}, scale {scale}) does not"
            f" match the configured {params.describe()}", sender)
    if not has_public_key:
        raise MalformedMessage("CKKS context has no public key", sender)
    if private:
        public = context.serialize(**_SERIALIZE_PUBLIC)
        return SecretContext(context, params, context_fingerprint(public))
    return PublicContext(context, params, context_fingerprint(data))


class PublicContext:
    """A loaded context that can encrypt and check ciphertexts; made by :func:`load_context`."""

    def __init__(self, context, params: CkksParameters, fingerprint: bytes):
        self._context = context
        self.params = params
        self.fingerprint = fingerprint
        self._parms_id = context.seal_context().data.first_parms_id()

    @property
    def is_private(self) -> bool:
        return self._context.is_private()

    def serialize(self) -> bytes:
        """The context as :func:`load_context` reads it, with the secret key if it holds one
        (a party snapshot; never a message to anyone but the owner)."""
        return self._context.serialize(**{**_SERIALIZE_PUBLIC, "save_secret_key": self.is_private})

    def chunk_lengths(self, length: int) -> list[int]:
        """How a vector of ``length`` values is split into ciphertexts of N/2 slots."""
        slots = self.params.slots
        return [min(slots, length - start) for start in range(0, length, slots)]

    def encrypt(self, values: np.ndarray) -> list[bytes]:
        """Encrypt a 1-D float array as ceil(len / (N/2)) serialized ciphertexts."""
        ts = _tenseal()
        slots = self.params.slots
        values = np.asarray(values, dtype=np.float64)
        return [ts.ckks_vector(self._context, values[start:start + slots].tolist()).serialize()
                for start in range(0, len(values), slots)]

    def load_ciphertext(self, data: bytes, length: int, sender: int | None = None):
        """Deserialize one ciphertext of ``length`` values made under these parameters."""
        ts = _tenseal()
        try:
            vector = ts.ckks_vector_from(self._context, data)
            ciphertexts = vector.data.ciphertext()
            size = vector.size()
        except _PARSE_ERRORS as exc:
            raise MalformedMessage(f"undecodable CKKS ciphertext: {exc}", sender) from None
        if size != length or len(ciphertexts) != 1:
            raise MalformedMessage(
                f"CKKS ciphertext holds {size} values in {len(ciphertexts)} ciphertexts,"
                f" expected {length} in 1", sender)
        ct = ciphertexts[0]
        if ct.parms_id() != self._parms_id or ct.size() != 2 or not ct.is_ntt_form():
            raise MalformedMessage("CKKS ciphertext is not a fresh ciphertext of these parameters",
                                   sender)
        if ct.scale != 2.0**self.params.scale_bits:
            raise MalformedMessage(f"CKKS ciphertext scale {ct.scale}, expected"
                                   f" 2^{self.params.scale_bits}", sender)
        if ct.is_transparent():
            raise MalformedMessage("CKKS ciphertext is transparent (not encrypted)", sender)
        return vector


class CiphertextSum:
    """Running sum of encrypted vectors of one length, ``add``-ed one party at a time."""

    def __init__(self, context: PublicContext, length: int):
        self._context = context
        self._lengths = context.chunk_lengths(length)
        self._sum: list | None = None
        self.count = 0

    def add(self, chunks: Sequence[bytes], sender: int | None = None) -> None:
        """Add one party's ciphertexts; all are checked before any is added (all or nothing)."""
        if len(chunks) != len(self._lengths):
            raise MalformedMessage(
                f"{len(chunks)} ciphertexts, expected {len(self._lengths)}", sender)
        vectors = [self._context.load_ciphertext(chunk, length, sender)
                   for chunk, length in zip(chunks, self._lengths)]
        if self._sum is None:
            self._sum = vectors
        else:
            for total, vector in zip(self._sum, vectors):
                total.add_(vector)
        self.count += 1

    def serialize(self) -> list[bytes]:
        if self._sum is None:
            raise LocalProtocolError("the sum of no ciphertexts is undefined")
        return [vector.serialize() for vector in self._sum]


class SecretContext(PublicContext):
    """A context holding the secret key: it can also decrypt."""

    def decrypt(self, chunks: Sequence[bytes], length: int,
                sender: int | None = None) -> np.ndarray:
        """Decrypt serialized ciphertexts of ``length`` values in total (checked like any input)."""
        lengths = self.chunk_lengths(length)
        if len(chunks) != len(lengths):
            raise MalformedMessage(f"{len(chunks)} ciphertexts, expected {len(lengths)}", sender)
        out = np.empty(length, dtype=np.float64)
        start = 0
        for chunk, n in zip(chunks, lengths):
            out[start:start + n] = self.load_ciphertext(chunk, n, sender).decrypt()
            start += n
        return out

