"""Shamir over GF(2^31 - 1): reconstruction, privacy of t-1 shares, sampling, wire form, and
error-correcting decoding."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import ConfigurationError, IntegrityError, MalformedMessage
from fedsecure.hazmat.shamir import (
    CHUNKS,
    PRIME,
    SHARE_BYTES,
    decode_secrets,
    lagrange_weights_at_zero,
    reconstruct_secrets,
    share_from_bytes,
    share_secrets,
    share_to_bytes,
    shares_from_bytes_many,
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


# --- error-correcting decoding -------------------------------------------------------------


@st.composite
def corrupted_sharings(draw, beyond_bound: bool = False):
    """(xs, shares, threshold, secrets, corrupted x-coordinates): m >= t holders, some of whose
    shares are changed in at least one chunk of one secret -- at most (m - t) // 2 of them, or
    (beyond_bound, m > t) more than that."""
    threshold = draw(st.integers(1, 8))
    m = threshold + draw(st.integers(1 if beyond_bound else 0, 10))
    bound = (m - threshold) // 2
    count = draw(st.integers(bound + 1, m) if beyond_bound else st.integers(0, bound))
    xs = draw(st.lists(st.integers(1, PRIME - 1), min_size=m, max_size=m, unique=True))
    secrets = draw(secret_lists)
    shares = share_secrets(secrets, xs, threshold, rng=DeterministicRandom(draw(st.integers())))
    corrupted = draw(st.permutations(range(m)))[:count]
    if draw(st.booleans()):  # colluding: all add the values of one polynomial D of degree < t
        secret, chunk = draw(st.integers(0, len(secrets) - 1)), draw(st.integers(0, CHUNKS - 1))
        offset = draw(st.lists(st.integers(0, PRIME - 1), min_size=threshold, max_size=threshold))
        changes = {(holder, secret, chunk): interpolate_at(list(enumerate(offset, 1)), xs[holder])
                   for holder in corrupted}
    else:  # independent: each changes a few cells of its own
        cell = st.tuples(st.integers(0, len(secrets) - 1), st.integers(0, CHUNKS - 1))
        changes = {(holder, secret, chunk): draw(st.integers(1, PRIME - 1)) for holder in corrupted
                   for secret, chunk in draw(st.lists(cell, min_size=1, max_size=4, unique=True))}
    for (holder, secret, chunk), delta in changes.items():
        delta = delta or 1  # nonzero: the share really changes
        shares[holder, secret, chunk] = (int(shares[holder, secret, chunk]) + delta) % PRIME
    return xs, shares, threshold, secrets, {xs[i] for i in corrupted}


@settings(max_examples=150, deadline=None)
@given(case=corrupted_sharings(), seed=st.integers())
def test_decode_corrects_up_to_half_the_redundancy(case, seed):
    xs, shares, threshold, secrets, corrupted = case
    assert decode_secrets(xs, shares, threshold, rng=DeterministicRandom(seed)) == (secrets, corrupted)


@settings(max_examples=100, deadline=None)
@given(case=corrupted_sharings(beyond_bound=True))
def test_decode_beyond_the_bound_raises_or_finds_a_nearby_codeword(case):
    """Past (m - t) // 2 corrupted holders the decoder either raises, or the shares really are
    that close to another codeword -- which takes >= m - t + 1 - e corrupted holders -- and its
    answer is self-consistent: the holders it keeps agree on it."""
    xs, shares, threshold, secrets, corrupted = case
    bound = (len(xs) - threshold) // 2
    try:
        decoded, bad = decode_secrets(xs, shares, threshold)
    except IntegrityError as error:
        assert f"than the {bound} that" in str(error) or "out of range" in str(error)
        return
    assert len(bad) <= bound and len(corrupted) >= len(xs) - threshold + 1 - bound
    kept = [i for i, x in enumerate(xs) if x not in bad]
    assert decode_secrets([xs[i] for i in kept], shares[kept], threshold) == (decoded, frozenset())


@pytest.mark.parametrize("m, threshold", [(3, 2), (4, 2), (9, 5), (10, 5), (31, 7)])
def test_random_corruption_beyond_the_bound_raises(m, threshold):
    """Uniformly random wrong shares at e + 1 holders are within e of no codeword (except with
    probability ~ m^e / p^(m-t-e)), so the decoder refuses them."""
    bound = (m - threshold) // 2
    xs = list(range(1, m + 1))
    for seed in range(10):
        rng = DeterministicRandom(f"{m}-{threshold}-{seed}")
        shares = share_secrets([rng.bytes(32), rng.bytes(32)], xs, threshold, rng=rng)
        random_words = np.frombuffer(rng.bytes(SHARE_BYTES * (bound + 1)), dtype="<u4") % PRIME
        shares[:bound + 1, 1] = random_words.reshape(bound + 1, CHUNKS)
        with pytest.raises(IntegrityError, match=f"than the {bound} that"):
            decode_secrets(xs, shares, threshold)


def test_beyond_the_bound_colluding_holders_can_steer_the_decoder():
    """The documented limit: m - t + 1 - e colluders move the shares next to another codeword, the
    decoder returns its (wrong, in-range) secret and blames an honest holder."""
    xs, threshold, secret = [1, 2, 3, 4, 5], 3, bytes(32)
    shares = share_secrets([secret], xs, threshold).astype(np.int64)
    # D vanishes at x = 1, 2 and D(0) = 1: the codeword shares + D hides secret + 1 in chunk 0.
    scale = pow((0 - 1) * (0 - 2), PRIME - 2, PRIME)
    for i, x in enumerate(xs[3:], start=3):  # holders 4 and 5 collude, holder 3 is honest
        shares[i, 0, 0] = (shares[i, 0, 0] + scale * (x - 1) * (x - 2)) % PRIME
    assert decode_secrets(xs, shares, threshold) == ([b"\x01" + bytes(31)], frozenset({3}))


def test_decode_known_answer():
    """f_c(x) = c + 7x for every chunk c of bytes(range(32)), built by hand; holder 3 lies."""
    secret = bytes(range(32))
    xs = [1, 2, 3, 4]
    shares = np.array([[[(c + 7 * x) % PRIME for c in chunk_values(secret)]] for x in xs])
    assert decode_secrets(xs, shares, 2) == ([secret], frozenset())
    shares[2, 0, 5] = 0
    assert decode_secrets(xs, shares, 2) == ([secret], frozenset({3}))
    shares[3, 0, 0] = 1
    with pytest.raises(IntegrityError, match="than the 1 that"):
        decode_secrets(xs, shares, 2)


def test_decode_without_redundancy_is_reconstruction():
    secrets = [DeterministicRandom(i).bytes(32) for i in range(3)]
    xs = [5, 6, 7]
    shares = share_secrets(secrets, xs, 3)
    assert decode_secrets(xs, shares, 3) == (secrets, frozenset())
    shares[0, 1, 2] = (int(shares[0, 1, 2]) + 1) % PRIME  # undetectable, as in reconstruction
    try:
        assert decode_secrets(xs, shares, 3)[0] != secrets
    except IntegrityError:
        pass


def test_one_extra_share_detects_but_cannot_correct():
    xs = [1, 2, 3, 4]
    shares = share_secrets([bytes(32)], xs, 3)
    shares[3, 0, 10] = (int(shares[3, 0, 10]) + 1) % PRIME
    with pytest.raises(IntegrityError, match="than the 0 that"):
        decode_secrets(xs, shares, 3)


class CountingRandom:
    """Serves ``prefix`` first, then a deterministic stream; records each request's size."""

    def __init__(self, prefix: bytes, seed: int):
        self._inner, self.requests = ScriptedRandom(prefix, seed), []

    def bytes(self, n: int) -> bytes:
        self.requests.append(n)
        return self._inner.bytes(n)


