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

Error correction (:func:`decode_secrets`).  The m shares of one chunk form a word of the
Reed-Solomon code {(f(x_1), ..., f(x_m)) : deg f < t}, of minimum distance m - t + 1, so up to
e = (m - t) // 2 wrong shares can be corrected (MacWilliams-Sloane ch. 10; Berlekamp-Welch,
US patent 4,633,470, 1986).  Every chunk of every secret is shared among the same holders, so
the holders to drop are common to all N = n_secrets * CHUNKS words, and both steps below work on
random linear combinations z = Y rho of the words (rho uniform from the injected ``rng``, fresh
per call, unknown to the senders): a combination of codewords is a codeword, and a holder wrong
in any word is wrong in z except with probability 1/p.

1. Consistency (the fast path).  A word y lies on one polynomial of degree < t iff its m - t
   syndromes sum_i v_i x_i^j y_i, j < m - t, vanish, with v_i = 1 / prod_{l != i} (x_l - x_i)
   (the dual code is a generalized Reed-Solomon code).  Two combinations are checked, so
   inconsistent shares pass with probability <= p^-2 ~ 2^-62.  Cost O(m N) for the combinations
   (rho in 16-bit limbs so int64 sums cannot overflow) + O(m^2): 4x a reconstruction from
   t = m / 2 shares (benchmarks/bench_shamir.py).
2. Berlekamp-Welch on one combination z: find Q (deg < t + e) and a monic E (deg e) with
   Q(x_i) = z_i E(x_i) for every i, an m x (t + 2e) linear system solved by Gaussian
   elimination mod p in int64 (products < 2^62).  With fewer than e errors the solutions form a
   space; free variables are set to 0, and any solution gives the same P = Q / E (Q E' - Q' E
   has degree < m and m roots).  A nonzero remainder, or no solution, proves more than e
   errors.  The holders where P disagrees with z are dropped; the others are checked as in step
   1 (a holder whose error cancelled in z, probability <= e / p, fails there, and another
   combination is tried, up to three) and t of them reconstruct.  Cost O(m^3 / 3) modular
   operations, vectorized per pivot (1.3-2.4 s at m = 1001 on the shared development machine),
   paid only when a share is wrong.

Beyond the bound the decoder raises IntegrityError unless the shares are within e of another
codeword: m - t + 1 - e or more colluding holders can steer it to a wrong secret and get
honest holders reported as bad.  Protocols therefore still authenticate decoded secrets.
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
    _check_threshold(threshold, len(xs))
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
    return shares_from_bytes_many([data])[0]


def shares_from_bytes_many(blobs: Sequence[bytes]) -> np.ndarray:
    """Parse many 44-byte shares at once: uint32 array (len(blobs), CHUNKS).

    One join, one ``frombuffer`` and one range check for all of them; a blob of the wrong length
    or with an element >= p raises MalformedMessage naming the index of the first bad blob.
    """
    lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
    wrong = np.flatnonzero(lengths != SHARE_BYTES)
    sized = int(wrong[0]) if wrong.size else len(blobs)  # blobs before the first wrong length
    rows = np.frombuffer(b"".join(blobs[:sized]), dtype="<u4").reshape(sized, CHUNKS)
    outside = np.flatnonzero((rows >= PRIME).any(axis=1))
    if outside.size:
        raise MalformedMessage(
            f"share {int(outside[0])}: element out of the field range [0, 2^31 - 1)")
    if sized < len(blobs):
        raise MalformedMessage(f"share {sized}: a share is {SHARE_BYTES} bytes, got {lengths[sized]}")
    return rows.astype(np.uint32)


def lagrange_weights_at_zero(xs: Sequence[int]) -> np.ndarray:
    """int64 weights w_i = prod_{j != i} x_j / (x_j - x_i) mod p, for interpolation at 0."""
    x = _coordinates(xs, "xs")
    product = 1
    for xj in x.tolist():
        product = product * xj % PRIME
    return product * _inverses(x * _difference_products(x) % PRIME) % PRIME


def reconstruct_secrets(xs: Sequence[int], shares: np.ndarray,
                        weights: np.ndarray | None = None) -> list[bytes]:
    """The secrets from the shares (len(xs), n_secrets, CHUNKS) held at ``xs``.

    Pass ``weights = lagrange_weights_at_zero(xs)`` to reuse them across calls.  At least
    ``threshold`` shares are needed; fewer give garbage that is usually caught as IntegrityError.
    """
    if weights is None:
        weights = lagrange_weights_at_zero(xs)
    values = _share_values(shares, len(xs))
    weights = np.asarray(weights, dtype=np.int64)
    if weights.shape != (len(xs),) or not _in_field(weights):
        raise ConfigurationError(f"weights: must be {len(xs)} field elements")
    return _interpolate_secrets(weights, values)


