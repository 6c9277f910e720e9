"""Shamir secret sharing of 32-byte secrets over GF(p), p = 2^31 - 1, vectorized with numpy.

Theory of operation (Shamir 1979; used for dropout recovery in Bonawitz et al., CCS'17,
section 4): a 32-byte secret is cut into CHUNKS = 11 field elements (ten 3-byte and one final
2-byte little-endian chunk, all < 2^24 < p).  Each chunk c gets its own random polynomial
f_c(x) = c + a_1 x + ... + a_{t-1} x^{t-1} whose coefficients are uniform in [0, p) (31-bit words
from the injected ``rng``, the single value p rejected: no modulo bias).  Holder x receives
f_c(x) for every chunk -- SHARE_BYTES = 44 bytes per secret -- computed for all holders and
secrets at once by Horner's rule in int64 (products < 2^62).  Any t shares determine every f_c
and so the secret; t - 1 shares are uniformly distributed whatever the secret.

Reconstruction evaluates the interpolating polynomial at zero: secret chunk = sum_i w_i y_i with
Lagrange weights w_i = prod_{j != i} x_j / (x_j - x_i).  The weights depend only on the holders'
x-coordinates, so a server computes them once per survivor set and reuses them for every
secret of the round.  A reconstructed chunk outside its 3-byte (last: 2-byte) range proves that
some share was corrupted and raises :class:`~fedsecure.errors.IntegrityError`; a random
corruption of one chunk escapes this check with probability < 2^-7, so protocols still
authenticate what a secret unlocks (e.g. recompute a public key from a recovered private key).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np

from fedsecure.errors import ConfigurationError, IntegrityError, MalformedMessage
from fedsecure.rng import DEFAULT_RNG, RandomSource

PRIME = 2**31 - 1
SECRET_BYTES = 32
CHUNKS = 11
CHUNK_BYTES = 3
SHARE_BYTES = 4 * CHUNKS
_CHUNK_LIMITS = np.array([1 << 24] * (CHUNKS - 1) + [1 << 16], dtype=np.int64)


def share_secrets(secrets: Sequence[bytes], holders: Sequence[int], threshold: int,
                  rng: RandomSource = DEFAULT_RNG) -> np.ndarray:
    """Shares of every secret for every holder: uint32 array (len(holders), len(secrets), 11).

    ``holders`` are the distinct x-coordinates in [1, p); any ``threshold`` of them reconstruct.
    """
    xs = _coordinates(holders, "holders")
    if not isinstance(threshold, int) or not 1 <= threshold <= len(xs):
        raise ConfigurationError(
            f"threshold={threshold!r}: must be an integer in [1, {len(xs)}], the number of holders")
    constants = _secrets_to_chunks(secrets)
    coefficients = _uniform_field_elements(rng, (threshold - 1, *constants.shape))
    x = xs[:, None, None]
    shares = np.zeros((len(xs), *constants.shape), dtype=np.int64)
    for coefficient in (*coefficients[::-1], constants):
        shares = (shares * x + coefficient) % PRIME
    return shares.astype(np.uint32)


def share_to_bytes(share_row: np.ndarray) -> bytes:
    """The 44-byte wire form of one holder's share of one secret (shape (CHUNKS,))."""
    row = np.asarray(share_row)
    if row.shape != (CHUNKS,) or row.dtype.kind not in "iu" or not _in_field(row):
        raise ConfigurationError(
            f"share_row: must be {CHUNKS} integers in [0, p), got shape {row.shape} {row.dtype}")
    return row.astype("<u4").tobytes()


def share_from_bytes(data: bytes) -> np.ndarray:
    """Parse a 44-byte share; wrong length or an element >= p raises MalformedMessage."""
    if len(data) != SHARE_BYTES:
        raise MalformedMessage(f"a share is {SHARE_BYTES} bytes, got {len(data)}")
    row = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    if not _in_field(row):
        raise MalformedMessage("share element out of the field range [0, 2^31 - 1)")
    return row