def cancelling_case():
    """Holder 2 of 5 (t = 2) is off by +1 in chunk 0 and -1 in chunk 1: all-ones weights cancel it."""
    secret = DeterministicRandom(9).bytes(32)
    shares = share_secrets([secret], [1, 2, 3, 4, 5], 2, rng=DeterministicRandom(9))
    shares[1, 0, 0] = (int(shares[1, 0, 0]) + 1) % PRIME
    shares[1, 0, 1] = (int(shares[1, 0, 1]) - 1) % PRIME
    return secret, shares


def test_an_error_cancelled_in_the_combination_is_found_by_the_next_one():
    secret, shares = cancelling_case()
    check, ones = DeterministicRandom(1).bytes(4 * CHUNKS * 2), np.ones(CHUNKS, "<u4").tobytes()
    rng = CountingRandom(check + ones, seed=2)
    assert decode_secrets([1, 2, 3, 4, 5], shares, 2, rng=rng) == ([secret], frozenset({2}))
    # consistency check, combination 1 (cancels), its check fails, combination 2, its check
    assert rng.requests == [8 * CHUNKS, 4 * CHUNKS, 8 * CHUNKS, 4 * CHUNKS, 8 * CHUNKS]


def test_decode_gives_up_after_every_combination_cancels():
    _, shares = cancelling_case()
    check, ones = DeterministicRandom(1).bytes(4 * CHUNKS * 2), np.ones(CHUNKS, "<u4").tobytes()
    rng = CountingRandom((check + ones) * 3, seed=2)  # three combinations are tried
    with pytest.raises(IntegrityError, match="than the 1 that"):
        decode_secrets([1, 2, 3, 4, 5], shares, 2, rng=rng)


