"""Shamir over GF(2^31 - 1): reconstruction, privacy of t-1 shares, sampling, wire form."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import ConfigurationError, IntegrityError, MalformedMessage
from fedsecure.hazmat.shamir import (
    CHUNKS,
    PRIME,
    SHARE_BYTES,
    lagrange_weights_at_zero,
    reconstruct_secrets,
    share_from_bytes,
    share_secrets,
    share_to_bytes,
)
from fedsecure.rng import DeterministicRandom

secret_lists = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=4)


@st.composite
def sharing_setups(draw):
    """(holders, threshold, a subset of >= threshold holders' indices)."""
    n = draw(st.integers(2, 60))
    holders = draw(st.lists(st.integers(1, PRIME - 1), min_size=n, max_size=n, unique=True))
    threshold = draw(st.integers(1, n))
    size = draw(st.integers(threshold, n))
    subset = draw(st.permutations(range(n)))[:size]
    return holders, threshold, subset


def interpolate_at(points: list[tuple[int, int]], x: int) -> int:
    """Independent pure-Python Lagrange interpolation mod p of ``points`` at ``x``."""
    total = 0
    for i, (xi, yi) in enumerate(points):
        term = yi
        for j, (xj, _) in enumerate(points):
            if j != i:
                term = term * (x - xj) * pow(xi - xj, PRIME - 2, PRIME) % PRIME
        total = (total + term) % PRIME
    return total


def chunk_values(secret: bytes) -> list[int]:
    padded = secret + b"\x00"
    return [int.from_bytes(padded[3 * c:3 * c + 3], "little") for c in range(CHUNKS)]


@settings(max_examples=60, deadline=None)
@given(setup=sharing_setups(), secrets=secret_lists, seed=st.integers())
def test_any_t_shares_reconstruct_every_secret(setup, secrets, seed):
    holders, threshold, subset = setup
    shares = share_secrets(secrets, holders, threshold, rng=DeterministicRandom(seed))
    assert shares.shape == (len(holders), len(secrets), CHUNKS) and shares.dtype == np.uint32
    assert int(shares.max()) < PRIME
    xs = [holders[i] for i in subset]
    assert reconstruct_secrets(xs, shares[subset]) == secrets


@settings(max_examples=40, deadline=None)
@given(setup=sharing_setups(), secrets=secret_lists)
def test_fewer_than_t_shares_do_not_reconstruct(setup, secrets):
    """The polynomials have full degree t-1: t-1 shares interpolate to something else."""
    holders, threshold, subset = setup
    if threshold < 2:
        return
    shares = share_secrets(secrets, holders, threshold)
    few = subset[:threshold - 1]
    try:
        recovered = reconstruct_secrets([holders[i] for i in few], shares[few])
    except IntegrityError:
        return
    assert all(r != s for r, s in zip(recovered, secrets))


@settings(max_examples=30, deadline=None)
@given(setup=sharing_setups(), secret=st.binary(min_size=32, max_size=32),
       candidate=st.binary(min_size=32, max_size=32))
def test_t_minus_1_shares_are_consistent_with_any_secret(setup, secret, candidate):
    """For any candidate secret there is a degree-(t-1) polynomial through the t-1 real shares
    and that candidate: completing them with its value at one more holder yields the candidate."""
    holders, threshold, subset = setup
    few, extra = subset[:threshold - 1], subset[-1]
    if extra in few:
        return
    real = share_secrets([secret], holders, threshold)[few, 0]
    forged = np.array([
        interpolate_at([(0, target)] + [(holders[i], int(real[k, c])) for k, i in enumerate(few)],
                       holders[extra])
        for c, target in enumerate(chunk_values(candidate))], dtype=np.uint32)
    xs = [holders[i] for i in few] + [holders[extra]]
    shares = np.concatenate([real, forged[None]])[:, None, :]
    assert reconstruct_secrets(xs, shares) == [candidate]


class ScriptedRandom:
    """Returns the given bytes first, then a deterministic stream."""

    def __init__(self, prefix: bytes, seed: int):
        self._pending, self._rest = prefix, DeterministicRandom(seed)

    def bytes(self, n: int) -> bytes:
        head, self._pending = self._pending[:n], self._pending[n:]
        return head + self._rest.bytes(n - len(head))


def test_coefficients_are_31_bit_words_with_p_rejected():
    stream = DeterministicRandom(5).bytes(4 * 2 * CHUNKS)
    holders, secrets = [3, 9, 12], [bytes(32)]
    plain = share_secrets(secrets, holders, 3, rng=ScriptedRandom(stream, 6))
    # Top bits are ignored, and the value p = 0x7fffffff is skipped (so is p | 2^31).
    words = np.frombuffer(stream, dtype="<u4") | np.uint32(1 << 31)
    rejected = np.array([PRIME, PRIME | 1 << 31], dtype="<u4").tobytes()
    script = rejected + words[:7].tobytes() + rejected[:4] + words[7:].tobytes()
    scripted = ScriptedRandom(script, 6)
    assert np.array_equal(share_secrets(secrets, holders, 3, rng=scripted), plain)
    # Coefficients come from the rng: a different stream gives different shares.
    assert not np.array_equal(share_secrets(secrets, holders, 3, rng=DeterministicRandom(7)), plain)


def test_single_share_of_a_fixed_secret_is_uniform():
    """With t = 2 one share is c + a x with a uniform: shares of the zero secret look uniform."""
    shares = share_secrets([bytes(32)] * 2000, [7, 8], 2, rng=DeterministicRandom(3))[0]
    values = shares.astype(np.float64).ravel() / PRIME  # 22000 samples, uniform on [0, 1)
    assert abs(values.mean() - 0.5) < 5 * np.sqrt(1 / 12 / values.size)
    histogram = np.histogram(values, bins=16, range=(0, 1))[0]
    expected = values.size / 16
    assert ((histogram - expected) ** 2 / expected).sum() < 50  # chi^2, 15 dof: p < 1e-5


def test_threshold_one_shares_are_the_chunks():
    secret = bytes(range(32))
    shares = share_secrets([secret], [4, 5], 1)
    assert shares[0, 0].tolist() == shares[1, 0].tolist() == chunk_values(secret)


def test_sharing_is_reproducible_from_the_rng():
    a = share_secrets([bytes(32)], [1, 2, 3], 2, rng=DeterministicRandom("s"))
    b = share_secrets([bytes(32)], [1, 2, 3], 2, rng=DeterministicRandom("s"))
    assert np.array_equal(a, b)


@settings(max_examples=30, deadline=None)
@given(xs=st.lists(st.integers(1, PRIME - 1), min_size=1, max_size=30, unique=True))
def test_lagrange_weights_interpolate_at_zero(xs):
    weights = lagrange_weights_at_zero(xs)
    assert weights.dtype == np.int64 and int(weights.sum()) % PRIME == 1  # constant polynomial
    for i, w in enumerate(weights.tolist()):
        basis = [(x, int(i == j)) for j, x in enumerate(xs)]
        assert w == interpolate_at(basis, 0)


def test_weights_are_reusable_across_reconstructions():
    xs = [2, 5, 11]
    weights = lagrange_weights_at_zero(xs)
    for seed in range(3):
        secrets = [DeterministicRandom(seed).bytes(32), bytes(32)]
        shares = share_secrets(secrets, [1, 2, 3, 5, 11], 3)
        assert reconstruct_secrets(xs, shares[[1, 3, 4]], weights) == secrets


@pytest.mark.parametrize("xs", [[1, 1, 2], [0, 1], [PRIME, 3], [-1, 2], [], [1.5, 2]])
def test_bad_coordinates_are_refused(xs):
    with pytest.raises(ConfigurationError):
        lagrange_weights_at_zero(xs)
    with pytest.raises(ConfigurationError):
        share_secrets([bytes(32)], xs, 1)


@pytest.mark.parametrize("threshold", [0, -1, 4, 2.0])
def test_bad_threshold_is_refused(threshold):
    with pytest.raises(ConfigurationError):
        share_secrets([bytes(32)], [1, 2, 3], threshold)


@pytest.mark.parametrize("secret", [bytes(31), bytes(33), "x" * 32])
def test_secrets_must_be_32_bytes(secret):
    with pytest.raises(ConfigurationError):
        share_secrets([secret], [1, 2], 2)


@settings(max_examples=30, deadline=None)
@given(secret=st.binary(min_size=32, max_size=32), holders=st.lists(
    st.integers(1, PRIME - 1), min_size=1, max_size=5, unique=True))
def test_serialization_round_trip(secret, holders):
    shares = share_secrets([secret], holders, 1 + len(holders) // 2)
    for row in shares[:, 0]:
        data = share_to_bytes(row)
        assert len(data) == SHARE_BYTES
        assert np.array_equal(share_from_bytes(data), row)


@pytest.mark.parametrize("data", [b"", bytes(43), bytes(45), bytes(88),
                                  bytes(40) + PRIME.to_bytes(4, "little"),
                                  b"\xff" * SHARE_BYTES])
def test_bad_share_bytes_are_malformed(data):
    with pytest.raises(MalformedMessage):
        share_from_bytes(data)


def test_share_to_bytes_refuses_non_shares():
    for row in [np.zeros(10, np.uint32), np.full(CHUNKS, PRIME, np.int64),
                np.zeros(CHUNKS, np.float64), np.zeros((2, CHUNKS), np.uint32)]:
        with pytest.raises(ConfigurationError):
            share_to_bytes(row)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(), chunk=st.integers(0, CHUNKS - 1), delta=st.integers(1, PRIME - 1))
def test_a_corrupted_chunk_never_yields_the_secret(seed, chunk, delta):
    secret = DeterministicRandom(seed).bytes(32)
    shares = share_secrets([secret], [1, 2, 3, 4], 3, rng=DeterministicRandom(seed))[[0, 2, 3]]
    shares[1, 0, chunk] = (int(shares[1, 0, chunk]) + delta) % PRIME
    try:
        assert reconstruct_secrets([1, 3, 4], shares) != [secret]
    except IntegrityError:
        pass


def test_random_corruption_is_detected():
    secrets = [DeterministicRandom(i).bytes(32) for i in range(200)]
    shares = share_secrets(secrets, [1, 2, 3], 2, rng=DeterministicRandom(0))[[0, 2]]
    detected = 0
    for i in range(len(secrets)):
        corrupted = shares[:, i:i + 1].copy()
        random_words = np.frombuffer(DeterministicRandom(-i).bytes(SHARE_BYTES), dtype="<u4")
        corrupted[0, 0] = random_words % PRIME
        try:
            reconstruct_secrets([1, 3], corrupted)
        except IntegrityError:
            detected += 1
    assert detected == len(secrets)  # a random share escapes detection with p < 2^-80


def test_reconstruct_refuses_out_of_field_shares_and_bad_shapes():
    shares = share_secrets([bytes(32)], [1, 2], 2).astype(np.int64)
    bad = shares.copy()
    bad[0, 0, 0] = PRIME
    with pytest.raises(MalformedMessage):
        reconstruct_secrets([1, 2], bad)
    with pytest.raises(ConfigurationError):
        reconstruct_secrets([1, 2], shares[:, 0])
    with pytest.raises(ConfigurationError):
        reconstruct_secrets([1, 2], shares, weights=np.array([1]))