def lagrange_weights_at_zero(xs: Sequence[int]) -> np.ndarray:
    """int64 weights w_i = prod_{j != i} x_j / (x_j - x_i) mod p, for interpolation at 0."""
    x = _coordinates(xs, "xs")
    denominators = np.ones(len(x), dtype=np.int64)
    for j, xj in enumerate(x):
        difference = (xj - x) % PRIME
        difference[j] = 1
        denominators = denominators * difference % PRIME
    product = 1
    for xj in x.tolist():
        product = product * xj % PRIME
    return np.array([product * pow(xi * di % PRIME, PRIME - 2, PRIME) % PRIME
                     for xi, di in zip(x.tolist(), denominators.tolist())], dtype=np.int64)


def reconstruct_secrets(xs: Sequence[int], shares: np.ndarray,
                        weights: np.ndarray | None = None) -> list[bytes]:
    """The secrets from the shares (len(xs), n_secrets, CHUNKS) held at ``xs``.

    Pass ``weights = lagrange_weights_at_zero(xs)`` to reuse them across calls.  At least
    ``threshold`` shares are needed; fewer give garbage that is usually caught as IntegrityError.
    """
    if weights is None:
        weights = lagrange_weights_at_zero(xs)
    shares = np.asarray(shares)
    if shares.ndim != 3 or shares.shape[0] != len(xs) or shares.shape[2] != CHUNKS:
        raise ConfigurationError(
            f"shares: must have shape ({len(xs)}, n_secrets, {CHUNKS}), got {shares.shape}")
    weights = np.asarray(weights, dtype=np.int64)
    if weights.shape != (len(xs),) or not _in_field(weights):
        raise ConfigurationError(f"weights: must be {len(xs)} field elements")
    if shares.dtype.kind not in "iu" or not _in_field(shares):
        raise MalformedMessage("share element out of the field range [0, 2^31 - 1)")
    chunks = np.zeros(shares.shape[1:], dtype=np.int64)
    for weight, share in zip(weights, shares.astype(np.int64)):
        chunks = (chunks + weight * share) % PRIME
    if np.any(chunks >= _CHUNK_LIMITS):
        raise IntegrityError("reconstructed secret is out of range: a share is corrupted")
    return _chunks_to_secrets(chunks)


def _coordinates(values: Sequence[int], name: str) -> np.ndarray:
    try:
        xs = [operator.index(v) for v in values]
    except TypeError:
        raise ConfigurationError(f"{name}: must be integers") from None
    if not xs or len(set(xs)) != len(xs) or not all(0 < v < PRIME for v in xs):
        raise ConfigurationError(f"{name}={xs!r}: must be distinct integers in [1, 2^31 - 1)")
    return np.array(xs, dtype=np.int64)


def _in_field(values: np.ndarray) -> bool:
    return values.size == 0 or (int(values.min()) >= 0 and int(values.max()) < PRIME)


def _uniform_field_elements(rng: RandomSource, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform elements of [0, p): 31-bit words, rejecting the one value p."""
    count = int(np.prod(shape))
    out = np.empty(count, dtype=np.int64)
    filled = 0
    while filled < count:
        words = np.frombuffer(rng.bytes(4 * (count - filled)), dtype="<u4") & 0x7FFFFFFF
        accepted = words[words != PRIME]
        out[filled:filled + len(accepted)] = accepted
        filled += len(accepted)
    return out.reshape(shape)


def _secrets_to_chunks(secrets: Sequence[bytes]) -> np.ndarray:
    if not all(isinstance(s, bytes) and len(s) == SECRET_BYTES for s in secrets):
        raise ConfigurationError(f"secrets: each must be {SECRET_BYTES} bytes")
    raw = np.frombuffer(b"".join(secrets), dtype=np.uint8).reshape(len(secrets), SECRET_BYTES)
    padded = np.zeros((len(secrets), CHUNKS * CHUNK_BYTES), dtype=np.int64)
    padded[:, :SECRET_BYTES] = raw
    triples = padded.reshape(len(secrets), CHUNKS, CHUNK_BYTES)
    return triples[..., 0] | triples[..., 1] << 8 | triples[..., 2] << 16


def _chunks_to_secrets(chunks: np.ndarray) -> list[bytes]:
    little_endian = chunks.astype("<u4").view(np.uint8).reshape(len(chunks), CHUNKS, 4)
    raw = little_endian[..., :CHUNK_BYTES].reshape(len(chunks), CHUNKS * CHUNK_BYTES)
    return [row[:SECRET_BYTES].tobytes() for row in raw]