def test_decode_checks_its_arguments():
    xs = [1, 2, 3]
    shares = share_secrets([bytes(32)], xs, 2)
    for threshold in (0, 4, 1.0):
        with pytest.raises(ConfigurationError):
            decode_secrets(xs, shares, threshold)
    with pytest.raises(ConfigurationError):
        decode_secrets(xs, shares[:, 0], 2)
    with pytest.raises(ConfigurationError):
        decode_secrets([1, 1, 2], shares, 2)
    out_of_field = shares.astype(np.int64)
    out_of_field[1, 0, 3] = PRIME
    with pytest.raises(MalformedMessage):
        decode_secrets(xs, out_of_field, 2)


def test_decode_with_no_secrets():
    assert decode_secrets([1, 2, 3], np.zeros((3, 0, CHUNKS), np.uint32), 2) == ([], frozenset())


# --- batch wire parsing ---------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(st.lists(st.integers(0, PRIME - 1), min_size=CHUNKS, max_size=CHUNKS),
                     max_size=20))
def test_batch_parser_matches_the_single_parser(rows):
    blobs = [share_to_bytes(np.array(row, dtype=np.uint32)) for row in rows]
    parsed = shares_from_bytes_many(blobs)
    assert parsed.shape == (len(rows), CHUNKS) and parsed.dtype == np.uint32
    assert parsed.tolist() == rows
    assert all(np.array_equal(share_from_bytes(b), row) for b, row in zip(blobs, parsed))


@pytest.mark.parametrize("bad", [b"", bytes(43), bytes(45), bytes(40) + PRIME.to_bytes(4, "little"),
                                 b"\xff" * SHARE_BYTES])
@pytest.mark.parametrize("index", [0, 2])
def test_batch_parser_names_the_first_bad_blob(bad, index):
    blobs = [bytes(SHARE_BYTES)] * 3
    blobs[index] = bad
    blobs += [bytes(7), b"\xff" * SHARE_BYTES]  # later bad blobs are not the one reported
    with pytest.raises(MalformedMessage, match=f"^share {index}:"):
        shares_from_bytes_many(blobs)


def test_decode_at_scale_with_the_most_correctable_errors():
    """m = 301, t = 101: 100 holders wrong (each in one random cell), the bound exactly."""
    rng = DeterministicRandom("scale")
    secrets = [rng.bytes(32) for _ in range(3)]
    xs = list(range(1000, 1301))
    shares = share_secrets(secrets, xs, 101, rng=rng)
    deltas = 1 + np.frombuffer(rng.bytes(4 * 100), dtype="<u4") % (PRIME - 1)
    for k, holder in enumerate(range(1, 301, 3)):
        shares[holder, k % 3, k % CHUNKS] = (int(shares[holder, k % 3, k % CHUNKS]) + int(deltas[k])) % PRIME
    bad = {xs[holder] for holder in range(1, 301, 3)}
    assert decode_secrets(xs, shares, 101) == (secrets, bad)
    shares[0, 0, 0] = (int(shares[0, 0, 0]) + 1) % PRIME  # one more is beyond the bound
    with pytest.raises(IntegrityError, match="than the 100 that"):
        decode_secrets(xs, shares, 101)