def decode_secrets(xs: Sequence[int], shares: np.ndarray, threshold: int, *,
                   rng: RandomSource = DEFAULT_RNG) -> tuple[list[bytes], frozenset[int]]:
    """Secrets from m = len(xs) >= threshold shares, shape (m, n_secrets, CHUNKS), tolerating up to
    (m - threshold) // 2 holders whose shares are wrong in any chunk of any secret.

    Returns (secrets, bad) where bad is the set of x-coordinates whose share of at least one secret
    disagrees with the decoded polynomial.  Raises IntegrityError (naming how many errors it could
    correct) when the shares are not within that distance of a degree-(threshold-1) codeword or a
    decoded chunk is out of its 3-byte (last: 2-byte) range.  With m == threshold nothing can be
    checked: this is :func:`reconstruct_secrets`.  ``rng`` draws the random combinations of the
    module docstring: a corrupted share goes unnoticed with probability <= 2 p^-2 < 2^-60, and
    correctable shares are refused with probability <= (e / p)^3 < 2^-60 for m <= 1000.

    Cost: consistent shares O(m * n_secrets * CHUNKS + m^2), a few reconstructions; with wrong
    shares add O(m^3 / 3) modular operations for one Berlekamp-Welch system (module docstring).
    Beyond the bound a wrong codeword can be returned (module docstring), so callers still
    authenticate the secrets.
    """
    x = _coordinates(xs, "xs")
    _check_threshold(threshold, len(x))
    values = _share_values(shares, len(x))
    words = values.reshape(len(x), -1)
    good = np.arange(len(x))
    if not _on_one_polynomial(x, words, threshold, rng):
        good = _correct_errors(x, words, threshold, rng)
    basis = good[:threshold]
    secrets = _interpolate_secrets(lagrange_weights_at_zero(x[basis]), values[basis])
    return secrets, frozenset(np.delete(x, good).tolist())


_CHECKS = 2  # random combinations per consistency check: a false pass has probability p^-2
_ATTEMPTS = 3  # Berlekamp-Welch combinations tried: each misses one of e bad holders w.p. <= e/p
_ROW_BLOCK = 256  # rows of the difference matrix at a time: 256 m int64 in memory
_LIMB_BLOCK = 1 << 15  # 31-bit word x 16-bit weight limb < 2^47; 2^15 of them sum below 2^62


def _correct_errors(x: np.ndarray, words: np.ndarray, threshold: int,
                    rng: RandomSource) -> np.ndarray:
    """Indices of the holders on the decoded polynomials; IntegrityError when too many are off."""
    correctable = (len(x) - threshold) // 2
    for _ in range(_ATTEMPTS if correctable else 0):
        column = _combine(words, _uniform_field_elements(rng, (words.shape[1], 1)))[:, 0]
        agree = _berlekamp_welch(x, column, threshold, correctable)
        if agree is None:
            break
        good = np.flatnonzero(agree)
        if _on_one_polynomial(x[good], words[good], threshold, rng):
            return good
    raise IntegrityError(
        f"more wrong shares than the {correctable} that {len(x)} shares at threshold {threshold} "
        f"can correct: no polynomial of degree {threshold - 1} is that close to them")


def _on_one_polynomial(x: np.ndarray, words: np.ndarray, threshold: int,
                       rng: RandomSource) -> bool:
    """Whether every word (column) is the values of one polynomial of degree < threshold at x,
    by the vanishing of the m - threshold dual-code syndromes of _CHECKS random combinations."""
    checks = len(x) - threshold
    if not checks:
        return True
    combined = _combine(words, _uniform_field_elements(rng, (words.shape[1], _CHECKS)))
    terms = combined * _inverses(_difference_products(x))[:, None] % PRIME
    return not np.any(_combine(_powers(x, checks).T, terms))  # the syndromes


def _combine(words: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """words @ weights mod p for int64 field elements (m, N) @ (N, k), without overflow."""
    k = weights.shape[1]
    limbs = np.concatenate([weights >> 16, weights & 0xFFFF], axis=1)  # weights = high 2^16 + low
    total = np.zeros((words.shape[0], k), dtype=np.int64)
    for start in range(0, words.shape[1], _LIMB_BLOCK):
        parts = words[:, start:start + _LIMB_BLOCK] @ limbs[start:start + _LIMB_BLOCK] % PRIME
        total = (total + (parts[:, :k] << 16) + parts[:, k:]) % PRIME
    return total


def _berlekamp_welch(x: np.ndarray, y: np.ndarray, threshold: int,
                     errors: int) -> np.ndarray | None:
    """Mask of the points where y agrees with the polynomial of degree < threshold within
    ``errors`` of it; None when there is none."""
    q_terms = threshold + errors
    powers = _powers(x, q_terms)
    system = np.concatenate([powers, (PRIME - y)[:, None] * powers[:, :errors] % PRIME,
                             (y * powers[:, errors] % PRIME)[:, None]], axis=1)
    solution = _solve(system)
    if solution is not None:
        locator = np.append(solution[q_terms:], 1)  # E, monic of degree ``errors``
        # deg Q < threshold + errors, so deg P < threshold and P disagrees with y only at roots of E.
        polynomial, remainder = _divide_by_monic(solution[:q_terms], locator)
        if not np.any(remainder):
            return _evaluate(polynomial, x) == y
    return None


def _solve(augmented: np.ndarray) -> np.ndarray | None:
    """A solution s of A s = b mod p, augmented = [A | b], free variables 0; None if inconsistent."""
    a = augmented.copy()
    rows, unknowns = a.shape[0], a.shape[1] - 1
    pivots: list[int] = []
    for column in range(unknowns):
        row = len(pivots)
        if row == rows:
            break
        candidates = np.flatnonzero(a[row:, column])
        if not candidates.size:
            continue
        a[[row, row + candidates[0]]] = a[[row + candidates[0], row]]
        a[row, column:] = a[row, column:] * pow(int(a[row, column]), PRIME - 2, PRIME) % PRIME
        a[row + 1:, column:] = (a[row + 1:, column:]
                                - a[row + 1:, column, None] * a[row, column:]) % PRIME
        pivots.append(column)
    if np.any(a[len(pivots):, unknowns]):
        return None
    solution = np.zeros(unknowns, dtype=np.int64)
    for row, column in reversed(list(enumerate(pivots))):
        known = (a[row, column + 1:unknowns] * solution[column + 1:] % PRIME).sum()
        solution[column] = (a[row, unknowns] - known) % PRIME
    return solution


def _divide_by_monic(numerator: np.ndarray, divisor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(quotient, remainder) mod p; coefficients lowest degree first, ``divisor`` monic."""
    remainder = numerator.copy()
    degree = len(divisor) - 1
    quotient = np.zeros(len(numerator) - degree, dtype=np.int64)
    for k in reversed(range(len(quotient))):
        quotient[k] = remainder[k + degree]
        remainder[k:k + degree + 1] = (remainder[k:k + degree + 1] - quotient[k] * divisor) % PRIME
    return quotient, remainder[:degree]


def _evaluate(polynomial: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The polynomial (coefficients lowest first) at every x, by Horner's rule."""
    values = np.zeros(len(x), dtype=np.int64)
    for coefficient in polynomial[::-1]:
        values = (values * x + coefficient) % PRIME
    return values


def _powers(x: np.ndarray, count: int) -> np.ndarray:
    """(len(x), count) int64: x_i^k mod p for k < count (doubling the filled columns each step)."""
    powers = np.ones((len(x), count), dtype=np.int64)
    filled = 1
    while filled < count:
        step = min(filled, count - filled)
        top = powers[:, filled - 1] * x % PRIME  # x^filled
        powers[:, filled:filled + step] = powers[:, :step] * top[:, None] % PRIME
        filled += step
    return powers


def _difference_products(x: np.ndarray) -> np.ndarray:
    """prod_{j != i} (x_j - x_i) mod p for every i: a block of rows of the difference matrix at a
    time, each row's product by halving (multiply the two halves) until one column is left."""
    products = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), _ROW_BLOCK):
        rows = (x[None, :] - x[start:start + _ROW_BLOCK, None]) % PRIME
        rows[np.arange(len(rows)), np.arange(start, start + len(rows))] = 1
        while rows.shape[1] > 1:
            half = rows.shape[1] // 2
            folded = rows[:, :half] * rows[:, half:2 * half] % PRIME
            rows = np.concatenate([folded, rows[:, 2 * half:]], axis=1)
        products[start:start + len(rows)] = rows[:, 0]
    return products


def _inverses(values: np.ndarray) -> np.ndarray:
    """Inverses mod p of nonzero int64 field elements: v^(p-2), square-and-multiply on the array."""
    result, power, exponent = np.ones_like(values), values, PRIME - 2
    while exponent:
        if exponent & 1:
            result = result * power % PRIME
        power, exponent = power * power % PRIME, exponent >> 1
    return result


def _interpolate_secrets(weights: np.ndarray, values: np.ndarray) -> list[bytes]:
    """sum_i w_i y_i mod p per chunk, range-checked and packed into secrets."""
    chunks = _combine(values.reshape(len(weights), -1).T, weights[:, None]).reshape(values.shape[1:])
    if np.any(chunks >= _CHUNK_LIMITS):
        raise IntegrityError("reconstructed secret is out of range: a share is corrupted")
    return _chunks_to_secrets(chunks)


def _check_threshold(threshold: int, holders: int) -> None:
    if not isinstance(threshold, int) or not 1 <= threshold <= holders:
        raise ConfigurationError(
            f"threshold={threshold!r}: must be an integer in [1, {holders}], the number of holders")


def _share_values(shares: np.ndarray, holders: int) -> np.ndarray:
    """int64 copy of validated shares (holders, n_secrets, CHUNKS)."""
    shares = np.asarray(shares)
    if shares.ndim != 3 or shares.shape[0] != holders or shares.shape[2] != CHUNKS:
        raise ConfigurationError(
            f"shares: must have shape ({holders}, n_secrets, {CHUNKS}), got {shares.shape}")
    if shares.dtype.kind not in "iu" or not _in_field(shares):
        raise MalformedMessage("share element out of the field range [0, 2^31 - 1)")
    return shares.astype(np.int64)


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
